"""One tiny random Qwen3-VL per test process, for every Qwen3-VL test (built in about 5 s)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def tiny_qwen3_dir() -> Path:
    from vlir.models.qwen3_vl_tiny import build_tiny_qwen3_vl

    tmp = Path(tempfile.mkdtemp(prefix="vlir-qwen3-tiny-"))
    atexit.register(shutil.rmtree, tmp, True)
    return build_tiny_qwen3_vl(tmp / "model", seed=0)


@lru_cache(maxsize=1)
def tiny_qwen3():
    """``(model, processor)`` of :func:`tiny_qwen3_dir`, fp32, eval mode (shared: never train it)."""
    from vlir.models import qwen3_vl

    processor = qwen3_vl.load_processor(tiny_qwen3_dir())
    model = qwen3_vl.model_class().from_pretrained(tiny_qwen3_dir())
    model.eval()
    return model, processor
