"""Shared fixtures for the training and model tests: VLIR records with 0, 1 and 4 looks (plus their
original images), built in memory without any shard. The tiny model fixtures (``tiny_model_dir``,
``tiny``) are in ``tests/conftest.py``.

* ``make_record(n_looks, seed=0, size=(320, 240))`` -> ``(record, image)``.
* ``records`` -> ``{0: (record, image), 1: (...), 4: (...)}``.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image, ImageDraw  # noqa: E402

from vlir.crops import render_crop  # noqa: E402
from vlir.records import Box, Chain, Look, Provenance, Record, Sample, Think  # noqa: E402

_COLORS = [(200, 40, 40), (40, 160, 60), (40, 70, 200), (230, 200, 40), (130, 50, 160)]
_NAMES = ["red", "green", "blue", "yellow", "purple"]


def _image_and_boxes(seed: int, size: tuple[int, int], n: int) -> tuple[Image.Image, list[Box], list[str]]:
    """A gradient picture with ``n`` coloured rectangles; returns the rectangles' boxes."""
    rng = random.Random(seed)
    width, height = size
    img = Image.new("RGB", size)
    img.putdata([((x * 255) // width, (y * 255) // height, 128) for y in range(height) for x in range(width)])
    draw = ImageDraw.Draw(img)
    boxes, names = [], []
    for i in range(n):
        w, h = rng.randint(width // 10, width // 3), rng.randint(height // 10, height // 3)
        x, y = rng.randint(0, width - w - 1), rng.randint(0, height - h - 1)
        draw.rectangle([x, y, x + w, y + h], fill=_COLORS[i % len(_COLORS)])
        boxes.append(Box(x + 0.4, y + 0.6, x + w + 0.3, y + h + 0.7))  # fractional, like real annotations
        names.append(_NAMES[i % len(_NAMES)])
    return img, boxes, names


def build_record(n_looks: int, seed: int = 0, size: tuple[int, int] = (320, 240)) -> tuple[Record, Image.Image]:
    """A record whose chain is think, (look, think) * n_looks; crops rendered by the crop rule."""
    image, boxes, names = _image_and_boxes(seed, size, max(n_looks, 1))
    steps: list = [Think(f"The question asks about the colored shapes; there are {n_looks} to check.")]
    for box, name in zip(boxes[:n_looks], names[:n_looks]):
        steps.append(Look(box, f"the {name} rectangle"))
        steps.append(Think(f"The crop shows a {name} rectangle."))
    answer = names[0] if n_looks else "none"
    sample = Sample(
        id=f"synth/train/{seed}-{n_looks}", source="synth", split="train", image=f"images/{seed}.png",
        width=size[0], height=size[1], question=f"What color is the first shape? (seed {seed})",
        answers=(answer,),
    )
    crops = tuple(render_crop(image, look.box) for look in steps if isinstance(look, Look))
    record = Record(sample, Chain(steps, answer), Provenance("grounded", "0.1.0"), crops=crops)
    return record, image


@pytest.fixture(scope="session")
def make_record():
    return build_record


@pytest.fixture(scope="session")
def records():
    return {n: build_record(n, seed=n) for n in (0, 1, 4)}
