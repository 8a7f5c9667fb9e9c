"""VSR adapter: the sample tree (jsonl splits, COCO folders and instances), truthful labels, and
the bad inputs real downloads contain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from vlir.records import Invalid, Sample
from vlir.sources.vsr import VSRSource, derive_subject_object
from tests.sources.conftest import read_all, digest, refuses

SRC = VSRSource()
RANDOM_KEYS = ["image", "image_link", "caption", "label", "relation", "annotator_id",
               "vote_true_validator_id", "vote_false_validator_id", "reference_frame"]
ZEROSHOT_KEYS = ["image", "image_link", "caption", "label", "relation", "subj", "obj", "annotator_id",
                 "vote_true_validator_id", "vote_false_validator_id"]


def read(root, split="train", **options):
    return read_all(SRC, root, split, **options)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def write_lines(path: Path, records: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


def test_registry_contract():
    assert SRC.name == "vsr"
    assert {"random/train", "random/dev", "random/test", "zeroshot/train", "zeroshot/dev",
            "zeroshot/test", "train", "dev", "test"} <= set(SRC.splits)
    assert any("instances_" in f for f in SRC.expected_files)
    assert SRC.homepage and SRC.license


def test_official_layout(pristine):
    assert sorted(p.name for p in pristine.iterdir()) == ["annotations", "splits", "train2017", "val2017"]
    for kind, keys in (("random", RANDOM_KEYS), ("zeroshot", ZEROSHOT_KEYS)):
        for split in ("train", "dev"):
            recs = lines(pristine / "splits" / kind / f"{split}.jsonl")
            assert len(recs) == 8
            for r in recs:
                assert list(r) == keys
                assert isinstance(r["vote_true_validator_id"], str)  # stringified lists, as in the real data
                assert r["label"] in (0, 1)
                subset = r["image_link"].split("/")[-2]
                assert subset in ("train2017", "val2017") and (pristine / subset / r["image"]).is_file()
                assert len(Path(r["image"]).stem) == 12
    for subset in ("train2017", "val2017"):
        coco = json.loads((pristine / "annotations" / f"instances_{subset}.json").read_text())
        assert list(coco) == ["info", "licenses", "images", "annotations", "categories"]
        ann = coco["annotations"][0]
        assert set(ann) == {"segmentation", "area", "iscrowd", "image_id", "bbox", "category_id", "id"}
        assert {c["name"]: c["id"] for c in coco["categories"]}["person"] == 1


def _holds(relation: str, a, b) -> bool:
    return {"left of": a.x2 <= b.x1, "right of": b.x2 <= a.x1,
            "above": a.y2 <= b.y1, "below": b.y2 <= a.y1}[relation]


@pytest.mark.parametrize("split", ["train", "val", "random/train", "zeroshot/train", "zeroshot/dev"])
def test_reads_the_tree_with_truthful_labels(pristine, split):
    samples, stats = read(pristine, split)
    assert stats["samples"] == 8 and not stats["invalid"]
    canonical = {"train": "random/train", "val": "random/dev"}.get(split, split)
    labels = set()
    for i, s in enumerate(samples):
        assert isinstance(s, Sample) and s.id == f"vsr/{canonical}/{i}" and s.split == canonical
        assert s.meta["caption"] in s.question and s.answers in (("true",), ("false",))
        subj, obj = s.evidence
        assert (subj.label, obj.label) == (s.meta["subj"], s.meta["obj"])
        assert all(r.kind == "object" and 0 <= r.box.x1 < r.box.x2 <= s.width and
                   0 <= r.box.y1 < r.box.y2 <= s.height for r in s.evidence)
        assert _holds(s.meta["relation"], subj.box, obj.box) == (s.answers == ("true",))
        assert isinstance(s.meta["vote_true_validator_id"], list)
        with Image.open(pristine / s.image) as img:
            assert img.size == (s.width, s.height)
        labels.add(s.answers)
    assert len(labels) == 2
    assert {s.meta["subj_obj_from"] for s in samples} == {"annotation" if "zeroshot" in split else "caption"}


def test_sample_tree_is_deterministic(tmp_path, pristine):
    SRC.write_sample_tree(tmp_path / "again", 8, seed=0)
    assert digest(tmp_path / "again") == digest(pristine)


def test_without_instances_evidence_is_empty_and_counted(tree):
    before, _ = read(tree, "train")
    shutil.rmtree(tree / "annotations")
    samples, stats = read(tree, "train")
    assert stats["samples"] == 8 and stats["missing_instances"] == 8
    assert all(not s.evidence for s in samples)
    assert [(s.width, s.height) for s in samples] == [(s.width, s.height) for s in before]
    _, stats = read(tree, "train", instances_train=False, instances_val=False)
    assert stats["missing_instances"] == 8


def test_vsr_flat_images_folder(tree):
    flat = tree / "data" / "images"
    flat.mkdir(parents=True)
    for subset in ("train2017", "val2017"):
        for p in (tree / subset).iterdir():
            p.rename(flat / p.name)
        (tree / subset).rmdir()
    samples, stats = read(tree, "train")
    assert stats["samples"] == 8 and all(s.image.startswith("data/images/") for s in samples)
    assert all(len(s.evidence) == 2 for s in samples)


def test_subject_typo_matches_the_closest_category(tree):
    path = tree / "splits" / "zeroshot" / "train.jsonl"
    recs = lines(path)
    recs[0]["subj"] = recs[0]["subj"][1:]  # "andbag" for "handbag", as in the real zeroshot data
    write_lines(path, recs)
    samples, stats = read(tree, "zeroshot/train")
    assert len(samples[0].evidence) == 2 and not stats["missing_subj"]
    assert samples[0].meta["subj"] == recs[0]["subj"]


def test_malformed_lines_are_rejected_and_the_read_goes_on(tree):
    path = tree / "splits" / "random" / "train.jsonl"
    recs = lines(path)
    recs[1]["label"] = 2
    recs[2]["vote_false_validator_id"] = "[2, oops"
    del recs[3]["caption"]
    write_lines(path, [recs[0], recs[1], recs[2], recs[3], "{not json", "[1, 2]"] + recs[4:])
    items, stats = read(tree, "train")
    bad = {i.id: i for i in items if isinstance(i, Invalid)}
    assert sorted(bad) == [f"vsr/random/train/{n}" for n in (1, 2, 3, 4, 5)]
    assert all(i.reason == "malformed" for i in bad.values())
    assert bad["vsr/random/train/1"].detail.startswith("train.jsonl: record 1:")
    assert "label" in bad["vsr/random/train/1"].detail
    assert "vote_false_validator_id" in bad["vsr/random/train/2"].detail
    assert "caption" in bad["vsr/random/train/3"].detail
    assert "not valid JSON" in bad["vsr/random/train/4"].detail
    assert stats["samples"] == 5 and stats["invalid_malformed"] == 5


def test_unsafe_and_missing_images(tree):
    path = tree / "splits" / "random" / "dev.jsonl"
    recs = lines(path)
    recs[0]["image"] = "../../../outside.jpg"
    (tree / recs[1]["image_link"].split("/")[-2] / recs[1]["image"]).unlink()
    write_lines(path, recs)
    items, stats = read(tree, "dev")
    assert items[0].reason == "unsafe_path"
    assert items[1].reason == "missing_image" and recs[1]["image"] in items[1].detail
    assert stats["samples"] == 6


def test_truncated_instances_file_is_a_source_error(tree):
    (tree / "annotations" / "instances_val2017.json").write_text('{"info": {}, "images": [{"id": 1')
    refuses(SRC, tree, "train", "instances_val2017.json")


def test_missing_split_file_names_it(tree):
    refuses(SRC, tree, "test", "random/test.jsonl")
    refuses(SRC, tree, "validation", "unknown split")


@pytest.mark.parametrize("caption, relation, expected", [
    ("The person is inside the refrigerator.", "inside", ("person", "refrigerator")),
    ("The cake consists of the dog.", "consists of", ("cake", "dog")),
    ("The teddy bear is at the right side of the dining table.", "at the right side of",
     ("teddy bear", "dining table")),
    ("The cat has as a part the tie.", "has as a part", ("cat", "tie")),
    ("The bus is on the cell phone.", "on", ("bus", "cell phone")),
    ("The cat is near the dog.", "far from", None),
])
def test_derive_subject_object(caption, relation, expected):
    assert derive_subject_object(caption, relation) == expected
