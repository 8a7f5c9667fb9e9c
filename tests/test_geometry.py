import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlir import geometry
from vlir.geometry import MODEL_PIXELS, PixelBudget
from vlir.records import Box

sizes = st.integers(min_value=28, max_value=4000)


@st.composite
def image_and_box(draw):
    w, h = draw(sizes), draw(sizes)
    if max(w, h) / min(w, h) > 150:
        w = h
    x1 = draw(st.floats(0, w - 2))
    y1 = draw(st.floats(0, h - 2))
    x2 = draw(st.floats(x1 + 1, w))
    y2 = draw(st.floats(y1 + 1, h))
    return w, h, Box(x1, y1, x2, y2)


@settings(max_examples=300, deadline=None)
@given(image_and_box())
def test_model_round_trip_within_one_model_pixel(args):
    w, h, box = args
    model_box = geometry.to_model(box, w, h)
    back = geometry.from_model(model_box, w, h) if model_box[0] < model_box[2] and model_box[1] < model_box[3] else None
    mw, mh = geometry.model_size(w, h)
    sx, sy = mw / w, mh / h
    if back is None:  # a sub-pixel box in model space collapses; its size must be < 1 model px
        assert box.width * sx < 1 + 1e-9 or box.height * sy < 1 + 1e-9
        return
    for a, b, s in ((box.x1, back.x1, sx), (box.y1, back.y1, sy), (box.x2, back.x2, sx), (box.y2, back.y2, sy)):
        assert abs(a - b) * s <= 0.5 + 1e-6


@settings(max_examples=200, deadline=None)
@given(image_and_box(), st.floats(-500, 500), st.floats(-500, 500))
def test_clip_is_idempotent(args, dx, dy):
    w, h, box = args
    moved = Box(box.x1 + dx, box.y1 + dy, box.x2 + dx, box.y2 + dy)
    once = geometry.clip(moved, w, h)
    if once is None:
        return
    assert geometry.clip(once, w, h) == once
    assert 0 <= once.x1 < once.x2 <= w and 0 <= once.y1 < once.y2 <= h


@settings(max_examples=200, deadline=None)
@given(image_and_box(), image_and_box())
def test_iou_symmetric_and_bounded(a, b):
    ia, ib = a[2], b[2]
    v = geometry.iou(ia, ib)
    assert 0.0 <= v <= 1.0
    assert math.isclose(v, geometry.iou(ib, ia), rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(geometry.iou(ia, ia), 1.0)


@settings(max_examples=200, deadline=None)
@given(sizes, sizes)
def test_smart_resize_invariants(w, h):
    if max(w, h) / min(w, h) > 200:
        return
    rh, rw = geometry.smart_resize(h, w)
    assert rh % 28 == 0 and rw % 28 == 0
    assert MODEL_PIXELS.min_pixels <= rh * rw <= MODEL_PIXELS.max_pixels


def test_smart_resize_matches_qwen_examples():
    assert geometry.smart_resize(480, 640) == (476, 644)
    budget = PixelBudget(4 * 28 * 28, 16 * 28 * 28)
    h, w = geometry.smart_resize(1000, 1000, budget)
    assert h * w <= 16 * 28 * 28 and h == w
    with pytest.raises(ValueError):
        geometry.smart_resize(10, 3000)


def test_source_conventions():
    assert geometry.from_xywh(10, 20, 30, 40) == Box(10, 20, 40, 60)
    assert geometry.from_normalized_xywh(0.1, 0.2, 0.5, 0.25, 200, 100) == Box(20, 20, 120, 45)
    # Microsoft Read: rotated text (corners not axis aligned) and upside-down text (inverted order)
    assert geometry.from_polygon([10, 5, 50, 15, 45, 35, 5, 25]) == Box(5, 5, 50, 35)
    assert geometry.from_polygon([50, 40, 10, 40, 10, 20, 50, 20]) == Box(10, 20, 50, 40)
    with pytest.raises(ValueError):
        geometry.from_polygon([1, 2, 3])


def test_containment_area_ratio_union():
    a, b = Box(0, 0, 10, 10), Box(5, 5, 20, 20)
    assert geometry.containment(Box(1, 1, 2, 2), a) == 1.0
    assert geometry.intersection(a, b) == 25
    assert geometry.area_ratio(a, 20, 10) == 0.5
    assert geometry.union([a, b]) == Box(0, 0, 20, 20)
    assert geometry.ensure_min_side(Box(5, 5, 6, 6), 28, 100, 100).width == 28


@settings(max_examples=200, deadline=None)
@given(image_and_box())
def test_snapped_box_survives_the_model_round_trip_exactly(args):
    w, h, box = args
    snapped = geometry.snap_to_model(box, w, h)
    if snapped == box:
        return
    coords = geometry.to_model(snapped, w, h)
    assert geometry.clip(geometry.from_model(coords, w, h), w, h) == snapped


def test_call_box_clips_and_refuses_a_box_outside_the_image():
    """The engines' one reading of a crop call's box: model space -> original pixels, clipped."""
    from vlir.geometry import PixelBudget, call_box

    budget = PixelBudget(min_pixels=100 * 100, max_pixels=100 * 100, factor=10)  # 100x100 view
    assert call_box([50, 50, 150, 150], 200, 200, budget).as_list() == [100.0, 100.0, 200.0, 200.0]
    with pytest.raises(ValueError, match="lies outside the 200x200 image"):
        call_box([120, 120, 130, 130], 200, 200, budget)
