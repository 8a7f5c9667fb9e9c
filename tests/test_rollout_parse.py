"""Stop rules of the rollout loop, on strings: crop-call detection, malformed calls, answers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlir.rollout_parse import MAX_CALL_CHARS, StopScanner, extract_answer, parse_call


def feed_all(pieces):
    scanner = StopScanner()
    for i, piece in enumerate(pieces):
        event = scanner.feed(piece)
        if event is not None:
            return i, event
    return None, None


@pytest.mark.parametrize("text, expect", [
    ('{"bbox_2d": [1, 2, 30, 40]}', (1, 2, 30, 40)),
    ('{ "bbox_2d" :[1,2,30,40] }', (1, 2, 30, 40)),
    ('{"bbox_2d": [ 1.5 , 2 , 30.25, 40 ]\n}', (1.5, 2, 30.25, 40)),
    ('{"bbox_2d": [-3, 0, 10, 10]}', (-3, 0, 10, 10)),
])
def test_parse_call_tolerates_spacing(text, expect):
    assert parse_call(text) == tuple(float(v) for v in expect)


@pytest.mark.parametrize("text", [
    '{"bbox_2d": [1, 2, 3]}', '{"bbox_2d": [1, 2, 3, 4, 5]}', '{"bbox_2d": [a, 2, 3, 4]}',
    '{"bbox_2d": 5}', '{"bbox_2d": [1, 2, 3, 4], "label": "x"}', '{"box": [1, 2, 3, 4]}',
    '{"bbox_2d": [1,, 2, 3, 4]}',
])
def test_parse_call_rejects_malformed(text):
    with pytest.raises(ValueError):
        parse_call(text)


def test_scanner_fires_on_the_token_that_closes_the_call():
    pieces = ["<think> look", " here", ' {"', "bbox", '_2d": [', "12", ", 3", "4, 5", "6, 78", "]}", " more"]
    i, event = feed_all(pieces)
    assert i == 9 and event.kind == "bbox" and event.bbox == (12.0, 34.0, 56.0, 78.0) and event.tail == ""


def test_scanner_reports_text_after_the_brace_as_tail():
    i, event = feed_all(['{"bbox_2d": [1, 2, 3, 4]', "}\n"])
    assert event.kind == "bbox" and event.tail == "\n"


@pytest.mark.parametrize("pieces", [
    ['{"bbox_2d": [1, 2, 3]}'],
    ['{"bbox_2d": [1, 2, 3, 4', "}"],  # closed without its "]"
    ['{"bbox_2d": [1, 2, x, 4]}'],
    ['{"bbox_2d": [1, 2, 3, 4' + ", 5" * MAX_CALL_CHARS],  # never closes
])
def test_scanner_reports_malformed_calls(pieces):
    _, event = feed_all(pieces)
    assert event is not None and event.kind == "bad_box"


def test_scanner_ignores_braces_outside_a_call_and_finds_the_answer():
    i, event = feed_all(["a ]} b {x} ", "<answer>4", "2</ans", "wer>"])
    assert i == 3 and event.kind == "answer"


def test_scanner_resets_between_segments():
    scanner = StopScanner()
    assert scanner.feed('{"bbox_2d": [1, 2, 3, 4]}').kind == "bbox"
    scanner.reset()
    assert scanner.text == ""
    assert scanner.feed("then ") is None
    assert scanner.feed('{"bbox_2d": [5, 6, 7, 8]}').bbox == (5.0, 6.0, 7.0, 8.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2000), min_size=4, max_size=4), st.data())
def test_scanner_is_split_invariant(nums, data):
    """However the text is cut into tokens, the call is found at the piece holding its "}"."""
    text = 'I will look. {"bbox_2d": [%d, %d, %d, %d]} then' % tuple(nums)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(text) - 1), max_size=12))))
    pieces = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
    i, event = feed_all(pieces)
    close = text.index("}")
    assert event.kind == "bbox" and event.bbox == tuple(float(n) for n in nums)
    assert sum(len(p) for p in pieces[:i]) <= close < sum(len(p) for p in pieces[:i + 1])


@pytest.mark.parametrize("text, answer", [
    ("<think> x </think> <answer> red </answer>", "red"),
    ("<answer>a</answer> <answer>b</answer>", "b"),
    ("<think> no answer", None),
    ("<answer> open ended", "open ended"),
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer
