"""What the SFT and R-GRPO trainers both do around their loops, written once: make sure the model
exists, freeze parts of it, turn on gradient checkpointing, resume from a DeepSpeed checkpoint,
save (DeepSpeed state + ``save_pretrained`` layout), prune old checkpoints, and the ``run`` glue
(log the config, set up, train, save, clean up).

The two trainers used to carry their own copies, which drifted (one called transformers'
deprecated ``gradient_checkpointing_enable``, and R-GRPO imported SFT's private key-layout fix).
The loops, losses, metrics and plots stay in ``sft.py`` / ``grpo.py``.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"  # DeepSpeed state, one folder per saved step: checkpoints/step-N
METRICS = "metrics.jsonl"
RUN = "run.json"  # the run identity of output_dir (vlir.identity)

#: Trainer settings that are not properties of the run: where it writes, how often it saves and
#: what it keeps, plotting, data-loading workers, the launcher's rank (paths are replaced by the
#: content fingerprints of the data and the model).
NOT_IDENTITY = ("output_dir", "resume", "save_steps", "keep_checkpoints", "plot", "num_workers", "report_to",
                "logging_steps", "model_path", "data_dir", "deepspeed",
                # where a served engine's servers listen and the name they give the model (its
                # weights are the identity's model): a restarted server gets another port
                "rollout.base_url", "rollout.served_model")


class RunRefused(ValueError):
    """The trainer will not start (output_dir holds another run, nothing to resume, no data):
    one line saying what to do; ``python -m vlir.train.*`` exits 2 with it."""


def prepare(trainer: Any, cfg: Any, grad_accum: Callable[[int], int], config_file: str) -> None:
    """The first half of both trainers' ``setup``: join the process group, pick device and
    precision, seed torch, fill the DeepSpeed JSON from ``cfg`` (``grad_accum(world_size)``
    micro-batches per step) and, on rank 0, write ``cfg`` to ``output_dir/config_file``. Sets
    ``rank``, ``local_rank``, ``world_size``, ``device``, ``bf16``, ``dtype``, ``ds_config`` and
    ``zero_stage`` on ``trainer``."""
    import torch
    import yaml

    from vlir.train.ds_config import device_and_precision, init_distributed, load_deepspeed_config

    t = trainer
    t.rank, t.local_rank, t.world_size = init_distributed()
    t.device, t.bf16 = device_and_precision(cfg.precision)
    t.dtype = torch.bfloat16 if t.bf16 else torch.float32
    torch.manual_seed(cfg.seed)
    t.ds_config = load_deepspeed_config(
        cfg.deepspeed, micro_batch=cfg.per_device_batch_size, grad_accum=grad_accum(t.world_size),
        world_size=t.world_size, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_eps, weight_decay=cfg.weight_decay, grad_clip=cfg.max_grad_norm, bf16=t.bf16,
        on_cpu=t.device == "cpu")
    t.zero_stage = int(t.ds_config.get("zero_optimization", {}).get("stage", 0))
    path = Path(cfg.model_path)
    ensure_model(path, cfg.build_model, cfg.seed, t.rank,
                 f"no model at {path}: point model_path at a checkpoint (for R-GRPO, the SFT output: make "
                 "train), or set build_model=tiny to build a tiny one")
    if (problem := _checkpoint_problem(path)):
        raise RunRefused(f"model_path {problem}")
    t.resuming = claim_output(cfg, t.rank, barrier=torch.distributed.barrier)
    if t.rank == 0:
        (Path(cfg.output_dir) / config_file).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def _checkpoint_problem(path: Path) -> str | None:
    from vlir.identity import checkpoint_problem

    return checkpoint_problem(path)


def run_identity(cfg: Any) -> dict[str, Any]:
    """A training run's identity (:mod:`vlir.identity`): the data's fingerprint (a corpus by its
    manifest), the base model's sha256, the config less :data:`NOT_IDENTITY`, the vlir version."""
    from vlir import identity

    ds = Path(cfg.deepspeed)  # its content, not where it lies (a recipe's path is resolved against it)
    inputs = {"data": identity.data_fingerprint(cfg.data_dir),
              "deepspeed": identity.file_sha256(ds) if ds.is_file() else str(cfg.deepspeed)}
    return identity.make(inputs=inputs,
                         config=identity.without(cfg.to_dict(), NOT_IDENTITY),
                         model=identity.model_sha256(cfg.model_path))


