"""ANLS against cases worked out by reading the RRC InfographicVQA/DocVQA evaluation script
(``infographicsvqa_eval.py``, ``evaluate_method``): the distance is taken between the cleaned
strings (strip, lower, whitespace runs collapsed) but divided by the longer *raw* string's
``upper()`` length, and a score of exactly 0.5 passes the ``score < threshold`` test. Expected
values are written with the script's arithmetic (``1 - dist / length``), so equality is exact."""

from __future__ import annotations

import pytest

from vlir.metrics.docvqa import anls, anls_clean, anls_lenient, levenshtein, similarity


@pytest.mark.parametrize("pred, answers, expected, lenient", [
    # exactly 0.5: kept by the script (score < 0.5 -> 0), zeroed by the lenient rule (NL < 0.5)
    ("ab", ["ac"], 0.5, 0.0),
    ("abcd", ["abef"], 0.5, 0.0),
    ("abc", ["abd"], 1 - 1 / 3, 1 - 1 / 3),
    ("ab", ["cd"], 0.0, 0.0),
    ("abcde", ["axyze"], 0.0, 0.0),                        # NL 3/5
    # case and whitespace cleaning
    ("Coca Cola", ["coca cola"], 1.0, 1.0),
    ("  coca   cola ", ["Coca Cola"], 1.0, 1.0),            # distance 0: the divisor does not matter
    ("coca\u00a0cola", ["coca cola"], 1.0, 1.0),           # NO-BREAK SPACE is whitespace to split()
    ("coca\u200bcola", ["coca cola"], 1 - 1 / 9, 1 - 1 / 9),  # ZERO WIDTH SPACE is not
    # the divisor is the raw length: padding and repeated spaces count
    ("ab   ", ["ac"], 1 - 1 / 5, 0.0),                     # padding lifts 0.5 to 0.8
    ("  abc  ", ["abd"], 1 - 1 / 7, 1 - 1 / 3),
    ("abc", ["  abd  "], 1 - 1 / 7, 1 - 1 / 3),            # on the reference's side too
    ("coca  colb", ["coca cola"], 1 - 1 / 10, 1 - 1 / 9),
    # ... after str.upper(), which expands some letters, while the distance is on lower()
    ("straße", ["strase"], 1 - 1 / 7, 1 - 1 / 6),           # "STRASSE" is 7 long
    ("STRASSE", ["straße"], 1 - 2 / 7, 1 - 2 / 7),          # lower() keeps "ß": 2 edits
    ("İstanbul", ["istanbul"], 1 - 1 / 8, 1 - 1 / 9),       # lower("İ") is 2 code points, upper 1
    ("ß", ["ss"], 0.0, 0.0),
    ("İ", ["x"], 0.0, 0.0),                                 # NL = 2 / 1: negative, so 0
    # empty strings
    ("", ["abc"], 0.0, 0.0),
    ("", [""], 1.0, 1.0),                                   # both empty: distance 0
    ("   ", [""], 1.0, 1.0),                                # cleaned to "": distance 0 over 3
    ("x", [""], 0.0, 0.0),
    # the best reference wins
    ("1990", ["1989", "1990"], 1.0, 1.0),
    ("199O", ["1989", "1990"], 1 - 1 / 4, 1 - 1 / 4),
    ("total: $12.5O", ["Total: $12.50"], 1 - 1 / 13, 1 - 1 / 13),
])
def test_anls_matches_the_rrc_script(pred, answers, expected, lenient):
    assert anls(pred, answers) == expected
    assert anls_lenient(pred, answers) == lenient


def test_threshold_is_the_scripts_anls_threshold():
    assert anls("abc", ["xyc"], tau=0.3) == 1 - 2 / 3
    assert anls("abc", ["xyc"]) == 0.0
    assert anls_lenient("ab", ["ac"], tau=0.6) == 0.5


def test_no_reference_is_an_error_for_the_official_score_and_zero_for_the_lenient():
    with pytest.raises(ValueError, match="at least one reference"):
        anls("x", [])
    assert anls_lenient("x", []) == 0.0
    with pytest.raises(TypeError, match="list of strings"):
        anls("x", "x")


def test_helpers():
    assert anls_clean("  Coca \t COLA\n") == "coca cola"
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert levenshtein("same", "same") == 0
    assert similarity("", "") == 1.0
    assert similarity("abcd", "abce") == 0.75
