"""DocVQA adapter: the per-split sample tree, the RRC "spdocvqa" layout, and bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlir.records import Invalid, Sample
from vlir.sources.docvqa import DocVQA
from tests.sources.conftest import read_all, edit, refuses

SRC = DocVQA()


def read(root, split="train", **options):
    return read_all(SRC, root, split, **options)


def test_official_layout_and_keys(pristine):
    assert sorted(p.relative_to(pristine).as_posix() for p in pristine.glob("*/*")
                  if p.suffix == ".json") == ["train/train_v1.0_withQT.json", "val/val_v1.0_withQT.json"]
    doc = json.loads((pristine / "val" / "val_v1.0_withQT.json").read_text())
    assert list(doc) == ["dataset_name", "dataset_version", "dataset_split", "data"]
    rec = doc["data"][0]
    assert set(rec) == {"questionId", "question", "question_types", "image", "docId",
                        "ucsf_document_id", "ucsf_document_page_no", "answers", "data_split"}
    assert rec["image"].startswith("documents/") and isinstance(rec["ucsf_document_page_no"], str)
    stem = Path(rec["image"]).stem
    ocr = json.loads((pristine / "val" / "ocr_results" / f"{stem}.json").read_text())
    page = ocr["recognitionResults"][0]
    assert ocr["status"] == "Succeeded" and page["unit"] == "pixel"
    line = page["lines"][0]
    assert len(line["boundingBox"]) == 8 and all(isinstance(v, int) for v in line["boundingBox"])


@pytest.mark.parametrize("split", ["train", "val"])
def test_reads_the_tree(pristine, split):
    samples, stats = read(pristine, split)
    assert len(samples) == 8 and stats["samples"] == 8 and stats["invalid"] == 0
    assert stats["missing_ocr"] == 0
    for s in samples:
        assert s.image.startswith(f"{split}/documents/") and s.image.endswith(".png")
        assert Image.open(pristine / s.image).size == (s.width, s.height)
        assert {"docId", "ucsf_document_id", "ucsf_document_page_no", "question_types"} <= set(s.meta)
        for r in s.evidence:
            assert r.kind in ("ocr_word", "ocr_line")
            assert 0 <= r.box.x1 < r.box.x2 <= s.width and 0 <= r.box.y1 < r.box.y2 <= s.height
        if s.evidence:  # every answer is a line or a run of words on the page
            lines = {r.label for r in s.evidence if r.kind == "ocr_line"}
            assert any(a in lines or any(a in line for line in lines) for a in s.answers), s


def test_all_question_kinds_and_multiword_answers(pristine):
    samples = read(pristine, "train")[0] + read(pristine, "val")[0]
    assert len({s.question for s in samples}) == 6
    assert any(len(s.answers[0].split()) > 1 for s in samples)


def test_boxes_are_where_the_ink_is(pristine):
    """Every dark pixel of a page lies inside some OCR word box (1 px tolerance), and every word
    box holds ink: the OCR is exactly where the text was drawn."""
    for s in read(pristine, "train")[0]:
        ink = np.asarray(Image.open(pristine / s.image).convert("L")) < 160
        covered = np.zeros_like(ink)
        for r in s.evidence:
            if r.kind == "ocr_word":
                x1, y1, x2, y2 = (int(v) for v in r.box.as_list())
                assert ink[y1:y2, x1:x2].any(), r
                covered[max(0, y1 - 1):y2 + 1, max(0, x1 - 1):x2 + 1] = True
        assert not (ink & ~covered).any(), s.image


def test_quirks(pristine):
    modes = {Image.open(p).mode for p in pristine.glob("*/documents/*.png")}
    assert modes == {"L", "RGB"}
    val = read(pristine, "val")[0]
    assert any(not s.evidence for s in val)
    # the upside-down stamp: Read lists its corners from the page's bottom-right
    stamp = []
    for p in (pristine / "train" / "ocr_results").glob("*.json"):
        for line in json.loads(p.read_text())["recognitionResults"][0]["lines"]:
            bb = line["boundingBox"]
            if bb[0] > bb[2]:
                stamp.append((p.stem, line["text"], bb))
    assert len(stamp) == 1
    stem, label, bb = stamp[0]
    sample = next(s for s in read(pristine, "train")[0] if stem in s.image)
    region = next(r for r in sample.evidence if r.label == label and r.kind == "ocr_line")
    assert region.box.as_list() == [bb[2], bb[5], bb[0], bb[1]]


def test_deterministic(pristine, tmp_path):
    SRC.write_sample_tree(tmp_path / "again", 8, seed=0)
    for p in pristine.rglob("*"):
        if p.is_file():
            assert (tmp_path / "again" / p.relative_to(pristine)).read_bytes() == p.read_bytes(), p


def test_rrc_spdocvqa_layout(pristine, tmp_path):
    """spdocvqa_qas/ + spdocvqa_images/ + spdocvqa_ocr/: records still say "documents/x.png"."""
    root = tmp_path / "rrc"
    shutil.copytree(pristine / "val" / "documents", root / "spdocvqa_images")
    shutil.copytree(pristine / "val" / "ocr_results", root / "spdocvqa_ocr")
    (root / "spdocvqa_qas").mkdir()
    shutil.copy(pristine / "val" / "val_v1.0_withQT.json", root / "spdocvqa_qas")
    samples, stats = read(root, "val")
    reference = read(pristine, "val")[0]
    assert stats["samples"] == 8 and stats["missing_ocr"] == 0
    assert all(s.image.startswith("spdocvqa_images/") for s in samples)
    assert [s.evidence for s in samples] == [s.evidence for s in reference]


def test_malformed_records(tree):
    def change(doc):
        doc["data"][0]["question"] = 42
        del doc["data"][1]["image"]
        doc["data"][2]["question_types"] = "layout"
        doc["data"][3]["answers"] = [["nested"]]
    edit(tree / "train" / "train_v1.0_withQT.json", change)
    samples, stats = read(tree)
    assert [getattr(s, "reason", None) for s in samples[:4]] == ["malformed"] * 4
    assert samples[0].detail.startswith("train/train_v1.0_withQT.json: record ")
    assert "'question'" in samples[0].detail and "'image'" in samples[1].detail
    assert stats["invalid"] == 4 and stats["samples"] == 4


@pytest.mark.parametrize("path", ["../../../etc/passwd.png", "/etc/passwd.png"])
def test_unsafe_image_path(tree, path):
    edit(tree / "train" / "train_v1.0_withQT.json", lambda d: d["data"][0].update(image=path))
    samples, _ = read(tree)
    assert samples[0].reason == "unsafe_path" and "record" in samples[0].detail
    assert all(isinstance(s, Sample) for s in samples[1:])


def test_unparsable_question_file(tree):
    (tree / "val" / "val_v1.0_withQT.json").write_text('{"dataset_name": "docvqa", "data": [{')
    refuses(SRC, tree, "val", "val_v1.0_withQT.json")


def test_missing_ocr_counts_and_size_from_image(tree):
    samples = read(tree)[0]
    stem = Path(samples[0].image).stem
    (tree / "train" / "ocr_results" / f"{stem}.json").unlink()
    after, stats = read(tree)
    on_it = [s for s in after if stem in s.image]
    assert stats["missing_ocr"] == len(on_it) == 2 and stats["invalid"] == 0
    assert all(s.evidence == () and (s.width, s.height) == (760, 980) for s in on_it)
    (tree / "train" / "documents" / f"{stem}.png").unlink()
    after, _ = read(tree)
    assert [s.reason for s in after if isinstance(s, Invalid)] == ["missing_image"] * 2


def test_missing_image_with_ocr_present(tree):
    image = read(tree, "val")[0][0].image
    (tree / image).unlink()
    samples, stats = read(tree, "val")
    assert [s.reason for s in samples[:2]] == ["missing_image"] * 2
    assert stats["invalid"] == 2 and stats["samples"] == 6


def test_corrupt_ocr_file_spoils_only_its_questions(tree):
    stem = Path(read(tree)[0][0].image).stem
    (tree / "train" / "ocr_results" / f"{stem}.json").write_text("{broken")
    samples, stats = read(tree)
    bad = [s for s in samples if isinstance(s, Invalid)]
    assert len(bad) == 2 and all(s.reason == "malformed" for s in bad)
    assert f"train/ocr_results/{stem}.json" in bad[0].detail
    assert stats["samples"] == 6
    (tree / "train" / "ocr_results" / f"{stem}.json").write_text('{"status": "Succeeded"}')
    assert "Read v2 layout" in [s for s in read(tree)[0] if isinstance(s, Invalid)][0].detail


def test_ocr_in_inches_is_scaled_to_pixels(tree):
    samples = read(tree)[0]
    stem = Path(samples[0].image).stem
    path = tree / "train" / "ocr_results" / f"{stem}.json"
    doc = json.loads(path.read_text())
    page = doc["recognitionResults"][0]
    page.update(unit="inch", width=7.6, height=9.8)
    for line in page["lines"]:
        line["boundingBox"] = [v / 100 for v in line["boundingBox"]]
        for word in line["words"]:
            word["boundingBox"] = [v / 100 for v in word["boundingBox"]]
    path.write_text(json.dumps(doc))
    scaled = read(tree)[0][0]
    assert (scaled.width, scaled.height) == (760, 980)
    for a, b in zip(scaled.evidence, samples[0].evidence):
        assert a.label == b.label
        assert np.allclose(a.box.as_list(), b.box.as_list(), atol=1e-6)


def test_explicit_options(tree, tmp_path):
    samples, stats = read(tmp_path, "val", questions=tree / "val" / "val_v1.0_withQT.json",
                          ocr=tree / "val" / "ocr_results", images="docvqa/val/documents")
    assert stats["samples"] == 8 and stats["missing_ocr"] == 0
    assert samples[0].image.startswith("docvqa/val/documents/")
    refuses(SRC, tree, "val", "ocr= folder", ocr=tmp_path / "nowhere")
