"""Loading a local checkpoint: the tiny model or a real one (e.g. Qwen2.5-VL-7B-Instruct or the
released VLM-R3 model) load the same way, and the family (from ``config.json``'s ``model_type``)
says which model class and processor to use. Nothing here touches a model hub.

torch and transformers are imported inside functions: ``import vlir.models`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlir.models.registry import family_of


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
