"""Evaluation settings as data: the pixel budgets, sampling, samples per question and prompt
handling a number was obtained with, written into ``scores.json`` beside it. ("Protocol" in vlir
means the assistant-text rules of :mod:`vlir.protocol` only; the CLI flag that names these
settings keeps the name ``--protocol`` because the published comparisons call them so.)

Every budget and loop setting comes from the one preset system (:data:`vlir.rollout.config.
PRESETS`); an eval preset picks a rollout preset and adds what only evaluation has (samples per
question, the V* prompt edit). Presets (``--protocol``):

* ``vlmr3``: the VLM-R3 authors' eval scripts (``src/eval/test_*_r3.py``): the rollout preset
  ``vlmr3_eval`` (image budget ``32*28*28 .. 8192*28*28`` pixels, crops ``32*28*28 .. 4096*28*28``,
  greedy, the released agent's loop), one sample, and the direct-answer instruction removed from
  V*'s question as their V* script does;
* ``model``: the rollout preset ``vlir`` with the checkpoint's own processor budgets and vlir's crop
  budget, greedy, one sample;
* ``avg@K`` (e.g. ``avg@8``; Mini-o3 reports Avg@32): K samples per question at temperature 1.0
  (override with ``--temperature``) with the model's budgets; the score is the mean over the K
  sampled runs, with their standard deviation.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from vlir.rollout.config import MAX_CROPS, PRESETS, RolloutConfig


@dataclass(frozen=True)
class EvalSettings:
    """How a benchmark run was produced. ``None`` budgets mean "the model's / vlir's default";
    ``rollout`` names the preset of :data:`vlir.rollout.config.PRESETS` the loop runs."""

    name: str
    min_pixels: int | None = None
    max_pixels: int | None = None
    crop_min_pixels: int | None = None
    crop_max_pixels: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    samples: int = 1
    max_new_tokens: int | None = None  # None: the rollout preset's (vlir 1024; vlmr3 8 x 2048)
    max_crops: int = MAX_CROPS
    seed: int = 0
    strip_direct: bool = False  # drop "Answer with the option's letter ... directly." (VLM-R3's V*)
    rollout: str = "vlir"

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"eval settings {self.name}: samples must be >= 1")
        if self.samples > 1 and self.temperature == 0:
            raise ValueError(f"eval settings {self.name}: {self.samples} samples at temperature 0 are identical; "
                             "give --temperature > 0")
        if (self.crop_min_pixels is None) != (self.crop_max_pixels is None):
            raise ValueError("crop budgets come as a pair")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rollout_config(self, mode: str = "kv") -> RolloutConfig:
        """The loop these settings run: the rollout preset with these values on top."""
        from vlir.geometry import PixelBudget

        crop = (PixelBudget(self.crop_min_pixels, self.crop_max_pixels)
                if self.crop_min_pixels is not None else None)
        return RolloutConfig.preset(self.rollout, temperature=self.temperature, top_p=self.top_p,
                                    max_new_tokens=self.max_new_tokens, max_crops=self.max_crops, mode=mode,
                                    seed=self.seed, crop_budget=crop, min_pixels=self.min_pixels,
                                    max_pixels=self.max_pixels)


def _from_rollout(name: str, rollout: str, **extra: Any) -> EvalSettings:
    """An eval preset whose budgets and sampling are the rollout preset's."""
    values = PRESETS[rollout]
    crop = values.get("crop_budget")
    return EvalSettings(name, values.get("min_pixels"), values.get("max_pixels"),
                        crop.min_pixels if crop else None, crop.max_pixels if crop else None,
                        temperature=values.get("temperature", 0.0), rollout=rollout, **extra)


def preset(name: str, **overrides: Any) -> EvalSettings:
    """The named preset with non-None ``overrides`` applied (``temperature``, ``max_new_tokens`` ...)."""
    m = re.fullmatch(r"avg@(\d+)", name)
    if name == "vlmr3":
        base = _from_rollout("vlmr3", "vlmr3_eval", strip_direct=True)
    elif name == "model":
        base = EvalSettings("model")
    elif m and int(m.group(1)) >= 1:
        base = EvalSettings(name, temperature=1.0, samples=int(m.group(1)))
    else:
        raise ValueError(f"unknown protocol {name!r} (--protocol: the eval settings); choose vlmr3, model "
                         "or avg@K (e.g. avg@8)")
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def fingerprint(model_dir) -> str:
    """sha256 over the checkpoint's weight, config and tokenizer files, so scores.json names
    exactly the model that produced them (:func:`vlir.identity.model_sha256`, the one owner)."""
    from vlir.identity import model_sha256

    return model_sha256(model_dir)
