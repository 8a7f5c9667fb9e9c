"""``vlir.metrics``: the names callers import, and each source's rule, lenient by default and
official on request (the per-metric edge cases live in ``tests/metrics/``)."""

from __future__ import annotations

import doctest

import pytest

from vlir import metrics
from vlir.metrics import docvqa, gqa, match, textvqa
from vlir.metrics import is_correct, score

DAKOTA = ["nous les gosses", "dakota", "clos culombu", "dakota digital", "dakota", "dakota",
          "dakota digital", "dakota digital", "dakota", "dakota"]  # TextVQA val question 34602


def test_public_names_are_importable_from_the_package():
    for name in metrics.__all__:
        assert callable(getattr(metrics, name)) or isinstance(getattr(metrics, name), (float, tuple, dict, frozenset))
    assert metrics.vqa_accuracy.__module__ == "vlir.metrics.textvqa"
    assert metrics.anls.__module__ == "vlir.metrics.docvqa"
    assert metrics.gqa_accuracy.__module__ == "vlir.metrics.gqa"


@pytest.mark.parametrize("module", [textvqa, docvqa, gqa, match])
def test_docstring_examples_hold(module):
    assert doctest.testmod(module).failed == 0


@pytest.mark.parametrize("name, script", [
    ("vqa_accuracy", "m4c_evaluators.py"), ("normalize_answer", "m4c_evaluators.py"),
    ("anls", "infographicsvqa_eval.py"), ("gqa_accuracy", "convert_gqa_for_eval.py"),
])
def test_each_official_function_names_its_script(name, script):
    assert script in getattr(metrics, name).__doc__


def test_lenient_score_per_source():
    assert score("textvqa", "clos culombu", DAKOTA) == metrics.vqa_accuracy_lenient("clos culombu", DAKOTA)
    assert score("textvqa", "The cat", ["cat"]) == 1.0            # one reference: exact match
    assert score("docvqa", "abcd", ["abce"]) == 0.75
    assert score("infographicsvqa", "ab", ["ac"]) == 0.0          # NL 0.5 scores 0
    assert score("infographicsvqa", "ab   ", ["ac"]) == 0.0       # padding does not count
    assert score("gqa", "The cat.", ["cat"]) == 1.0
    assert score("vsr", "False", ["false"]) == 1.0
    assert score("m3cot", "The answer is B", ["B"]) == 1.0
    assert score("chartqa", "10.2", ["10"]) == 1.0
    with pytest.raises(ValueError, match="no metric"):
        score("nosuchsource", "a", ["a"])


def test_official_score_per_source():
    assert score("textvqa", "clos culombu", DAKOTA, official=True) == metrics.vqa_accuracy("clos culombu", DAKOTA)
    with pytest.raises(ValueError, match="exactly 10 human answers"):
        score("textvqa", "The cat", ["cat"], official=True)
    assert score("infographicsvqa", "ab", ["ac"], official=True) == 0.5
    assert score("docvqa", "ab   ", ["ac"], official=True) == 0.8
    assert score("gqa", "Yes.", ["yes"], official=True) == 1.0
    assert score("gqa", "The cat.", ["cat"], official=True) == 0.0
    assert score("gqa", "x", [], official=True) == 0.0
    assert score("vsr", "False", ["false"], official=True) == 1.0   # no official script: same rule
    assert set(metrics.OFFICIAL_SCRIPTS) == {"textvqa", "docvqa", "infographicsvqa", "gqa"}


def test_is_correct_uses_the_lenient_score_and_thresholds():
    assert is_correct("textvqa", "clos culombu", DAKOTA)
    assert not is_correct("textvqa", "clos culombu", DAKOTA, vqa_min=0.5)
    assert is_correct("infographicsvqa", "abcd", ["abce"])
    assert not is_correct("docvqa", "abcd", ["abce"], anls_min=0.8)
    assert not is_correct("docvqa", "ab", ["ac"])
    assert is_correct("gqa", "Yes", ["yes"]) and not is_correct("gqa", "no", ["yes"])
    assert is_correct("vsr", "False", ["false"]) and not is_correct("vsr", "true", ["false"])
    assert is_correct("m3cot", "The answer is B", ["B"]) and not is_correct("m3cot", "(C)", ["B"])
    assert is_correct("chartqa", "10.2", ["10"])
