"""Loading a local checkpoint: the tiny model or a real one (e.g. Qwen2.5-VL-7B-Instruct or the
released VLM-R3 model) load the same way, and the family (from ``config.json``'s ``model_type``)
says which model class and processor to use. Nothing here touches a model hub.

torch and transformers are imported inside functions: ``import vlir.models`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlir.models.family import family_of


def _torch_dtype(dtype: Any, device: str):
    import torch

    if dtype is None:
        return torch.float32 if str(device).startswith("cpu") else torch.bfloat16
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
             "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
    if str(dtype) not in names:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(names)}")
    return names[str(dtype)]


def load_processor(path: str | Path, min_pixels: int | None = None, max_pixels: int | None = None):
    """The processor of a local checkpoint (tiny or real), images only.

    ``min_pixels``/``max_pixels`` override the checkpoint's image budget (the released VLM-R3 agent
    runs Qwen2.5-VL with 4*28*28 .. 2048*28*28 instead of the checkpoint's default).
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {path}")
    return family_of(path).load_processor(path, min_pixels=min_pixels, max_pixels=max_pixels)


def load_model(path: str | Path, dtype: Any = None, device: str = "cpu", *, min_pixels: int | None = None,
               max_pixels: int | None = None, attn_implementation: str | None = None):
    """``(model, processor)`` from a local checkpoint directory: the tiny model or a real one
    (hub layout: flat config, ``preprocessor_config.json``, its tokenizer).

    ``dtype`` None means fp32 on CPU and bf16 elsewhere; strings ``fp32``/``bf16``/``fp16`` work.
    ``min_pixels``/``max_pixels`` go to :func:`load_processor`. The model is returned in eval
    mode; trainers call ``.train()`` themselves.
    """
    import transformers

    processor = load_processor(path, min_pixels=min_pixels, max_pixels=max_pixels)
    model_class = getattr(transformers, family_of(path).model_class)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = model_class.from_pretrained(Path(path), dtype=_torch_dtype(dtype, device), **kwargs)
    model.to(device)
    model.eval()
    return model, processor


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
