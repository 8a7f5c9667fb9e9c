"""A compact, in-memory index of GQA scene graphs: image sizes and object boxes and names.

``train_sceneGraphs.json`` is ~0.4 GB (75k images, ~1.5M objects). As Python dicts it would take
several GB; here it is streamed once with ijson (one image's graph alive at a time) into flat NumPy
arrays: per object an int64 key, four float32 box numbers and an int32 name index (~30 bytes), per
image a key and two int32 sizes. Attributes and relations are not kept: the adapter needs only what
an evidence region holds. Keys are stable 64-bit hashes of ``imageId`` and ``(imageId, objectId)``
(object ids are only promised unique per image), looked up by binary search; stable, not Python's
``hash`` (salted per process), because a build's plan hands the index to its tasks in other
processes (:mod:`vlir.corpus.build_plan`).
"""

from __future__ import annotations

import hashlib
import logging
from array import array
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vlir.jsonstream import iter_object_items

log = logging.getLogger(__name__)


class SceneObject(NamedTuple):
    name: str
    x: float
    y: float
    w: float
    h: float


def _key(*parts: str) -> int:
    """A stable signed 64-bit key of the parts (the same in every process and machine)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def _sorted(keys: array) -> tuple[np.ndarray, np.ndarray]:
    arr = np.frombuffer(keys, dtype=np.int64) if len(keys) else np.zeros(0, dtype=np.int64)
    order = np.argsort(arr, kind="stable")
    return arr[order], order


class SceneGraphIndex:
    """Image sizes and object boxes of one ``{split}_sceneGraphs.json``."""

    def __init__(self, image_keys: np.ndarray, sizes: np.ndarray, object_keys: np.ndarray,
                 boxes: np.ndarray, name_ids: np.ndarray, names: list[str]):
        self._image_keys = image_keys
        self._sizes = sizes
        self._object_keys = object_keys
        self._boxes = boxes
        self._name_ids = name_ids
        self._names = names

    @classmethod
    def build(cls, path: Path, stats: Counter | None = None) -> "SceneGraphIndex":
        """Stream the file once. Image entries or objects that are not well formed are skipped and
        counted (``scene_graph_bad_image``, ``scene_graph_bad_object``); a file that does not parse
        raises SourceError."""
        stats = stats if stats is not None else Counter()
        image_keys, widths, heights = array("q"), array("i"), array("i")
        object_keys, coords, name_ids = array("q"), array("f"), array("i")
        names: dict[str, int] = {}
        for image_id, graph in iter_object_items(path):
            try:
                width, height = int(graph["width"]), int(graph["height"])
                objects = graph.get("objects") or {}
                if width <= 0 or height <= 0 or not isinstance(objects, dict):
                    raise ValueError
            except (TypeError, KeyError, ValueError, AttributeError):
                stats["scene_graph_bad_image"] += 1
                continue
            image_keys.append(_key(image_id))
            widths.append(width)
            heights.append(height)
            for object_id, obj in objects.items():
                try:
                    box = (float(obj["x"]), float(obj["y"]), float(obj["w"]), float(obj["h"]))
                    name = str(obj["name"])
                except (TypeError, KeyError, ValueError):
                    stats["scene_graph_bad_object"] += 1
                    continue
                object_keys.append(_key(image_id, object_id))
                coords.extend(box)
                name_ids.append(names.setdefault(name, len(names)))
        img_sorted, img_order = _sorted(image_keys)
        sizes = np.stack([np.frombuffer(widths, dtype=np.int32),
                          np.frombuffer(heights, dtype=np.int32)], axis=1) if len(widths) else \
            np.zeros((0, 2), dtype=np.int32)
        obj_sorted, obj_order = _sorted(object_keys)
        boxes = np.frombuffer(coords, dtype=np.float32).reshape(-1, 4) if len(coords) else \
            np.zeros((0, 4), dtype=np.float32)
        ids = np.frombuffer(name_ids, dtype=np.int32) if len(name_ids) else np.zeros(0, np.int32)
        index = cls(img_sorted, sizes[img_order], obj_sorted, boxes[obj_order], ids[obj_order],
                    list(names))
        log.info("scene graphs %s: %d images, %d objects, %d names (%.1f MB index)", path,
                 len(img_sorted), len(obj_sorted), len(names), index.nbytes / 1e6)
        return index

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self._image_keys, self._sizes, self._object_keys, self._boxes,
                                      self._name_ids))

    def __len__(self) -> int:
        return len(self._image_keys)

    @staticmethod
    def _find(keys: np.ndarray, key: int) -> int | None:
        i = int(keys.searchsorted(key))
        return i if i < len(keys) and keys[i] == key else None

    def image_size(self, image_id: str) -> tuple[int, int] | None:
        """``(width, height)``, or None when the image has no scene graph."""
        i = self._find(self._image_keys, _key(image_id))
        return None if i is None else (int(self._sizes[i, 0]), int(self._sizes[i, 1]))

    def object(self, image_id: str, object_id: str) -> SceneObject | None:
        return self.objects(image_id, [object_id])[0]

    def objects(self, image_id: str, object_ids: list[str]) -> list[SceneObject | None]:
        """Several objects of one image in one vectorised search (the per-question hot path)."""
        if not object_ids or not len(self._object_keys):
            return [None] * len(object_ids)
        keys = np.array([_key(image_id, o) for o in object_ids], dtype=np.int64)
        found = np.minimum(self._object_keys.searchsorted(keys), len(self._object_keys) - 1)
        hit = (self._object_keys[found] == keys).tolist()
        boxes, names = self._boxes[found].tolist(), self._name_ids[found].tolist()
        return [SceneObject(self._names[n], *box) if ok else None
                for ok, box, n in zip(hit, boxes, names)]
