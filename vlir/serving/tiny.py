"""The tiny random Qwen2.5-VL that vLLM serves: ``vlir vllm tiny-model --out DIR``.

vLLM's CPU attention kernels take head sizes of 32 and up (64 here), so this model is the tiny one
of ``recipes/model/tiny.yaml`` with the sizes of ``recipes/model/tiny_vllm.yaml`` (text hidden 256,
4 heads of 64, 2 KV heads, ``mrope_section [8, 12, 12]``; vision hidden 128, 2 heads). vlir builds
the weights, tokenizer and image processor (:func:`vlir.train.model.build_tiny_model`, so the
folder loads in vlir like any checkpoint); the vLLM environment's python then adds the video
processor vLLM insists on (:mod:`vlir.serving.vllm_processor`), which vlir's environment cannot
build (no torchvision there).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from vlir.serving.vllm_env import vllm_python

TINY_VLLM_CONFIG = "recipes/model/tiny_vllm.yaml"
PROCESSOR_SCRIPT = Path(__file__).with_name("vllm_processor.py")


def add_video_processor(folder: str | Path, python: str | Path | None = None) -> list[str]:
    """Run :mod:`vlir.serving.vllm_processor` with the vLLM environment's ``python`` on
    ``folder``; returns the config files it wrote. Raises RuntimeError with the script's stderr."""
    exe = vllm_python(python)
    proc = subprocess.run([str(exe), str(PROCESSOR_SCRIPT), str(folder)], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{exe} {PROCESSOR_SCRIPT.name} {folder} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["wrote"]


def build_tiny_vllm_model(out_dir: str | Path, seed: int = 0, config: str | Path = TINY_VLLM_CONFIG,
                          python: str | Path | None = None) -> Path:
    """Write the vLLM-ready tiny Qwen2.5-VL of ``config`` (seed ``seed``) to ``out_dir``."""
    from vlir.train.model import build_tiny_model

    out = build_tiny_model(out_dir, config=config, seed=seed)
    add_video_processor(out, python)
    return out
