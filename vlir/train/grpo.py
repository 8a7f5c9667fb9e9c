"""R-GRPO: region-conditioned GRPO of Qwen2.5-VL over the crop-and-zoom rollout engine (VLM-R3
stage two).

Launch (from the repository root)::

    deepspeed --num_gpus 8 --module vlir.train.grpo --config recipes/grpo_qwen2_5_vl_7b.yaml [key=value ...]
    vlir train grpo --config recipes/grpo_tiny.yaml                  # one process, CPU or one GPU

Why vlir's own loop and not TRL's ``GRPOTrainer``: TRL 1.16's tool route changes the chat format
to ``<tool_call>`` + tool turns (not the paper's inline ``{"bbox_2d": …}`` inside the assistant
turn, which the SFT data teaches), and its ``rollout_func`` cannot carry images produced
mid-completion (``shared/STACK.md``). So the loop is a compact recipe over :mod:`vlir.rollout`
(the one engine), :mod:`vlir.train.rewards` and :mod:`vlir.train.grpo_loss`; TRL contributes its
log-prob kernel, DeepSpeed the engine, transformers the schedules.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from vlir.train import common, grpo_metrics, lora, reporting
from vlir.train.common import METRICS
from vlir.train.grpo_config import GRPOConfig
from vlir.train.grpo_loss import (collate, exclude_from_training, group_advantages, logprob_gap, policy_loss,
                                  sequence_logprobs)

log = logging.getLogger(__name__)

PLOT_KEYS = grpo_metrics.PLOT_KEYS
SUMMARY = "summary.json"


class GRPOTrainer:
    """R-GRPO with DeepSpeed. Features and the config keys that control them:

    * rollouts from the one engine factory (:func:`vlir.rollout.build_engine`): ``num_generations``
      (M) samples per prompt; the ``rollout`` section (a :class:`vlir.rollout.RolloutConfig`:
      temperature, top_p, max_new_tokens, max_crops, mode ...); the chat (instruction, budgets)
      from ``chat``; an optional ``logits_processor`` (constructor argument).
    * rewards as composable functions (``rewards``: name, weight, kwargs), each logged as
      ``reward/<name>``; group-normalised advantages (``scale_rewards``, ``advantage_eps``).
    * the clipped policy-ratio loss on action-mask tokens only (``epsilon_low``/``epsilon_high``,
      ``loss_type``), ``num_iterations`` updates per rollout batch; a reference-model KL term when
      ``beta`` > 0 (``log_reference_kl`` logs it at beta = 0).
    * LoRA adapters via peft (``lora``, :mod:`vlir.train.lora`); ``report_to`` TensorBoard / W&B
      (:mod:`vlir.train.reporting`).
    * DeepSpeed ZeRO-2/3 from a JSON (``deepspeed``), ``precision``, ``gradient_checkpointing``;
      vision tower and merger frozen (``freeze_vision_tower``, ``freeze_merger``).
    * batch arithmetic: ``prompts_per_step`` groups per optimizer step over all ranks, micro-batches
      of ``per_device_batch_size`` trajectories (see ``grpo_config``); AdamW, ``lr_scheduler``,
      ``warmup_steps``, ``max_grad_norm``.
    * ``metrics.jsonl``: per step every figure of :mod:`vlir.train.grpo_metrics` (rewards and
      their std, advantages, KL, clip ratios, entropy, lengths, crops, hit and bad-box rates, grad
      norm, learning rate, time split); the console shows the ones that matter; ``summary.json``
      holds first- vs last-quarter means; ``rewards.png`` (``plot``); checkpoints (``save_steps``,
      ``keep_checkpoints``, ``resume``) in ``output_dir`` and ``output_dir/checkpoints/step-N``.
    """

    def __init__(self, cfg: GRPOConfig, logits_processor: Callable[[Any, Any], Any] | None = None):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.logits_processor = logits_processor
        self.step = 0
        self.ref_model = None
        self._old: list[torch.Tensor] | None = None  # old log-probs when num_iterations > 1

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        from vlir.train.rewards import get_reward

        cfg = self.cfg
        self.specs = cfg.reward_specs()
        for spec in self.specs:
            get_reward(spec.name)  # fail before loading any model
        common.prepare(self, cfg, cfg.micro_batches, "grpo_config.yaml")
        self.reporter = reporting.Reporter(cfg.report_to, self.out, cfg.to_dict(), f"grpo-{self.out.name}", self.rank)
        self.grad_accum = cfg.micro_batches(self.world_size)
        self._setup_model()
        self._setup_data()
        self._setup_optimizer()
        self._resume() if self.resuming else None

    def _load(self):
        return common.load(self.cfg, self.dtype)

    def _setup_model(self) -> None:
        from vlir.models import special_ids
        cfg = self.cfg
        path = Path(cfg.model_path)
        common.ensure_model(path, cfg.build_model, cfg.seed, self.rank,
                            f"no model at {path}: run SFT first (make train) or set model_path")
        self._hf_ds = common.zero3_loading(self.ds_config, self.zero_stage)  # alive while loading
        self.model, self.processor = self._load()
        self.ids = special_ids(self.processor)
        common.freeze(self.model, vision_tower=cfg.freeze_vision_tower, merger=cfg.freeze_merger)
        self.model = lora.apply(self.model, cfg.lora, self.zero_stage)  # the loss and masks are unchanged
        if cfg.gradient_checkpointing:
            common.enable_gradient_checkpointing(self.model)
        if cfg.beta > 0 or cfg.log_reference_kl:
            self.ref_model = self._reference()
        trainable, total = common.parameter_counts(self.model)
        log.info("policy %s: %d of %d parameters trainable; reference model: %s", path, trainable,
                 total, self.ref_model is not None)

    def _reference(self):
        """The frozen initial policy (same checkpoint). Under ZeRO-3 it is partitioned like the
        policy and wrapped in an optimizer-less engine, as TRL's ``prepare_deepspeed`` does."""
        ref, _ = self._load()
        ref.requires_grad_(False)
        if self.zero_stage != 3:
            return ref.to(self.device).eval()
        import deepspeed

        ref_config = {"train_micro_batch_size_per_gpu": self.cfg.per_device_batch_size,
                      "zero_optimization": {"stage": 3}, "bf16": {"enabled": self.bf16}}
        engine = deepspeed.initialize(model=ref, config=ref_config)[0]
        engine.eval()
        return engine

    def _setup_data(self) -> None:
        from vlir.geometry import PixelBudget
        from vlir.models.chat import ChatConfig
        from vlir.train.rl_data import RLSet

        cfg = self.cfg
        overrides = {k: PixelBudget(*v) if k.endswith("_budget") and isinstance(v, list) else v
                     for k, v in cfg.chat.items()}
        self.chat_cfg = ChatConfig.for_processor(self.processor, **overrides)
        self.rollout_cfg = cfg.rollout_config()
        self.policy_version = 0  # optimizer steps whose weights the rollout engine has
        self.sync = self._weight_sync() if self.rollout_cfg.engine == "served" else None
        self.data = RLSet(cfg.data_dir)
        self.per_rank = cfg.prompts_per_step // self.world_size
        log.info("RL set %s: %d prompts %s; %d prompts x %d samples per rank per step, %d micro-batches",
                 cfg.data_dir, len(self.data), self.data.describe(), self.per_rank, cfg.num_generations,
                 self.grad_accum)

    def _setup_optimizer(self) -> None:
        import deepspeed
        from transformers import get_scheduler

        cfg = self.cfg
        schedule = (lambda opt: get_scheduler(cfg.lr_scheduler, opt, num_warmup_steps=cfg.warmup_steps,
                                              num_training_steps=cfg.max_steps))
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=self.model, model_parameters=params, config=self.ds_config, lr_scheduler=schedule)

    def _resume(self) -> None:
        state = common.resume(self.engine, self.out, self.rank)
        self.step = int(state["step"]) if state is not None else self.step

    # ------------------------------------------------------------------ one step
    def _prompts(self, batch_index: int) -> list:
        """This rank's prompts of rollout batch ``batch_index``: consecutive in the RL set (its
        rows are already in seeded random order), wrapping around for further epochs."""
        start = batch_index * self.cfg.prompts_per_step + self.rank * self.per_rank
        return [self.data[(start + j) % len(self.data)] for j in range(self.per_rank)]

    def _weight_sync(self):
        from vlir.train.weight_sync import FolderSync, NcclSync

        cfg, urls = self.cfg, self.rollout_cfg.base_url
        if cfg.weight_sync == "folder":
            return FolderSync(urls, self.out / "policy_sync")
        host, _, port = cfg.weight_sync_master.rpartition(":")
        sync = NcclSync(urls, host, int(port), cfg.weight_sync_workers)
        if self.rank == 0:
            sync.connect(self.device)
        return sync

    def _generation_context(self):
        """ZeRO-3 shards the weights; generation gathers them once instead of per forward."""
        if self.zero_stage != 3:
            return contextlib.nullcontext()
        from deepspeed.runtime.zero import GatheredParameters  # `deepspeed.zero` is an attribute, not a module
        return GatheredParameters(list(self.engine.module.parameters()))

    def _rollout(self, prompts: list, batch_index: int) -> list:
        from vlir.rollout import build_engine

        cfg = self.cfg
        rc = self.rollout_cfg.with_(chat=self.chat_cfg, crop_budget=self.rollout_cfg.crop_budget or self.chat_cfg.crop_budget,
                                    logits_processor=self.logits_processor,
                                    seed=cfg.seed * 1_000_003 + batch_index * 1009 + self.rank)
        module = self.engine.module
        module.eval()
        try:
            with torch.no_grad(), self._generation_context() if self.sync is None else contextlib.nullcontext():
                engine = build_engine(cfg.model_path, rc, loaded=(module, self.processor))
                engine.policy_version = self.policy_version
                trajs = engine.generate([(p.question, p.image) for p in prompts], cfg.num_generations)
        finally:
            module.train()
        for t in trajs:
            if not t.token_ids:
                raise RuntimeError("the rollout engine returned no token ids (a served engine needs vLLM's "
                                   "return_token_ids): R-GRPO trains on the ids the policy sampled")
            if not t.token_exact:  # the ids are not exactly what the server conditioned on: never train on it
                exclude_from_training(t, self.ids["pad"])
        return sorted(trajs, key=lambda t: t.prompt_index)  # stable: groups are consecutive

    def _score(self, prompts: list, trajs: list) -> tuple[dict[str, list], torch.Tensor]:
        from vlir.train.rewards import compute_rewards

        owner = [prompts[t.prompt_index] for t in trajs]
        raw, total = compute_rewards(
            self.specs, [t.text for t in trajs], answers=[list(p.answers) for p in owner],
            source=[p.source for p in owner], question=[p.question for p in owner],
            boxes=[t.boxes for t in trajs])
        return raw, torch.tensor(total, dtype=torch.float64)

    def _forward(self, model, trajs: list, entropy: bool = False):
        batch = collate(trajs, self.ids["pad"], self.ids["image_pad"]).to(self.engine.device)
        if batch.pixel_values is not None:
            batch.pixel_values = batch.pixel_values.to(self.dtype)
        return sequence_logprobs(model, batch, self.rollout_cfg.temperature, entropy=entropy), batch

    def _update(self, trajs: list, advantages: torch.Tensor, times: dict[str, float]) -> dict[str, float]:
        """One optimizer step over this rank's trajectories (``grad_accum`` micro-batches); returns
        token-weighted sums for the metrics and adds the phases' seconds to ``times``."""
        cfg = self.cfg
        mb = cfg.per_device_batch_size
        chunks = [trajs[i:i + mb] for i in range(0, len(trajs), mb)]
        sums = {"loss": 0.0, "clip_low": 0.0, "clip_high": 0.0, "entropy": 0.0, "tokens": 0.0,
                "logprob_gap": 0.0, "logprob_gap_tokens": 0.0}
        if self.ref_model is not None:
            sums["kl"] = 0.0
        for ci, chunk in enumerate(chunks):
            ref = None
            t0 = time.perf_counter()
            if self.ref_model is not None:
                with torch.no_grad():
                    ref = self._forward(self.ref_model, chunk)[0]
            t1 = time.perf_counter()
            old = self._old[ci] if self._old is not None else None
            (logp, ent), batch = self._forward(self.engine, chunk, entropy=True)
            if self.step % cfg.num_iterations == 0:  # the weights that sampled this batch
                gap, n = logprob_gap(chunk, logp, batch.action_mask)
                sums["logprob_gap"] += gap
                sums["logprob_gap_tokens"] += n
            loss, st = policy_loss(logp, logp.detach() if old is None else old,
                                   advantages[ci * mb:(ci + 1) * mb].to(logp.device), batch.action_mask,
                                   cfg.epsilon_low, cfg.epsilon_high, ref, cfg.beta, cfg.loss_type)
            self.engine.backward(loss)
            t2 = time.perf_counter()
            self.engine.step()  # DeepSpeed steps the optimizer at the accumulation boundary only
            t3 = time.perf_counter()
            times["ref"] += t1 - t0
            times["forward_backward"] += t2 - t1
            times["optimizer"] += t3 - t2
            sums["loss"] += float(loss.detach()) / len(chunks)
            sums["clip_low"] += st.clip_low * st.tokens
            sums["clip_high"] += st.clip_high * st.tokens
            sums["entropy"] += float((ent * batch.action_mask).sum())
            sums["tokens"] += st.tokens
            if "kl" in sums:
                sums["kl"] += (st.kl or 0.0) * st.tokens
        return sums

    def train(self, until_step: int | None = None) -> None:
        """Run optimizer steps up to ``max_steps`` (or ``until_step``, to stop early and resume)."""
        cfg = self.cfg
        stop = min(cfg.max_steps, until_step or cfg.max_steps)
        self.reporter.start(stop, self.step)  # the progress bar (ETA) over optimizer steps
        while self.step < stop:
            t0 = time.perf_counter()
            batch_index = self.step // cfg.num_iterations
            prompts = self._prompts(batch_index)
            trajs = self._rollout(prompts, batch_index)
            t_roll = time.perf_counter() - t0
            raw, total = self._score(prompts, trajs)
            advantages = group_advantages(total, cfg.num_generations, cfg.advantage_eps, cfg.scale_rewards)
            t_reward = time.perf_counter() - t0 - t_roll
            self._old = None
            if cfg.num_iterations > 1:  # the policy that sampled, before this batch's updates
                mb = cfg.per_device_batch_size
                with torch.no_grad():
                    self._old = [self._forward(self.engine, trajs[i:i + mb])[0] for i in range(0, len(trajs), mb)]
            for _ in range(cfg.num_iterations - self.step % cfg.num_iterations):  # fewer after a resume
                if self.step >= stop:
                    break
                times = {"rollout": t_roll, "reward": t_reward, "ref": 0.0, "forward_backward": 0.0,
                         "optimizer": 0.0}
                lr = float(self.scheduler.get_last_lr()[0])
                sums = self._update(trajs, advantages, times)
                self.step += 1
                if self.sync is not None:  # the server samples the next rollouts with these weights
                    t_sync = time.perf_counter()
                    self.sync.push(self.engine, self.step, zero_stage=self.zero_stage, rank=self.rank)
                    self.policy_version = self.step
                    times["sync"] = time.perf_counter() - t_sync
                times["step"] = time.perf_counter() - t0
                self._log(self._metrics(sums, raw, total, advantages, prompts, trajs, lr, times))
                t0, t_roll, t_reward = time.perf_counter(), 0.0, 0.0  # later iterations: no rollout
                if cfg.save_steps and self.step % cfg.save_steps == 0 and self.step < cfg.max_steps:
                    self.save_checkpoint()

    def _metrics(self, sums, raw, total, advantages, prompts, trajs, lr, times) -> dict[str, Any]:
        """Means over all ranks' trajectories (sums and counts all-reduced in one tensor)."""
        evidence = [[r.box for r in getattr(prompts[t.prompt_index], "evidence", ())] for t in trajs]
        values = grpo_metrics.step_values(trajs, evidence, raw, total.tolist(), advantages.tolist(),
                                          self.cfg.num_generations, self.rollout_cfg.max_new_tokens, sums)
        values["rollout/token_mismatch_rate"] = (float(sum(not t.token_exact for t in trajs)), len(trajs))
        values["rollout/logprob_gap"] = (sums["logprob_gap"], sums["logprob_gap_tokens"])
        values["rollout/stale_rate"] = (float(sum(t.policy_version < self.policy_version - 1 for t in trajs)),
                                        len(trajs))
        keys = list(values)  # same keys, same order on every rank
        packed = torch.tensor([v for k in keys for v in values[k]], dtype=torch.float64)
        if self.world_size > 1:
            torch.distributed.all_reduce(packed)
        row: dict[str, Any] = {"step": self.step}
        for i, k in enumerate(keys):
            num, den = packed[2 * i].item(), packed[2 * i + 1].item()
            row[k] = num / den if den else None
        norm = self.engine.get_global_grad_norm()
        norm = None if norm is None else float(norm)
        row.update({"learning_rate": lr, "grad_norm": norm if norm is not None and math.isfinite(norm) else None})
        row.update({f"timing_s/{k}": v for k, v in times.items()})
        return row

    def _log(self, row: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        with open(self.out / METRICS, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        self.reporter.log(row)
        log.info(grpo_metrics.console_line(row, self.cfg.max_steps))

    def summarize(self) -> dict[str, Any]:
        """First- vs last-quarter means of ``metrics.jsonl`` (rank 0): logged, written to
        ``summary.json`` and returned ({} on other ranks or without metrics)."""
        if self.rank != 0 or not (self.out / METRICS).is_file():
            return {}
        figures, text = grpo_metrics.write_summary(self.out / METRICS, self.out / SUMMARY)
        log.info("%s", text)
        return figures

    # ------------------------------------------------------------------ output
    def save_checkpoint(self) -> Path:
        """DeepSpeed state (for ``resume``) under ``checkpoints/step-N``, and the model and processor
        in ``save_pretrained`` layout in ``output_dir``, plus ``rewards.png``. Every rank calls it."""
        common.save(self.engine, self.processor, self.out, self.step, {"step": self.step},
                    zero_stage=self.zero_stage, rank=self.rank, keep=self.cfg.keep_checkpoints)
        common.save_inference_settings(self.out, self.rank, self.chat_cfg, self.cfg, self.rollout_cfg,
                                       preset=str(self.cfg.rollout.get("preset", "vlir")))
        if self.rank == 0:
            if self.cfg.plot and (self.out / METRICS).is_file():
                from vlir.train.plots import plot_metrics, read_metrics

                rows = read_metrics(self.out / METRICS)
                plot_metrics(rows, self.out / "rewards.png", keys=PLOT_KEYS,
                             title=f"R-GRPO from {Path(self.cfg.model_path).name}",
                             note=grpo_metrics.summary_text(grpo_metrics.summary(rows), len(rows)))
            log.info("saved step %d to %s", self.step, self.out)
        torch.distributed.barrier()
        return self.out

    def cleanup(self) -> None:
        """Free the engines; the process group stays (it is the process's, not the trainer's)."""
        self.reporter.close() if getattr(self, "reporter", None) is not None else None
        self.engine.destroy() if hasattr(self.engine, "destroy") else None
        self.engine = self.optimizer = self.scheduler = self.model = self.ref_model = None


def run(cfg: GRPOConfig, logits_processor: Callable[[Any, Any], Any] | None = None) -> Path:
    """Set up, train, save, summarise (first vs last quarter) and clean up; returns the output folder."""
    trainer = GRPOTrainer(cfg, logits_processor)
    return common.run_trainer(trainer, cfg, after=trainer.summarize)


def main(argv: Sequence[str] | None = None) -> int:
    return GRPOConfig.main(run, "python -m vlir.train.grpo", __doc__, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
