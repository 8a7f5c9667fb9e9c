"""The assistant-text protocol on strings: the released VLM-R³ loop's rules (stop strings, the last
``{...}`` read with json.loads, answer fallbacks), including the cases its logged V* responses teach
(``tests/test_protocol_vlmr3_log.py`` runs them over all 191 responses)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlir.protocol import (STOP_STRINGS, Event, StopScanner, end_round, extract_answer, find_stop, parse_response,
                           read_call, render_call)

# Item 99 of the authors' V* log, verbatim: one call with the key twice; the loop crops the second.
DOUBLE_KEY = ("<think> To determine if the telephone is on the left or right side of the hand lamp, let's focus "
              "on the area around the hand lamp and the telephone.\n\n"
              '{"bbox_2d": [1470, 385, 1538, 486], "bbox_2d": [1798, 321, 1922, 496]}\n'
              "<answer>right</answer>\n")
# The same response as vlir's engine decodes it (stop string kept, crop image and <|im_end|> in).
IMAGE = "<|vision_start|>" + "<|image_pad|>" * 3 + "<|vision_end|>"
DOUBLE_KEY_VLIR = DOUBLE_KEY.replace("]}\n<answer>", "]}\n" + IMAGE + "<answer>").rstrip("\n") + "<|im_end|>"


def feed_all(pieces):
    scanner = StopScanner()
    for i, piece in enumerate(pieces):
        event = scanner.feed(piece)
        if event is not None:
            return i, event
    return None, None


def test_stop_strings_are_the_released_agents():
    assert STOP_STRINGS == ("]}", "]\n}", "] }", "</answer>")


@pytest.mark.parametrize("text", [DOUBLE_KEY, DOUBLE_KEY_VLIR])
def test_a_repeated_key_crops_the_last_box_and_the_answer_is_read(text):
    r = parse_response(text)
    assert r.calls == [(1798.0, 321.0, 1922.0, 496.0)]
    assert r.bad_calls == [] and r.answer == "right" and r.answer_from == "tag"
    assert [e.kind for e in r.rounds] == ["call", "answer"]
    assert json.loads(r.all_calls[0].json) == {"bbox_2d": [1798, 321, 1922, 496]}


@pytest.mark.parametrize("round_text, box", [
    ('{"bbox_2d": [1, 2, 30, 40', (1, 2, 30, 40)),
    ('{ "bbox_2d" :[1,2,30,40', (1, 2, 30, 40)),
    ('{"bbox_2d": [ 1.5 , 2 , 30.25, 40 ', (1.5, 2, 30.25, 40)),
    ('{"bbox_2d": [-3, 0, 10, 10', (-3, 0, 10, 10)),
    ('a {"x": 1} then {"bbox_2d": [1, 2, 3, 4', (1, 2, 3, 4)),  # the last {...} counts
    ('{"label": "sign", "bbox_2d": [1, 2, 3, 4', (1, 2, 3, 4)),  # other keys are fine for json.loads
])
def test_read_call_accepts_what_json_loads_reads(round_text, box):
    call = read_call(round_text)
    assert call.ok and call.box == tuple(float(v) for v in box)


@pytest.mark.parametrize("round_text, why", [
    ('{"bbox_2d": [1, 2, 3', "4 numbers"),
    ('{"bbox_2d": [1, 2, 3, 4, 5', "4 numbers"),
    ('{"bbox_2d": [a, 2, 3, 4', "not JSON"),
    ('{"bbox_2d": [1,, 2, 3, 4', "not JSON"),
    ('{"bbox_2d": ["1", 2, 3, 4', "finite numbers"),
    ('{"bbox_2d": [0, 0, NaN, 4', "finite numbers"),
    ('{"bbox_2d": [40, 40, 40, 90', "empty"),
    ('{"bbox_2d": [50, 40, 10, 90', "empty"),
    ('bbox_2d? {"note": "x", "v": [1', "no 'bbox_2d' key"),
    ('the bbox_2d tool', "no {...}"),
])
def test_read_call_refuses_bad_calls_with_a_reason(round_text, why):
    call = read_call(round_text)
    assert not call.ok and call.box is None and why in call.error


def test_render_call_round_trips_through_read_call():
    assert render_call([12, 34.0, 560, 78]) == '{"bbox_2d": [12, 34, 560, 78]}'
    assert render_call([1.5, 2, 3, 4]) == '{"bbox_2d": [1.5, 2, 3, 4]}'
    text = render_call([12, 34, 560, 78])
    assert read_call(text[:-2]).box == (12.0, 34.0, 560.0, 78.0)
    with pytest.raises(ValueError):
        render_call([1, 2, 3])


@pytest.mark.parametrize("text, answer, source", [
    ("<think> x </think> <answer> red </answer>", "red", "tag"),
    ("<answer>red<|im_end|>", "red", "unclosed"),  # special tokens never reach the answer
    ("<answer> open ended", "open ended", "unclosed"),
    ("<think> x </think><answer>red</answer><|im_end|>", "red", "tag"),
    ("<think> no answer\nthe sign is red  \n", "the sign is red", "last_line"),  # acc_verifier's fallback
    ("<think> first\n  B", "  B", "last_line"),  # the last line as is: acc_verifier strips the whole text only
    ("", None, None),
    ("<|im_end|>", None, None),
])
def test_extract_answer_follows_the_authors_evaluator(text, answer, source):
    assert extract_answer(text) == answer
    assert parse_response(text).answer_from == source


def test_the_first_answer_round_ends_the_episode_but_the_last_tag_is_scored():
    # the loop stops at the first </answer>; acc_verifier, given a text with two, reads the last
    r = parse_response("<answer>a</answer> <answer>b</answer>")
    assert [e.kind for e in r.rounds] == ["answer"] and r.answer == "b"
    # an <answer> round ends at a call stop too: the loop closes the answer, no crop is made
    r = parse_response('<answer>B {"bbox_2d": [1, 2, 3, 4]}')
    assert r.calls == [] and r.answer == 'B {"bbox_2d": [1, 2, 3, 4' and r.answer_from == "unclosed"


def test_text_after_a_stop_that_is_no_call_continues_the_round_sequence():
    r = parse_response('the list [1, 2]} is not a call\n{"bbox_2d": [1, 2, 3, 4]}\n<answer>x</answer>')
    assert [e.kind for e in r.rounds] == ["continue", "call", "answer"] and r.calls == [(1.0, 2.0, 3.0, 4.0)]


def test_bad_calls_are_reported_and_the_answer_still_read():
    r = parse_response('{"bbox_2d": [9, 9, 1, 1]}\n{"bbox_2d": [1, 2, 3, 4]}\n<answer>x</answer>')
    assert r.calls == [(1.0, 2.0, 3.0, 4.0)] and len(r.bad_calls) == 1 and "empty" in r.bad_calls[0].error
    assert r.answer == "x"


def test_max_rounds_cuts_the_episode():
    text = '{"bbox_2d": [0, 0, 2, 2]}\n' * 10 + "<answer>x</answer>"
    assert len(parse_response(text).calls) == 10
    r = parse_response(text, max_rounds=8)
    assert len(r.calls) == 8 and r.answer_from == "last_line"


def test_end_round_at_the_token_limit_reads_a_call_like_the_loop():
    # the loop appends "]}\n" to any round that mentions bbox_2d, stopped or not
    assert end_round('{"bbox_2d": [1, 2, 3, 4', None).call.box == (1.0, 2.0, 3.0, 4.0)
    assert end_round("thinking", None).kind == "continue"
    assert end_round("thinking", None, eos=True).kind == "end"
    assert end_round("<answer>4", None).kind == "answer"


def test_find_stop_returns_the_first_to_complete():
    assert find_stop("a ] }x]}") == (2, "] }")
    assert find_stop("<answer>a</answer>]}") == (9, "</answer>")
    assert find_stop("nothing") == (-1, None)


def test_scanner_fires_on_the_token_that_completes_the_stop():
    pieces = ["<think> look", " here", ' {"', "bbox", '_2d": [', "12", ", 3", "4, 5", "6, 78", "]", "}", " more"]
    i, event = feed_all(pieces)
    assert i == 10 and event == Event("bbox", bbox=(12.0, 34.0, 56.0, 78.0))


def test_scanner_reads_a_repeated_key_as_the_loop_does():
    _, event = feed_all(['{"bbox_2d": [1, 2, 3, 4], "bbox_2d": [5, 6, 7, 8]', "}\n"])
    assert event.kind == "bbox" and event.bbox == (5.0, 6.0, 7.0, 8.0) and event.tail == "\n"


@pytest.mark.parametrize("pieces", [
    ['{"bbox_2d": [1, 2, 3]}'],
    ['{"bbox_2d": [1, 2, x, 4]}'],
    ['{"bbox_2d": [5, 5, 1, 1]', "\n}"],
])
def test_scanner_reports_bad_calls(pieces):
    _, event = feed_all(pieces)
    assert event is not None and event.kind == "bad_box" and event.detail


def test_scanner_goes_on_after_a_stop_that_is_no_call_and_finds_the_answer():
    scanner = StopScanner()
    assert scanner.feed("a ]} b {x} ").kind == "round"
    assert scanner.text == " b {x} "
    assert scanner.feed("<answer>4") is None and scanner.feed("2</ans") is None
    assert scanner.feed("wer>").kind == "answer"


def test_scanner_strips_special_tokens_and_resets():
    scanner = StopScanner()
    assert scanner.feed('{"bbox_2d": [1, 2, 3, 4]}').kind == "bbox"
    scanner.reset()
    assert scanner.text == "" and scanner.feed("<|im_end|>") is None and scanner.text == ""
    assert scanner.feed('{"bbox_2d": [5, 6, 7, 8]}').bbox == (5.0, 6.0, 7.0, 8.0)


def test_scanner_end_round_at_the_token_limit():
    scanner = StopScanner()
    scanner.feed('so {"bbox_2d": [1, 2, 3, 4')
    assert scanner.end_round().kind == "bbox"
    scanner.reset()
    scanner.feed("rambling")
    assert scanner.end_round().kind == "round" and scanner.text == ""


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 999), min_size=2, max_size=2), st.lists(st.integers(1000, 2000), min_size=2, max_size=2),
       st.sampled_from(["]}", "]\n}", "] }"]), st.data())
def test_scanner_is_split_invariant_and_agrees_with_parse_response(lo, hi, stop, data):
    """However the text is cut into tokens, the call fires at the piece completing the stop string,
    with the box parse_response finds in the whole text."""
    text = 'I will look. {"bbox_2d": [%d, %d, %d, %d%s then' % (lo[0], lo[1], hi[0], hi[1], stop)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(text) - 1), max_size=12))))
    pieces = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
    i, event = feed_all(pieces)
    end = text.index(stop) + len(stop)
    assert event.kind == "bbox" and [event.bbox] == parse_response(text).calls
    assert sum(len(p) for p in pieces[:i]) < end <= sum(len(p) for p in pieces[:i + 1])
