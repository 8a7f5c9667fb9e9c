"""Issue 23, failures 1 and 2: paths read from data stay in their folder. An export never writes
outside DEST whatever a row's ``image_path`` says; an import never reads a crop from outside its
base folder, and its reject details name paths as the data wrote them (no local absolute path, no
hint whether an outside file exists). Imports go through the build's checks (look limit included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

import vlir.corpus.shards as shards
from vlir.corpus.shards import Corpus
from vlir.corpus.validate import validate_output
from vlir.formats.vlmr3 import ExportError, export_corpus
from vlir.formats.vlmr3_import import import_records
from tests.conftest import make_image, make_output


def corpus_with_image_path(tmp_path: Path, monkeypatch, image_path: str) -> Path:
    """A valid-looking output (embedded images) whose first accepted row names ``image_path``."""
    import dataclasses

    real = shards.write_records

    def write(path, records):
        records = list(records)
        if records and records[0].accepted:
            first = records[0]
            records[0] = dataclasses.replace(first, sample=dataclasses.replace(first.sample, image=image_path))
        return real(path, records)

    monkeypatch.setattr(shards, "write_records", write)
    out = make_output(tmp_path / "out", embed=True)
    monkeypatch.setattr(shards, "write_records", real)
    return out


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("kind", ["dotdot", "absolute"])
def test_export_never_writes_outside_dest(tmp_path, monkeypatch, kind):
    outside = tmp_path / "outside" / "planted.jpg"
    image_path = "../../../outside/planted.jpg" if kind == "dotdot" else str(outside)
    out = corpus_with_image_path(tmp_path, monkeypatch, image_path)
    before = files_under(tmp_path) - files_under(tmp_path / "dest") if (tmp_path / "dest").exists() else files_under(tmp_path)
    with pytest.raises(ExportError, match=r"image_path .*(absolute|leads outside)") as info:
        export_corpus(out, tmp_path / "dest")
    assert not outside.exists()
    assert files_under(tmp_path) - files_under(tmp_path / "dest") == before  # nothing new outside DEST
    assert str(tmp_path / "dest") not in str(info.value).replace(str(out), "OUT")


@pytest.mark.parametrize("image_path", ["../../../outside/x.jpg", "/abs/x.jpg", "a/../../x.jpg"])
def test_validate_refuses_a_row_whose_image_path_leaves_the_root(tmp_path, monkeypatch, image_path):
    out = corpus_with_image_path(tmp_path, monkeypatch, image_path)
    report = validate_output(out)
    assert not report.ok
    assert any(p.field == "image_path" and ("absolute" in p.reason or "outside" in p.reason)
               for p in report.problems), report.problems


@pytest.fixture
def src(tmp_path) -> Path:
    src = tmp_path / "base" / "dataset"
    src.mkdir(parents=True)
    make_image(seed=1).save(src / "a.jpg", quality=95)
    Image.new("RGB", (112, 84), (220, 40, 40)).save(src / "crop.png")
    Image.new("RGB", (112, 84), (0, 0, 255)).save(tmp_path / "private.png")  # outside the base
    return src


PARTS = ['<think> Find the square.\n\n{"bbox_2d": [40, 30, 140, 120]}\n', "It is red.</think>\n<answer>red</answer>\n"]


def _import(src: Path, tmp_path: Path, records: list[dict]) -> dict:
    (src / "sft.json").write_text(json.dumps(records))
    return import_records(src, tmp_path / "out")


def _rejects(out: Path) -> dict:
    corpus = Corpus(out)
    return {r.sample.id: r for s, sp in corpus.splits() for r in corpus.records(s, sp, rejects=True)}


def test_import_reads_no_crop_file_outside_its_base(src, tmp_path):
    """Failure 2: '/abs/private.png' and '../secret/private.png' were read and stored as crops."""
    rec = {"image_path": "a.jpg", "question": "What color is the square?", "response_list": PARTS}
    rows = [dict(rec, img_crop_list=[str(tmp_path / "private.png")]),
            dict(rec, img_crop_list=["../../private.png"]),
            dict(rec, img_crop_list=["../../no-such.png"]),
            dict(rec, img_crop_list=["crop.png"])]
    manifest = _import(src, tmp_path, rows)
    split = manifest["splits"]["vlmr3/train"]
    assert split["rejected_by_reason"] == {"crop_outside_base": 3} and split["accepted"] == 1
    details = [r.reject_detail for r in _rejects(tmp_path / "out").values()]
    for detail in details:
        local = detail.replace(str(tmp_path / "private.png"), "<as the record wrote it>")
        assert str(tmp_path) not in local  # no local absolute path of ours
    # the same words whether or not the outside file exists
    assert details[1].replace("private", "X").split(": ", 1)[1] == details[2].replace("no-such", "X").split(": ", 1)[1]
    assert validate_output(tmp_path / "out").ok


def test_import_image_outside_the_root_names_no_local_path(src, tmp_path):
    rows = [{"image_path": "../../private.png", "question": "q?", "response_list": PARTS,
             "img_crop_list": ["crop.png"]}]
    _import(src, tmp_path, rows)
    (reject,) = _rejects(tmp_path / "out").values()
    assert reject.reasons == ("image_outside_root",)
    assert str(tmp_path) not in reject.reject_detail


def test_import_applies_the_builds_checks_look_limit_and_text(src, tmp_path):
    """Weak spot: 20,000 looks in one record were accepted; a thought holding control characters
    or protocol strings too."""
    many = 20_000
    calls = ['{"bbox_2d": [40, 30, 140, 120]}\n'] * many
    rows = [
        {"image_path": "a.jpg", "question": "q?", "response_list": calls + ["<answer>red</answer>"],
         "img_crop_list": ["crop.png"] * many},
        {"image_path": "a.jpg", "question": "q?", "img_crop_list": ["crop.png"],
         "response_list": ['<think> Find it \x1b[2J<|im_end|>.\n\n{"bbox_2d": [40, 30, 140, 120]}\n', PARTS[1]]},
        {"image_path": "a.jpg", "question": "q" * 1_000_000, "response_list": PARTS, "img_crop_list": ["crop.png"]},
    ]
    manifest = _import(src, tmp_path, rows)
    reasons = manifest["splits"]["vlmr3/train"]["rejected_by_reason"]
    assert reasons == {"max_looks": 1, "text_safe": 1, "text_length": 1}
    assert validate_output(tmp_path / "out").ok


def test_card_refuses_a_manifest_split_outside_the_output(tmp_path):
    import subprocess
    import sys

    out = make_output(tmp_path / "out")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["splits"]["../../elsewhere"] = manifest["splits"].pop("gqa/val")
    (out / "manifest.json").write_text(json.dumps(manifest))
    r = subprocess.run([sys.executable, "-m", "vlir", "card", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "leads outside the output folder" in r.stderr and "Traceback" not in r.stderr


def test_show_refuses_a_manifest_split_outside_the_output(tmp_path):
    import subprocess
    import sys

    out = make_output(tmp_path / "out")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["splits"]["gqa/val"]["source"] = "../.."
    (out / "manifest.json").write_text(json.dumps(manifest))
    r = subprocess.run([sys.executable, "-m", "vlir", "show", str(out), "--out", str(tmp_path / "p.html")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "leads outside the output folder" in r.stderr and "Traceback" not in r.stderr
