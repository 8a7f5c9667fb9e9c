"""The tiny random Qwen2.5-VL that vLLM serves: ``vlir vllm tiny-model --out DIR``.

vLLM's CPU attention kernels take head sizes of 32 and up (64 here), so this model is vlir's tiny
Qwen2.5-VL (:mod:`vlir.models.tiny`) with the sizes of ``vlir/serving/tiny_vllm.yaml`` (package
data: text hidden 256, 4 heads of 64, 2 KV heads, ``mrope_section [8, 12, 12]``; vision hidden 128,
2 heads). vlir builds the weights, tokenizer and image processor through
:func:`vlir.models.build_tiny_model`, so the folder loads in vlir like any checkpoint; the vLLM
environment's python then adds the video processor vLLM insists on
(:mod:`vlir.serving.vllm_processor`), which vlir's environment cannot build (no torchvision there).
"""

from __future__ import annotations

import importlib.resources
import json
import subprocess
from pathlib import Path

from vlir.serving.vllm_env import vllm_python

#: the packaged YAML's name; any other value of ``config`` is a YAML path
TINY_VLLM_CONFIG = "tiny_vllm"
PROCESSOR_SCRIPT = Path(__file__).with_name("vllm_processor.py")


def load_tiny_vllm_config(config: str | Path = TINY_VLLM_CONFIG) -> dict:
    """The tiny vLLM model's YAML as a dict (``"tiny_vllm"``: the packaged one, read through
    :mod:`importlib.resources` so it works from a wheel), checked by vlir.models' tiny-model config."""
    from vlir.models.tiny import load_tiny_config

    if str(config) != TINY_VLLM_CONFIG:
        return load_tiny_config(config)
    with importlib.resources.as_file(importlib.resources.files("vlir.serving") / "tiny_vllm.yaml") as path:
        return load_tiny_config(path)


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
    from vlir.models import build_tiny_model

    out = build_tiny_model(out_dir, config=load_tiny_vllm_config(config), seed=seed)
    add_video_processor(out, python)
    return out
