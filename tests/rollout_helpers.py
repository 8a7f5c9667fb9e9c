"""The one tiny model per test process (the ``tiny_model_dir``/``tiny`` fixtures of tests/conftest.py
wrap these), the plain forward a rollout's logits are checked against, and VLIR records whose look
boxes sit on the model's grid (as the model would write them)."""

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


def trajectory_logits(traj, name: str = "tiny"):
    """What training sees: one no-cache forward of a finished trajectory through :func:`tiny`
    ``name``, positions from the model itself (on Qwen3-VL, deepstack over all its images);
    ``[T, V]`` logits."""
    import torch

    from vlir.models import special_ids

    model, processor = tiny(name)
    ids = torch.tensor([traj.token_ids])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=traj.pixel_values,
                    image_grid_thw=traj.image_grid_thw,
                    mm_token_type_ids=(ids == special_ids(processor)["image_pad"]).int())
    model.model.rope_deltas = None  # the shared model must not keep this forward's rope offsets
    return out.logits[0]


def worst_logit_gap(traj, name: str = "tiny") -> float:
    """The largest absolute gap between the engine's kept scores and :func:`trajectory_logits` at
    the sampled positions (the score of token ``p`` is the logits at ``p - 1``)."""
    logits = trajectory_logits(traj, name)
    sampled = [i for i, m in enumerate(traj.action_mask) if m]
    return max(float((s - logits[p - 1]).abs().max()) for s, p in zip(traj.scores, sampled))


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
