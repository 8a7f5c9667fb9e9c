"""The VSR miniature for ``vlir sample``: VSR's jsonl splits, COCO 2017 image folders and a COCO
instances file per image folder, in the official layouts.

Writes ``splits/{random,zeroshot}/{train,dev}.jsonl`` (random lines with ``reference_frame`` and no
``subj``/``obj``, zeroshot lines the other way round, validator ids as stringified lists as in the
real files), ``train2017/`` and ``val2017/`` JPEGs named by 12-digit COCO ids (the line's
``image_link`` says which folder), and ``annotations/instances_{train,val}2017.json`` with COCO's
top-level keys, real category ids and ``bbox`` ``[x, y, w, h]`` exactly where each shape is drawn.
Every caption is a left/right/above/below statement read off the boxes, true or false by ``label``.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from vlir.sources.samples.scenes import ROUND, DrawnObject, above, draw_scene, left_of
from vlir.sources.samples.synth import save_image

#: a subset of COCO's categories with their real ids and supercategories
CATEGORIES = (
    (1, "person", "person"), (3, "car", "vehicle"), (6, "bus", "vehicle"), (17, "cat", "animal"),
    (18, "dog", "animal"), (19, "horse", "animal"), (31, "handbag", "accessory"),
    (33, "suitcase", "accessory"), (47, "cup", "kitchen"), (55, "orange", "food"),
    (59, "pizza", "food"), (62, "chair", "furniture"), (63, "couch", "furniture"),
    (73, "laptop", "electronic"), (84, "book", "indoor"), (85, "clock", "indoor"),
    (88, "teddy bear", "indoor"),
)
CATEGORY_ID = {name: cid for cid, name, _ in CATEGORIES}
RELATIONS = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
SPLITS = (("random", "train"), ("random", "dev"), ("zeroshot", "train"), ("zeroshot", "dev"))


def holds(relation: str, a: DrawnObject, b: DrawnObject) -> bool:
    return {"left of": left_of(a, b), "right of": left_of(b, a),
            "above": above(a, b), "below": above(b, a)}[relation]


def _segmentation(o: DrawnObject) -> list[list[float]]:
    if o.name in ROUND:  # the drawn ellipse as a 16-gon
        cx, cy, rx, ry = o.cx, o.cy, o.w / 2, o.h / 2
        return [[round(v, 2) for k in range(16) for v in
                 (cx + rx * math.cos(k * math.pi / 8), cy + ry * math.sin(k * math.pi / 8))]]
    x1, y1, x2, y2 = o.x, o.y, o.x + o.w, o.y + o.h
    return [[x1, y1, x2, y1, x2, y2, x1, y2]]


def _statement(rng: random.Random, objs: list[DrawnObject]) -> tuple[DrawnObject, DrawnObject, str, int] | None:
    """A (subject, object, relation, label) that the drawing decides: the relation or its
    opposite holds between the two boxes."""
    pairs = [(a, b, r) for a in objs for b in objs if a is not b for r in RELATIONS if holds(r, a, b)]
    if not pairs:
        return None
    subj, obj, true_relation = rng.choice(pairs)
    label = rng.random() < 0.5
    return subj, obj, true_relation if label else RELATIONS[true_relation], int(label)


def _coco_file(images: list[dict], annotations: list[dict]) -> dict[str, Any]:
    return {
        "info": {"description": "vlir sample (COCO 2017 layout)", "version": "1.0", "year": 2017,
                 "contributor": "vlir", "date_created": "2017/09/01"},
        "licenses": [{"url": "http://creativecommons.org/licenses/by/2.0/", "id": 4,
                      "name": "Attribution License"}],
        "images": images,
        "annotations": annotations,
        "categories": [{"supercategory": sup, "id": cid, "name": name} for cid, name, sup in CATEGORIES],
    }


def write_vsr_tree(out: Path, per_split: int, seed: int) -> None:
    """Write the miniature under ``out`` (``per_split`` lines in each of random/zeroshot train/dev)."""
    coco: dict[str, tuple[list, list]] = {"train2017": ([], []), "val2017": ([], [])}
    ann_id = 900_000
    names = [name for _, name, _ in CATEGORIES]
    for s, (kind, split) in enumerate(SPLITS):
        rng = random.Random(f"vlir-vsr/{seed}/{kind}/{split}")
        lines = []
        n = 0
        while len(lines) < per_split:
            image_id = 100_000 + 1_000 * s + n
            subset = "train2017" if n % 3 else "val2017"
            n += 1
            file_name = f"{image_id:012d}.jpg"
            w, h = rng.choice(((480, 360), (400, 300), (448, 336)))
            img, objs = draw_scene(rng, rng.sample(names, rng.randint(2, 4)), w, h)
            statement = _statement(rng, objs)
            if statement is None:
                continue
            save_image(img, out / subset / file_name, "JPEG")
            images, annotations = coco[subset]
            images.append({"license": 4, "file_name": file_name,
                           "coco_url": f"http://images.cocodataset.org/{subset}/{file_name}",
                           "height": h, "width": w, "date_captured": "2013-11-14 11:18:45",
                           "flickr_url": f"http://farm4.staticflickr.com/vlir/{file_name}", "id": image_id})
            for o in objs:
                area = math.pi * o.w * o.h / 4 if o.name in ROUND else o.w * o.h
                annotations.append({"segmentation": _segmentation(o), "area": round(area, 2), "iscrowd": 0,
                                     "image_id": image_id, "bbox": [o.x, o.y, o.w, o.h],
                                     "category_id": CATEGORY_ID[o.name], "id": ann_id})
                ann_id += 1
            subj, obj, relation, label = statement
            votes = sorted(rng.sample(range(1, 60), 3))
            line: dict[str, Any] = {
                "image": file_name, "image_link": f"http://images.cocodataset.org/{subset}/{file_name}",
                "caption": f"The {subj.name} is {relation} the {obj.name}.", "label": label,
                "relation": relation,
            }
            if kind == "zeroshot":
                line.update({"subj": subj.name, "obj": obj.name})
            line.update({"annotator_id": rng.randint(1, 40),
                         "vote_true_validator_id": str(votes[:2] if label else []),
                         "vote_false_validator_id": str([] if label else votes[:2])})
            if kind == "random":
                line["reference_frame"] = None
            lines.append(json.dumps(line))
        path = out / "splits" / kind / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for subset, (images, annotations) in coco.items():
        (out / "annotations" / f"instances_{subset}.json").write_text(
            json.dumps(_coco_file(images, annotations)), encoding="utf-8")
