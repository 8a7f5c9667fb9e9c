"""Answer-in-OCR matching: the pruned scorer equals the plain definition; spans and boxes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlir.annotate.text_match import find_text, look_box, norm_text, text_similarity
from vlir.metrics import similarity
from vlir.records import Box, Region

TEXT = st.text(alphabet="ab c1", min_size=1, max_size=9).map(str.strip).filter(bool)


@settings(max_examples=400, deadline=None)
@given(TEXT, TEXT, st.sampled_from([0.0, 0.5, 0.8, 0.9]))
def test_pruned_similarity_equals_the_definition_above_the_floor(a, b, floor):
    expected = max(similarity(a, b), similarity(a.replace(" ", ""), b.replace(" ", "")))
    got = text_similarity(a, b, floor)
    if expected >= floor:
        assert got == pytest.approx(expected)
    else:
        assert got < floor


def test_norm_text():
    assert norm_text("  $5.99, TOTAL: ") == "5.99 total"
    assert norm_text("ＦＵＬＬ width") == "full width"  # NFKC


def words(*items):
    return tuple(Region(Box(*box), text, "ocr_word") for text, box in items)


def test_find_text_prefers_exact_over_fuzzy_and_reports_score():
    ev = words(("c0ffee", (10, 10, 60, 25)), ("coffee", (200, 200, 260, 215)))
    match = find_text("Coffee", ev)
    assert match is not None and match.score == 1.0 and match.box.x1 == 200
    fuzzy = find_text("coffee", ev[:1])
    assert fuzzy is not None and fuzzy.score == pytest.approx(5 / 6)
    assert find_text("coffee", ev[:1], min_score=0.9) is None
    assert find_text("", ev) is None


def test_find_text_next_line_continuation():
    ev = words(("annual", (100, 100, 160, 115)), ("research", (100, 120, 180, 135)))
    match = find_text("annual research", ev)
    assert match is not None and match.box == Box(100, 100, 180, 135)


def test_look_box_pads_and_stays_in_image():
    ev = words(("ok", (0, 0, 10, 8)),)
    match = find_text("ok", ev)
    box = look_box(match, 100, 100)
    assert box.x1 == 0 and box.y1 == 0 and box.width >= 28 and box.height >= 28
    whole = words(("big", (0, 0, 100, 100)),)
    assert look_box(find_text("big", whole), 100, 100) == Box(0, 0, 100, 100)  # cannot pad
