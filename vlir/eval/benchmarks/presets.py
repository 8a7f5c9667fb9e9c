"""Evaluation protocols as data: the pixel budgets, sampling, crops and prompt handling a number was
obtained with, written into ``scores.json`` beside it.

Presets (``--protocol``):

* ``vlmr3``: the VLM-R3 authors' eval scripts (``src/eval/test_*_r3.py``): image budget
  ``32*28*28 .. 8192*28*28`` pixels, crops ``32*28*28 .. 4096*28*28``, greedy (temperature 0),
  one sample, and the direct-answer instruction removed from V*'s question as their V* script does;
* ``model``: the checkpoint's own processor budgets and vlir's crop budget, greedy, one sample;
* ``avg@K`` (e.g. ``avg@8``; Mini-o3 reports Avg@32): K samples per question at temperature 1.0
  (override with ``--temperature``) with the model's budgets; the score is the mean over the K
  sampled runs, with their standard deviation.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any

PX = 28 * 28


@dataclass(frozen=True)
class Protocol:
    """How a benchmark run was produced. ``None`` budgets mean "the model's / vlir's default"."""

    name: str
    min_pixels: int | None = None
    max_pixels: int | None = None
    crop_min_pixels: int | None = None
    crop_max_pixels: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    samples: int = 1
    max_new_tokens: int | None = None  # None: the agent preset's (vlir 1024; vlmr3 8 x 2048)
    max_crops: int = 8
    seed: int = 0
    strip_direct: bool = False  # drop "Answer with the option's letter ... directly." (VLM-R3's V*)

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"protocol {self.name}: samples must be >= 1")
        if self.samples > 1 and self.temperature == 0:
            raise ValueError(f"protocol {self.name}: {self.samples} samples at temperature 0 are identical; "
                             "give --temperature > 0")
        if (self.crop_min_pixels is None) != (self.crop_max_pixels is None):
            raise ValueError("crop budgets come as a pair")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def preset(name: str, **overrides: Any) -> Protocol:
    """The named preset with non-None ``overrides`` applied (``temperature``, ``max_new_tokens`` ...)."""
    m = re.fullmatch(r"avg@(\d+)", name)
    if name == "vlmr3":
        base = Protocol("vlmr3", 32 * PX, 8192 * PX, 32 * PX, 4096 * PX, strip_direct=True)
    elif name == "model":
        base = Protocol("model")
    elif m and int(m.group(1)) >= 1:
        base = Protocol(name, temperature=1.0, samples=int(m.group(1)))
    else:
        raise ValueError(f"unknown protocol {name!r}; choose vlmr3, model or avg@K (e.g. avg@8)")
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def fingerprint(model_dir) -> str:
    """sha256 over the checkpoint's weight, config and tokenizer files, so scores.json names
    exactly the model that produced them (:func:`vlir.identity.model_sha256`, the one owner)."""
    from vlir.identity import model_sha256

    return model_sha256(model_dir)
