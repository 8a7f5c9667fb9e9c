"""Small pieces the scene-source adapters (GQA, VSR, M3CoT) share: image checks with a bounded
cache and evidence boxes from pixel ``x, y, w, h`` (counted rejects are the base class's:
:meth:`vlir.sources.base.Source.reject`).

Why adapters check images at read time: a :class:`~vlir.records.Sample` promises the real pixel
size of an image that exists under the root, and ``vlir read`` is how users check a download, so an
annotation whose image is missing becomes ``Invalid(reason="missing_image")`` naming the path
rather than a sample with a made-up size that the build would reject later anyway.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from cachetools import LRUCache

from vlir.geometry import clip, from_xywh
from vlir.images import ImageError, image_size, regular_file_problem, safe_path
from vlir.records import Region


class ImageFiles:
    """Resolves annotation image paths under ``root`` and reads their size from the file header.

    Questions about one image are many (GQA: ~20 per image), so results are cached; the cache is
    bounded (LRU) so memory stays flat on any split size.
    """

    def __init__(self, root: Path, cache_size: int = 65536):
        self.root = Path(root)
        self.cache_size = cache_size
        self._cache: LRUCache[tuple[str, bool], tuple[int, int] | ImageError] = LRUCache(maxsize=cache_size)

    def _lookup(self, relative: str, need_size: bool) -> tuple[int, int]:
        key = (relative, need_size)
        hit = self._cache.get(key)  # a hit also marks the key as recently used
        if hit is None:
            hit = self._cache[key] = self._probe(relative, need_size)
        if isinstance(hit, ImageError):
            raise hit
        return hit

    def _probe(self, relative: str, need_size: bool) -> tuple[int, int] | ImageError:
        try:
            full = safe_path(self.root, relative)
        except ImageError as exc:
            return exc
        if (problem := regular_file_problem(full, relative)) is not None:
            return problem  # missing, or a FIFO/folder named .png ("not a regular file")
        if not need_size:
            return (0, 0)
        try:  # the header only; the size as the build decodes it (EXIF rotations applied)
            return image_size(full, relative)
        except ImageError as exc:
            return exc

    def forget(self, relative: str) -> None:
        """Drop cached results for a file the caller has just written."""
        for need_size in (False, True):
            self._cache.pop((relative, need_size), None)

    def size(self, relative: str) -> tuple[int, int]:
        """``(width, height)`` of the image; raises ImageError (``unsafe_path``, ``missing_image``,
        ``not_an_image``, ``corrupt_image``)."""
        return self._lookup(relative, True)

    def check(self, relative: str) -> None:
        """Only that the path is safe and the file exists (the size is known from annotations)."""
        self._lookup(relative, False)


def object_region(x: object, y: object, w: object, h: object, label: str, width: int, height: int,
                  stats: Counter) -> Region | None:
    """A pixel ``x, y, w, h`` box (COCO / GQA) clipped to the image as an ``object`` region.
    Degenerate or fully-outside boxes are dropped and counted in ``stats["degenerate_box"]``."""
    try:
        box = clip(from_xywh(float(x), float(y), float(w), float(h)), width, height)
    except (TypeError, ValueError):
        box = None
    if box is None:
        stats["degenerate_box"] += 1
        return None
    return Region(box, label=label, kind="object")
