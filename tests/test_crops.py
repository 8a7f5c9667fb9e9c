import pytest

from vlir import geometry
from vlir.crops import decode_png, pixel_window, render_crop, zoom_scale
from vlir.records import Box
from tests.conftest import make_image


def test_zoom_rule_matches_the_paper():
    assert zoom_scale(0.0) == 2.0 and zoom_scale(0.1249) == 2.0
    assert zoom_scale(0.5) == 1.0 and zoom_scale(0.9) == 1.0
    assert zoom_scale(0.3125) == pytest.approx(1.5)


def test_crop_is_deterministic_and_sized_by_rule():
    img = make_image(640, 480)
    box = Box(40.3, 30.7, 140.2, 120.9)
    a, b = render_crop(img, box), render_crop(img, box)
    assert a.png == b.png
    assert a.box == Box(40, 30, 141, 121)  # pixel-aligned outwards
    h, w = geometry.smart_resize(int(2 * 91), int(2 * 101), geometry.CROP_PIXELS)  # the rule: 2x (small region)
    assert (a.width, a.height) == (w, h)
    # scale is the zoom the crop really got after grid snapping (168x196 from 91x101), not the rule's 2.0
    assert a.scale == pytest.approx(((w * h) / (101 * 91)) ** 0.5) and a.scale != 2.0
    assert 1.8 < a.scale < 2.2
    assert decode_png(a.png).size == (w, h)


def test_crop_clips_and_rejects_outside_boxes():
    img = make_image(320, 240)
    crop = render_crop(img, Box(-50, -50, 100, 100))
    assert crop.box == Box(0, 0, 100, 100)
    with pytest.raises(ValueError):
        render_crop(img, Box(400, 400, 500, 500))
    assert pixel_window(Box(10.2, 10.2, 10.4, 10.4), 320, 240) == (10, 10, 11, 11)


def test_large_region_is_not_zoomed():
    img = make_image(320, 240)
    crop = render_crop(img, Box(0, 0, 320, 240))
    assert crop.scale == pytest.approx(1.0, abs=0.01)  # 308x252 from 320x240: the grid, not a zoom
