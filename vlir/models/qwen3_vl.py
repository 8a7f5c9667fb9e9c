"""Qwen3-VL: the facts that make it a different model family from Qwen2.5-VL.

What differs, and where each fact comes from:

* **Boxes on a relative 0-1000 grid.** Qwen3-VL's grounding (its README and cookbooks) writes
  ``{"bbox_2d": [x1, y1, x2, y2]}`` with each number in ``[0, 1000]`` of the image's width/height,
  whatever the resize: original pixels = ``v / 1000 * W`` (x) and ``v / 1000 * H`` (y). Qwen2.5-VL
  writes absolute pixels of its ``smart_resize``d view instead. vlir stores looks in original pixels,
  so one record serves both; only the numbers written change (:func:`budget` sets
  :attr:`vlir.geometry.PixelBudget.box_grid`, and :mod:`vlir.geometry` converts).
  Precision: one grid step is ``W / 1000`` original pixels, so a rounded coordinate is off by at most
  ``W / 2000`` (0.32 px on a 640-px-wide COCO photo, 2 px on a 4000-px document scan).
* **32-pixel grid**: 16-pixel patches merged 2x2 (Qwen2.5-VL: 14 x 2 = 28), the same
  ``smart_resize`` rule (transformers' ``Qwen2VLImageProcessor``), normalisation mean = std = 0.5.
* **Pixel budgets** of the released processors (``Qwen/Qwen3-VL-{2,4,8,32}B-{Instruct,Thinking}``
  ``preprocessor_config.json``): ``size = {shortest_edge: 65536, longest_edge: 16777216}``, i.e.
  64*32*32 .. 16384*32*32 pixels (:data:`RELEASED_IMAGE_BUDGET`).
* **Tokens**: Qwen2.5-VL's special tokens (same names, same ids in the released vocabulary) plus
  Qwen3's added, non-special ``<think>``/``</think>``, ``<tool_call>``/``</tool_call>``,
  ``<tool_response>``/``</tool_response>`` — the VLM-R3 format's ``<think>`` is one token here.
  An image block is ``<|vision_start|>`` + N x ``<|image_pad|>`` + ``<|vision_end|>`` with
  N = t*h*w // 4, as in Qwen2.5-VL.
* **Chat template** (TRL ships the original as ``qwen3_vl.jinja``): no default system prompt (Qwen2.5-VL's
  template adds "You are a helpful assistant."), tools through ``<tool_call>`` / a ``tool`` turn.
* **Position ids** of an inserted image (``Qwen3VLModel.get_rope_index``, transformers 5.24): text
  advances one position per token on all three axes; an image block starts at the current position
  ``p`` with temporal ``p``, rows ``p + i``, columns ``p + j``, and the text after it resumes at
  ``p + max(h, w) / 2``; the rotary frequencies interleave the t/h/w sections (``mrope_interleaved``).
  The call has Qwen2.5-VL's signature, so the rollout engine's "positions over the whole trajectory,
  forward only the new tokens" recipe carries over unchanged.
* **Deepstack**: features of vision layers ``deepstack_visual_indexes`` are added to the hidden states
  of the first decoder layers at the image-token positions *of the current forward*. A forward that
  carries only the inserted crop's ``pixel_values`` therefore injects only that crop's features, at
  its own positions, while the cached keys/values of earlier images already hold theirs: KV-cache reuse
  across an inserted crop stays exact (``tests/models/test_qwen3_vl_rollout.py``).

torch and transformers are imported inside functions: importing this module stays light.
"""

from __future__ import annotations

import importlib.resources
import json
import math
from pathlib import Path
from typing import Any, Sequence

from vlir import geometry
from vlir.geometry import PixelBudget

MODEL_TYPE = "qwen3_vl"  # config.json "model_type" of every Qwen3-VL dense checkpoint
COORD_GRID = 1000  # bbox_2d numbers are thousandths of the image's width / height
FACTOR = 32  # 16-pixel patches merged 2x2
RELEASED_IMAGE_BUDGET = PixelBudget(65536, 16777216, factor=FACTOR, box_grid=COORD_GRID)
# Crops: the VLM-R3 agent's pixel counts (vlir.geometry.CROP_PIXELS), resized on the 32-pixel grid
# so the processor takes a rendered crop as it is.
CROP_BUDGET = PixelBudget(geometry.CROP_PIXELS.min_pixels, geometry.CROP_PIXELS.max_pixels, factor=FACTOR)

