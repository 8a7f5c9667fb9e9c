"""OCR layouts -> regions: each vendor's coordinate convention, and the boxes real files contain
(inverted, rotated, degenerate, outside the image, unreadable)."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlir.records import Box
from vlir.sources.ocr import (OCRFormatError, read_v2_page, read_v2_regions, read_v2_size,
                              rosetta_compact, rosetta_regions, textract_blocks, textract_regions)


def rosetta(word, x, y, w, h):
    return {"word": word, "bounding_box": {"top_left_x": x, "top_left_y": y, "width": w,
                                           "height": h, "rotation": 0.0, "yaw": 0.0, "roll": 0.0,
                                           "pitch": 0.0}}


def test_rosetta_normalised_boxes_become_pixels():
    words, coords = rosetta_compact([rosetta("NOKIA", 0.25, 0.5, 0.125, 0.1)])
    (region,) = rosetta_regions(words, coords, 800, 600)
    assert region.kind == "ocr_word" and region.label == "NOKIA"
    assert region.box == Box(200, 300, 300, 360)


def test_rosetta_bad_boxes_are_dropped_and_counted():
    stats = Counter()
    info = [
        rosetta("ok", 0.1, 0.1, 0.2, 0.2),
        rosetta("flat", 0.1, 0.1, 0.0, 0.2),            # zero width
        rosetta("outside", 1.2, 0.1, 0.1, 0.1),         # right of the image
        {"word": "nobox"},                              # no bounding_box
        rosetta("text", "0.1", 0.1, 0.1, 0.1),          # a string, not a number
        "not an object",
        rosetta("edge", 0.9, 0.9, 0.3, 0.3),            # clipped, kept
    ]
    words, coords = rosetta_compact(info)
    regions = rosetta_regions(words, coords, 100, 100, stats)
    assert [r.label for r in regions] == ["ok", "edge"]
    assert regions[1].box == Box(90, 90, 100, 100)
    assert stats["degenerate_box"] == 5


def test_rosetta_compact_of_missing_info_is_empty():
    words, coords = rosetta_compact(None)
    assert words == () and len(coords) == 0


def read_v2(lines, width=1000, height=800, unit="pixel"):
    return {"status": "Succeeded", "recognitionResults": [
        {"page": 1, "clockwiseOrientation": 0.0, "width": width, "height": height, "unit": unit,
         "lines": lines}]}


def test_read_v2_lines_then_words_and_inverted_polygons():
    doc = read_v2([
        {"boundingBox": [10, 20, 110, 20, 110, 40, 10, 40], "text": "Total 12",
         "words": [{"boundingBox": [10, 20, 60, 20, 60, 40, 10, 40], "text": "Total"},
                   {"boundingBox": [70, 20, 110, 20, 110, 40, 70, 40], "text": "12"}]},
        # upside-down text: Read lists the corners from the text's own top-left
        {"boundingBox": [300, 90, 200, 90, 200, 60, 300, 60], "text": "COPY",
         "words": [{"boundingBox": [300, 90, 200, 90, 200, 60, 300, 60], "text": "COPY"}]},
        # rotated text: a non-axis-aligned quadrilateral -> its hull
        {"boundingBox": [400, 100, 500, 80, 505, 105, 405, 125], "text": "slant", "words": []},
    ])
    page = read_v2_page(doc)
    assert read_v2_size(page) == (1000, 800)
    regions = read_v2_regions(page, 1000, 800)
    assert [(r.kind, r.label) for r in regions] == [
        ("ocr_line", "Total 12"), ("ocr_line", "COPY"), ("ocr_line", "slant"),
        ("ocr_word", "Total"), ("ocr_word", "12"), ("ocr_word", "COPY")]
    assert regions[1].box == Box(200, 60, 300, 90)
    assert regions[2].box == Box(400, 80, 505, 125)


def test_read_v2_bad_boxes_and_scale():
    stats = Counter()
    page = read_v2_page(read_v2([
        {"boundingBox": [1, 1, 2, 1, 2, 1, 1, 1], "text": "flat", "words": [None]},
        {"boundingBox": "1,2,3,4", "text": "string box"},
        {"boundingBox": [1, 1, 2], "text": "odd"},
        {"boundingBox": [0, 0, 1, 0, 1, 0.5, 0, 0.5], "text": "inches"},
    ], width=8.5, height=11, unit="inch"))
    regions = read_v2_regions(page, 850, 1100, stats, scale=(100, 100))
    assert [r.label for r in regions] == ["inches"]
    assert regions[0].box == Box(0, 0, 100, 50)
    assert stats["degenerate_box"] == 4


@pytest.mark.parametrize("doc", [[], {"status": "Failed"}, {"recognitionResults": {}},
                                 {"recognitionResults": ["x"]}])
def test_read_v2_wrong_layout(doc):
    with pytest.raises(OCRFormatError):
        read_v2_page(doc)


def test_read_v2_empty_results_and_missing_size():
    assert read_v2_regions(read_v2_page({"recognitionResults": []}), 10, 10) == ()
    assert read_v2_size({"lines": []}) is None
    assert read_v2_size({"width": 0, "height": 5}) is None


def textract_block(kind, text, left, top, w, h):
    return {"BlockType": kind, "Confidence": 99.0, "Text": text,
            "Geometry": {"BoundingBox": {"Width": w, "Height": h, "Left": left, "Top": top}},
            "Id": f"{kind}-{text}"}


def test_textract_fractions_become_pixels():
    doc = {"PAGE": [{"BlockType": "PAGE"}],
           "LINE": [textract_block("LINE", "Are we alone?", 0.25, 0.1, 0.5, 0.05)],
           "WORD": [textract_block("WORD", "Are", 0.25, 0.1, 0.1, 0.05),
                    textract_block("WORD", "gone", 0.5, 0.5, 0.0, 0.05),
                    {"BlockType": "WORD", "Text": "nogeometry"}]}
    stats = Counter()
    regions = textract_regions(doc, 400, 2000, stats)
    assert [(r.kind, r.label) for r in regions] == [("ocr_line", "Are we alone?"), ("ocr_word", "Are")]
    assert regions[0].box == Box(100, 200, 300, 300)
    assert stats["degenerate_box"] == 2


def test_textract_api_response_layout_is_accepted():
    doc = {"Blocks": [textract_block("LINE", "a b", 0, 0, 0.5, 0.5),
                      textract_block("WORD", "a", 0, 0, 0.2, 0.5)]}
    assert set(textract_blocks(doc)) == {"LINE", "WORD"}
    assert len(textract_regions(doc, 10, 10)) == 2


@pytest.mark.parametrize("doc", [[], {"pages": []}, {"LINE": "x"}])
def test_textract_wrong_layout(doc):
    with pytest.raises(OCRFormatError):
        textract_regions(doc, 10, 10)


coord = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.integers(-10**6, 10**6))


@settings(max_examples=200, deadline=None)
@given(points=st.lists(coord, min_size=0, max_size=10), width=st.integers(1, 3000),
       height=st.integers(1, 3000))
def test_any_polygon_gives_a_region_inside_the_image_or_a_count(points, width, height):
    stats = Counter()
    page = {"lines": [{"boundingBox": points, "text": "t", "words": []}]}
    regions = read_v2_regions(page, width, height, stats)
    assert len(regions) + stats["degenerate_box"] == 1
    for r in regions:
        b = r.box
        assert 0 <= b.x1 < b.x2 <= width and 0 <= b.y1 < b.y2 <= height
        assert all(math.isfinite(v) for v in b.as_list())
