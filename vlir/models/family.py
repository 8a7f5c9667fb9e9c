"""What a model family is to vlir: the facts the chat rendering, the rollout engine and the loaders
need, in one small object per family, so a second family is a new module, not edits everywhere.

A checkpoint's family is chosen from its ``config.json`` ``model_type`` by :mod:`vlir.models.registry`
(which sits above the family modules and lists them). Two families exist:
:mod:`vlir.models.qwen2_5_vl` (absolute pixels of the resized view, 28-px grid) and
:mod:`vlir.models.qwen3_vl` (a relative 0-1000 grid, 32-px grid, deepstack). The box convention and
grid reach the code that converts boxes through :meth:`ModelFamily.view` (a
:class:`vlir.geometry.PixelBudget` with ``factor`` and ``box_grid``), never through a family name.

A family is the only source of these facts: its token strings (:attr:`ModelFamily.image_block`,
:attr:`ModelFamily.vision_token_strings`), its grid (:attr:`ModelFamily.factor`) and its default
image and crop budgets. A user's pixel knob (a :class:`~vlir.geometry.PixelBudget`, or None for the
default) goes through :meth:`ModelFamily.view` (the model's view of the image) or
:meth:`ModelFamily.crop` (a rendered crop) and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from vlir.geometry import PixelBudget

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
    ``min_pixels``/``max_pixels`` are the default image budget, ``crop_min_pixels``/
    ``crop_max_pixels`` the default crop budget. ``model_class`` is the transformers class name
    loading a checkpoint; ``load_processor(path, min_pixels, max_pixels)`` loads the processor of a
    local checkpoint; ``tiny_parts(cfg, seed)`` gives its tiny offline model's class, config and processor.
    """

    name: str
    model_types: tuple[str, ...]
    coordinates: str
    patch_size: int
    merge_size: int
    min_pixels: int
    max_pixels: int
    crop_min_pixels: int
    crop_max_pixels: int
    special_tokens: Mapping[str, str]
    vision_tokens: tuple[str, ...]
    image_block: str
    model_class: str
    load_processor: Callable[..., Any] = field(repr=False, compare=False)
    processor_class: str = ""  # the transformers processor class its processors derive from
    tiny_parts: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    tiny_name: str = ""  # the packaged name of its tiny model (``tiny.yaml`` in vlir/models/<name>/)

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

    @property
    def vision_token_strings(self) -> tuple[str, ...]:
        """The strings of :attr:`vision_tokens` (what a decoded text may hold around an image)."""
        return tuple(self.special_tokens[name] for name in self.vision_tokens)

    def image_block_pattern(self) -> str:
        """A regex of one image in decoded text: ``<|vision_start|>``, any number of
        ``<|image_pad|>`` (the template writes one, decoded ids hold N), ``<|vision_end|>``."""
        import re

        start, pad, end = (re.escape(self.special_tokens[k]) for k in ("vision_start", "image_pad", "vision_end"))
        return f"{start}(?:{pad})*{end}"

    def view(self, knob: PixelBudget | None = None) -> PixelBudget:
        """The model's view of an image for the user's pixel knob (None: the family's default image
        budget): the knob's pixel counts on this family's grid and box convention, which
        :mod:`vlir.geometry` converts boxes through."""
        knob = knob or PixelBudget(self.min_pixels, self.max_pixels)
        return PixelBudget(knob.min_pixels, knob.max_pixels, factor=self.factor,
                           box_grid=_BOX_GRID[self.coordinates])

    def crop(self, knob: PixelBudget | None = None) -> PixelBudget:
        """A rendered crop's budget for the user's pixel knob (None: the family's default crop
        budget), on this family's grid so its processor takes the crop as it is."""
        knob = knob or PixelBudget(self.crop_min_pixels, self.crop_max_pixels)
        return PixelBudget(knob.min_pixels, knob.max_pixels, factor=self.factor)

    def budget(self, min_pixels: int | None = None, max_pixels: int | None = None,
               factor: int | None = None) -> PixelBudget:
        """:meth:`view` from separate counts (None: the family's default); ``factor`` is a loaded
        processor's own grid (:func:`vlir.models.tokens.model_budget`)."""
        view = self.view(PixelBudget(min_pixels or self.min_pixels, max_pixels or self.max_pixels))
        return PixelBudget(view.min_pixels, view.max_pixels, factor=factor or view.factor, box_grid=view.box_grid)

    def crop_budget(self, min_pixels: int | None = None, max_pixels: int | None = None) -> PixelBudget:
        """:meth:`crop` from separate counts (None: the family's default)."""
        return self.crop(PixelBudget(min_pixels or self.crop_min_pixels, max_pixels or self.crop_max_pixels))
