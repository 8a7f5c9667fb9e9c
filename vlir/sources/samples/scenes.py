"""Synthetic photos for the GQA and VSR sample trees: labelled, coloured shapes on a soft background.

Each object is a filled ellipse or rectangle with its name written inside, so its box (pixel
``x, y, w, h``, as GQA and COCO store them) is exactly the drawn shape. Objects never overlap and keep
a margin between them, so left/right/above/below relations read from the boxes are unambiguous.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

from vlir.sources.samples.synth import COLORS, draw_text, noise_background, text_size

ROUND = {"ball", "clock", "orange", "donut", "frisbee", "plate", "pizza"}
SHAPE_COLORS = ("red", "green", "blue", "yellow", "orange", "purple", "brown", "black", "white")


@dataclass(frozen=True)
class DrawnObject:
    name: str
    color: str
    x: int
    y: int
    w: int
    h: int

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


def _place(rng: random.Random, width: int, height: int, min_widths: list[int],
           margin: int = 12) -> list[tuple[int, int, int, int]]:
    """Non-overlapping boxes with a margin, each at least as wide as its label needs; fewer than
    asked if the canvas is full."""
    boxes: list[tuple[int, int, int, int]] = []
    for _ in range(len(min_widths) * 60):
        if len(boxes) == len(min_widths):
            break
        min_w = min_widths[len(boxes)]
        w, h = rng.randint(min_w, max(min_w, 104)), rng.randint(44, 92)
        x, y = rng.randint(margin, width - w - margin), rng.randint(margin, height - h - margin)
        if all(x + w + margin <= bx or bx + bw + margin <= x or y + h + margin <= by or
               by + bh + margin <= y for bx, by, bw, bh in boxes):
            boxes.append((x, y, w, h))
    return boxes


def draw_scene(rng: random.Random, names: list[str], width: int, height: int,
               colors: list[str] | None = None) -> tuple[Image.Image, list[DrawnObject]]:
    """Draw one object per name (as many as fit); ``colors`` fixes their colours, else random."""
    img = noise_background(rng, width, height)
    draw = ImageDraw.Draw(img)
    objects: list[DrawnObject] = []
    min_widths = [max(56, text_size(n, 12)[0] + 16) for n in names]
    for i, (x, y, w, h) in enumerate(_place(rng, width, height, min_widths)):
        name = names[i]
        color = colors[i] if colors else rng.choice(SHAPE_COLORS)
        rgb = COLORS[color]
        outline = (0, 0, 0) if color != "black" else (255, 255, 255)
        xy = [x, y, x + w - 1, y + h - 1]  # Pillow includes the end pixel: the ink spans w x h
        if name in ROUND:
            draw.ellipse(xy, fill=rgb, outline=outline, width=2)
        else:
            draw.rectangle(xy, fill=rgb, outline=outline, width=2)
        ink = (255, 255, 255) if sum(rgb) < 330 else (0, 0, 0)
        tw, th = text_size(name, 12)
        draw_text(draw, (x + max(2, (w - tw) // 2), y + max(2, (h - th) // 2)), name, 12, fill=ink)
        objects.append(DrawnObject(name, color, x, y, w, h))
    return img, objects


def left_of(a: DrawnObject, b: DrawnObject) -> bool:
    """``a`` is wholly to the left of ``b`` (no horizontal overlap)."""
    return a.x + a.w <= b.x


def above(a: DrawnObject, b: DrawnObject) -> bool:
    return a.y + a.h <= b.y
