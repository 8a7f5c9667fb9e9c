"""DeepSpeed plumbing shared by the trainers: fill a recipe's DeepSpeed JSON, start the process group.

The JSONs in ``recipes/deepspeed/`` leave ``"auto"`` exactly where the trainer's config is the
single source of truth (batch sizes, optimizer hyper-parameters, clipping, bf16), so a recipe never
states a learning rate twice. :func:`fill_deepspeed_config` replaces them and refuses any ``"auto"``
it does not know, rather than handing DeepSpeed a string where it wants a number.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def fill_deepspeed_config(raw: dict[str, Any], *, micro_batch: int, grad_accum: int, world_size: int,
                          lr: float, betas: tuple[float, float], eps: float, weight_decay: float,
                          grad_clip: float, bf16: bool, on_cpu: bool) -> dict[str, Any]:
    """A copy of ``raw`` with every known ``"auto"`` filled; unknown ``"auto"`` values raise.

    On CPU the optimizer gets ``torch_adam: true`` unless the JSON says otherwise: DeepSpeed's
    FusedAdam would otherwise compile a C++ extension (~40 s) for no gain on CPU.
    """
    cfg = copy.deepcopy(raw)
    known = {
        ("train_micro_batch_size_per_gpu",): micro_batch,
        ("gradient_accumulation_steps",): grad_accum,
        ("train_batch_size",): micro_batch * grad_accum * world_size,
        ("gradient_clipping",): grad_clip,
        ("bf16", "enabled"): bf16,
        ("fp16", "enabled"): False,
        ("optimizer", "params", "lr"): lr,
        ("optimizer", "params", "betas"): list(betas),
        ("optimizer", "params", "eps"): eps,
        ("optimizer", "params", "weight_decay"): weight_decay,
    }
    for path, value in known.items():
        node = cfg
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(path[-1]) == "auto":
            node[path[-1]] = value
    left = _autos(cfg)
    if left:
        raise ValueError(f"DeepSpeed config has 'auto' values vlir does not fill: {left}")
    if cfg.get("bf16", {}).get("enabled") != bf16:
        raise ValueError(f"the DeepSpeed JSON sets bf16.enabled={cfg.get('bf16', {}).get('enabled')} "
                         f"but the run's precision is {'bf16' if bf16 else 'fp32'}: use 'auto' there")
    if on_cpu and "optimizer" in cfg:
        params = cfg["optimizer"].setdefault("params", {})
        if "torch_adam" not in params:
            params["torch_adam"] = True
            log.info("CPU run: using torch's AdamW in DeepSpeed (torch_adam)")
    return cfg


def load_deepspeed_config(path: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Read a DeepSpeed JSON and fill it (see :func:`fill_deepspeed_config`); a relative path missing
    from the working directory may name a packaged recipe (``deepspeed/zero2.json``)."""
    from vlir.train.recipe_files import resolve

    path = Path(resolve(str(path), None))
    if not path.is_file():
        raise FileNotFoundError(f"no DeepSpeed config at {path} (see recipes/deepspeed/)")
    return fill_deepspeed_config(json.loads(path.read_text()), **kwargs)


def _autos(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _autos(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")] if node == "auto" else []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def init_distributed() -> tuple[int, int, int]:
    """Start (once) the process group and return ``(rank, local_rank, world_size)``.

    Under the ``deepspeed`` launcher (or torchrun, or Slurm with the usual variables) the
    environment names the world; a plain ``python -m`` process gets a world of one on a free local
    port, since DeepSpeed would otherwise look for MPI. CPU runs use gloo.
    """
    import deepspeed
    import torch.distributed as dist
    from deepspeed.accelerator import get_accelerator

    if "RANK" not in os.environ:
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=os.environ.get("MASTER_PORT") or str(_free_port()))
    os.environ.setdefault("LOCAL_RANK", "0")
    if not dist.is_initialized():
        backend = "gloo" if get_accelerator().device_name() == "cpu" else None
        deepspeed.init_distributed(dist_backend=backend) if backend else deepspeed.init_distributed()
    return dist.get_rank(), int(os.environ["LOCAL_RANK"]), dist.get_world_size()


def device_and_precision(precision: str) -> tuple[str, bool]:
    """``(device, bf16)`` for this process: ``auto`` is bf16 on an accelerator, fp32 on CPU."""
    from deepspeed.accelerator import get_accelerator

    acc = get_accelerator()
    on_cpu = acc.device_name() == "cpu"
    device = "cpu" if on_cpu else f"{acc.device_name()}:{acc.current_device()}"
    if precision == "auto":
        return device, (not on_cpu) and acc.is_bf16_supported()
    return device, precision == "bf16"
