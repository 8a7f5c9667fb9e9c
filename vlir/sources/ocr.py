"""OCR layouts -> evidence regions, for the three text-in-image sources.

Each official release ships its OCR in a different vendor format, and each format has its own
coordinate convention; all of them end up here as :class:`~vlir.records.Region` in original-image
pixels, clipped to the image:

- TextVQA: Rosetta (``ocr_info[].bounding_box`` with ``top_left_x/top_left_y/width/height`` as
  fractions of the image size) -> ``ocr_word`` regions.
- DocVQA: Microsoft Read v2 (``recognitionResults[].lines[].boundingBox``, 8 numbers, pixels;
  rotated or upside-down text gives corners in any order) -> ``ocr_line`` and ``ocr_word``.
- InfographicsVQA: Amazon Textract (top-level ``PAGE``/``LINE``/``WORD`` block lists with
  ``Geometry.BoundingBox`` ``Left/Top/Width/Height`` as fractions) -> ``ocr_line`` and ``ocr_word``.

A box that is degenerate (zero area), unreadable (not numbers) or entirely outside the image is
dropped and counted in ``stats["degenerate_box"]``: one bad word must not cost the whole sample.
Lines come before words in the returned tuple, each in the file's reading order.
"""

from __future__ import annotations

import logging
import math
from array import array
from collections import Counter
from decimal import Decimal
from typing import Any, Callable

from vlir.geometry import clip, from_normalized_xywh, from_polygon
from vlir.records import Box, Region

log = logging.getLogger(__name__)

ROUND = 3  # decimals kept in pixel coordinates: a thousandth of a pixel is below any use
ROSETTA_KEYS = ("top_left_x", "top_left_y", "width", "height")
WORD = "ocr_word"
LINE = "ocr_line"


class OCRFormatError(ValueError):
    """The OCR document does not have the vendor layout's top-level shape."""


def make_region(build: Callable[[], Box], label: Any, kind: str, width: float, height: float,
                stats: Counter | None) -> Region | None:
    """Build a box with ``build`` (a conversion from :mod:`vlir.geometry`), clip it to the image
    and wrap it; None (and a count) when the box is unusable."""
    try:
        box = clip(build(), width, height)
        if box is not None:  # fractions times sizes leave float noise (451.00000000000006)
            box = Box(*(round(v, ROUND) for v in box.as_list()))
    except (TypeError, ValueError, KeyError, IndexError):
        box = None
    if box is None:
        if stats is not None:
            stats["degenerate_box"] += 1
        return None
    return Region(box, "" if label is None else str(label), kind)


# ---------------------------------------------------------------------------------------------
# Rosetta (TextVQA)
# ---------------------------------------------------------------------------------------------

def rosetta_compact(ocr_info: Any) -> tuple[tuple[str, ...], array]:
    """TextVQA Rosetta ``ocr_info`` entries (``{"word", "bounding_box": {top_left_x, top_left_y,
    width, height, rotation, ...}}``) -> words and a flat ``array('d')`` of normalised ``x, y, w, h``.

    The TextVQA adapter indexes the whole (~66 MB) OCR file by image id; this form costs ~40 bytes
    a word instead of a dict per word. Unreadable entries become NaN boxes, dropped (and counted)
    when the regions are made."""
    words: list[str] = []
    coords = array("d")
    for info in ocr_info if isinstance(ocr_info, list) else ():
        bb = info.get("bounding_box") if isinstance(info, dict) else None
        try:
            box = [_num(bb[k]) for k in ROSETTA_KEYS]  # type: ignore[index]
        except (TypeError, KeyError):
            box = [math.nan] * 4
        word = info.get("word") if isinstance(info, dict) else None
        words.append("" if word is None else str(word))
        coords.extend(box)
    return tuple(words), coords


def rosetta_regions(words: tuple[str, ...], coords: array, width: int, height: int,
                    stats: Counter | None = None) -> tuple[Region, ...]:
    """Compact Rosetta words (:func:`rosetta_compact`) -> word regions in pixels. Rotation is 0 in
    the releases we know of; a box is the axis-aligned rectangle it describes."""
    out = []
    for i, word in enumerate(words):
        x, y, w, h = coords[4 * i:4 * i + 4]
        region = make_region(lambda: from_normalized_xywh(x, y, w, h, width, height),
                             word, WORD, width, height, stats)
        if region is not None:
            out.append(region)
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Microsoft Read v2 (DocVQA)
# ---------------------------------------------------------------------------------------------

