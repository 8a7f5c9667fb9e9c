"""Requests and answer parsing of the teacher (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.annotate.teacher_support import make_item
from vlir.annotate import teacher_prompt as tp
from vlir.records import Box, Region

REPO = Path(__file__).resolve().parents[2]


def test_the_schema_ships_as_package_data_and_at_the_repo_root():
    shipped = json.loads((REPO / "vlir" / "schemas" / "teacher_chain.schema.json").read_text())
    assert json.loads((REPO / "schemas" / "teacher_chain.schema.json").read_text()) == shipped
    assert tp.chain_schema() == shipped
    assert shipped["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_prompt_hash_covers_templates_and_schemas(monkeypatch):
    base = tp.prompt_hash()
    assert len(base) == 16 and int(base, 16) >= 0
    tp.prompt_hash.cache_clear()
    original = tp.template

    def edited(name):
        t = original(name)
        return type(t)(t.template + " ") if name == "judge_user" else t

    monkeypatch.setattr(tp, "template", edited)
    assert tp.prompt_hash() != base
    tp.prompt_hash.cache_clear()
    monkeypatch.setattr(tp, "template", original)
    monkeypatch.setattr(tp, "JUDGE_SCHEMA", {**tp.JUDGE_SCHEMA, "required": ["shows"]})
    assert tp.prompt_hash() != base
    tp.prompt_hash.cache_clear()


def test_wire_schema_keeps_structure_and_drops_unsupported_keywords():
    wire = tp.wire_schema(tp.chain_schema())
    text = json.dumps(wire)
    assert "$schema" not in text and "$id" not in text and "minLength" not in text
    look = wire["properties"]["steps"]["items"]["anyOf"][1]["properties"]["look"]
    assert look["required"] == ["bbox_2d", "label"] and look["additionalProperties"] is False
    assert look["properties"]["bbox_2d"]["minItems"] == 4


@pytest.mark.parametrize("text", [
    '{"a": 1}',
    '```json\n{"a": 1}\n```',
    'Here you go: {"a": 1} -- done {"b": 2}',
    '<think>I will use {curly} words</think>\n{"a": 1}',
])
def test_extract_json_is_defensive(text):
    assert tp.extract_json(text) == {"a": 1}


@pytest.mark.parametrize("text", ["", "   ", "no json here", "[1, 2, 3]", '{"a": '])
def test_extract_json_rejects_non_objects(text):
    with pytest.raises(tp.ParseError) as info:
        tp.extract_json(text)
    assert info.value.reason == "teacher_invalid_json"


def test_parse_chain_maps_boxes_with_the_sent_size():
    item = make_item(0, width=1000, height=500)
    budget = tp.teacher_budget(200_000)
    sent = tp.SentImage.plan(1000, 500, budget)
    w, h = sent.width, sent.height
    assert (w % 28, h % 28) == (0, 0) and w * h <= 200_000 and sent.content_width == w
    text = json.dumps({"steps": [{"look": {"bbox_2d": [0, 0, w, h], "label": " all "}}], "answer": " x "})
    chain = tp.parse_chain(text, item.sample, budget)
    assert chain.looks[0].box == Box(0, 0, 1000, 500)  # scaled by the sent size
    assert chain.looks[0].label == "all" and chain.answer == "x"
    swapped = json.dumps({"steps": [{"look": {"bbox_2d": [w, h, 0, 0], "label": "all"}}], "answer": "x"})
    with pytest.raises(tp.ParseError, match="steps/0/look/bbox_2d: box must have x1 < x2"):
        tp.parse_chain(swapped, item.sample, budget)  # refused, not reordered


@pytest.mark.parametrize("size,budget,expect", [
    ((640, 480), 1_003_520, (644, 504, 640, 480)),   # fits: padded, never resampled
    ((1700, 2200), 1_003_520, None),                  # too big: smart_resize'd, no padding
    ((20, 20), 1_003_520, None),                      # below Qwen's min pixels: upscaled
])
def test_sent_image_pads_what_fits_and_resizes_the_rest(size, budget, expect):
    from vlir.geometry import smart_resize

    b = tp.teacher_budget(budget)
    sent = tp.SentImage.plan(*size, b)
    assert sent.width % 28 == 0 and sent.height % 28 == 0
    assert b.min_pixels <= sent.width * sent.height <= b.max_pixels
    assert smart_resize(sent.height, sent.width, b) == (sent.height, sent.width)  # a fixed point
    if expect:
        assert (sent.width, sent.height, sent.content_width, sent.content_height) == expect
    else:
        assert (sent.content_width, sent.content_height) == (sent.width, sent.height)
    from PIL import Image

    img = Image.new("RGB", size, (255, 0, 0))
    import base64
    import io

    decoded = Image.open(io.BytesIO(base64.b64decode(sent.data_url(img).split(",", 1)[1]))).convert("RGB")
    assert decoded.size == (sent.width, sent.height)
    if expect:
        r, g, _ = decoded.getpixel((10, 10))
        assert r > 200 and g < 60  # the picture at the top-left ...
        assert decoded.getpixel((642, 500))[0] < 160  # ... and padding beyond it
    box = Box(10, 10, 20, 20)
    assert sent.to_original(sent.to_sent(box)).as_list() == pytest.approx(box.as_list(), abs=2)


def test_parse_chain_reports_where_the_schema_fails():
    item = make_item(0)
    budget = tp.teacher_budget(100_000)
    with pytest.raises(tp.ParseError) as info:
        tp.parse_chain('{"steps": [{"think": ""}], "answer": "a"}', item.sample, budget)
    assert info.value.reason == "teacher_schema" and "steps/0" in str(info.value)
    with pytest.raises(tp.ParseError):
        tp.parse_chain('{"steps": [], "answer": "a", "extra": 1}', item.sample, budget)


def test_gold_answer_is_the_majority():
    item = make_item(0, answers=("a", "b", "b", " a ", "c", "a"))
    assert tp.gold_answer(item.sample) == "a"
    assert tp.gold_answer(make_item(0, answers=("x", "y")).sample) == "x"


def test_hints_rank_relevant_regions_first_and_are_capped():
    noise = tuple(Region(Box(10 * i, 10, 10 * i + 8, 20), f"word{i}", "ocr_word") for i in range(50))
    target = Region(Box(300, 300, 400, 340), "STOP", "ocr_word")
    item = make_item(0, evidence=noise + (target,), question="What does the sign say?", answers=("stop",))
    sent = tp.SentImage.plan(640, 480, tp.teacher_budget(10_000_000))
    lines = tp.hint_lines(item.sample, sent, max_hints=5)
    assert len(lines) == 5 and lines[0].endswith(" STOP") and lines[1].endswith(" word0")
    assert tp.hint_lines(item.sample, sent, max_hints=0) == []


def test_the_request_hash_ignores_image_bytes_but_not_the_image():
    item = make_item(0)
    budget = tp.teacher_budget(100_000)
    a = tp.chain_request(item.sample, item.image, item.image_sha256, budget, True, 8)
    b = tp.chain_request(item.sample, item.image, "0" * 64, budget, True, 8)
    params = {"temperature": 0.0, "max_tokens": 10}
    assert a.request_hash(params) != b.request_hash(params)
    assert a.request_hash(params) != a.request_hash({**params, "temperature": 0.5})
    assert tp.IMAGE_PLACEHOLDER not in json.dumps(a.wire_messages())


def test_parse_judge_accepts_json_or_a_plain_word():
    assert tp.parse_judge('{"shows": false, "reason": "no"}') is False
    assert tp.parse_judge("Yes, it does.") is True
    with pytest.raises(tp.ParseError):
        tp.parse_judge("maybe")


def test_swapped_corners_are_refused_like_other_bad_boxes():
    """Issue 13 weak spot: [x2, y2, x1, y1] was silently swapped back while other bad boxes were
    refused; now every box that is not x1 < x2, y1 < y2 is refused (no normalising)."""
    from vlir.geometry import MODEL_PIXELS

    sent = tp.SentImage.plan(640, 480, MODEL_PIXELS)
    assert sent.to_original([10, 20, 30, 40]).as_list() == pytest.approx([10, 20, 30, 40], abs=1)
    for bad in ([30, 20, 10, 40], [10, 40, 30, 20], [10, 20, 10, 40]):
        with pytest.raises(ValueError, match="x1 < x2 and y1 < y2"):
            sent.to_original(bad)
