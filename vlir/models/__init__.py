"""The model layer: what the trainers, the rollout engine, evaluation, benchmarks, formats and the
CLI know about the model, in one place.

* :mod:`vlir.models.family` — :class:`ModelFamily` (token strings, image block, box convention,
  grid, default budgets); :mod:`vlir.models.registry` lists the families and picks a checkpoint's
  from ``config.json``'s ``model_type``; :mod:`vlir.models.processors` the processor plumbing they share; :mod:`vlir.models.defaults` names the default family and the numbers
  :mod:`vlir.geometry` takes as defaults.
* :mod:`vlir.models.qwen2_5_vl` and :mod:`vlir.models.qwen3_vl` — one sub-package per family: the
  family's facts and processor, and its tiny offline model (``tiny.py`` + ``tiny.yaml``, package data).
* :mod:`vlir.models.loading` — :func:`load_model` / :func:`load_processor` for local checkpoints.
* :mod:`vlir.models.tokens` — :func:`special_ids`, :func:`vision_token_ids`, :func:`model_budget`.
* :mod:`vlir.models.chat` — record -> chat -> tokens, the one rendering SFT, rollout and eval share.
* :mod:`vlir.models.tiny` — :func:`build_tiny_model`: a tiny model of any family by name.

The names below are loaded on first use (PEP 562), so importing this package, or its leaf
:mod:`vlir.models.defaults` from :mod:`vlir.geometry`, loads nothing else: no torch, no
transformers, and no import cycle with the geometry the families are built on.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ModelFamily": "vlir.models.family", "default_family": "vlir.models.registry",
    "family_for": "vlir.models.registry", "family_of": "vlir.models.registry",
    "load_model": "vlir.models.loading", "load_processor": "vlir.models.loading",
    "DEFAULT_TINY_CONFIG": "vlir.models.tiny", "build_tiny_model": "vlir.models.tiny",
    "load_tiny_config": "vlir.models.tiny",
    "model_budget": "vlir.models.tokens", "special_ids": "vlir.models.tokens",
    "vision_token_ids": "vlir.models.tokens",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vlir.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
