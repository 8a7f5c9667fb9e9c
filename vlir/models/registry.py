"""Which family a checkpoint, a processor or a config's name means. The registry sits above the
family modules and lists them (a family module never imports it), so the model layer's imports run
one way: registry -> qwen2_5_vl / qwen3_vl -> family, processors, defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vlir.models.defaults import DEFAULT_FAMILY
from vlir.models.family import ModelFamily
from vlir.models.qwen2_5_vl import QWEN2_5_VL
from vlir.models.qwen3_vl import QWEN3_VL

FAMILIES: tuple[ModelFamily, ...] = (QWEN2_5_VL, QWEN3_VL)


def _by_model_type() -> dict[str, ModelFamily]:
    out: dict[str, ModelFamily] = {}
    for family in FAMILIES:
        for model_type in family.model_types:
            other = out.get(model_type)
            if other is not None and other.name != family.name:
                raise ValueError(f"model_type {model_type} is claimed by {other.name} and {family.name}")
            out[model_type] = family
    return out


_FAMILIES = _by_model_type()


def default_family() -> ModelFamily:
    """The family a config means when it names none (:data:`vlir.models.defaults.DEFAULT_FAMILY`)."""
    return family_for(DEFAULT_FAMILY)


def families() -> list[ModelFamily]:
    """Every registered family, once each."""
    return list({f.name: f for f in _FAMILIES.values()}.values())


def family_for(model_type: str) -> ModelFamily:
    """The registered family of a ``config.json`` ``model_type``."""
    try:
        return _FAMILIES[model_type]
    except KeyError:
        raise ValueError(f"no vlir model family for model_type {model_type!r}; known: "
                         f"{', '.join(sorted(_FAMILIES))}") from None


def family_of(path: str | Path) -> ModelFamily:
    """The family of the local checkpoint at ``path``, from its ``config.json``."""
    config = Path(path) / "config.json"
    try:
        model_type = json.loads(config.read_text("utf-8"))["model_type"]
    except FileNotFoundError:
        raise FileNotFoundError(f"{config}: no config.json, not a checkpoint directory") from None
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{config}: cannot read model_type ({exc.__class__.__name__}: {exc})") from None
    return family_for(str(model_type))


def family_of_processor(processor: Any) -> ModelFamily:
    """The family of a loaded processor, from the transformers class it derives from; anything else
    (a bare image processor, say) is taken for the default family's, as before families existed."""
    names = {cls.__name__ for cls in type(processor).__mro__}
    for family in _FAMILIES.values():
        if family.processor_class and family.processor_class in names:
            return family
    return default_family()
