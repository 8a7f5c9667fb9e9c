"""TextVQA: the EvalAI answer processor and the evaluator's soft accuracy, against cases worked out
by reading facebookresearch/mmf ``mmf/utils/m4c_evaluators.py`` (``EvalAIAnswerProcessor``,
``TextVQAAccuracyEvaluator``). Expected floats are written with the evaluator's own arithmetic
(``sum`` of the ten leave-one-out accuracies in the answers' order, divided by ten), so equality is
exact, not approximate."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlir.metrics.textvqa import (CONTRACTIONS, majority_answer, normalize_answer, vqa_accuracy,
                                  vqa_accuracy_lenient)

THIRD, TWO_THIRDS = 1 / 3, 2 / 3


@pytest.mark.parametrize("raw, expected", [
    ("Two dogs!", "2 dogs"),                 # number words; '!' becomes a space
    ("The Coca-Cola", "coca cola"),          # article; '-' between letters becomes a space
    ("coca - cola", "coca cola"),            # '-' next to a space is deleted
    ("e-mail", "e mail"),                    # ... so "e-mail" never equals "email"
    ("x / y", "x y"),
    ("hello (world)", "hello world"),        # " (" deletes '(', the lone ')' becomes a space
    ("dont", "don't"),                       # contractions
    ("Isnt it", "isn't it"),
    ("Im", "im"),                            # the table's capitalised keys never match
    ("it's", "it 's"),                       # "'s" split off
    ("a man's hat", "man 's hat"),
    ("1,000", "1000"),                       # commas dropped before punctuation handling
    ("yes.", "yes"),                         # final period stripped
    ("yes .", "yes"),
    ("5.", "5"),                             # the "(?!<=\d)" typo: a period after a digit goes too
    ("3.5", "3.5"),                          # a period before a digit stays
    ("1.5.", "1.5"),
    ("u.s.a.", "usa"),
    ("10 a.m.", "10 am"),
    ("mr. smith", "mr smith"),
    ("12:30", "12:30"),                      # ':' '%' '$' are not in the punctuation list
    ("50%", "50%"),
    ("$5", "$5"),
    ("none", "0"),
    ("no one", "no 1"),
    ("ten", "10"),
    ("eleven", "eleven"),                    # the map stops at ten
    ("the", ""),                             # an answer of articles only is empty
    ("a an the", ""),
    ("Hello\tworld\n", "hello world"),
    ("  yes   no  ", "yes no"),              # padding and inner runs of spaces
    ("\u00a0yes\u00a0", "yes"),              # NO-BREAK SPACE is whitespace to strip()/split()
    ("(B)", "b"),
    ("What?", "what"),
    ("an apple", "apple"),
    ("STRASSE", "strasse"),                  # lower(), not casefold(): ...
    ("Straße", "straße"),                    # ... "ß" is kept, so "strasse" != "straße"
    ("İ", "i\u0307"),                        # lower() of "İ" is "i" + COMBINING DOT ABOVE
    ("", ""),
])
def test_normalize_answer_matches_the_evalai_processor(raw, expected):
    assert normalize_answer(raw) == expected


def test_normalize_answer_keeps_the_processors_period_count_quirk():
    # PERIOD_STRIP.sub("", text, re.UNICODE) passes 32 as the count: only 32 periods go.
    assert normalize_answer("x" + "." * 40) == "x" + "." * 8


def test_contraction_table_is_complete():
    assert len(CONTRACTIONS) == 120
    assert CONTRACTIONS["whats"] == "what's"
    assert CONTRACTIONS["somebody'd"] == "somebodyd"  # the table's own oddity


DAKOTA = ["nous les gosses", "dakota", "clos culombu", "dakota digital", "dakota", "dakota",
          "dakota digital", "dakota digital", "dakota", "dakota"]  # TextVQA val question 34602


@pytest.mark.parametrize("pred, expected", [
    ("Dakota", 1.0),                                             # 5 annotators
    ("dakota digital", sum([1, 1, 1, TWO_THIRDS, 1, 1, TWO_THIRDS, TWO_THIRDS, 1, 1]) / 10),  # 0.9
    ("clos culombu", sum([THIRD, THIRD, 0.0] + [THIRD] * 7) / 10),                           # 0.3
    ("Nous les gosses!", sum([0.0] + [THIRD] * 9) / 10),
    ("nikon", 0.0),
    ("", 0.0),                                                   # empty prediction
])
def test_vqa_accuracy_on_a_real_textvqa_question(pred, expected):
    assert vqa_accuracy(pred, DAKOTA) == expected


@pytest.mark.parametrize("pred, answers, expected", [
    ("Red.", ["red", "red"] + ["blue"] * 8, sum([THIRD, THIRD] + [TWO_THIRDS] * 8) / 10),  # 0.6
    ("two", ["2"] * 3 + ["3"] * 7, sum([TWO_THIRDS] * 3 + [1] * 7) / 10),                 # 0.9
    ("Dont", ["don't"] * 4 + ["no"] * 6, 1.0),
    ("the", ["a"] * 4 + ["no"] * 6, 1.0),      # articles-only answers are all "" and agree
    ("İ", ["i"] * 10, 0.0),                     # "i̇" != "i"
    ("STRASSE", ["straße"] * 10, 0.0),
    ("e-mail", ["email"] * 10, 0.0),
    ("5.", ["5"] * 10, 1.0),
])
def test_vqa_accuracy_edge_cases(pred, answers, expected):
    assert vqa_accuracy(pred, answers) == expected


@pytest.mark.parametrize("n", [0, 1, 9, 11])
def test_vqa_accuracy_needs_the_ten_human_answers(n):
    with pytest.raises(ValueError, match="exactly 10 human answers, got %d" % n):
        vqa_accuracy("x", ["x"] * n)


def test_vqa_accuracy_lenient_takes_any_number_of_answers():
    assert vqa_accuracy_lenient("x", []) == 0.0
    assert vqa_accuracy_lenient("The cat", ["cat"]) == 1.0  # one reference: exact match
    assert vqa_accuracy_lenient("dog", ["cat"]) == 0.0
    assert vqa_accuracy_lenient("cat", ["cat", "cat", "dog"]) == sum([THIRD, THIRD, TWO_THIRDS]) / 3


def _literal_leave_one_out(pred: str, answers: list[str]) -> float:
    p = normalize_answer(pred)
    gts = [normalize_answer(a) for a in answers]
    accs = []
    for i in range(len(gts)):
        others = gts[:i] + gts[i + 1:]
        accs.append(min(1, float(sum(1 for g in others if g == p)) / 3))
    return sum(accs) / len(accs)


ANSWER_POOL = ["cat", "Cat.", "dog", "a dog", "two", "2", "bird", "the"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(ANSWER_POOL), min_size=10, max_size=10),
       st.sampled_from(["cat", "dog", "2", "bird", "fish", ""]))
def test_official_and_lenient_equal_the_literal_leave_one_out_for_ten(answers, pred):
    expected = _literal_leave_one_out(pred, answers)
    assert vqa_accuracy(pred, answers) == expected
    assert vqa_accuracy_lenient(pred, answers) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(ANSWER_POOL), min_size=2, max_size=9), st.sampled_from(["cat", "dog", "2"]))
def test_lenient_is_the_leave_one_out_for_other_counts(answers, pred):
    assert vqa_accuracy_lenient(pred, answers) == _literal_leave_one_out(pred, answers)


def test_majority_answer():
    assert majority_answer(["10 years", "10 year", "10 years", "10"]) == "10 years"
    assert majority_answer(["Red", "blue", "red."]) == "Red"  # counted after normalising
    assert majority_answer(["a", "b"]) == "a"  # tie: first given
    assert majority_answer([]) == ""
