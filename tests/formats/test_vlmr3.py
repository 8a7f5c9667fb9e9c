"""``export_corpus``: the authors' SFT file holds vlir's chat rendering, the stored crops and the
original images, in the shape their ``data_qwen.py`` reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlir import geometry, images
from vlir.formats.vlmr3 import (AUTHORS_SFT_BUDGET, DATA_FILE, EXTRA_KEYS, INFO_FILE, ExportConfig,
                                ExportError, export_corpus)
from vlir.geometry import PixelBudget
from vlir.protocol import parse_response
from vlir.records import Crop
from vlir.corpus.shards import Corpus
from vlir.models.chat import ChatConfig, assistant_segments


def _records(out: Path) -> dict:
    corpus = Corpus(out)
    return {r.sample.id: r for src, sp in corpus.splits() for r in corpus.records(src, sp)}


def _load(dest: Path) -> list[dict]:
    with open(dest / DATA_FILE) as fh:  # exactly how their LazySupervisedDataset reads it
        data = json.load(fh)
    assert isinstance(data, list)
    return data


def test_records_hold_vlir_rendering_and_stored_crops(small_corpus, tmp_path):
    dest, ticks = tmp_path / "dest", []
    summary = export_corpus(small_corpus, dest, progress=lambda: ticks.append(1))
    data, originals = _load(dest), _records(small_corpus)
    assert summary["records"] == len(data) == len(originals) == len(ticks) == 6
    assert json.loads((dest / INFO_FILE).read_text())["records"] == 6
    for row in data:
        rec = originals[row["id"]]
        assert set(row) == {"image_path", "question", "response_list", "img_crop_list", *EXTRA_KEYS}
        assert row["question"] == rec.sample.question and row["answers"] == list(rec.sample.answers)
        segments = assistant_segments(rec, ChatConfig(model_budget=AUTHORS_SFT_BUDGET))
        assert row["response_list"] == [s for s in segments if isinstance(s, str)]
        # their loader puts crop i after part i: one part more than crops, crops in look order
        assert len(row["response_list"]) == len(row["img_crop_list"]) + 1 == len(rec.chain.looks) + 1
        stored = [s.png for s in segments if isinstance(s, Crop)]
        assert [(dest / p).read_bytes() for p in row["img_crop_list"]] == stored
        # the original image is copied byte for byte
        assert images.sha256_hex((dest / row["image_path"]).read_bytes()) == rec.image_sha256


def test_boxes_are_model_pixels_of_the_budget_given(small_corpus, tmp_path):
    small = PixelBudget(3136, 200 * 200)
    export_corpus(small_corpus, tmp_path / "a")
    export_corpus(small_corpus, tmp_path / "b", ExportConfig(budget=small))
    default_rows = {r["id"]: r for r in _load(tmp_path / "a")}
    small_rows = {r["id"]: r for r in _load(tmp_path / "b")}
    originals = _records(small_corpus)
    differ = 0
    for rid, rec in originals.items():
        w, h = rec.sample.width, rec.sample.height
        for budget, rows in ((AUTHORS_SFT_BUDGET, default_rows), (small, small_rows)):
            calls = parse_response("".join(rows[rid]["response_list"])).calls
            assert [list(c) for c in calls] == [geometry.to_model(look.box, w, h, budget) for look in rec.chain.looks]
        differ += default_rows[rid]["response_list"] != small_rows[rid]["response_list"]
    assert differ == len(originals)


def test_reference_mode_points_at_the_corpus_images(small_corpus, tmp_path):
    dest = tmp_path / "dest"
    export_corpus(small_corpus, dest, ExportConfig(images="reference"))
    assert not (dest / "images").exists()
    root = Corpus(small_corpus).root("gqa")
    for row in _load(dest):
        assert not Path(row["image_path"]).is_absolute()
        target = (dest / row["image_path"]).resolve()
        assert target == (root / "images" / Path(row["image_path"]).name).resolve()
        assert target.is_file()


def test_embedded_images_are_written_even_in_reference_mode(tmp_path):
    from tests.conftest import make_output

    out = make_output(tmp_path / "out", n=2, embed=True, n_rejects=0)
    dest = tmp_path / "dest"
    export_corpus(out, dest, ExportConfig(images="reference"))
    originals = _records(out)
    for row in _load(dest):
        assert (dest / row["image_path"]).read_bytes() == originals[row["id"]].image_bytes


def test_path_prefix_and_split_selection(built_corpus, tmp_path):
    dest = tmp_path / "dest"
    summary = export_corpus(built_corpus, dest, ExportConfig(path_prefix="dataset/vlir", splits=("train",)))
    corpus = Corpus(built_corpus)
    train = [(s, sp) for s, sp in corpus.splits() if sp == "train"]
    assert summary["splits"] == [f"{s}/{sp}" for s, sp in train] and len(train) == 3
    rows = _load(dest)
    assert {r["corpus_split"] for r in rows} == {"train"} and "random/train" in {r["split"] for r in rows}
    assert len(rows) == sum(1 for s, sp in train for _ in corpus.records(s, sp))
    for row in rows:
        for p in [row["image_path"], *row["img_crop_list"]]:
            assert p.startswith("dataset/vlir/") and (dest / p.removeprefix("dataset/vlir/")).is_file()
    only = export_corpus(built_corpus, tmp_path / "gqa", ExportConfig(splits=("gqa/val",)))
    assert only["splits"] == ["gqa/val"]


def test_bad_requests_are_export_errors(small_corpus, taken_dest, tmp_path):
    with pytest.raises(ExportError, match="not an empty folder"):
        export_corpus(small_corpus, taken_dest)
    with pytest.raises(ExportError, match="no such split.*gqa/val"):
        export_corpus(small_corpus, tmp_path / "d1", ExportConfig(splits=("test",)))
    with pytest.raises(ExportError, match="not a vlir output"):
        export_corpus(tmp_path / "nothing", tmp_path / "d2")
    with pytest.raises(ValueError, match="images must be one of"):
        ExportConfig(images="link")


def test_an_original_that_changed_since_the_build_is_refused(tmp_path):
    from tests.conftest import make_output

    out = make_output(tmp_path / "out", n=2, n_rejects=0)
    original = Corpus(out).root("gqa") / "images" / "1.jpg"
    original.write_bytes(original.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ExportError, match="gqa/val/1: images/1.jpg differs from the sha256"):
        export_corpus(out, tmp_path / "dest")
    assert not (tmp_path / "dest" / DATA_FILE).exists()
