"""Tiny random models built fully offline, for CPU tests and the embedded default of ``make train``:
what every family's tiny builder shares.

A tiny model lives with its family (``vlir/models/<family>/tiny.py`` and its shapes,
``vlir/models/<family>/tiny.yaml``: package data read through :mod:`importlib.resources`, so building
works from an installed wheel). Here: the YAML's schema (:class:`TinyModelConfig`), the packaged names
(``"tiny"``: Qwen2.5-VL, ``"qwen3_vl_tiny"``: Qwen3-VL, each a family's ``tiny_name``),
:func:`build_tiny_model` (the YAML's ``family`` builds it) and :func:`save_tiny` (the shared end).
The model is saved with ``save_pretrained`` (model + image processor + tokenizer + chat template)
and is then indistinguishable, to every later step, from a downloaded checkpoint, except for its sizes.
"""

from __future__ import annotations

import importlib.resources
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlir.config import Config, ConfigError, option
from vlir.models.defaults import DEFAULT_FAMILY
from vlir.models.tokens import special_ids

log = logging.getLogger(__name__)

#: the packaged tiny model's name; any other value of ``build_model`` is a YAML path
DEFAULT_TINY_CONFIG = "tiny"
TINY_YAML = "tiny.yaml"  # a family's tiny shapes, in its sub-package


@dataclass
class TinyModelConfig(Config):
    """The tiny model's YAML: four sections, each a mapping of the family's config keys."""

    kind = "tiny model"

    text: dict = option({}, "Text config keys (hidden_size, layers, heads, mrope_section ...)")
    vision: dict = option({}, "Vision config keys (depth, patch_size, spatial_merge_size ...)")
    tokenizer: dict = option({}, "byte-level BPE: vocab_size, extra_lines (synthetic training lines)")
    image_processor: dict = option({}, "min_pixels and max_pixels of the image processor")
    family: str = option(DEFAULT_FAMILY, "The model family (vlir.models) whose tiny builder reads this YAML.")

    def validate(self) -> list[str]:
        return [f"{name} must not be empty" for name in ("text", "vision", "image_processor")
                if not getattr(self, name)]


def _packaged() -> dict[str, str]:
    """Packaged tiny name -> the family sub-package holding its YAML."""
    from vlir.models.registry import families

    return {f.tiny_name: f"vlir.models.{f.name}" for f in families() if f.tiny_name}


def load_tiny_config(config: str | Path | dict[str, Any] = DEFAULT_TINY_CONFIG) -> dict[str, Any]:
    """The tiny model's YAML as a dict: a packaged name (``"tiny"``, ``"qwen3_vl_tiny"``) is its
    family's ``tiny.yaml``; any other string is a path (relative to the current directory)."""
    if isinstance(config, dict):
        return config
    packaged = _packaged()
    if str(config) in packaged:
        resource = importlib.resources.files(packaged[str(config)]) / TINY_YAML
        with importlib.resources.as_file(resource) as path:
            return TinyModelConfig.load(path).to_dict()
    if not Path(config).is_file():
        raise ConfigError(f"{config}: no tiny model YAML there (or use a packaged name: "
                          f"{', '.join(sorted(packaged))})")
    return TinyModelConfig.load(config).to_dict()


def build_tiny_model(out_dir: str | Path, config: str | Path | dict[str, Any] = DEFAULT_TINY_CONFIG,
                     seed: int = 0) -> Path:
    """Build the tiny random model of ``config`` into ``out_dir`` and return the path: the YAML's
    ``family`` (default Qwen2.5-VL) builds it (``vlir/models/<family>/tiny.py``).

    Deterministic for a seed (same files byte for byte); the caller's torch RNG is left untouched.
    The directory then loads with :func:`vlir.models.load_model` like any local checkpoint.
    """
    from vlir.models.registry import family_for

    cfg = load_tiny_config(config)
    family = family_for(cfg.get("family", DEFAULT_FAMILY))
    if family.tiny_parts is None:
        raise ConfigError(f"model family {family.name} has no tiny builder")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_class, hf_config, processor = family.tiny_parts(cfg, seed)
    return save_tiny(model_class, hf_config, processor, out, seed)


def save_tiny(model_class: Any, hf_config: Any, processor: Any, out: Path, seed: int) -> Path:
    """Initialise ``model_class(hf_config)`` with ``seed`` (the caller's torch RNG untouched), give it
    the chat's stop tokens, and save it with ``processor``: the shared end of every tiny builder."""
    import torch
    from transformers import GenerationConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(hf_config).to(torch.float32)
    ids = special_ids(processor)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["im_end"], ids["endoftext"]], pad_token_id=ids["pad"], bos_token_id=ids["endoftext"],
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("built tiny %s (%d params, vocab %d) in %s", hf_config.model_type, n_params, len(processor.tokenizer), out)
    return out