def claim_output(cfg: Any, rank: int, barrier: Callable[[], Any] = lambda: None) -> bool:
    """Decide, from ``cfg.resume`` and what ``output_dir`` holds, whether this run continues the
    one there (True: resume from its last complete checkpoint) or starts fresh, and refuse with
    :class:`RunRefused` what would put two runs in one folder:

    * ``auto`` (the default): an empty or new folder starts fresh; a folder holding the same run
      (same identity) continues from its last checkpoint, or, with none saved yet, starts again
      with its metrics cleared; another run is refused, naming what differs;
    * ``true``: must resume (a checkpoint must exist); settings may change (a longer schedule,
      a KL term), the data and base model may not;
    * ``false``: a fresh run; a non-empty folder is refused.

    Every rank decides from the same files, then waits at ``barrier`` (every rank must have
    looked before rank 0 records the identity and clears stale metrics)."""
    from vlir import identity

    out = Path(cfg.output_dir)
    has_checkpoint = (out / CHECKPOINTS / "latest").is_file()
    used = out.is_dir() and any(out.iterdir())
    mode = cfg.resume
    if mode is False and used:
        raise RunRefused(f"output_dir {out} is not empty and resume=false; use a new output_dir, or "
                         "resume=auto to continue the run in it")
    if mode is True and not has_checkpoint:
        raise RunRefused(f"resume=true but {out} holds no checkpoint ({CHECKPOINTS}/latest); use "
                         "resume=auto (or false) to start a fresh run")
    ident = run_identity(cfg)
    recorded = identity.read(out / RUN)
    if used and recorded is None and mode != True:  # noqa: E712 (mode is a bool or "auto")
        raise RunRefused(f"output_dir {out} is not empty and was not written by a vlir trainer of this "
                         "version (no run.json); use a new output_dir, or resume=true to continue it")
    try:
        identity.check(recorded, ident, out, "use a new output_dir, or resume=true to continue this run "
                       "with the new settings", what="training run",
                       ignore=("config", "vlir_version") if mode is True else ())
    except identity.IdentityMismatch as exc:
        raise RunRefused(str(exc)) from None
    if recorded is not None and mode is True and recorded != ident:
        log.warning("resume=true: continuing %s with changed settings: %s", out,
                    "; ".join(identity.differences(recorded, ident)))
    barrier()
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if not has_checkpoint:  # steps logged without a checkpoint are lost work: one history only
            (out / METRICS).unlink(missing_ok=True)
        identity.record(out / RUN, ident, where={"model_path": str(Path(cfg.model_path).resolve()),
                                 "data_dir": str(Path(cfg.data_dir).resolve())})
    return has_checkpoint and mode is not False


def load(cfg: Any, dtype: Any) -> tuple[Any, Any]:
    """``cfg.model_path`` loaded on CPU in ``dtype`` with the config's image budget (0: the
    checkpoint's); returns ``(model, processor)``."""
    from vlir.models import load_model

    pixels = {k: v for k, v in (("min_pixels", cfg.min_pixels), ("max_pixels", cfg.max_pixels)) if v}
    return load_model(Path(cfg.model_path), dtype=dtype, device="cpu", **pixels)


