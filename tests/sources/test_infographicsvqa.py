"""InfographicsVQA adapter: the RRC-layout sample tree, the first-release naming, and bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from vlir.records import Invalid, Sample
from vlir.sources.infographicsvqa import InfographicsVQA
from tests.sources.conftest import read_all, edit, refuses

SRC = InfographicsVQA()
TRAIN_QAS = Path("infographicsvqa_qas") / "infographicsVQA_train_v1.0.json"


def read(root, split="train", **options):
    return read_all(SRC, root, split, **options)


def test_official_layout_and_keys(pristine):
    assert sorted(p.name for p in pristine.iterdir()) == [
        "infographicsvqa_images", "infographicsvqa_ocr", "infographicsvqa_qas"]
    assert sorted(p.name for p in (pristine / "infographicsvqa_qas").iterdir()) == [
        "infographicsVQA_train_v1.0.json", "infographicsVQA_val_v1.0_withQT.json"]
    doc = json.loads((pristine / TRAIN_QAS).read_text())
    assert list(doc) == ["dataset_name", "dataset_version", "dataset_split", "data"]
    rec = doc["data"][0]
    assert set(rec) == {"questionId", "question", "image_local_name", "image_url", "ocr_output_file",
                        "answers", "data_split", "answer_type", "evidence", "operation/reasoning"}
    ocr = json.loads((pristine / "infographicsvqa_ocr" / rec["ocr_output_file"]).read_text())
    assert list(ocr) == ["PAGE", "LINE", "WORD"] and len(ocr["PAGE"]) == 1
    line = ocr["LINE"][0]
    assert list(line) == ["BlockType", "Confidence", "Text", "Geometry", "Id", "Relationships"]
    word_ids = {w["Id"] for w in ocr["WORD"]}
    assert set(line["Relationships"][0]["Ids"]) <= word_ids
    assert {b["Id"] for b in ocr["LINE"]} == set(ocr["PAGE"][0]["Relationships"][0]["Ids"])
    assert all(0 <= v <= 1 for v in line["Geometry"]["BoundingBox"].values())


@pytest.mark.parametrize("split", ["train", "val"])
def test_reads_the_tree(pristine, split):
    samples, stats = read(pristine, split)
    assert len(samples) == 8 and stats["samples"] == 8 and stats["invalid"] == 0
    assert stats["missing_ocr"] == 0 and stats["degenerate_box"] == 0
    for s in samples:
        assert s.image.startswith("infographicsvqa_images/") and s.image.endswith(".jpeg")
        assert Image.open(pristine / s.image).size == (s.width, s.height)
        assert {"answer_type", "evidence", "operation/reasoning", "ocr_output_file"} <= set(s.meta)
        for r in s.evidence:
            assert 0 <= r.box.x1 < r.box.x2 <= s.width and 0 <= r.box.y1 < r.box.y2 <= s.height
        if s.evidence:
            lines = [r.label for r in s.evidence if r.kind == "ocr_line"]
            assert any(a in line for a in s.answers for line in lines), s


def test_word_boxes_match_the_drawing(pristine):
    """The Textract fractions map back to the integer ink boxes the writer drew."""
    s = read(pristine)[0][0]
    for r in s.evidence:
        for v in r.box.as_list():
            assert abs(v - round(v)) < 1e-6


def test_quirks(pristine):
    modes = {Image.open(p).mode for p in (pristine / "infographicsvqa_images").iterdir()}
    assert modes == {"L", "RGB"}
    assert any(not s.evidence for s in read(pristine, "val")[0])
    samples = read(pristine)[0] + read(pristine, "val")[0]
    assert any(len(s.answers[0].split()) > 2 for s in samples)


def test_first_release_naming(pristine, tmp_path):
    root = tmp_path / "task3"
    split_dir = root / "val"
    shutil.copytree(pristine / "infographicsvqa_images", split_dir / "infographicVQA_val_v1.0_images")
    shutil.copytree(pristine / "infographicsvqa_ocr", split_dir / "infographicVQA_val_v1.0_ocr_outputs")
    shutil.copy(pristine / "infographicsvqa_qas" / "infographicsVQA_val_v1.0_withQT.json",
                split_dir / "infographicVQA_val_v1.0.json")
    samples, stats = read(root, "val")
    assert stats["samples"] == 8 and stats["missing_ocr"] == 0
    assert samples[0].image.startswith("val/infographicVQA_val_v1.0_images/")
    assert [s.evidence for s in samples] == [s.evidence for s in read(pristine, "val")[0]]


def test_malformed_records(tree):
    def change(doc):
        doc["data"][0]["questionId"] = {"id": 1}
        doc["data"][1]["image_local_name"] = 7
        doc["data"][2]["operation/reasoning"] = "Counting"
    edit(tree / TRAIN_QAS, change)
    samples, stats = read(tree)
    assert [getattr(s, "reason", None) for s in samples[:3]] == ["malformed"] * 3
    assert samples[0].id == "infographicsvqa/train/#0"
    assert "infographicsVQA_train_v1.0.json: record #0: field 'questionId'" in samples[0].detail
    assert "operation/reasoning" in samples[2].detail and stats["invalid"] == 3


@pytest.mark.parametrize("field,value", [("image_local_name", "../../secret.jpeg"),
                                         ("ocr_output_file", "../../../etc/passwd")])
def test_unsafe_paths(tree, field, value):
    edit(tree / TRAIN_QAS, lambda d: d["data"][0].update({field: value}))
    samples, _ = read(tree)
    assert samples[0].reason == "unsafe_path" and value in samples[0].detail
    assert all(isinstance(s, Sample) for s in samples[1:])


def test_unparsable_question_file(tree):
    (tree / TRAIN_QAS).write_text("\x00\x01 garbage")
    refuses(SRC, tree, "train", "infographicsVQA_train_v1.0.json")


def test_missing_image_and_missing_ocr(tree):
    samples = read(tree)[0]
    first = samples[0].meta
    (tree / "infographicsvqa_ocr" / first["ocr_output_file"]).unlink()
    after, stats = read(tree)
    on_it = [s for s in after if s.meta["image_local_name"] == first["image_local_name"]]
    assert stats["missing_ocr"] == len(on_it) == 2 and all(not s.evidence for s in on_it)
    (tree / "infographicsvqa_images" / first["image_local_name"]).unlink()
    after, stats = read(tree)
    assert [s.reason for s in after if isinstance(s, Invalid)] == ["missing_image"] * 2


def test_corrupt_ocr_file(tree):
    name = read(tree)[0][0].meta["ocr_output_file"]
    (tree / "infographicsvqa_ocr" / name).write_text('{"Pages": []}')
    bad = [s for s in read(tree)[0] if isinstance(s, Invalid)]
    assert len(bad) == 2 and "Textract layout" in bad[0].detail and name in bad[0].detail


def test_test_split_without_answers(tree):
    doc = json.loads((tree / TRAIN_QAS).read_text())
    for rec in doc["data"]:
        for key in ("answers", "answer_type", "evidence", "operation/reasoning"):
            rec.pop(key)
    (tree / "infographicsvqa_qas" / "infographicsVQA_test_v1.0.json").write_text(json.dumps(doc))
    samples, stats = read(tree, "test")
    assert stats["samples"] == 8 and all(s.answers == () for s in samples)
