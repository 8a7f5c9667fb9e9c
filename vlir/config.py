"""The one config base every stage's settings use (build, checks, grounded, teacher, SFT, R-GRPO).

A config is a ``@dataclass`` that also subclasses :class:`Config`. Every field is declared with
:func:`option`: a default, a ``help`` string and, where it applies, a range (``ge``/``gt``/``le``/
``lt``) or ``choices``. What the base does, so no stage writes it again:

* **Types, strictly.** Each value is checked against the field's annotation when the object is
  made, however it was made: a bool is ``true``/``false`` (``embed_images: "no"`` is an error,
  not a truthy string), an int is an integer (``tasks: 4.5``, ``tasks: "four"`` and
  ``tasks: true`` are errors). YAML 1.1 reads ``2e-7`` as a string, so a numeric string is
  accepted for a number field and converted. A :class:`~vlir.geometry.PixelBudget` field (a pixel
  knob) is written ``{min_pixels: N, max_pixels: N}`` (the compact ``[N, N]`` is read too) and
  becomes the one budget type every stage passes on (:meth:`PixelBudget.parse`).
* **Ranges** from the field's ``ge``/``gt``/``le``/``choices``; a class adds cross-field rules in
  :meth:`Config.validate`, returning messages that say what to change.
* **Unknown keys** are errors naming the key path (``teacher.bogus``) and the file.
* **Secrets**: no value may look like an API key (:func:`vlir.secrets.looks_like_key`); the error
  names the field, never the value.
* **Loading**: :meth:`Config.load` reads a YAML file, then ``key=value`` overrides (values parsed
  as YAML; ``chat.max_pixels=50176`` reaches into a mapping field); :meth:`Config.help` lists the
  fields. Every error is a :class:`ConfigError` (a ``ValueError``) whose message is one line, so
  a CLI prints it and exits 2.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence, TypeVar

import yaml

from vlir.geometry import PixelBudget
from vlir.secrets import looks_like_key

C = TypeVar("C", bound="Config")

#: field names a config may never have: the key lives in the environment, never in a file
SECRET_NAMES = ("api_key", "apikey", "key", "token", "secret", "password", "authorization")


def is_secret_name(name: str) -> bool:
    """A key name that can only mean a credential (``api_key``, ``openai_api_key``, ``token``)."""
    low = name.lower()
    return (low in SECRET_NAMES or ("api_key" in low and low != "api_key_env") or "apikey" in low
            or low.endswith(("_token", "_secret", "_password")))


class ConfigError(ValueError):
    """A bad config value or file; the message is one line that says what to change."""


def option(default: Any, help: str, *, ge: float | None = None, gt: float | None = None,  # noqa: A002
           le: float | None = None, lt: float | None = None, choices: Sequence[Any] | None = None) -> Any:
    """A dataclass field with a ``help`` string and an optional range; lists and dicts get a
    copying factory."""
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": tuple(choices) if choices else None}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _kind_name(tp: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(tp, getattr(tp, "__name__", str(tp)))


def _number(value: Any) -> float | None:
    """``value`` as a number if it is one (or a numeric string, as YAML 1.1 leaves ``2e-7``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def convert(value: Any, tp: Any) -> Any:
    """``value`` checked against the annotation ``tp`` (and converted where lossless); raises
    ``TypeError`` with what was expected."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(value, arg)
            except TypeError as exc:
                errors.append(str(exc).removeprefix("must be "))
        raise TypeError("must be " + " or ".join(errors) + (" or null" if type(None) in args else ""))
    base = origin or tp
    if base is Any:
        return value
    if base is PixelBudget:
        try:
            return PixelBudget.parse(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"must be a pixel budget ({exc})") from None
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        num = _number(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if num is not None and math.isfinite(num) and float(num).is_integer():
            return int(num)
    elif base is float:
        num = _number(value)
        if num is not None and not math.isnan(num):
            return float(num)
    elif base in (list, tuple):
        if isinstance(value, (list, tuple)):
            item = (typing.get_args(tp) or (Any,))[0]  # list[str]: every item is checked too
            try:
                return [convert(v, item) for v in value]
            except TypeError as exc:
                raise TypeError(f"must be a list whose every item {str(exc).replace('must be', 'is', 1)}") from None
    elif base in (dict, Mapping):
        if isinstance(value, Mapping):
            return dict(value)
    elif base is str:
        if isinstance(value, str):
            return value
    elif isinstance(value, base):
        return value
    raise TypeError(f"must be {_kind_name(base)}")


def _shown(value: Any) -> str:
    """A value for an error message; a key-shaped value is never echoed."""
    if looks_like_key(value):
        return "a value that looks like an API key"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Config:
    """Mixin for a ``@dataclass`` config (see the module docstring). ``kind`` names it in
    messages; ``section`` is its key path inside a larger config (``teacher``, ``checks``)."""

    kind: ClassVar[str] = "config"
    section: ClassVar[str] = ""
    #: a budget field -> the two int keys an older version wrote it as (read with a warning)
    OLD_BUDGET_KEYS: ClassVar[dict[str, tuple[str, str]]] = {}

    def __post_init__(self) -> None:
        problems = self._check_fields()
        if not problems:
            problems = list(self.validate() or ())
        if problems:
            raise ConfigError(f"invalid {self.kind} config: " + "; ".join(problems))

    def validate(self) -> list[str] | None:
        """Cross-field rules of a subclass: a list of messages that say what to change."""
        return None

    @classmethod
    def key(cls, name: str) -> str:
        """``name``'s key path in messages (``teacher.concurrency``)."""
        return f"{cls.section}.{name}" if cls.section else name

    @classmethod
    def _hints(cls) -> dict[str, Any]:
        """The fields' annotations, resolved once per class (configs are made per record too)."""
        hints = cls.__dict__.get("_resolved_hints")
        if hints is None:
            hints = typing.get_type_hints(cls)
            cls._resolved_hints = hints
        return hints

    def _check_fields(self) -> list[str]:
        """Type, range and secret checks of every field; converts in place (``2e-7`` -> float)."""
        hints = self._hints()
        problems: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            try:
                value = convert(value, hints[f.name])
            except TypeError as exc:
                problems.append(f"{self.key(f.name)} {exc}, got {_shown(value)}")
                continue
            object.__setattr__(self, f.name, value)  # frozen configs too
            secret = _secret_path(value, self.key(f.name))
            if secret:
                problems.append(f"{secret} looks like an API key; a config may not hold a key: put it "
                                "in the environment variable named by teacher.api_key_env")
                continue
            problems.extend(_range_problems(self.key(f.name), value, f.metadata))
        return problems

    # -- loading --------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def check_keys(cls, values: Mapping[str, Any], where: str = "") -> None:
        """Refuse keys that are not fields (naming the key path) and key-like field names."""
        for name in values:
            if name in cls.field_names():
                continue
            path = cls.key(str(name))
            if is_secret_name(str(name)):
                raise ConfigError(f"{where}{path}: a config may not hold an API key; put the key in the "
                                  "environment variable named by teacher.api_key_env (default "
                                  "OPENAI_API_KEY)")
            raise ConfigError(f"{where}unknown {cls.kind} config key {path}; known keys: "
                              f"{', '.join(cls.field_names())}")

    @classmethod
    def old_budget_default(cls, key: str, values: Mapping[str, Any]) -> PixelBudget | None:
        """The budget an old pair's missing half is taken from (a subclass knows its family)."""
        return None

    @classmethod
    def new_budget_keys(cls, values: Any, where: str | Path | None = None) -> Any:
        """``values`` with each :attr:`OLD_BUDGET_KEYS` pair (``crop_min_pixels``/``crop_max_pixels``)
        turned into its budget field ``{min_pixels, max_pixels}``, with a deprecation warning;
        both shapes at once are an error."""
        if not isinstance(values, Mapping) or not any(k in values for pair in cls.OLD_BUDGET_KEYS.values()
                                                      for k in pair):
            return values
        values = dict(values)
        prefix = f"{where}: " if where else ""
        for key, (low, high) in cls.OLD_BUDGET_KEYS.items():
            if low not in values and high not in values:
                continue
            if key in values:
                raise ConfigError(f"{prefix}{low}/{high} and {key} both given: write only "
                                  f"{key}: {{min_pixels: N, max_pixels: N}}")
            default = cls.old_budget_default(key, values)
            values[key] = {"min_pixels": values.pop(low, default and default.min_pixels),
                           "max_pixels": values.pop(high, default and default.max_pixels)}
            logging.getLogger(cls.__module__).warning(
                "%s%s/%s are deprecated: write %s: {min_pixels: N, max_pixels: N}", prefix, low, high, key)
        return values

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any] | None, where: str | Path | None = None) -> C:
        """Build from a mapping (a YAML section); ``where`` (a file) prefixes every message."""
        prefix = f"{where}: " if where else ""
        values = cls.new_budget_keys({} if values is None else values, where)
        if not isinstance(values, Mapping):
            name = cls.section or f"a {cls.kind} config"
            raise ConfigError(f"{prefix}{name} must be a mapping, got {_shown(values)}")
        cls.check_keys(values, prefix)
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(f"{prefix}{exc}") from None

    @classmethod
    def read_yaml(cls, path: str | Path) -> dict[str, Any]:
        """A YAML file's top-level mapping; bad YAML or another shape is a one-line error."""
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the config ({exc.__class__.__name__}: "
                              f"{getattr(exc, 'strerror', None) or exc})") from None
        if loaded is None:
            return {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a {cls.kind} config must be a YAML mapping")
        return loaded

    @classmethod
    def load(cls: type[C], path: str | Path | None = None, overrides: Sequence[str] = ()) -> C:
        """The YAML at ``path`` (or the defaults), then each ``key=value`` override in order.

        Values are parsed as YAML (``lr=1e-5``, ``splits=[gqa/val]``, ``resume=true``); a dotted
        key reaches into a mapping field (``chat.max_pixels=50176``)."""
        values: dict[str, Any] = cls.read_yaml(path) if path is not None else {}
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"override {item!r} is not key=value")
            try:
                value = yaml.safe_load(raw) if raw.strip() else ""
            except yaml.YAMLError:
                value = raw
            head, _, rest = key.partition(".")
            if rest:
                inner = values.get(head) or {}
                if not isinstance(inner, Mapping):
                    raise ConfigError(f"override {key}: {head} is not a mapping")
                values[head] = {**dict(inner), rest: value}
            else:
                values[key] = value
        return cls.from_dict(values, where=path)

    @classmethod
    def help(cls) -> str:
        """One line per field: name, default, its range or choices, and help string."""
        lines = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            lines.append(f"{f.name} = {default!r}: {f.metadata.get('help', '')}{_range_text(f.metadata)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _range_text(meta: Mapping[str, Any]) -> str:
    """`` [one of a, b]`` or `` [>= 1, < 2]`` for ``help()``; empty when the field has neither."""
    if meta.get("choices"):
        return f" [one of {', '.join(map(str, meta['choices']))}]"
    bounds = [f"{op} {meta[key]:g}" for key, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
              if meta.get(key) is not None]
    return f" [{', '.join(bounds)}]" if bounds else ""


def _range_problems(path: str, value: Any, meta: Mapping[str, Any]) -> list[str]:
    if value is None:
        return []
    choices = meta.get("choices")
    if choices and value not in choices:
        return [f"{path} must be one of {', '.join(map(str, choices))}, got {_shown(value)}"]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return []
    ge, gt, le, lt = meta.get("ge"), meta.get("gt"), meta.get("le"), meta.get("lt")
    if ge is not None and value < ge:
        return [f"{path} must be >= {ge:g}, got {value:g}"]
    if gt is not None and not value > gt:
        return [f"{path} must be > {gt:g}, got {value:g}"]
    if le is not None and value > le:
        return [f"{path} must be <= {le:g}, got {value:g}"]
    if lt is not None and not value < lt:
        return [f"{path} must be < {lt:g}, got {value:g}"]
    return []


def _secret_path(value: Any, path: str) -> str | None:
    """The key path of the first key-shaped string in ``value`` (nested mappings and lists)."""
    if isinstance(value, str):
        return path if looks_like_key(value) else None
    if isinstance(value, Mapping):
        for k, v in value.items():
            if is_secret_name(str(k)):
                return f"{path}.{k}"
            found = _secret_path(v, f"{path}.{k}")
            if found:
                return found
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _secret_path(v, f"{path}[{i}]")
            if found:
                return found
    return None
