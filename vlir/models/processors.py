"""Processor plumbing the family modules share: transformers' processor classes without their video
processor (which needs torchvision), and reading a local checkpoint's processor. A leaf of the model
layer (it imports no family), so the families and the registry above them can both use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_IMAGES_ONLY: dict[str, type] = {}


def images_only_processor(base: str, name: str, module: str) -> type:
    """transformers' processor class ``base`` minus its video processor (which needs torchvision),
    as a subclass called ``name``: same tokens, same ``mm_token_type_ids``. Built once, lazily, so
    importing a family module does not import transformers; it becomes ``module.name`` so that a
    processor pickles (DataLoader workers)."""
    if base not in _IMAGES_ONLY:
        import sys

        import transformers

        parent = getattr(transformers, base)

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            parent.__init__(self, image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                            chat_template=chat_template, **kwargs)

        doc = f"{base} for images only (no video processor: it needs torchvision)."
        cls = type(name, (parent,), {"__init__": __init__, "__doc__": doc, "__qualname__": name, "__module__": module})
        setattr(sys.modules[module], name, cls)
        _IMAGES_ONLY[base] = cls
    return _IMAGES_ONLY[base]


def read_processor(path: str | Path, make: Any, min_pixels: int | None = None, max_pixels: int | None = None):
    """A local checkpoint's PIL image processor (``min_pixels``/``max_pixels`` override its budget),
    tokenizer and chat template (the tokenizer's, else ``chat_template.jinja``/``.json``), wrapped by
    the family's ``make(image_processor, tokenizer, template)``."""
    import json

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
    return make(image_processor, tokenizer, template)
