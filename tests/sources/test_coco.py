"""COCO instances streaming: only the wanted images, crowd regions skipped, categories resolved."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from vlir.sources.base import SourceError
from vlir.sources.coco import load_instances


def test_keeps_only_wanted_images(tmp_path):
    doc = {
        "info": {}, "licenses": [],
        "images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480},
                   {"id": 2, "file_name": "b.jpg", "width": 100, "height": 50},
                   {"id": 3, "file_name": "c.jpg"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 17, "bbox": [1.5, 2, 30, 40], "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": [0, 0, 600, 400], "iscrowd": 1},
            {"id": 12, "image_id": 2, "category_id": 17, "bbox": [0, 0, 5, 5], "iscrowd": 0},
            {"id": 13, "image_id": 1, "category_id": 99, "bbox": [0, 0, 5, 5], "iscrowd": 0},
            {"id": 14, "image_id": 1, "category_id": 18, "bbox": "x"},
        ],
        "categories": [{"id": 17, "name": "cat", "supercategory": "animal"},
                       {"id": 18, "name": "dog", "supercategory": "animal"},
                       {"id": 1, "name": "person", "supercategory": "person"}],
    }
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(doc))
    stats = Counter()
    images = load_instances(path, {"a.jpg", "c.jpg", "zzz.jpg"}, stats)
    assert set(images) == {"a.jpg"}  # c.jpg has no size: a bad entry
    a = images["a.jpg"]
    assert (a.width, a.height) == (640, 480)
    assert [(o.category, o.bbox) for o in a.objects] == [("cat", (1.5, 2.0, 30.0, 40.0))]
    assert stats == Counter({"coco_crowd_skipped": 1, "coco_bad_entry": 3})
    assert load_instances(path, set()) == {}


def test_truncated_file(tmp_path):
    path = tmp_path / "instances_train2017.json"
    path.write_text('{"images": [{"id": 1, "file_name": "a.jpg", "width": 1, "height": 1}], "annotations": [')
    with pytest.raises(SourceError, match="instances_train2017.json"):
        load_instances(path, {"a.jpg"})
