"""VSR truth values, multiple-choice letters and ChartQA relaxed accuracy."""

from __future__ import annotations

import pytest

from vlir.metrics.match import mc_letter, mc_match, relaxed_accuracy, vsr_match


@pytest.mark.parametrize("pred, answer, expected", [
    ("True", "true", True),
    ("false.", 0, True),
    ("The statement is true.", "True", True),
    ("yes", "1", True),
    ("no", "true", False),
    ("true or false", "true", False),  # says both: no truth value
    ("maybe", "false", False),
])
def test_vsr_match(pred, answer, expected):
    assert vsr_match(pred, answer) is expected


@pytest.mark.parametrize("text, letter", [
    ("(B)", "B"), ("B.", "B"), ("b", "B"), ("B", "B"), ("C)", "C"),
    ("The answer is C", "C"), ("Answer: (d)", "D"), ("B) a sculpture", "B"),
    ("B. To honor a local legend", "B"), ("I think option C is right", "C"),
    ("so it is (A) here", "A"),
    ("A man is riding a horse", None), ("", None), ("no idea", None),
])
def test_mc_letter(text, letter):
    assert mc_letter(text) == letter


def test_mc_match_falls_back_to_the_normalised_text():
    assert mc_match("The answer is B", "(B)")
    assert not mc_match("(C)", "B")
    assert mc_match("A sculpture.", "sculpture")  # no letter named: EvalAI-normalised text
    assert not mc_match("a red sculpture", "blue sculpture")


@pytest.mark.parametrize("pred, target, expected", [
    ("10.4", "10", True),    # 4 % off
    ("10.6", "10", False),   # 6 % off
    ("12%", "0.12", True),
    ("1,000", "1000", True),
    ("Yes", "yes", True),
    ("0", "0", True),        # zero target: exact match
    ("0.01", "0", False),
])
def test_relaxed_accuracy(pred, target, expected):
    assert relaxed_accuracy(pred, target) is expected