# Qwen3's added tokens after the Qwen2.5 special tokens, in the released vocabulary's order
# (151657...). They are added tokens but not special: decoding keeps them, the template writes them.
QWEN3_ADDED_TOKENS = (
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
)
_SPECIAL_ADDED = {"<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>",
                  "<|file_sep|>"}


def budget(min_pixels: int, max_pixels: int) -> PixelBudget:
    """A Qwen3-VL view: ``smart_resize`` on the 32-pixel grid, boxes on the 0..1000 grid
    (:func:`vlir.geometry.to_model` / :func:`~vlir.geometry.from_model` then speak Qwen3-VL)."""
    return PixelBudget(int(min_pixels), int(max_pixels), factor=FACTOR, box_grid=COORD_GRID)


# ---------------------------------------------------------------------------------------------
# Chat template, processor, loading
# ---------------------------------------------------------------------------------------------

def chat_template() -> str:
    """Qwen3-VL-Instruct's published chat template, as TRL ships it for identity checks."""
    return (importlib.resources.files("trl") / "chat_templates" / "qwen3_vl.jinja").read_text("utf-8")


def _processor_class():
    """``Qwen3VLProcessor`` minus the video processor (which needs torchvision); built lazily."""
    global VlirQwen3VLProcessor
    if VlirQwen3VLProcessor is None:
        from transformers import Qwen3VLProcessor

        class _Processor(Qwen3VLProcessor):
            """Qwen3-VL's processor for images only: same tokens, same ``mm_token_type_ids``."""

            def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
                super().__init__(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=None, chat_template=chat_template, **kwargs)

        _Processor.__name__ = _Processor.__qualname__ = "VlirQwen3VLProcessor"
        VlirQwen3VLProcessor = _Processor
    return VlirQwen3VLProcessor


VlirQwen3VLProcessor = None  # the class, once _processor_class() has built it


def make_processor(image_processor, tokenizer, template: str | None = None):
    """Wrap an image processor and a tokenizer into the project's Qwen3-VL processor."""
    template = template or getattr(tokenizer, "chat_template", None) or chat_template()
    return _processor_class()(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)


def image_processor(min_pixels: int, max_pixels: int, patch_size: int = 16, merge_size: int = 2,
                    temporal_patch_size: int = 2):
    """The PIL image processor with Qwen3-VL's settings (the released one is the torchvision
    ``Qwen2VLImageProcessorFast`` with the same resize rule and mean = std = 0.5)."""
    from transformers import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(
        min_pixels=int(min_pixels), max_pixels=int(max_pixels), patch_size=int(patch_size),
        merge_size=int(merge_size), temporal_patch_size=int(temporal_patch_size),
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )


def load_processor(path: str | Path, min_pixels: int | None = None, max_pixels: int | None = None):
    """The processor of a local Qwen3-VL checkpoint (tiny or released), images only;
    ``min_pixels``/``max_pixels`` override the checkpoint's image budget."""
    from transformers import AutoTokenizer, Qwen2VLImageProcessorPil

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {path}")
    kwargs = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
    ip = Qwen2VLImageProcessorPil.from_pretrained(path, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path)
    template = getattr(tokenizer, "chat_template", None)
    if not template and (path / "chat_template.jinja").exists():
        template = (path / "chat_template.jinja").read_text("utf-8")
    elif not template and (path / "chat_template.json").exists():
        template = json.loads((path / "chat_template.json").read_text("utf-8"))["chat_template"]
    return make_processor(ip, tokenizer, template)


def model_class():
    from transformers import Qwen3VLForConditionalGeneration

    return Qwen3VLForConditionalGeneration


def image_tokens(width: int, height: int, budget: PixelBudget) -> int:
    """Merged image tokens of an image of this size (without ``<|vision_start|>``/``<|vision_end|>``)."""
    h, w = geometry.smart_resize(height, width, budget)
    return (h // budget.factor) * (w // budget.factor)


def is_square(n: int) -> bool:
    return math.isqrt(n) ** 2 == n
