"""Qwen3-VL: the facts that make it a different model family from Qwen2.5-VL.

What differs, and where each fact comes from:

* **Boxes on a relative 0-1000 grid.** Qwen3-VL's grounding (its README and cookbooks) writes
  ``{"bbox_2d": [x1, y1, x2, y2]}`` with each number in ``[0, 1000]`` of the image's width/height,
  whatever the resize: original pixels = ``v / 1000 * W`` (x) and ``v / 1000 * H`` (y). Qwen2.5-VL
  writes absolute pixels of its ``smart_resize``d view instead. vlir stores looks in original pixels,
  so one record serves both; only the numbers written change (the family's ``coordinates`` put
  ``box_grid=1000`` on its :class:`~vlir.geometry.PixelBudget`, and :mod:`vlir.geometry` converts).
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

The family is listed by :mod:`vlir.models.registry` (:data:`QWEN3_VL`); the tiny model is :mod:`vlir.models.qwen3_vl.tiny`
(shapes: ``tiny.yaml`` beside it, packaged name ``qwen3_vl_tiny``).
torch and transformers are imported inside functions: importing this module stays light.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from vlir.geometry import PixelBudget
from vlir.models.family import ModelFamily
from vlir.models.processors import images_only_processor, read_processor
from vlir.models.qwen2_5_vl import QWEN2_5_VL

MODEL_TYPE = "qwen3_vl"  # config.json "model_type" of every dense Qwen3-VL checkpoint
COORD_GRID = 1000  # bbox_2d numbers are thousandths of the image's width / height
FACTOR = 32  # 16-pixel patches merged 2x2
RELEASED_IMAGE_BUDGET = PixelBudget(65536, 16777216, factor=FACTOR, box_grid=COORD_GRID)

# Qwen3's added tokens after the Qwen2.5 special tokens, in the released vocabulary's order
# (151657...). They are added tokens but not special: decoding keeps them, the template writes them.
QWEN3_ADDED_TOKENS = (
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
)
SPECIAL_ADDED = {"<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>",
                 "<|file_sep|>"}


# ---------------------------------------------------------------------------------------------
# Chat template, processor, loading
# ---------------------------------------------------------------------------------------------

def chat_template() -> str:
    """Qwen3-VL-Instruct's published chat template, as TRL ships it for identity checks."""
    return (importlib.resources.files("trl") / "chat_templates" / "qwen3_vl.jinja").read_text("utf-8")


def make_processor(image_processor, tokenizer, template: str | None = None):
    """Wrap an image processor and a tokenizer into the project's Qwen3-VL processor (images only)."""
    template = template or getattr(tokenizer, "chat_template", None) or chat_template()
    cls = images_only_processor("Qwen3VLProcessor", "VlirQwen3VLProcessor", __name__)
    return cls(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)


def load_processor(path: str | Path, min_pixels: int | None = None, max_pixels: int | None = None):
    """The processor of a local Qwen3-VL checkpoint (tiny or released), images only;
    ``min_pixels``/``max_pixels`` override the checkpoint's image budget."""
    return read_processor(path, make_processor, min_pixels, max_pixels)


def _tiny_parts(cfg, seed):
    from vlir.models.qwen3_vl.tiny import parts

    return parts(cfg, seed)



QWEN3_VL = ModelFamily(
    name="qwen3_vl",
    model_types=(MODEL_TYPE,),
    coordinates="relative 0-1000",
    patch_size=16,
    merge_size=2,
    min_pixels=RELEASED_IMAGE_BUDGET.min_pixels,
    max_pixels=RELEASED_IMAGE_BUDGET.max_pixels,
    crop_min_pixels=QWEN2_5_VL.crop_min_pixels,  # the VLM-R3 agent's crop pixel counts, on its own grid
    crop_max_pixels=QWEN2_5_VL.crop_max_pixels,
    special_tokens=QWEN2_5_VL.special_tokens,  # the same names (and ids in the released vocabulary)
    vision_tokens=QWEN2_5_VL.vision_tokens,
    image_block=QWEN2_5_VL.image_block,
    model_class="Qwen3VLForConditionalGeneration",
    load_processor=load_processor,
    processor_class="Qwen3VLProcessor",
    tiny_parts=_tiny_parts,
    tiny_name="qwen3_vl_tiny",
)
