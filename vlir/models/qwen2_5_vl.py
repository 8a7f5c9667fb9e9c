"""The Qwen2.5-VL family: its special tokens, processor and loading facts (registered on import).

Two traps of this stack (see ``shared/STACK.md``) shape the processor:

* torchvision is absent, so the image processor is always :class:`Qwen2VLImageProcessorPil`
  (a checkpoint's ``image_processor_type`` names the torchvision one), and the processor is
  :class:`VlirQwenProcessor`, a ``Qwen2_5_VLProcessor`` without a video processor.
* the chat template is Qwen2.5-VL-Instruct's published one; a checkpoint without one gets it.

Boxes are integer pixels of the image as the model sees it (``smart_resize``, factor 28), and an
image is written ``<|vision_start|><|image_pad|><|vision_end|>`` in the rendered chat.
transformers is imported inside functions: importing this module stays light.
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

from vlir.models.family import ModelFamily, register

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


def _processor_class():
    """``Qwen2_5_VLProcessor`` minus the video processor (which needs torchvision). Built lazily so
    importing this module does not import transformers."""
    global VlirQwenProcessor
    if VlirQwenProcessor is None:
        from transformers import Qwen2_5_VLProcessor

        class _VlirQwenProcessor(Qwen2_5_VLProcessor):
            """Qwen2.5-VL's processor for images only: same tokens, same ``mm_token_type_ids``."""

            def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
                super().__init__(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=None, chat_template=chat_template, **kwargs)

        _VlirQwenProcessor.__name__ = _VlirQwenProcessor.__qualname__ = "VlirQwenProcessor"
        VlirQwenProcessor = _VlirQwenProcessor
    return VlirQwenProcessor


VlirQwenProcessor = None  # the class, once _processor_class() has built it


def make_processor(image_processor, tokenizer, chat_template: str | None = None):
    """Wrap an image processor and a tokenizer into the project's Qwen2.5-VL processor."""
    template = chat_template or getattr(tokenizer, "chat_template", None) or qwen2_5_vl_chat_template()
    return _processor_class()(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)


def load_processor(path: str | Path, min_pixels: int | None = None, max_pixels: int | None = None):
    """The processor of a local Qwen2.5-VL checkpoint (tiny or real), images only."""
    from transformers import AutoTokenizer, Qwen2VLImageProcessorPil

    path = Path(path)
    kwargs = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(path, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path)
    template = getattr(tokenizer, "chat_template", None)
    if not template and (path / "chat_template.jinja").exists():
        template = (path / "chat_template.jinja").read_text("utf-8")
    elif not template and (path / "chat_template.json").exists():
        template = json.loads((path / "chat_template.json").read_text("utf-8"))["chat_template"]
    return make_processor(image_processor, tokenizer, template)


QWEN2_5_VL = register(ModelFamily(
    name="qwen2_5_vl",
    model_types=("qwen2_5_vl",),
    coordinates="absolute model pixels",
    patch_size=14,
    merge_size=2,
    min_pixels=4 * 28 * 28,  # the released VLM-R3 agent's budget (vlir.geometry.MODEL_PIXELS)
    max_pixels=2048 * 28 * 28,
    special_tokens={"endoftext": "<|endoftext|>", "im_start": "<|im_start|>", "im_end": "<|im_end|>",
                    "vision_start": "<|vision_start|>", "vision_end": "<|vision_end|>",
                    "vision_pad": "<|vision_pad|>", "image_pad": "<|image_pad|>", "video_pad": "<|video_pad|>"},
    vision_tokens=("vision_start", "vision_end", "vision_pad", "image_pad", "video_pad"),
    image_block="<|vision_start|><|image_pad|><|vision_end|>",
    model_class="Qwen2_5_VLForConditionalGeneration",
    load_processor=load_processor,
))
