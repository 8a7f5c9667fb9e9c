"""COCO ``instances_{train,val}2017.json``: stream the file, keep only the images asked for.

The train file is ~0.45 GB, mostly segmentation polygons of 118k images; VSR needs the boxes of a
few thousand images. Each section (``categories``, ``images``, ``annotations``) is streamed with
ijson in its own pass (the C backend builds items fast; categories come last in the official
file), and only the wanted images and their annotations are kept: bounded by what is asked for,
not by the file.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from vlir.jsonstream import iter_array_items

log = logging.getLogger(__name__)


@dataclass
class CocoObject:
    category: str
    bbox: tuple[float, float, float, float]  # x, y, w, h in pixels, as COCO stores it

    @property
    def area(self) -> float:
        return self.bbox[2] * self.bbox[3]


@dataclass
class CocoImage:
    file_name: str
    width: int
    height: int
    objects: list[CocoObject] = field(default_factory=list)

    def categories(self) -> list[str]:
        return sorted({o.category for o in self.objects})


def load_instances(path: Path, file_names: Iterable[str], stats: Counter | None = None) -> dict[str, CocoImage]:
    """Images (by ``file_name``) among ``file_names`` with their non-crowd object boxes.

    Crowd regions (``iscrowd: 1``) are skipped (``stats["coco_crowd_skipped"]``): they cover many
    instances and are no one object's box. Malformed entries are skipped and counted
    (``coco_bad_entry``); a file that does not parse raises SourceError.
    """
    stats = stats if stats is not None else Counter()
    wanted = set(file_names)
    categories: dict[int, str] = {}
    for cat in iter_array_items(path, "categories"):
        try:
            categories[int(cat["id"])] = str(cat["name"])
        except (TypeError, KeyError, ValueError):
            stats["coco_bad_entry"] += 1
    images: dict[str, CocoImage] = {}
    by_id: dict[int, CocoImage] = {}
    for img in iter_array_items(path, "images"):
        if not isinstance(img, dict) or img.get("file_name") not in wanted:
            continue
        try:
            entry = CocoImage(str(img["file_name"]), int(img["width"]), int(img["height"]))
            by_id[int(img["id"])] = entry
        except (TypeError, KeyError, ValueError):
            stats["coco_bad_entry"] += 1
            continue
        images[entry.file_name] = entry
    if by_id:
        for ann in iter_array_items(path, "annotations"):
            try:
                entry = by_id.get(int(ann["image_id"]))
                if entry is None:
                    continue
                if ann.get("iscrowd"):
                    stats["coco_crowd_skipped"] += 1
                    continue
                x, y, w, h = (float(v) for v in ann["bbox"])
                name = categories.get(int(ann["category_id"]))
                if name is None:
                    raise KeyError("category_id")
            except (TypeError, KeyError, ValueError):
                stats["coco_bad_entry"] += 1
                continue
            entry.objects.append(CocoObject(name, (x, y, w, h)))
    log.info("%s: %d of %d wanted images found", path, len(images), len(wanted))
    return images
