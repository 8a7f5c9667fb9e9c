"""The per-source table (vlir/source_table.py) is the one home of each source's metric, answer
threshold and build default; it must agree with what vlir.metrics computes."""

from __future__ import annotations

import dataclasses
import doctest

import pytest

from vlir import metrics, source_table
from vlir.corpus.build import ALL_SOURCES
from vlir.checks import CheckConfig


def test_doctest():
    assert doctest.testmod(source_table).failed == 0


def _fn(name):
    # "mc_letter" names the option-letter match (metrics.mc_letter extracts the letter)
    return metrics.mc_match if name == "mc_letter" else getattr(metrics, name)


@pytest.mark.parametrize("source", sorted(source_table.TABLE))
def test_each_row_names_a_metric_and_a_checks_threshold(source):
    row = source_table.rule(source)
    assert row.threshold is None or row.threshold in {f.name for f in dataclasses.fields(CheckConfig)}
    # the metrics' own dispatch scores with the functions the table names (a near miss tells
    # ANLS, VQA accuracy and exact match apart); the official TextVQA rule needs 10 answers
    pred, golds = {"vsr": ("true", ["True"]), "m3cot": ("(B)", ["B"]), "chartqa": ("12.3", ["12"]),
                   "textvqa": ("stop sgn", ["stop sign"] * 7 + ["stop sgn"] * 3)}.get(
        source, ("stop sgn", ["stop sign", "stop sgn"]))
    for name, official in ((row.lenient, False), (row.metric, True)):
        metric = _fn(name)
        expected = metric(pred, golds) if row.threshold else float(any(metric(pred, g) for g in golds))
        assert metrics.score(source, pred, golds, official=official) == expected, (source, name)


def test_build_and_grounded_read_the_table():
    from vlir.annotate.grounded import OBJECT_SOURCES, TEXT_SOURCES

    assert ALL_SOURCES == source_table.build_all_sources() == ("textvqa", "docvqa", "gqa", "infographicsvqa", "vsr",
                                                               "zoom")
    assert set(TEXT_SOURCES) == {"textvqa", "docvqa", "infographicsvqa"} and OBJECT_SOURCES == ("zoom",)
    assert source_table.metric_name("synth") == "exact_match" and source_table.answer_threshold("gqa") is None


# zoom's adapter arrives with the zoom source (issue 22.5): pending zoom merge
PENDING_ADAPTERS = {"zoom"}


def test_rows_with_an_adapter_are_the_registered_sources():
    """Every adapter has a row, and a row claims an adapter only when one is registered; a row
    without one (chartqa) is declared scored-only, so a missing adapter is never silent."""
    from vlir.sources.registry import source_names

    adapters = {name for name, row in source_table.TABLE.items() if row.adapter}
    assert set(source_names()) <= adapters
    assert adapters - PENDING_ADAPTERS <= set(source_names())
    assert source_table.scored_only() == ("chartqa",)


def test_answer_thresholds_have_one_home():
    """The checks' defaults and is_correct's are the table's numbers; metrics keeps no copy of them
    nor of the source list."""
    defaults = CheckConfig()
    assert {name: getattr(defaults, name) for name in source_table.ANSWER_THRESHOLDS} == source_table.ANSWER_THRESHOLDS
    assert not hasattr(metrics, "VQA_MIN") and not hasattr(metrics, "ANLS_MIN") and not hasattr(metrics, "SOURCES")
    two_of_ten = ["stop sign"] * 8 + ["stop sgn"] * 2  # lenient VQA accuracy min(1, 2/3) = 0.67
    assert metrics.is_correct("textvqa", "stop sgn", two_of_ten)  # >= 0.3 by default
    assert not metrics.is_correct("textvqa", "stop sgn", two_of_ten, vqa_min=0.7)
    assert metrics.is_correct("docvqa", "abcd", ["abce"]) and not metrics.is_correct("docvqa", "ab", ["ac"])


def test_eval_scores_other_answer_counts_by_the_metrics_rule():
    """evaluate.score_answer has no TextVQA rule of its own: metrics.score(strict=False) falls back
    to the lenient rule where the official metric needs ten answers."""
    from vlir.eval.evaluate import score_answer

    three = ["stop sign", "stop sgn", "stop sgn"]
    with pytest.raises(ValueError, match="exactly 10 human answers"):
        metrics.score("textvqa", "stop sgn", three, official=True)
    lenient = metrics.score("textvqa", "stop sgn", three)
    assert metrics.score("textvqa", "stop sgn", three, official=True, strict=False) == lenient
    assert score_answer("textvqa", "stop sgn", three) == lenient
    ten = ["stop sign"] * 7 + ["stop sgn"] * 3
    assert score_answer("textvqa", "stop sgn", ten) == metrics.vqa_accuracy("stop sgn", ten)
