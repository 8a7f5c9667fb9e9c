"""What a model family is to vlir: the facts the chat rendering, the rollout engine and the loaders
need, in one small object per family, so a second family is a new module, not edits everywhere.

A checkpoint's family is chosen from its ``config.json`` ``model_type`` (:func:`family_of`). Today
one family is registered (:mod:`vlir.models.qwen2_5_vl`); a family with another box convention
(e.g. 0-1000 relative coordinates) or grid (32-px) states it here and the code that converts
boxes reads it from the family instead of assuming Qwen2.5-VL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

#: the box conventions a family may declare for ``{"bbox_2d": [...]}`` coordinates
COORDINATES = ("absolute model pixels", "relative 0-1000")


@dataclass(frozen=True)
class ModelFamily:
    """One model family's facts.

    ``special_tokens`` maps vlir's names (``im_end``, ``vision_start``, ``image_pad`` ...) to the
    token strings; ``vision_tokens`` are the names the engine inserts and a policy must never sample;
    ``image_block`` is how the chat template writes one image (split on to splice the image ids in).
    ``model_class`` is the transformers class name loading a checkpoint; ``make_processor(path,
    min_pixels, max_pixels)`` loads the processor of a local checkpoint.
    """

    name: str
    model_types: tuple[str, ...]
    coordinates: str
    patch_size: int
    merge_size: int
    min_pixels: int
    max_pixels: int
    special_tokens: Mapping[str, str]
    vision_tokens: tuple[str, ...]
    image_block: str
    model_class: str
    load_processor: Callable[..., Any] = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.coordinates not in COORDINATES:
            raise ValueError(f"family {self.name}: coordinates must be one of {COORDINATES}, got {self.coordinates!r}")
        missing = [n for n in self.vision_tokens if n not in self.special_tokens]
        if missing:
            raise ValueError(f"family {self.name}: vision tokens {missing} are not among its special tokens")

    @property
    def factor(self) -> int:
        """The resize grid: image sides are multiples of patch * merge pixels."""
        return self.patch_size * self.merge_size


_FAMILIES: dict[str, ModelFamily] = {}


def register(family: ModelFamily) -> ModelFamily:
    """Make ``family`` the one for each of its ``model_types``."""
    for model_type in family.model_types:
        other = _FAMILIES.get(model_type)
        if other is not None and other.name != family.name:
            raise ValueError(f"model_type {model_type} is claimed by {other.name} and {family.name}")
        _FAMILIES[model_type] = family
    return family


def _load_builtin() -> None:
    from vlir.models import qwen2_5_vl  # noqa: F401  (registers on import)


def family_for(model_type: str) -> ModelFamily:
    """The registered family of a ``config.json`` ``model_type``."""
    _load_builtin()
    try:
        return _FAMILIES[model_type]
    except KeyError:
        raise ValueError(f"no vlir model family for model_type {model_type!r}; known: "
                         f"{', '.join(sorted(_FAMILIES))}") from None


def family_of(path: str | Path) -> ModelFamily:
    """The family of the local checkpoint at ``path``, from its ``config.json``."""
    config = Path(path) / "config.json"
    try:
        model_type = json.loads(config.read_text("utf-8"))["model_type"]
    except FileNotFoundError:
        raise FileNotFoundError(f"{config}: no config.json, not a checkpoint directory") from None
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{config}: cannot read model_type ({exc.__class__.__name__}: {exc})") from None
    return family_for(str(model_type))
