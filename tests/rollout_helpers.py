"""The one tiny model per test process (the ``tiny_model_dir``/``tiny`` fixtures of tests/conftest.py
wrap these), and VLIR records whose look boxes sit on the model's grid (as the model would write them)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from vlir import geometry
from vlir.crops import render_crop
from vlir.geometry import CROP_PIXELS
from vlir.records import Look, Record


@lru_cache(maxsize=None)
def tiny_dir(name: str = "tiny") -> Path:
    """A tiny random checkpoint of the packaged YAML ``name`` (``tiny``: Qwen2.5-VL;
    ``qwen3_vl_tiny``: Qwen3-VL), built once per process (about 8 s)."""
    from vlir.models import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="vlir-tiny-"))
    atexit.register(shutil.rmtree, tmp, True)
    return build_tiny_model(tmp / "model", name, seed=0)


@lru_cache(maxsize=None)
def tiny(name: str = "tiny"):
    """``(model, processor)`` of :func:`tiny_dir` (shared: never train it)."""
    from vlir.models import load_model

    return load_model(tiny_dir(name))


def snapped_record(record: Record, image, budget, crop_budget=CROP_PIXELS) -> Record:
    """``record`` with every look box snapped to the model grid and its crops re-rendered, as
    ``vlir build`` stores it (:func:`vlir.geometry.snap_to_model` with the build's model budget)."""
    s = record.sample
    steps = tuple(Look(geometry.snap_to_model(st.box, s.width, s.height, budget), st.label)
                  if isinstance(st, Look) else st
                  for st in record.chain.steps)
    chain = type(record.chain)(steps, record.chain.answer)
    crops = tuple(render_crop(image, look.box, crop_budget) for look in chain.looks)
    return Record(s, chain, record.provenance, crops=crops)