def ensure_model(path: Path, build_model: str, seed: int, rank: int, missing: str) -> None:
    """Build the tiny model of ``build_model`` at ``path`` (rank 0; the others wait) when ``path``
    holds no checkpoint; ``missing`` is the error's text when there is nothing to build."""
    import torch

    from vlir.models import build_tiny_model

    if (path / "config.json").is_file():
        return
    if not build_model:
        raise FileNotFoundError(missing)
    if rank == 0:
        log.info("building the tiny model of %s into %s", build_model, path)
        build_tiny_model(path, build_model, seed=seed)
    torch.distributed.barrier()


def zero3_loading(ds_config: dict[str, Any], zero_stage: int):
    """Under ZeRO-3, the ``HfDeepSpeedConfig`` that makes ``from_pretrained`` load each rank's
    partition (``zero.Init``); the caller keeps it alive while loading. None otherwise."""
    if zero_stage != 3:
        return None
    from transformers.integrations import HfDeepSpeedConfig

    return HfDeepSpeedConfig(ds_config)


def freeze(model: Any, *, vision_tower: bool, merger: bool, language_model: bool = False) -> None:
    """Stop gradients into the vision tower (all but its merger), the merger, and/or the language
    model with its head."""
    visual = model.model.visual
    frozen = []
    if vision_tower:
        frozen += [p for n, p in visual.named_parameters() if not n.startswith("merger.")]
    if merger:
        frozen += list(visual.merger.parameters())
    if language_model:
        frozen += list(model.model.language_model.parameters()) + list(model.lm_head.parameters())
    for p in frozen:
        p.requires_grad_(False)


def enable_gradient_checkpointing(model: Any) -> None:
    """Activation checkpointing, non-reentrant (what both trainers' tests run)."""
    model.activation_checkpointing_enable({"use_reentrant": False})


def parameter_counts(model: Any) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def use_cache(model: Any, flag: bool) -> bool:
    """Set the text config's ``use_cache``; returns the previous value."""
    config = getattr(model.config, "text_config", model.config)
    previous = bool(getattr(config, "use_cache", True))
    config.use_cache = flag
    return previous


def resume(engine: Any, out: Path, rank: int) -> dict[str, Any] | None:
    """Load the latest DeepSpeed checkpoint under ``out/checkpoints`` and return its client state
    (None, with a warning, when there is none); rank 0 drops metric rows logged after it."""
    ckpt = out / CHECKPOINTS
    if not (ckpt / "latest").is_file():
        log.warning("resume requested but %s holds no checkpoint: starting fresh", ckpt)
        return None
    path, state = engine.load_checkpoint(str(ckpt))
    if path is None:
        raise RuntimeError(f"could not load the DeepSpeed checkpoint in {ckpt}")
    step = int(state["step"])
    log.info("resumed from %s at step %d", path, step)
    if rank == 0 and (out / METRICS).is_file():  # drop steps logged after the checkpoint
        (out / METRICS).write_text("".join(ln + "\n" for ln in _rows_up_to(out / METRICS, step)))
    return state


def _rows_up_to(path: Path, step: int) -> list[str]:
    """The lines of a metrics file up to ``step``; a line torn by a kill (not JSON) ends it."""
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            break
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line)
    return kept


def check_corpus(data_dir: str | Path, splits: Any) -> None:
    """Refuse, before any model is loaded or file written, an SFT corpus with nothing to train
    on: no manifest, splits that match nothing, or 0 accepted records in them."""
    import fnmatch

    manifest = Path(data_dir) / "manifest.json"
    try:
        found = json.loads(manifest.read_text(encoding="utf-8")).get("splits", {})
    except FileNotFoundError:
        raise RunRefused(f"data_dir {data_dir} has no manifest.json: not a built corpus (vlir build "
                         f"--out {data_dir})") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise RunRefused(f"{manifest} is not a vlir manifest ({exc})") from None
    wanted = sorted({k for p in (splits or ["*"]) for k in found if fnmatch.fnmatchcase(k, p)})
    if not wanted:
        raise RunRefused(f"splits {list(splits or ['*'])} match nothing in {data_dir} (it has {sorted(found)})")
    counted = all(isinstance(found[k], dict) and "accepted" in found[k] for k in wanted)
    if counted and sum(int(found[k]["accepted"]) for k in wanted) == 0:
        rejected = sum(int(found[k].get("rejected", 0)) for k in wanted)
        raise RunRefused(f"data_dir {data_dir} has 0 accepted records in {wanted} ({rejected} rejected; see "
                         "vlir show or the manifest's rejected_by_reason): nothing to train on")


