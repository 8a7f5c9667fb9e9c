"""TextVQA adapter: the sample tree it writes, and the bad inputs real downloads contain."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from vlir.records import Invalid, Sample
from vlir.sources.textvqa import TextVQA
from tests.sources.conftest import read_all, edit, refuses

SRC = TextVQA()


def read(root, split="train", **options):
    return read_all(SRC, root, split, **options)


def test_registry_contract():
    assert SRC.name == "textvqa" and SRC.splits == ("train", "val", "test")
    assert any("TextVQA_Rosetta_OCR_v0.2_{split}.json" in f for f in SRC.expected_files)
    assert SRC.homepage and SRC.license


def test_official_layout_and_keys(pristine):
    names = sorted(p.name for p in pristine.iterdir())
    assert names == ["TextVQA_0.5.1_train.json", "TextVQA_0.5.1_val.json",
                     "TextVQA_Rosetta_OCR_v0.2_train.json", "TextVQA_Rosetta_OCR_v0.2_val.json",
                     "train_images"]
    doc = json.loads((pristine / "TextVQA_0.5.1_val.json").read_text())
    assert list(doc) == ["dataset_type", "dataset_name", "dataset_version", "data"]
    rec = doc["data"][0]
    assert set(rec) == {"question", "image_id", "image_classes", "flickr_original_url",
                        "flickr_300k_url", "image_width", "image_height", "answers",
                        "question_tokens", "question_id", "set_name"}
    assert isinstance(rec["question_id"], int) and len(rec["answers"]) == 10
    ocr = json.loads((pristine / "TextVQA_Rosetta_OCR_v0.2_val.json").read_text())
    bb = ocr["data"][0]["ocr_info"][0]["bounding_box"]
    assert set(bb) == {"top_left_x", "top_left_y", "width", "height", "rotation", "yaw", "roll", "pitch"}
    assert all(0 <= bb[k] <= 1 for k in ("top_left_x", "top_left_y", "width", "height"))


@pytest.mark.parametrize("split", ["train", "val"])
def test_reads_the_tree(pristine, split):
    samples, stats = read(pristine, split)
    assert len(samples) == 8 and all(isinstance(s, Sample) for s in samples)
    assert stats["samples"] == 8 and stats["invalid"] == 0 and stats["missing_ocr"] == 0
    for s in samples:
        assert s.id.startswith(f"textvqa/{split}/") and s.split == split
        assert s.image.startswith("train_images/") and s.image.endswith(".jpg")
        with Image.open(pristine / s.image) as img:
            assert img.size == (s.width, s.height)
        assert len(s.answers) == 10 and s.meta["set_name"] == split
        for r in s.evidence:
            assert r.kind == "ocr_word"
            assert 0 <= r.box.x1 < r.box.x2 <= s.width and 0 <= r.box.y1 < r.box.y2 <= s.height


def test_answers_are_text_in_the_image(pristine):
    samples = [s for split in ("train", "val") for s in read(pristine, split)[0]]
    grounded = 0
    for s in samples:
        answer = Counter(s.answers).most_common(1)[0][0]
        words = {r.label.lower() for r in s.evidence}
        if s.evidence:
            assert set(answer.split()) <= words, (s.id, answer, words)
            grounded += 1
    assert grounded >= 12  # all but the image with empty OCR
    assert any(len(Counter(s.answers).most_common(1)[0][0].split()) > 1 for s in samples)


def test_quirks_grayscale_and_empty_ocr(pristine):
    modes = {Image.open(p).mode for p in (pristine / "train_images").iterdir()}
    assert modes == {"L", "RGB"}
    val, _ = read(pristine, "val")
    assert any(not s.evidence for s in val)
    ocr = json.loads((pristine / "TextVQA_Rosetta_OCR_v0.2_val.json").read_text())
    assert any(e["ocr_tokens"] == [] and e["ocr_info"] == [] for e in ocr["data"])


def test_deterministic(pristine, tmp_path):
    SRC.write_sample_tree(tmp_path / "again", 8, seed=0)
    for p in pristine.rglob("*"):
        if p.is_file():
            assert (tmp_path / "again" / p.relative_to(pristine)).read_bytes() == p.read_bytes(), p
    SRC.write_sample_tree(tmp_path / "other", 8, seed=1)
    assert (tmp_path / "other" / "TextVQA_0.5.1_train.json").read_bytes() != \
        (pristine / "TextVQA_0.5.1_train.json").read_bytes()


def test_small_per_split(tmp_path):
    SRC.write_sample_tree(tmp_path, 1, seed=3)
    assert [len(read(tmp_path, s)[0]) for s in ("train", "val")] == [1, 1]


def test_malformed_records_are_invalid_and_the_rest_goes_on(tree):
    def change(doc):
        del doc["data"][1]["question"]
        doc["data"][2]["answers"] = "nokia"
        doc["data"][3]["image_width"] = "wide"
        doc["data"][4] = ["not", "a", "record"]
    edit(tree / "TextVQA_0.5.1_train.json", change)
    samples, stats = read(tree)
    bad = [s for s in samples if isinstance(s, Invalid)]
    assert [s.reason for s in bad] == ["malformed"] * 4
    assert bad[0].id == "textvqa/train/1" and bad[3].id == "textvqa/train/#4"
    assert "TextVQA_0.5.1_train.json: record 1: missing field 'question'" in bad[0].detail
    assert "'answers'" in bad[1].detail and "'image_width'" in bad[2].detail
    assert stats["invalid"] == 4 and stats["samples"] == 4


def test_unsafe_image_path(tree):
    edit(tree / "TextVQA_0.5.1_train.json",
         lambda d: d["data"][0].update(image_id="../../../etc/passwd"))
    samples, _ = read(tree)
    assert isinstance(samples[0], Invalid) and samples[0].reason == "unsafe_path"
    assert all(isinstance(s, Sample) for s in samples[1:])


@pytest.mark.parametrize("content", ['{"data": [{"question": "a"', "not json", '[1, 2]', '{"info": 1}'])
def test_unparsable_question_file_names_the_file(tree, content):
    (tree / "TextVQA_0.5.1_train.json").write_text(content)
    refuses(SRC, tree, "train", "TextVQA_0.5.1_train.json")


def test_unparsable_ocr_file_names_the_file(tree):
    (tree / "TextVQA_Rosetta_OCR_v0.2_train.json").write_text('{"data": [')
    refuses(SRC, tree, "train", "TextVQA_Rosetta_OCR_v0.2_train.json")


def test_missing_ocr_counts(tree):
    first = json.loads((tree / "TextVQA_0.5.1_train.json").read_text())["data"][0]["image_id"]
    edit(tree / "TextVQA_Rosetta_OCR_v0.2_train.json",
         lambda d: d.update(data=[e for e in d["data"] if e["image_id"] != first]))
    samples, stats = read(tree)
    on_first = [s for s in samples if s.meta["image_id"] == first]
    assert on_first and all(s.evidence == () for s in on_first)
    assert stats["missing_ocr"] == len(on_first) and stats["invalid"] == 0
    (tree / "TextVQA_Rosetta_OCR_v0.2_train.json").unlink()
    samples, stats = read(tree)
    assert stats["missing_ocr"] == 8 and all(s.evidence == () for s in samples)


def test_test_split_has_no_answers_and_size_from_header(tree):
    doc = json.loads((tree / "TextVQA_0.5.1_val.json").read_text())
    for rec in doc["data"]:
        del rec["answers"], rec["image_width"], rec["image_height"]
    (tree / "TextVQA_0.5.1_test.json").write_text(json.dumps(doc))
    shutil.copytree(tree / "train_images", tree / "test_images")
    samples, stats = read(tree, "test")
    assert stats["samples"] == 8 and stats["missing_ocr"] == 8
    for s in samples:
        assert s.answers == () and s.image.startswith("test_images/")
        assert Image.open(tree / s.image).size == (s.width, s.height)
    shutil.rmtree(tree / "test_images")
    samples, _ = read(tree, "test")
    assert {s.reason for s in samples} == {"missing_image"}


def test_answers_required_outside_test(tree):
    edit(tree / "TextVQA_0.5.1_train.json", lambda d: d["data"][0].pop("answers"))
    samples, _ = read(tree)
    assert samples[0].reason == "malformed" and "'answers'" in samples[0].detail


def test_files_one_folder_down_and_explicit_options(tree, tmp_path):
    nested = tmp_path / "nested"
    (nested / "annotations").mkdir(parents=True)
    for name in ("TextVQA_0.5.1_val.json", "TextVQA_Rosetta_OCR_v0.2_val.json"):
        shutil.copy(tree / name, nested / "annotations" / name)
    shutil.copytree(tree / "train_images", nested / "images" / "train_images")
    samples, stats = read(nested, "val")
    assert stats["samples"] == 8 and samples[0].image.startswith("images/train_images/")
    samples, stats = read(tmp_path / "nested", "val", questions=tree / "TextVQA_0.5.1_val.json",
                          ocr=tree / "TextVQA_Rosetta_OCR_v0.2_val.json", images="images/train_images")
    assert stats["samples"] == 8 and stats["missing_ocr"] == 0


def test_bad_options_and_splits(tree, tmp_path):
    refuses(SRC, tree, "val", "unknown option", question="x")
    refuses(SRC, tree, "dev", "unknown split")
    refuses(SRC, tree, "val", "inside the source root", images=tmp_path)
    refuses(SRC, tree, "test", "TextVQA_0.5.1_test.json")


def test_missing_image_is_invalid_even_with_sizes_in_the_record(tree):
    samples = read(tree)[0]
    (tree / samples[0].image).unlink()
    after, stats = read(tree)
    gone = [s for s in after if isinstance(s, Invalid)]
    assert len(gone) == 2 and {s.reason for s in gone} == {"missing_image"}
    assert samples[0].image in gone[0].detail
    assert stats["invalid_missing_image"] == 2 and stats["samples"] == 6
