"""The fast schema predicate must say exactly what jsonschema says, or not exist."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from vlir.annotate import teacher_prompt as tp
from vlir.annotate.schema_check import compile_check

CHAIN = tp.chain_schema()
VALID = {"steps": [{"think": "find the sign"}, {"look": {"bbox_2d": [1, 2.5, 30, 40], "label": "sign"}},
                   {"think": "it says stop"}], "answer": "stop"}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-5, 5),
                    st.sampled_from(["", "a", "é", "stop"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5),
    st.dictionaries(st.sampled_from(["steps", "answer", "think", "look", "bbox_2d", "label", "x"]),
                    inner, max_size=4)), max_leaves=20)


def _mutations(value, path=()):
    """Every place in ``value`` (a path of keys/indices), for targeted edits."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _mutations(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _mutations(v, path + (i,))


@st.composite
def near_valid_chains(draw):
    """A valid answer with one part replaced, deleted or extended: the interesting boundary."""
    data = copy.deepcopy(VALID)
    if draw(st.booleans()):
        data["steps"] = data["steps"] * draw(st.integers(0, 6))
    paths = list(_mutations(data))
    path = draw(st.sampled_from(paths))
    if not path:
        return draw(json_values)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    edit = draw(st.sampled_from(["replace", "delete", "extra"]))
    if edit == "replace":
        parent[path[-1]] = draw(json_values)
    elif edit == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.sampled_from(["x", "think", "look", "label", "answer"]))] = draw(json_values)
    else:
        parent.append(draw(json_values))
    return data


def test_the_chain_schema_compiles():
    check = compile_check(CHAIN)
    assert check is not None and check(VALID)
    assert not check({**VALID, "answer": ""}) and not check({**VALID, "steps": []})


@settings(max_examples=400, deadline=None)
@given(st.one_of(near_valid_chains(), json_values))
def test_agrees_with_jsonschema_on_the_chain_schema(instance):
    assert compile_check(CHAIN)(instance) == Draft202012Validator(CHAIN).is_valid(instance)


@pytest.mark.parametrize("schema, instances", [
    ({"type": "number"}, [1, 1.5, True, "1", None]),
    ({"type": "integer"}, [1, 1.0, 1.5, True, -3]),
    ({"type": ["string", "null"]}, ["a", None, 0, False]),
    ({"type": "boolean"}, [True, 0, None]),
    ({"minLength": 2, "maxLength": 3}, ["a", "ab", "abcd", "\U0001f600\U0001f600", 5]),
    ({"minItems": 1, "maxItems": 2}, [[], [1], [1, 2, 3], "ab"]),
    ({"required": ["a"], "properties": {"a": {"type": "string"}}}, [{"a": "x"}, {"a": 1}, {}, [], "s"]),
    ({"additionalProperties": False, "properties": {"a": True}}, [{"a": 1}, {"b": 1}, {}, 3]),
    ({"items": {"type": "integer"}}, [[1, 2], [1, "2"], "12", {}]),
    ({"anyOf": [{"type": "string"}, {"type": "integer", "minItems": 3}]}, ["s", 2, 2.5, []]),
    (True, [1, None]),
    (False, [1, None]),
])
def test_keyword_semantics_match_jsonschema(schema, instances):
    check = compile_check(schema)
    assert check is not None
    validator = Draft202012Validator(schema)
    for instance in instances:
        assert check(instance) == validator.is_valid(instance), instance


@pytest.mark.parametrize("schema", [
    {"type": "string", "pattern": "^a"},
    {"enum": [1, 2]},
    {"items": [{"type": "string"}]},
    {"additionalProperties": {"type": "string"}},
    {"properties": {"a": {"const": 1}}},
    {"anyOf": [{"type": "string"}, {"format": "email"}]},
    {"type": "date"},
])
def test_a_keyword_it_does_not_compile_means_no_check(schema):
    assert compile_check(schema) is None

