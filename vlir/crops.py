"""The crop rule: one function that data building, SFT and the rollout engine all call.

A look step's box is clipped to the image, cut from the original image (pixel-aligned outwards),
zoomed by the paper's area-ratio rule and ``smart_resize``d within the crop pixel budget, then
resampled with LANCZOS and encoded as PNG with fixed settings. Because every stage calls
:func:`render_crop`, replaying a stored chain through the rollout engine reproduces the stored crop
bytes exactly.
"""

from __future__ import annotations

import io
import math

from PIL import Image

from vlir import geometry
from vlir.geometry import CROP_PIXELS, PixelBudget
from vlir.records import Box, Crop


def zoom_scale(ratio: float) -> float:
    """The paper's zoom on the area ratio r = crop area / image area: 2.0 below 1/8, 1.0 from 1/2,
    linear in between."""
    if ratio < 0.125:
        return 2.0
    if ratio >= 0.5:
        return 1.0
    return 2.0 - (ratio - 0.125) / 0.375


def real_zoom(window_w: int, window_h: int, out_w: int, out_h: int) -> float:
    """The zoom a crop really got: output pixels per original pixel (geometric mean of the two
    axes). ``smart_resize`` snaps the rule's target to the model's grid, so a crop the rule zooms
    2.0x comes out between ~1.8x and ~2.2x; this is what ``Crop.scale`` / ``crop_info.scale`` hold."""
    return math.sqrt((out_w * out_h) / (window_w * window_h))


def pixel_window(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """The integer pixel window cut for ``box``: clipped to the image, floor/ceil outwards, at least
    one pixel. Raises ValueError when the box lies outside the image."""
    clipped = geometry.clip(box, width, height)
    if clipped is None:
        raise ValueError(f"box {box.as_list()} lies outside the {width}x{height} image")
    x1, y1 = math.floor(clipped.x1), math.floor(clipped.y1)
    x2, y2 = max(x1 + 1, math.ceil(clipped.x2)), max(y1 + 1, math.ceil(clipped.y2))
    return x1, y1, min(x2, width), min(y2, height)


CROP_FORMATS = ("png", "webp")


def render_crop(image: Image.Image, box: Box, budget: PixelBudget = CROP_PIXELS, fmt: str = "png") -> Crop:
    """Cut, zoom and encode the crop of ``box`` (original pixels) from ``image`` (the original).
    ``fmt``: ``png`` (the default; what replay compares byte for byte) or ``webp`` (lossless: the
    same pixels, ~0.55x the encode CPU, ~8 % fewer bytes; bench/crop_formats.py)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    x1, y1, x2, y2 = pixel_window(box, width, height)
    cw, ch = x2 - x1, y2 - y1
    scale = zoom_scale((cw * ch) / (width * height))
    target_h, target_w = geometry.smart_resize(max(1, int(scale * ch)), max(1, int(scale * cw)), budget)
    zoomed = image.crop((x1, y1, x2, y2)).resize((target_w, target_h), Image.Resampling.LANCZOS)
    data = encode_png(zoomed) if fmt == "png" else encode_webp(zoomed)
    return Crop(png=data, box=Box(x1, y1, x2, y2), scale=real_zoom(cw, ch, target_w, target_h),
                width=target_w, height=target_h)


def encode_png(image: Image.Image) -> bytes:
    """PNG with fixed settings and no metadata, so equal pixels give equal bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6, optimize=False)
    return buf.getvalue()


def encode_webp(image: Image.Image) -> bytes:
    """Lossless WebP, libwebp's fastest method, exact RGB kept: the same pixels as the PNG."""
    buf = io.BytesIO()
    image.save(buf, format="WEBP", lossless=True, method=0, exact=True)
    return buf.getvalue()


def is_crop_bytes(data: bytes) -> bool:
    """PNG, or the lossless WebP of ``crop_format: webp``."""
    return data.startswith(b"\x89PNG\r\n\x1a\n") or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def decode_png(data: bytes) -> Image.Image:
    """A stored crop's pixels (PNG, or WebP), decoded by :mod:`vlir.images` like every other image."""
    from vlir.images import decode_image

    return decode_image(data, "crop PNG")
