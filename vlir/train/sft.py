"""DeepSpeed SFT of Qwen2.5-VL on VLIR shards (VLM-R3 stage one).

Launch (from the repository root)::

    deepspeed --num_gpus 4 --module vlir.train.sft --config recipes/sft_qwen2_5_vl_7b.yaml [key=value ...]
    # (the launcher spells python -m as --module; `deepspeed ... vlir/train/sft.py --config ...` also works)
    python -m vlir.train.sft --config recipes/sft_tiny.yaml        # one process, CPU or one GPU
    vlir train sft --config recipes/sft_tiny.yaml                    # the same, through the CLI

The same code runs both: under the launcher every process is one rank; a plain process is a world
of one. torch, transformers and deepspeed are imported here, never by the data verbs.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import torch

from vlir.train import common, lora, reporting
from vlir.train.common import METRICS
from vlir.train.sft_config import SFTConfig

log = logging.getLogger(__name__)


class SFTTrainer:
    """Fine-tunes a Qwen2.5-VL checkpoint on VLIR chats with DeepSpeed.

    Features and the config keys that control them:

    * DeepSpeed ZeRO-2/3 from a JSON (``deepspeed``); its "auto" values come from this config.
    * bf16 on GPU, fp32 on CPU (``precision``: auto | bf16 | fp32).
    * vision tower and merger frozen (``freeze_vision_tower``, ``freeze_merger``;
      ``freeze_language_model`` for projector-only runs).
    * gradient accumulation (``gradient_accumulation_steps``), clipping (``max_grad_norm``), AdamW.
    * cosine schedule with linear warmup (``warmup_ratio``/``warmup_steps``, ``min_lr_ratio``).
    * length-grouped batching (``group_by_length``, ``length_group_size``): see ``sampler.py``.
    * gradient checkpointing (``gradient_checkpointing``).
    * ZeRO-3 guard (``vision_guard``): a micro-batch without images runs a zero-weighted dummy
      vision forward, so every rank gathers the vision tower's parameters in the same collectives.
    * checkpoints (``save_steps``, ``keep_checkpoints``): the model in ``save_pretrained`` layout in
      ``output_dir`` (loadable by ``vlir.models.load_model``) plus DeepSpeed state under
      ``output_dir/checkpoints/step-N``; ``resume`` continues from the latest one exactly (step
      counter, optimizer, schedule, data position).
    * ``metrics.jsonl`` (one object per optimizer step: step, epoch, loss, lr, grad_norm,
      tokens_per_s, padding_fraction, step_time_s) and ``loss.png`` (``plot``).
    """

    def __init__(self, cfg: SFTConfig):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.step = 0  # optimizer steps done
        self.micro_step = 0  # micro-batches consumed (the data position)

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg = self.cfg
        common.check_corpus(cfg.data_dir, cfg.splits)  # before any model loads or file is written
        common.prepare(self, cfg, lambda _world: cfg.gradient_accumulation_steps, "sft_config.yaml")
        self.reporter = reporting.Reporter(cfg.report_to, self.out, cfg.to_dict(), f"sft-{self.out.name}", self.rank)
        self._setup_model()
        self._setup_data()
        self._setup_optimizer()
        if self.resuming:
            self._resume()

    def _setup_model(self) -> None:
        cfg = self.cfg
        path = Path(cfg.model_path)
        common.ensure_model(path, cfg.build_model, cfg.seed, self.rank,
                            f"no model at {path}; set build_model=tiny (the packaged tiny model) "
                            "to build a tiny one, or point model_path at a checkpoint")
        self._hf_ds = common.zero3_loading(self.ds_config, self.zero_stage)  # alive while loading
        self.model, self.processor = common.load(cfg, self.dtype)
        common.use_cache(self.model, False)  # no KV cache in training forwards
        common.freeze(self.model, vision_tower=cfg.freeze_vision_tower, merger=cfg.freeze_merger,
                      language_model=cfg.freeze_language_model)
        self.model = lora.apply(self.model, cfg.lora, self.zero_stage)
        if cfg.gradient_checkpointing:
            common.enable_gradient_checkpointing(self.model)
        self.model.train()
        trainable, total = common.parameter_counts(self.model)
        log.info("model %s: %d of %d parameters trainable (%s)", path, trainable, total, self.dtype)

    def _setup_data(self) -> None:
        from torch.utils.data import DataLoader

        from vlir.geometry import PixelBudget
        from vlir.models.chat import ChatConfig, collate
        from vlir.train.data import SFTDataset
        from vlir.models import special_ids
        from vlir.train.sampler import LengthGroupedBatchSampler

        cfg = self.cfg
        overrides = {k: PixelBudget(*v) if k.endswith("_budget") and isinstance(v, list) else v
                     for k, v in cfg.chat.items()}
        self.chat_cfg = ChatConfig.for_processor(self.processor, **overrides)
        self.dataset = SFTDataset(cfg.data_dir, self.processor, self.chat_cfg, cfg.splits, cfg.max_length)
        self.sampler = LengthGroupedBatchSampler(
            self.dataset.lengths, cfg.per_device_batch_size, world_size=self.world_size, rank=self.rank,
            group_size=cfg.length_group_size, group_by_length=cfg.group_by_length, seed=cfg.seed)
        self.pad_id = special_ids(self.processor)["pad"]
        self.loader = DataLoader(self.dataset, batch_sampler=self.sampler, num_workers=cfg.num_workers,
                                 collate_fn=partial(collate, pad_id=self.pad_id))
        micro_total = cfg.max_steps * cfg.gradient_accumulation_steps if cfg.max_steps > 0 else \
            math.ceil(cfg.epochs * len(self.sampler))
        self.total_steps = max(1, micro_total // cfg.gradient_accumulation_steps)
        self.warmup_steps = cfg.warmup_steps or int(round(cfg.warmup_ratio * self.total_steps))
        log.info("%d micro-batches per epoch per rank; %d optimizer steps (%d warmup)",
                 len(self.sampler), self.total_steps, self.warmup_steps)

    def _setup_optimizer(self) -> None:
        import deepspeed
        from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup

        schedule = partial(get_cosine_with_min_lr_schedule_with_warmup, num_warmup_steps=self.warmup_steps,
                           num_training_steps=self.total_steps, min_lr_rate=self.cfg.min_lr_ratio)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=self.model, model_parameters=params, config=self.ds_config, lr_scheduler=schedule)

    def _resume(self) -> None:
        state = common.resume(self.engine, self.out, self.rank)
        if state is not None:
            self.step, self.micro_step = int(state["step"]), int(state["micro_step"])

    # ------------------------------------------------------------------ training
    def _batches(self):
        """Micro-batches from the current data position on, across epochs."""
        per_epoch = len(self.sampler)
        while True:
            epoch, skip = divmod(self.micro_step, per_epoch)
            self.sampler.set_epoch(epoch, skip)
            yield from self.loader

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = {k: v.to(self.engine.device) for k, v in batch.items()}
        if "pixel_values" in out:
            out["pixel_values"] = out["pixel_values"].to(self.dtype)
        return out

    def _vision_guard(self) -> torch.Tensor:
        """A zero-weighted forward of the vision tower on one dummy 28x28 image.

        Under ZeRO-3 every module forward gathers its partitioned parameters collectively; a rank
        whose micro-batch has no image would skip the tower while the others wait in its gather (the
        known deadlock). Multiplying by 0 keeps the loss and every gradient unchanged.
        """
        visual = self.engine.module.model.visual
        vc = self.engine.module.config.vision_config
        dim = vc.in_channels * vc.temporal_patch_size * vc.patch_size ** 2
        merge = vc.spatial_merge_size
        grid = torch.tensor([[1, merge, merge]], device=self.engine.device)
        pixels = torch.zeros(merge * merge, dim, dtype=self.dtype, device=self.engine.device)
        return visual(pixels, grid_thw=grid).pooler_output.float().sum() * 0.0

    def _loss(self, batch: dict[str, Any]) -> torch.Tensor:
        loss = self.engine(**batch).loss
        if self.cfg.vision_guard and "pixel_values" not in batch:
            loss = loss + self._vision_guard()
        return loss

    def micro_step_on(self, batch: dict[str, Any]) -> tuple[float, float, bool]:
        """Forward, backward and engine step on one device-ready micro-batch (the optimizer steps
        at the accumulation boundary). Returns ``(loss, lr applied, boundary)``. The bench times
        exactly this against a bare PyTorch step."""
        loss = self._loss(batch)
        self.engine.backward(loss)
        boundary = self.engine.is_gradient_accumulation_boundary()
        lr = float(self.scheduler.get_last_lr()[0])  # the rate this step applies
        self.engine.step()
        self.micro_step += 1
        return loss.item(), lr, boundary

    def train(self, until_step: int | None = None) -> None:
        """Run optimizer steps up to ``total_steps`` (or ``until_step``, to stop early and resume)."""
        cfg, gas = self.cfg, self.cfg.gradient_accumulation_steps
        stop = min(self.total_steps, until_step or self.total_steps)
        save_every = cfg.save_steps or 0
        acc = torch.zeros(3, dtype=torch.float64)  # loss sum, real tokens, padded tokens
        self.reporter.start(stop, self.step)  # the progress bar (ETA) over optimizer steps
        t0 = time.perf_counter()
        batches = self._batches()
        while self.step < stop:
            batch = self._to_device(next(batches))
            loss, lr, boundary = self.micro_step_on(batch)
            mask = batch["attention_mask"]
            acc += torch.tensor([loss, mask.sum().item(), mask.numel()], dtype=torch.float64)
            if not boundary:
                continue
            self.step += 1
            if self.world_size > 1:
                torch.distributed.all_reduce(acc)
            elapsed = time.perf_counter() - t0
            self._log({
                "step": self.step,
                "epoch": round(self.micro_step / len(self.sampler), 4),
                "loss": acc[0].item() / (gas * self.world_size),
                "lr": lr,
                "grad_norm": _float(self.engine.get_global_grad_norm()),
                "tokens_per_s": acc[1].item() / elapsed,
                "padding_fraction": 1.0 - acc[1].item() / acc[2].item(),
                "step_time_s": elapsed,
            })
            if save_every and self.step % save_every == 0 and self.step < self.total_steps:
                self.save_checkpoint()
            acc.zero_()
            t0 = time.perf_counter()

    def _log(self, row: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        with open(self.out / METRICS, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        self.reporter.log(row)
        log.info("step %d/%d loss %.4f lr %.3g %.0f tok/s pad %.1f%%", row["step"], self.total_steps,
                 row["loss"], row["lr"], row["tokens_per_s"], 100 * row["padding_fraction"])

    # ------------------------------------------------------------------ output
    def save_checkpoint(self) -> Path:
        """DeepSpeed state (for ``resume``) under ``checkpoints/step-N``, and the model and processor
        in ``save_pretrained`` layout in ``output_dir``. Every rank must call it."""
        common.save(self.engine, self.processor, self.out, self.step,
                    {"step": self.step, "micro_step": self.micro_step}, zero_stage=self.zero_stage,
                    rank=self.rank, keep=self.cfg.keep_checkpoints)
        common.save_inference_settings(self.out, self.rank, self.chat_cfg, self.cfg)
        if self.rank == 0:
            if self.cfg.plot:
                from vlir.train.plots import plot_metrics

                if (self.out / METRICS).is_file():
                    plot_metrics(self.out / METRICS, self.out / "loss.png", keys=("loss", "lr"),
                                 smooth=("loss",), title=f"SFT of {Path(self.cfg.model_path).name}")
            log.info("saved step %d to %s", self.step, self.out)
        torch.distributed.barrier()
        return self.out

    def cleanup(self) -> None:
        """Free the engine; the process group stays (it is the process's, not the trainer's)."""
        self.reporter.close() if getattr(self, "reporter", None) is not None else None
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.destroy()
        self.engine = self.optimizer = self.scheduler = self.model = None


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value.item() if hasattr(value, "item") else value)
    return value if math.isfinite(value) else None


def run(cfg: SFTConfig) -> Path:
    """Set up, train, save and clean up; returns the output folder."""
    return common.run_trainer(SFTTrainer(cfg), cfg)


def main(argv: Sequence[str] | None = None) -> int:
    return SFTConfig.main(run, "python -m vlir.train.sft", __doc__, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
