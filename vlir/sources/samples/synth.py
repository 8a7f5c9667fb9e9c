"""Drawing helpers for the embedded sample corpus (``vlir sample``).

The sample trees stand in for the official downloads in tests and in ``make vlir``. Their evidence
boxes must be exactly where things are drawn, so every helper here returns the pixel box of what it
drew (``ImageDraw.textbbox`` for text). Everything is deterministic for a given ``random.Random``.
"""

from __future__ import annotations

import io
import json
import random
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from vlir.records import Box

WORDS = (
    "coffee open market river station north garden music press cola sale total invoice date "
    "tobacco research report budget annual meeting school pizza bakery hotel exit street library "
    "museum theater bank pharmacy office harbor airport bridge central grand royal golden silver "
    "summer winter spring autumn morning evening wine beer water juice tea milk bread cheese"
).split()

COLORS = {
    "red": (200, 40, 40), "green": (40, 160, 60), "blue": (40, 70, 200), "yellow": (230, 200, 40),
    "black": (20, 20, 20), "white": (245, 245, 245), "orange": (240, 140, 30), "purple": (130, 50, 160),
    "brown": (120, 80, 40), "gray": (128, 128, 128),
}


@lru_cache(maxsize=32)
def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font: no system fonts needed, same glyphs everywhere."""
    return ImageFont.load_default(size=size)


def draw_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size: int,
              fill: tuple[int, int, int] = (0, 0, 0)) -> Box:
    """Draw ``text`` with its top-left at ``xy``; return the exact pixel box of the ink."""
    f = font(size)
    draw.text(xy, text, font=f, fill=fill)
    x1, y1, x2, y2 = draw.textbbox(xy, text, font=f)
    return Box(float(x1), float(y1), float(max(x2, x1 + 1)), float(max(y2, y1 + 1)))


def text_size(text: str, size: int) -> tuple[int, int]:
    x1, y1, x2, y2 = font(size).getbbox(text)
    return x2 - x1, y2 - y1


def canvas(width: int, height: int, color: tuple[int, int, int] = (255, 255, 255),
           mode: str = "RGB") -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new(mode, (width, height), color if mode == "RGB" else 255)
    return img, ImageDraw.Draw(img)


def noise_background(rng: random.Random, width: int, height: int) -> Image.Image:
    """A soft two-colour gradient with speckles, so photos are not flat (JPEG-friendly)."""
    a = tuple(rng.randint(90, 200) for _ in range(3))
    b = tuple(rng.randint(90, 200) for _ in range(3))
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    for y in range(height):
        t = y / max(1, height - 1)
        draw.line([(0, y), (width, y)], fill=tuple(int(a[i] * (1 - t) + b[i] * t) for i in range(3)))
    for _ in range(width * height // 400):
        x, y = rng.randrange(width), rng.randrange(height)
        draw.point((x, y), fill=tuple(rng.randint(60, 230) for _ in range(3)))
    return img


def save_image(img: Image.Image, path: Path, fmt: str) -> None:
    """Save with fixed encoder settings (deterministic bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    if fmt.upper() in ("JPEG", "JPG"):
        img.save(buf, format="JPEG", quality=90, subsampling=0)
    else:
        img.save(buf, format=fmt.upper(), compress_level=6)
    path.write_bytes(buf.getvalue())


def draw_words(draw: ImageDraw.ImageDraw, xy: tuple[float, float], words: list[str], size: int,
               fill: tuple[int, ...] | int = (0, 0, 0)) -> list[tuple[str, Box]]:
    """Draw ``words`` on one line from ``xy``, each separately so that each word's ink box is
    known exactly (OCR engines report words); returns ``[(word, box)]``."""
    x, y = round(xy[0]), round(xy[1])  # whole pixels: Pillow would round a fractional origin
    out = []
    for word in words:
        out.append((word, draw_text(draw, (x, y), word, size, fill)))
        x += round(draw.textlength(word + " ", font=font(size)))
    return out


def dump_json(path: Path, obj: Any) -> None:
    """Write JSON compactly, as the official releases do (UTF-8, no ASCII escaping)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