def save(engine: Any, processor: Any, out: Path, step: int, client_state: dict[str, Any], *,
         zero_stage: int, rank: int, keep: int) -> None:
    """DeepSpeed state (for ``resume``) under ``checkpoints/step-N``, the model (with its KV cache
    on, so it generates with one) and processor in ``save_pretrained`` layout in ``out``, and only
    the newest ``keep`` checkpoints (0 keeps all). Every rank calls it; the caller then waits at a
    barrier."""
    ckpt = out / CHECKPOINTS
    engine.save_checkpoint(str(ckpt), tag=f"step-{step}", client_state=client_state)
    state_dict = engine._zero3_consolidated_16bit_state_dict() if zero_stage == 3 else None
    if rank != 0:
        return
    module = engine.module
    previous = use_cache(module, True)
    if state_dict is not None:
        standard_key_layout(module)
    from vlir.train import lora

    if lora.is_lora(module):  # the merged model here, the adapter alone in out/adapter
        state_dict = lora.merged_state_dict(module, state_dict)
        lora.save_adapter(module, out)
    module.save_pretrained(out, state_dict=state_dict)
    use_cache(module, previous)
    processor.save_pretrained(out)
    prune_checkpoints(ckpt, keep)


def save_inference_settings(out: Path, rank: int, chat: Any, cfg: Any, rollout: Any = None,
                            preset: str = "vlir") -> None:
    """Write beside the weights what inference needs to ask the model as it was trained
    (:mod:`vlir.rollout.trained`: the chat, the image budget, the rollout preset and loop)."""
    if rank != 0:
        return
    from vlir.rollout import trained

    trained.write(out, chat, preset=preset, rollout=rollout.describe() if rollout is not None else None,
                  min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels, trainer=cfg.kind)


def prune_checkpoints(ckpt: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` ``step-N`` folders (0 keeps all)."""
    tags = sorted((p for p in ckpt.glob("step-*") if p.is_dir()), key=lambda p: int(p.name[5:]))
    for old in tags[:-keep] if keep else []:
        shutil.rmtree(old, ignore_errors=True)


def standard_key_layout(model: Any) -> None:
    """transformers 5.24, loading under ZeRO-3 (zero.Init), records every candidate key conversion
    of the architecture, legacy ones included, where a plain load records only those it applied;
    reverting them all on save writes ``model.model.layers.*``, which no loader reads back.
    Clearing the record makes ``save_pretrained`` use the architecture's default (non-legacy)
    mapping, as for a model built from scratch: Qwen2.5-VL's published key layout (``visual.*``,
    ``model.layers.*``), which the ZeRO-3 test checks key by key."""
    if getattr(model, "_weight_conversions", None) is not None:
        model._weight_conversions = None


def run_trainer(trainer: Any, cfg: Any, after: Callable[[], Any] | None = None) -> Path:
    """A trainer module's ``run``: log the config, set up, train, save, call ``after`` (R-GRPO's
    summary), clean up even on failure; returns the output folder."""
    import yaml

    from vlir.train.preflight import check_inputs

    check_inputs(cfg)  # missing data or model: said now, not after DeepSpeed's op build
    log.info("%s config:\n%s", cfg.kind, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    trainer.setup()
    try:
        trainer.train()
        trainer.save_checkpoint()
        if after is not None:
            after()
    finally:
        trainer.cleanup()
    return trainer.out
