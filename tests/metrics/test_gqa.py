"""GQA accuracy against cases worked out by reading the pipeline behind published numbers:
haotian-liu/LLaVA ``model_vqa_loader.py`` (answer ``.strip()``), ``scripts/convert_gqa_for_eval.py``
(``.rstrip('.').lower()``) and the official GQA ``eval.py`` (``predicted == gold``)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REAL
from vlir.metrics.gqa import exact_match, gqa_accuracy, gqa_prediction

REAL_GQA = REAL / "gqa" / "questions" / "val_balanced_questions.json"


@pytest.mark.parametrize("pred, answer, expected", [
    ("yes", "yes", 1.0),
    ("Yes", "yes", 1.0),                    # lower()
    ("YES.", "yes", 1.0),                   # trailing period
    ("yes...", "yes", 1.0),                 # rstrip('.') takes every trailing period
    (" yes \n", "yes", 1.0),                # the answers file holds the stripped text
    ("yes. ", "yes", 1.0),                  # strip first, then the period
    ("yes .", "yes", 0.0),                  # -> "yes ": nothing strips the space afterwards
    ("5.", "5", 1.0),
    ("3.5", "3.5", 1.0),
    ("The cat", "cat", 0.0),                # articles count
    ("a cat", "cat", 0.0),
    ("cat!", "cat", 0.0),                   # other punctuation counts
    ("no, it is not", "no", 0.0),
    ("t-shirt", "t shirt", 0.0),
    ("black  and white", "black and white", 0.0),  # inner spaces count
    ("two", "2", 0.0),                      # number words are not digits
    ("2", "two", 0.0),
    ("yes", "Yes", 0.0),                    # the gold answer is taken as it is
    ("STRASSE", "straße", 0.0),             # lower(), not casefold()
    ("Straße", "straße", 1.0),
    ("İ", "i", 0.0),                        # lower("İ") is "i" + combining dot
    ("", "yes", 0.0),                       # empty prediction
    ("...", "", 1.0),
])
def test_gqa_accuracy_matches_the_official_pipeline(pred, answer, expected):
    assert gqa_accuracy(pred, answer) == expected


@pytest.mark.parametrize("text, prediction", [
    ("Yes.", "yes"), (" Yes. ", "yes"), ("yes .", "yes "), ("U.S.", "u.s"), ("İ", "i\u0307"),
])
def test_gqa_prediction_is_what_eval_py_receives(text, prediction):
    assert gqa_prediction(text) == prediction


def test_gqa_accuracy_takes_one_gold_string():
    with pytest.raises(TypeError, match="one gold answer string"):
        gqa_accuracy("yes", ["yes"])


@pytest.mark.parametrize("pred, answer, expected", [
    ("Yes.", "yes", True), ("a cat", "cat", True), ("The cat", "cat", True), ("two", "2", True),
    ("dog", "cat", False),
])
def test_exact_match_is_the_lenient_gqa_match(pred, answer, expected):
    assert exact_match(pred, answer) is expected


@pytest.mark.skipif(not REAL_GQA.is_file(), reason="../shared absent")
def test_real_gqa_answers():
    golds = [q["answer"] for q in json.loads(REAL_GQA.read_text()).values()]
    assert golds
    for gold in golds:
        assert gqa_accuracy(f" {gold.capitalize()}.", gold) == 1.0
        assert gqa_accuracy(f"the {gold}", gold) == 0.0
        assert exact_match(f"the {gold}", gold)
