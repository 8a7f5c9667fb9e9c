"""What every trainer config shares: YAML recipe loading, ``key=value`` overrides, scalar
coercion, a ``help()`` listing and field helpers. ``SFTConfig`` and ``GRPOConfig`` subclass
:class:`RecipeConfig` and add only their fields and checks. No torch here.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from dataclasses import field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence, TypeVar

import yaml

PRECISIONS = ("auto", "bf16", "fp32")

C = TypeVar("C", bound="RecipeConfig")


def _f(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a ``help`` string (lists and dicts get a copying factory)."""
    if isinstance(default, (list, dict)):
        factory = (lambda d=default: type(d)(d))
        return field(default_factory=factory, metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


class RecipeConfig:
    """Mixin for a ``@dataclass`` config loaded from a recipe. ``kind`` names it in messages."""

    kind: ClassVar[str] = "recipe"

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def help(cls) -> str:
        """One line per field: name, default and help string."""
        lines = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            lines.append(f"{f.name} = {default!r}: {f.metadata['help']}")
        return "\n".join(lines)

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any]) -> C:
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"unknown {cls.kind} config keys {unknown}; valid keys: {cls.field_names()}")
        return cls(**_coerce(cls, values))

    @classmethod
    def load(cls: type[C], path: str | Path | None = None, overrides: Sequence[str] = ()) -> C:
        """The recipe at ``path`` (or the defaults), then each ``key=value`` override in order.

        Values are parsed as YAML (``lr=1e-5``, ``splits=[gqa/val]``, ``resume=true``); a dotted
        key reaches into a mapping field (``chat.max_pixels=50176``).
        """
        values: dict[str, Any] = {}
        if path is not None:
            loaded = yaml.safe_load(Path(path).read_text())
            if loaded is not None and not isinstance(loaded, dict):
                raise ValueError(f"{path}: a recipe must be a YAML mapping")
            values.update(loaded or {})
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep or not key:
                raise ValueError(f"override {item!r} is not key=value")
            value = yaml.safe_load(raw) if raw.strip() else ""
            head, _, rest = key.partition(".")
            if rest:
                values[head] = {**dict(values.get(head) or {}), rest: value}
            else:
                values[key] = value
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def main(cls, run: Callable[[Any], Any], prog: str, doc: str | None,
             argv: Sequence[str] | None = None) -> int:
        """A trainer module's ``main``: ``--config`` + ``key=value`` overrides (the form both
        ``python -m`` and ``deepspeed --module`` call), then ``run(config)``. A bad recipe is one
        line on stderr and exit code 2."""
        parser = argparse.ArgumentParser(prog=prog, description=doc,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--config", help="recipe YAML (see recipes/)")
        parser.add_argument("--local_rank", "--local-rank", type=int, default=None,
                            help="set by the deepspeed launcher")
        parser.add_argument("overrides", nargs="*", help="key=value overrides of the recipe")
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            cfg = cls.load(args.config, args.overrides)
        except (OSError, ValueError) as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 2
        run(cfg)
        return 0


def _coerce(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """YAML reads ``2e-7`` as a string and ``3`` as an int: cast scalars to the field's type."""
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    out = {}
    for key, value in values.items():
        kind = types[key]
        try:
            if kind == "float" and isinstance(value, (int, str)) and not isinstance(value, bool):
                value = float(value)
            elif kind == "int" and isinstance(value, (float, str)) and float(value) == int(float(value)):
                value = int(float(value))
            elif kind == "bool" and not isinstance(value, bool):
                raise ValueError
            elif kind == "str" and not isinstance(value, str):
                raise ValueError
        except ValueError:
            raise ValueError(f"{key} must be a {kind}, got {value!r}") from None
        out[key] = value
    return out
