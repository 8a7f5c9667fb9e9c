"""Synthetic scenes: each object's box is exactly the extent of its drawn shape."""

from __future__ import annotations

import random

import numpy as np
import pytest

from vlir.sources.samples.scenes import draw_scene, left_of


@pytest.mark.parametrize("seed", range(4))
def test_boxes_are_the_drawn_extent(seed):
    rng = random.Random(seed)
    names = ["ball", "teddy bear", "car", "clock", "traffic light"]
    img, objs = draw_scene(rng, names, 480, 360)
    assert len(objs) >= 3
    pixels = np.asarray(img)
    for o in objs:
        outline = (255, 255, 255) if o.color == "black" else (0, 0, 0)
        mask = np.all(pixels == outline, axis=-1)  # the background never has these exact values
        ys, xs = np.nonzero(mask[o.y:o.y + o.h, o.x:o.x + o.w])
        assert (xs.min(), xs.max(), ys.min(), ys.max()) == (0, o.w - 1, 0, o.h - 1), o
        ring = np.zeros_like(mask)
        ring[o.y - 1:o.y + o.h + 1, o.x - 1:o.x + o.w + 1] = True
        ring[o.y:o.y + o.h, o.x:o.x + o.w] = False
        assert not (mask & ring).any(), o


def test_objects_do_not_overlap_and_relations_are_strict():
    rng = random.Random(7)
    _, objs = draw_scene(rng, ["a", "b", "c", "d"], 480, 360, colors=["red", "blue", "green", "red"])
    assert [o.color for o in objs] == ["red", "blue", "green", "red"][:len(objs)]
    for a in objs:
        for b in objs:
            if a is not b:
                assert not (left_of(a, b) and left_of(b, a))
                overlap_x = a.x < b.x + b.w and b.x < a.x + a.w
                overlap_y = a.y < b.y + b.h and b.y < a.y + a.h
                assert not (overlap_x and overlap_y)
