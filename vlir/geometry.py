"""Box geometry: every conversion between coordinate conventions, in one place.

Sources hand us boxes in their native conventions (Rosetta / Textract normalised ``x, y, w, h``,
Microsoft Read 8-point polygons, COCO/GQA pixel ``x, y, w, h``); vlir stores :class:`~vlir.records.Box`
in original-image pixels. The model sees the image after ``smart_resize`` and writes
``{"bbox_2d": [...]}`` in its own box space: Qwen2.5-VL in pixels of the resized view, Qwen3-VL on a
relative 0-1000 grid (:attr:`PixelBudget.box_grid`, set by the model family). The mapping original
<-> box space lives here too, whatever the convention (:func:`box_space`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from vlir.models import defaults
from vlir.records import Box

#: the default family's grid (:mod:`vlir.models.defaults`); a family's budget carries its own
FACTOR = defaults.FACTOR
MAX_ASPECT = 200  # smart_resize refuses images whose long side exceeds 200 x the short one


@dataclass(frozen=True)
class PixelBudget:
    """Min/max pixel counts for ``smart_resize`` on a ``factor``-pixel grid, and the box space of the
    model that sees the image this way.

    ``box_grid`` None: ``bbox_2d`` numbers are pixels of the resized view (Qwen2.5-VL); an integer
    N: they are a relative ``0..N`` grid over the image, whatever its size (Qwen3-VL: 1000). The
    model family sets both (``vlir.models``); code that converts boxes reads them from here.

    This is the one shape of a pixel budget, from the user's knob (``{min_pixels: ..., max_pixels:
    ...}`` in a config, ``--min-pixels/--max-pixels`` on the command line) to the crop: a family
    puts a knob on its grid and box convention (:meth:`vlir.models.family.ModelFamily.view` and
    :meth:`~vlir.models.family.ModelFamily.crop`). :data:`MODEL_PIXELS` and :data:`CROP_PIXELS`
    are the default family's budgets (:mod:`vlir.models.defaults`), the defaults of this module's
    functions.
    """

    min_pixels: int
    max_pixels: int
    factor: int = FACTOR
    box_grid: int | None = None

    def __post_init__(self) -> None:
        if not (0 < self.min_pixels <= self.max_pixels):
            raise ValueError(f"need 0 < min_pixels <= max_pixels, got {self.min_pixels}, {self.max_pixels}")
        if self.box_grid is not None and self.box_grid < 1:
            raise ValueError(f"box_grid must be a positive grid size or None, got {self.box_grid}")


    @classmethod
    def parse(cls, value: object) -> "PixelBudget":
        """A knob as a config holds it: a :class:`PixelBudget`, a mapping ``{min_pixels, max_pixels}``
        (the one written shape; ``factor``/``box_grid`` are accepted, a family sets its own) or the
        compact ``[min_pixels, max_pixels]``. Raises ``ValueError`` saying what is wrong."""
        if isinstance(value, PixelBudget):
            return value
        if isinstance(value, dict):
            unknown = sorted(set(value) - {"min_pixels", "max_pixels", "factor", "box_grid"})
            if unknown or not {"min_pixels", "max_pixels"} <= set(value):
                raise ValueError(f"write {{min_pixels: N, max_pixels: N}}, not the keys {sorted(value)}")
            items = dict(value)
        elif isinstance(value, (list, tuple)) and len(value) == 2:
            items = {"min_pixels": value[0], "max_pixels": value[1]}
        else:
            raise ValueError("write {min_pixels: N, max_pixels: N}")
        for key in ("min_pixels", "max_pixels", "factor"):
            if key in items and (isinstance(items[key], bool) or not isinstance(items[key], int)):
                raise ValueError(f"its {key} must be an integer")
        return cls(**items)

    def knob(self) -> dict[str, int]:
        """The budget as its knob is written (``{min_pixels, max_pixels}``): for manifests and logs."""
        return {"min_pixels": self.min_pixels, "max_pixels": self.max_pixels}


#: the default family's budgets (:mod:`vlir.models.defaults`): the image's view and a crop's
MODEL_PIXELS = PixelBudget(defaults.MIN_PIXELS, defaults.MAX_PIXELS)
CROP_PIXELS = PixelBudget(defaults.CROP_MIN_PIXELS, defaults.CROP_MAX_PIXELS)


# ---------------------------------------------------------------------------------------------
# From source conventions
# ---------------------------------------------------------------------------------------------

def from_xyxy(x1: float, y1: float, x2: float, y2: float) -> Box:
    """Corners in any order (inverted boxes exist in real data) -> a proper :class:`Box`."""
    return Box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def from_xywh(x: float, y: float, w: float, h: float) -> Box:
    """COCO / GQA / Visual Genome ``x, y, w, h`` in pixels. A negative or zero width or height is
    refused (ValueError): reordering it would silently make a different box."""
    if not (w > 0 and h > 0):
        raise ValueError(f"box x, y, w, h = {x}, {y}, {w}, {h} has no positive width and height")
    return Box(x, y, x + w, y + h)


def from_normalized_xywh(left: float, top: float, w: float, h: float, width: int, height: int) -> Box:
    """Rosetta (TextVQA ``top_left_x/top_left_y/width/height``) and Amazon Textract
    (``Left/Top/Width/Height``): fractions of the image size."""
    return from_xywh(left * width, top * height, w * width, h * height)


def from_polygon(points: Sequence[float]) -> Box:
    """Microsoft Read ``boundingBox`` (8 numbers: 4 corners, clockwise from the text's top-left),
    or any flat ``x, y, x, y...`` list: the axis-aligned hull. Rotated and upside-down text gives
    corners in any order, which the hull handles."""
    if len(points) < 4 or len(points) % 2:
        raise ValueError(f"a polygon needs an even number (>= 4) of coordinates, got {len(points)}")
    xs = [float(v) for v in points[0::2]]
    ys = [float(v) for v in points[1::2]]
    return from_xyxy(min(xs), min(ys), max(xs), max(ys))


# ---------------------------------------------------------------------------------------------
# Box arithmetic
# ---------------------------------------------------------------------------------------------

def clip(box: Box, width: float, height: float) -> Box | None:
    """Clip to the image ``[0, width] x [0, height]``; None when nothing of the box is inside."""
    x1, y1 = max(0.0, box.x1), max(0.0, box.y1)
    x2, y2 = min(float(width), box.x2), min(float(height), box.y2)
    if x1 >= x2 or y1 >= y2:
        return None
    return Box(x1, y1, x2, y2)


def intersection(a: Box, b: Box) -> float:
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    return w * h if w > 0 and h > 0 else 0.0


def iou(a: Box, b: Box) -> float:
    inter = intersection(a, b)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def containment(inner: Box, outer: Box) -> float:
    """Fraction of ``inner``'s area that lies inside ``outer`` (1.0 = fully contained)."""
    return intersection(inner, outer) / inner.area


def area_ratio(box: Box, width: float, height: float) -> float:
    """Box area over image area (the quantity the crop zoom rule uses)."""
    return box.area / (float(width) * float(height))


def union(boxes: Sequence[Box]) -> Box:
    if not boxes:
        raise ValueError("union of no boxes")
    return Box(min(b.x1 for b in boxes), min(b.y1 for b in boxes),
               max(b.x2 for b in boxes), max(b.y2 for b in boxes))


def expand(box: Box, margin_x: float, margin_y: float, width: float, height: float) -> Box:
    """Grow by margins on each side, staying inside the image."""
    grown = Box(box.x1 - margin_x, box.y1 - margin_y, box.x2 + margin_x, box.y2 + margin_y)
    clipped = clip(grown, width, height)
    assert clipped is not None  # the grown box contains the (in-image) original
    return clipped


def ensure_min_side(box: Box, min_side: float, width: float, height: float) -> Box:
    """Grow a box symmetrically until each side is at least ``min_side`` (capped at the image)."""
    cx, cy = box.center
    w, h = max(box.width, min(min_side, width)), max(box.height, min(min_side, height))
    x1 = min(max(0.0, cx - w / 2), width - w)
    y1 = min(max(0.0, cy - h / 2), height - h)
    return Box(x1, y1, x1 + w, y1 + h)


# ---------------------------------------------------------------------------------------------
# The model's view and its box space
# ---------------------------------------------------------------------------------------------

def aspect_problem(width: float, height: float) -> str | None:
    """Why the model cannot see a ``width x height`` image (the ``image_aspect`` reject), or None:
    a side that is not positive, or a long side above :data:`MAX_ASPECT` x the short one."""
    if not (width > 0 and height > 0):
        return f"image size must be positive, got {width}x{height}"
    if max(height, width) / min(height, width) > MAX_ASPECT:
        return f"absolute aspect ratio must be smaller than {MAX_ASPECT}, got {width}x{height}"
    return None


#: a look corner further than this many image sides outside the image is no box (box_out_of_range)
BOX_RANGE_SIDES = 10


def box_range_problem(box: Box, width: float, height: float) -> str | None:
    """Why a look box is no box at all on a ``width x height`` image (the ``box_out_of_range``
    reject), or None: a corner more than :data:`BOX_RANGE_SIDES` image sides outside the image (a
    teacher's ``1.79e308`` would overflow the model-space arithmetic). A box merely outside the
    image is the ``box_in_image`` check's business, with its tolerance."""
    k = BOX_RANGE_SIDES
    if not (-k * width <= box.x1 and box.x2 <= (k + 1) * width
            and -k * height <= box.y1 and box.y2 <= (k + 1) * height):
        return (f"box {[float(f'{v:.6g}') for v in box.as_list()]} lies more than {k} image sides "
                f"outside the {width}x{height} image")
    return None


def orient_box(box: Box, orientation: int, raw_width: float, raw_height: float) -> Box:
    """A box in an image file's raw pixel frame -> the same region after its EXIF ``orientation``
    is applied (what :func:`PIL.ImageOps.exif_transpose` does to the pixels; 1: unchanged)."""
    w, h = raw_width, raw_height
    maps = {
        2: lambda x, y: (w - x, y), 3: lambda x, y: (w - x, h - y), 4: lambda x, y: (x, h - y),
        5: lambda x, y: (y, x), 6: lambda x, y: (h - y, x), 7: lambda x, y: (h - y, w - x),
        8: lambda x, y: (y, w - x),
    }
    if orientation not in maps:
        return box
    (ax, ay), (bx, by) = maps[orientation](box.x1, box.y1), maps[orientation](box.x2, box.y2)
    return from_xyxy(ax, ay, bx, by)


def smart_resize(height: int, width: int, budget: PixelBudget = MODEL_PIXELS) -> tuple[int, int]:
    """Qwen2.5-VL's resize rule: both sides multiples of ``factor``, pixel count within the budget,
    aspect ratio kept as well as possible. Returns ``(height, width)`` like the reference."""
    factor, min_pixels, max_pixels = budget.factor, budget.min_pixels, budget.max_pixels
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if (problem := aspect_problem(width, height)) is not None:
        raise ValueError(problem)
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def model_size(width: int, height: int, budget: PixelBudget = MODEL_PIXELS) -> tuple[int, int]:
    """``(width, height)`` of the image as the model sees it."""
    h, w = smart_resize(height, width, budget)
    return w, h


def box_space(width: int, height: int, budget: PixelBudget = MODEL_PIXELS) -> tuple[int, int]:
    """``(width, height)`` of the space ``bbox_2d`` numbers live in: the resized view's pixels, or
    the fixed relative grid of ``budget.box_grid``."""
    if budget.box_grid is not None:
        return budget.box_grid, budget.box_grid
    return model_size(width, height, budget)


def to_model(box: Box, width: int, height: int, budget: PixelBudget = MODEL_PIXELS) -> list[int]:
    """Original-pixel box -> the integer ``bbox_2d`` the model writes (in :func:`box_space`)."""
    mw, mh = box_space(width, height, budget)
    sx, sy = mw / width, mh / height
    return [round(box.x1 * sx), round(box.y1 * sy), round(box.x2 * sx), round(box.y2 * sy)]


def from_model(bbox_2d: Sequence[float], width: int, height: int,
               budget: PixelBudget = MODEL_PIXELS) -> Box:
    """A model-space ``bbox_2d`` -> original-pixel :class:`Box` (corners reordered if needed;
    raises ValueError for a degenerate box). Not clipped: callers clip with :func:`clip`."""
    if len(bbox_2d) != 4:
        raise ValueError(f"bbox_2d needs 4 numbers, got {len(bbox_2d)}")
    mw, mh = box_space(width, height, budget)
    sx, sy = width / mw, height / mh
    x1, y1, x2, y2 = (float(v) for v in bbox_2d)
    return from_xyxy(x1 * sx, y1 * sy, x2 * sx, y2 * sy)


def call_box(bbox_2d: Sequence[float], width: int, height: int,
             budget: PixelBudget = MODEL_PIXELS) -> Box:
    """The original-pixel box a model's crop call asks for: :func:`from_model`, clipped to the
    image. Raises ValueError for a degenerate box or one wholly outside the image (the engines
    treat both as a bad call)."""
    box = from_model(bbox_2d, width, height, budget)
    clipped = clip(box, width, height)
    if clipped is None:
        raise ValueError(f"box {box.as_list()} lies outside the {width}x{height} image")
    return clipped


def snap_to_model(box: Box, width: int, height: int, budget: PixelBudget = MODEL_PIXELS) -> Box:
    """The box the model can actually write: ``from_model(to_model(box))``, clipped to the image.

    A stored look box is snapped this way at build time, so a chain replayed through the model
    (integer ``bbox_2d`` -> original pixels) recovers exactly the stored box, and the crop cut from
    it is byte-identical. Boxes smaller than one box-space unit are returned unchanged. On a
    relative grid of N a coordinate moves by at most half a step: ``width / 2N`` (x), ``height / 2N``
    (y) original pixels."""
    coords = to_model(box, width, height, budget)
    if coords[0] >= coords[2] or coords[1] >= coords[3]:
        return box
    snapped = clip(from_model(coords, width, height, budget), width, height)
    return snapped if snapped is not None else box