def read_v2_page(doc: Any) -> dict[str, Any]:
    """The first page of a Read v2 result (DocVQA pages are single images). Raises
    :class:`OCRFormatError` when the document is not in the Read v2 layout."""
    if not isinstance(doc, dict):
        raise OCRFormatError("not a JSON object")
    results = doc.get("recognitionResults")
    if results is None and isinstance(doc.get("analyzeResult"), dict):  # Read v3 wraps it
        results = doc["analyzeResult"].get("readResults")
    if not isinstance(results, list):
        raise OCRFormatError("no 'recognitionResults' list")
    if not results:
        return {"lines": []}
    if len(results) > 1:
        log.debug("Read v2 result with %d pages: using page 1", len(results))
    page = results[0]
    if not isinstance(page, dict):
        raise OCRFormatError("recognitionResults[0] is not an object")
    return page


def read_v2_size(page: dict[str, Any]) -> tuple[float, float] | None:
    """``(width, height)`` of a Read v2 page, in its own unit, or None when absent."""
    try:
        w, h = _num(page["width"]), _num(page["height"])
    except (KeyError, TypeError, ValueError):
        return None
    return (w, h) if w > 0 and h > 0 else None


def read_v2_regions(page: dict[str, Any], width: int, height: int, stats: Counter | None = None,
                    scale: tuple[float, float] = (1.0, 1.0)) -> tuple[Region, ...]:
    """Read v2 page -> line regions then word regions, in pixels of a ``width`` x ``height`` image.

    Read v2 reports pixels for images; ``scale`` converts other units (``inch`` for PDFs) when the
    caller knows the page size in both units. Polygons may be rotated or listed from any corner:
    :func:`vlir.geometry.from_polygon` takes their axis-aligned hull."""
    lines, words = [], []

    def add(item: Any, kind: str, to: list[Region]) -> bool:
        """Add the item's region; False when the item is not an object (counted, skipped)."""
        if not isinstance(item, dict):
            if stats is not None:
                stats["degenerate_box"] += 1
            return False
        region = make_region(lambda: _scaled_polygon(item["boundingBox"], *scale),
                             item.get("text"), kind, width, height, stats)
        if region is not None:
            to.append(region)
        return True

    for line in page.get("lines") or ():
        if add(line, LINE, lines):
            for word in line.get("words") or ():
                add(word, WORD, words)
    return tuple(lines + words)


def _scaled_polygon(points: Any, sx: float, sy: float) -> Box:
    if not isinstance(points, list):
        raise TypeError("boundingBox is not a list")
    coords = [_num(v) * (sx if i % 2 == 0 else sy) for i, v in enumerate(points)]
    return from_polygon(coords)


# ---------------------------------------------------------------------------------------------
# Amazon Textract (InfographicsVQA)
# ---------------------------------------------------------------------------------------------

def textract_blocks(doc: Any) -> dict[str, list[dict[str, Any]]]:
    """Group a Textract document by block type. InfographicsVQA ships ``{"PAGE": [...], "LINE":
    [...], "WORD": [...]}``; a raw Textract API response (``{"Blocks": [...]}``) is accepted too."""
    if not isinstance(doc, dict):
        raise OCRFormatError("not a JSON object")
    if isinstance(doc.get("Blocks"), list):
        grouped: dict[str, list[dict[str, Any]]] = {}
        for block in doc["Blocks"]:
            if isinstance(block, dict):
                grouped.setdefault(str(block.get("BlockType")), []).append(block)
        return grouped
    if not any(k in doc for k in ("PAGE", "LINE", "WORD")):
        raise OCRFormatError("no PAGE/LINE/WORD block lists")
    out = {}
    for key in ("PAGE", "LINE", "WORD"):
        value = doc.get(key) or []
        if not isinstance(value, list):
            raise OCRFormatError(f"{key} is not a list")
        out[key] = value
    return out


def textract_regions(doc: Any, width: int, height: int,
                     stats: Counter | None = None) -> tuple[Region, ...]:
    """Textract document -> line regions then word regions, in pixels of a ``width`` x ``height``
    image (Textract coordinates are fractions of the page, so the size must come from the image)."""
    blocks = textract_blocks(doc)
    out = []
    for key, kind in (("LINE", LINE), ("WORD", WORD)):
        for block in blocks.get(key, ()):
            if not isinstance(block, dict):
                if stats is not None:
                    stats["degenerate_box"] += 1
                continue
            region = make_region(lambda: _textract_box(block, width, height),
                                 block.get("Text"), kind, width, height, stats)
            if region is not None:
                out.append(region)
    return tuple(out)


def _textract_box(block: dict[str, Any], width: int, height: int) -> Box:
    bb = block["Geometry"]["BoundingBox"]
    return from_normalized_xywh(_num(bb["Left"]), _num(bb["Top"]), _num(bb["Width"]),
                                _num(bb["Height"]), width, height)


def _num(value: Any) -> float:
    """A JSON number (ijson may hand out Decimal); bools and strings are not numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)
