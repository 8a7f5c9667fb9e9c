"""Opening source images safely: bounded size, verified decode, RGB, and a content hash.

Every stage that reads an original image (build, infer, eval, training) opens it here, so a
missing, truncated, mislabelled or decompression-bomb file fails the same way everywhere: with an
:class:`ImageError` whose ``reason`` is a short tag for the rejects shard.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

MAX_IMAGE_PIXELS = 89_478_485  # Pillow's default bomb threshold; set explicitly, never disabled


class ImageError(ValueError):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def safe_path(root: Path, relative: str) -> Path:
    """Resolve ``relative`` under ``root``; refuse absolute paths and paths escaping the root."""
    if not relative or Path(relative).is_absolute():
        raise ImageError("unsafe_path", f"image path {relative!r} must be relative to the source root")
    if "\x00" in relative:  # the OS cannot name it (pathlib raises "embedded null byte")
        raise ImageError("unsafe_path", f"image path {relative!r} holds a NUL byte")
    root_resolved = Path(root).resolve()
    full = (root_resolved / relative).resolve()
    if full != root_resolved and root_resolved not in full.parents:
        raise ImageError("unsafe_path", f"image path {relative!r} escapes the source root {root}")
    return full


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


def decode_image(data: bytes, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode fully (truncated files fail here, not later) and return an RGB image."""
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
    return img.convert("RGB") if img.mode != "RGB" else img


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_image(path: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[Image.Image, bytes]:
    """Read, verify and decode ``path``; returns the RGB image and the file's bytes."""
    data = read_image_bytes(path)
    return decode_image(data, str(path), max_pixels), data
