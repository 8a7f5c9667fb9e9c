"""A fast yes/no check for simple JSON Schemas, compiled once into nested closures.

``jsonschema`` builds a validator object per keyword and per level and a ``ValidationError`` for
every ``anyOf`` branch that does not match; on the teacher's chain schema that is ~0.25 ms per
answer, a real share of the per-record CPU when dozens of requests are in flight. Every answer is
validated and nearly all are valid, so the teacher asks this predicate first and calls
``jsonschema`` only for an answer it refuses (which also gets ``jsonschema``'s error message).

Exact for the keywords it compiles (draft 2020-12 meaning); a schema using any other keyword is
not compiled (:func:`compile_check` returns None) and the caller keeps using ``jsonschema`` alone,
so editing the schema can never make this check accept what the schema refuses.
"""

from __future__ import annotations

from typing import Any, Callable

Check = Callable[[Any], bool]

#: keywords that do not constrain an instance
_ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "examples", "default"}
_COMPILED = {"type", "properties", "required", "additionalProperties", "items", "anyOf",
             "minItems", "maxItems", "minLength", "maxLength"}


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


_TYPES: dict[str, Check] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "number": _is_number,
    "integer": lambda x: _is_number(x) and (isinstance(x, int) or x.is_integer()),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
}


class _Unsupported(Exception):
    pass


def compile_check(schema: Any) -> Check | None:
    """A predicate equal to "``schema`` accepts the instance", or None if ``schema`` uses a
    keyword (or a keyword form) this module does not compile."""
    try:
        return _compile(schema)
    except _Unsupported:
        return None


def _compile(schema: Any) -> Check:
    if schema is True:
        return lambda x: True
    if schema is False:
        return lambda x: False
    if not isinstance(schema, dict) or set(schema) - _ANNOTATIONS - _COMPILED:
        raise _Unsupported
    checks: list[Check] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not all(isinstance(n, str) and n in _TYPES for n in names):
            raise _Unsupported
        tests = [_TYPES[n] for n in names]
        checks.append(lambda x: any(t(x) for t in tests))
    props = {k: _compile(v) for k, v in (schema.get("properties") or {}).items()}
    required = tuple(schema.get("required") or ())
    extra = schema.get("additionalProperties", True)
    if extra not in (True, False):
        raise _Unsupported
    if props or required or extra is False:
        allowed = frozenset(props)

        def check_object(x: Any) -> bool:
            if not isinstance(x, dict):
                return True  # object keywords ignore other types
            if any(k not in x for k in required):
                return False
            if extra is False and not allowed.issuperset(x):
                return False
            return all(check(x[k]) for k, check in props.items() if k in x)

        checks.append(check_object)
    if "items" in schema:
        item = _compile(schema["items"])
        checks.append(lambda x: not isinstance(x, list) or all(item(v) for v in x))
    lo_items, hi_items = schema.get("minItems", 0), schema.get("maxItems")
    if lo_items or hi_items is not None:
        checks.append(lambda x: not isinstance(x, list) or (
            len(x) >= lo_items and (hi_items is None or len(x) <= hi_items)))
    lo_len, hi_len = schema.get("minLength", 0), schema.get("maxLength")
    if lo_len or hi_len is not None:  # len() of a str counts code points, as JSON Schema does
        checks.append(lambda x: not isinstance(x, str) or (
            len(x) >= lo_len and (hi_len is None or len(x) <= hi_len)))
    if "anyOf" in schema:
        if not isinstance(schema["anyOf"], list) or not schema["anyOf"]:
            raise _Unsupported
        branches = [_compile(s) for s in schema["anyOf"]]
        checks.append(lambda x: any(b(x) for b in branches))
    return lambda x: all(c(x) for c in checks)
