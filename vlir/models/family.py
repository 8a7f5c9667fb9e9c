"""What a model family is to vlir: the facts the chat rendering, the rollout engine and the loaders
need, in one small object per family, so a second family is a new module, not edits everywhere.

A checkpoint's family is chosen from its ``config.json`` ``model_type`` (:func:`family_of`), a loaded
processor's from its class (:func:`family_of_processor`). Two families are registered:
:mod:`vlir.models.qwen2_5_vl` (absolute pixels of the resized view, 28-px grid) and
:mod:`vlir.models.qwen3_vl` (a relative 0-1000 grid, 32-px grid, deepstack). The box convention and
grid reach the code that converts boxes through :meth:`ModelFamily.budget` (a
:class:`vlir.geometry.PixelBudget` with ``factor`` and ``box_grid``), never through a family name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from vlir.geometry import CROP_PIXELS, PixelBudget

#: the box conventions a family may declare for ``{"bbox_2d": [...]}`` coordinates, and the grid
#: each puts on :attr:`vlir.geometry.PixelBudget.box_grid` (None: pixels of the resized view)
COORDINATES = ("absolute model pixels", "relative 0-1000")
_BOX_GRID = {"absolute model pixels": None, "relative 0-1000": 1000}


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
    processor_class: str = ""  # the transformers processor class its processors derive from
    build_tiny: Callable[..., Any] | None = field(default=None, repr=False, compare=False)

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

    def budget(self, min_pixels: int | None = None, max_pixels: int | None = None,
               factor: int | None = None) -> PixelBudget:
        """The model's view within ``min_pixels``/``max_pixels`` (None: the family's defaults): its
        resize grid and its box convention, which :mod:`vlir.geometry` converts through."""
        return PixelBudget(min_pixels or self.min_pixels, max_pixels or self.max_pixels,
                           factor=factor or self.factor, box_grid=_BOX_GRID[self.coordinates])

    def crop_budget(self, min_pixels: int | None = None, max_pixels: int | None = None) -> PixelBudget:
        """Crops are rendered on the family's grid (so the processor takes them as they are), within
        the VLM-R3 agent's pixel counts unless given."""
        return PixelBudget(min_pixels or CROP_PIXELS.min_pixels, max_pixels or CROP_PIXELS.max_pixels,
                           factor=self.factor)


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
    from vlir.models import qwen2_5_vl, qwen3_vl  # noqa: F401  (register on import)


def registered() -> tuple[ModelFamily, ...]:
    """Every registered family, once each (the built-in ones included)."""
    _load_builtin()
    return tuple({f.name: f for f in _FAMILIES.values()}.values())


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


def family_of_processor(processor: Any) -> ModelFamily:
    """The family of a loaded processor, from the transformers class it derives from; anything else
    (a bare image processor, say) is taken for Qwen2.5-VL's, as before families existed."""
    _load_builtin()
    names = {cls.__name__ for cls in type(processor).__mro__}
    for family in _FAMILIES.values():
        if family.processor_class and family.processor_class in names:
            return family
    return _FAMILIES["qwen2_5_vl"]
