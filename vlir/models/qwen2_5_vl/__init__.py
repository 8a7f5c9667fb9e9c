"""The Qwen2.5-VL family: its special tokens, processor and loading facts (listed by :mod:`vlir.models.registry`).

Two traps of this stack (see ``shared/STACK.md``) shape the processor:

* torchvision is absent, so the image processor is always :class:`Qwen2VLImageProcessorPil`
  (a checkpoint's ``image_processor_type`` names the torchvision one), and the processor is
  :class:`VlirQwenProcessor`, a ``Qwen2_5_VLProcessor`` without a video processor.
* the chat template is Qwen2.5-VL-Instruct's published one; a checkpoint without one gets it.

Boxes are integer pixels of the image as the model sees it (``smart_resize`` on its 28-pixel grid),
and an image is written ``<|vision_start|><|image_pad|><|vision_end|>`` in the rendered chat. Its
grid and default budgets are :mod:`vlir.models.defaults`' (the default family's, which
:mod:`vlir.geometry` takes as its defaults); its tiny model is :mod:`vlir.models.qwen2_5_vl.tiny`
(shapes: ``tiny.yaml`` beside it, packaged name ``tiny``).
transformers is imported inside functions: importing this module stays light.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from vlir.models import defaults
from vlir.models.family import ModelFamily
from vlir.models.processors import images_only_processor, read_processor

# Qwen2.5's special tokens, in the checkpoint's id order (151643...). Keeping the order keeps the
# tiny tokenizer's layout recognisable; ids differ, so code must look them up (see special_ids).
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)
# Qwen2's pre-tokenizer split (as in its tokenizer.json): contractions, letter runs, single
# digits, punctuation runs, newlines, spaces.
QWEN_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def qwen2_5_vl_chat_template() -> str:
    """Qwen2.5-VL-Instruct's published chat template, as TRL ships it for identity checks."""
    return (importlib.resources.files("trl") / "chat_templates" / "qwen2_5_vl.jinja").read_text("utf-8")


def make_processor(image_processor, tokenizer, chat_template: str | None = None):
    """Wrap an image processor and a tokenizer into the project's Qwen2.5-VL processor."""
    template = chat_template or getattr(tokenizer, "chat_template", None) or qwen2_5_vl_chat_template()
    cls = images_only_processor("Qwen2_5_VLProcessor", "VlirQwenProcessor", __name__)
    return cls(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)


def load_processor(path: str | Path, min_pixels: int | None = None, max_pixels: int | None = None):
    """The processor of a local Qwen2.5-VL checkpoint (tiny or real), images only."""
    return read_processor(path, make_processor, min_pixels, max_pixels)


def _tiny_parts(cfg, seed):
    from vlir.models.qwen2_5_vl.tiny import parts

    return parts(cfg, seed)



QWEN2_5_VL = ModelFamily(
    name="qwen2_5_vl",
    model_types=("qwen2_5_vl",),
    coordinates="absolute model pixels",
    patch_size=defaults.PATCH_SIZE,
    merge_size=defaults.MERGE_SIZE,
    min_pixels=defaults.MIN_PIXELS,  # the released VLM-R3 agent's budgets
    max_pixels=defaults.MAX_PIXELS,
    crop_min_pixels=defaults.CROP_MIN_PIXELS,
    crop_max_pixels=defaults.CROP_MAX_PIXELS,
    special_tokens={"endoftext": "<|endoftext|>", "im_start": "<|im_start|>", "im_end": "<|im_end|>",
                    "vision_start": "<|vision_start|>", "vision_end": "<|vision_end|>",
                    "vision_pad": "<|vision_pad|>", "image_pad": "<|image_pad|>", "video_pad": "<|video_pad|>"},
    vision_tokens=("vision_start", "vision_end", "vision_pad", "image_pad", "video_pad"),
    image_block="<|vision_start|><|image_pad|><|vision_end|>",
    model_class="Qwen2_5_VLForConditionalGeneration",
    load_processor=load_processor,
    processor_class="Qwen2_5_VLProcessor",
    tiny_parts=_tiny_parts,
    tiny_name="tiny",
)
