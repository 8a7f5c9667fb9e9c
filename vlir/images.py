"""Opening images: the one decode. Bounded size, verified decode, EXIF orientation, bit depth, RGB.

Every stage that reads an image (build, import, infer, eval, training, ``vlir show``) opens it here,
so a missing, truncated, mislabelled or decompression-bomb file fails the same way everywhere: with
an :class:`ImageError` whose ``reason`` is a short tag for the rejects shard. And every stage sees
the same pixels, the ones Hugging Face ``datasets`` gives for the stored bytes:

* **EXIF orientation** is applied (``ImageOps.exif_transpose``, as ``datasets.Image`` does when the
  tag is present), so an Orientation=6 phone photo is decoded upright; :func:`decode_oriented`
  also says which tag was applied, so the build can tell in which frame a record's boxes are
  (docs/corpus.md, "Images").
* **Bit depth**: 16-bit and 32-bit integer (``I;16``, ``I``) and float (``F``) images are mapped
  to 8 bits by their range (:func:`to_8bit`), not clipped at 255 (which turns a 16-bit PNG white).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from vlir.paths import ConfinementError, confine

MAX_IMAGE_PIXELS = 89_478_485  # Pillow's default bomb threshold; set explicitly, never disabled


class ImageError(ValueError):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def safe_path(root: Path, relative: str, what: str = "image path", base_name: str = "the source root") -> Path:
    """:func:`vlir.paths.confine` for an image: its refusal as an ``unsafe_path`` ImageError."""
    try:
        return confine(root, relative, what, base_name)
    except ConfinementError as exc:
        raise ImageError(exc.reason, str(exc)) from None


def regular_file_problem(path: Path, name: str) -> ImageError | None:
    """None for a regular file; else why not (missing, or a FIFO/device/folder, which would block
    or fail a read)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return ImageError("missing_image", f"image file not found: {name}")
    except (OSError, ValueError) as exc:
        return ImageError("unreadable_image", f"cannot read image {name}: {exc}")
    if not stat.S_ISREG(mode):
        return ImageError("unreadable_image", f"image {name} is not a regular file")
    return None


def read_image_bytes(path: Path, name: str | None = None) -> bytes:
    """The file's bytes; ``name`` (default: the path) is what error messages show, e.g. the path
    relative to the source root, so reject details carry no local absolute paths."""
    name = str(path) if name is None else name
    if (problem := regular_file_problem(path, name)) is not None:
        raise problem
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageError("missing_image", f"image file not found: {name}") from None
    except OSError as exc:
        raise ImageError("unreadable_image", f"cannot read image {name}: {exc.strerror or exc}") from None


#: EXIF Orientation tags that swap width and height (transpose, rotations by 90 and 270 degrees)
SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
_ORIENTATION_TAG = 0x0112


def orientation(img: Image.Image) -> int:
    """The image's EXIF Orientation (1: none or absent; 2-8 as EXIF defines them)."""
    try:
        value = img.getexif().get(_ORIENTATION_TAG)
    except Exception:  # a broken EXIF block is not a broken image: datasets ignores it too
        return 1
    return value if isinstance(value, int) and 2 <= value <= 8 else 1


def to_8bit(img: Image.Image) -> Image.Image:
    """High-bit-depth single-channel images -> 8-bit ``L`` by range: integer images whose values fit
    16 bits are scaled from 0..65535, floats within 0..1 from 0..1, anything else from its own
    min..max. Other modes are returned as they are (``convert`` handles them)."""
    if img.mode not in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return img
    import numpy as np

    a = np.asarray(img, dtype=np.float64)
    if a.size == 0:
        return img.convert("L")
    lo, hi = float(a.min()), float(a.max())
    if img.mode == "F" and lo >= 0.0 and hi <= 1.0:
        lo, hi = 0.0, 1.0
    elif img.mode != "F" and lo >= 0 and hi <= 65535:
        lo, hi = 0.0, 65535.0
    scaled = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def decode_image(data: bytes, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode fully (truncated files fail here, not later), upright and 8-bit: an RGB image."""
    return decode_oriented(data, name, max_pixels)[0]


def decode_oriented(data: bytes, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[Image.Image, int]:
    """:func:`decode_image` and the EXIF orientation it applied (1: none), so a caller can map
    boxes given in the file's raw pixel frame (:func:`vlir.geometry.orient_box`)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError("image_too_large",
                                 f"image {name} declares {w}x{h} pixels, above the {max_pixels} limit")
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("image_too_large", f"image {name}: {exc}") from None
    except UnidentifiedImageError:
        raise ImageError("not_an_image", f"file {name} is not a readable image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError("corrupt_image", f"image {name} is corrupt or truncated: {exc}") from None
    tag = orientation(img)
    try:
        img = to_8bit(ImageOps.exif_transpose(img) if tag != 1 else img)
        return (img.convert("RGB") if img.mode != "RGB" else img), tag
    except (OSError, ValueError) as exc:
        raise ImageError("corrupt_image", f"image {name} cannot be converted: {exc}") from None


def image_size(path: Path, name: str) -> tuple[int, int]:
    """``(width, height)`` as :func:`decode_image` will return it (EXIF rotations applied), from the
    header only: what a source reads when the annotations do not say the size."""
    try:
        with Image.open(path) as img:  # lazy: reads the header only
            width, height = img.size
            if orientation(img) in SWAPPING_ORIENTATIONS:
                width, height = height, width
    except Image.DecompressionBombError as exc:  # the header claims a bomb: as the build says
        raise ImageError("image_too_large", f"image {name}: {exc}") from None
    except UnidentifiedImageError:
        raise ImageError("not_an_image", f"file {name} is not a readable image") from None
    except OSError as exc:
        raise ImageError("corrupt_image", f"cannot read image {name}: {exc}") from None
    return width, height


def image_format(data: bytes, name: str) -> str | None:
    """The format Pillow reads in ``data``'s header (``JPEG``, ``PNG``...), without decoding."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format
    except (UnidentifiedImageError, OSError):
        raise ImageError("not_an_image", f"image {name} is not readable") from None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_image(path: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[Image.Image, bytes]:
    """Read, verify and decode ``path``; returns the RGB image and the file's bytes."""
    data = read_image_bytes(path)
    return decode_image(data, str(path), max_pixels), data
