"""The model layer: what the trainers, the rollout engine, evaluation, benchmarks, formats and the
CLI know about the model, in one place.

* :mod:`vlir.models.family` — :class:`ModelFamily` (token strings, box convention, grid, budgets)
  and the registry that picks a checkpoint's family from ``config.json``'s ``model_type``;
  :mod:`vlir.models.qwen2_5_vl` registers Qwen2.5-VL.
* :mod:`vlir.models.loading` — :func:`load_model` / :func:`load_processor` for local checkpoints.
* :mod:`vlir.models.tokens` — :func:`special_ids`, :func:`vision_token_ids`, :func:`model_budget`.
* :mod:`vlir.models.chat` — record -> chat -> tokens, the one rendering SFT, rollout and eval share.
* :mod:`vlir.models.tiny` — the tiny offline Qwen2.5-VL; its YAML is package data.

Importing this package imports neither torch nor transformers.
"""

from vlir.models.family import ModelFamily, family_for, family_of
from vlir.models.loading import load_model, load_processor
from vlir.models.tiny import DEFAULT_TINY_CONFIG, build_tiny_model, load_tiny_config
from vlir.models.tokens import model_budget, special_ids, vision_token_ids

__all__ = ["DEFAULT_TINY_CONFIG", "ModelFamily", "build_tiny_model", "family_for", "family_of", "load_model", "load_processor",
           "load_tiny_config", "model_budget", "special_ids", "vision_token_ids"]
