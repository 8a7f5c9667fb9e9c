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
