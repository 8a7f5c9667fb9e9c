"""The corpus verbs a user checks a download with: sources, sample, read, build, merge, card, show."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess  # runs the CLI in child interpreters (make test-fast skips)

SOURCES = ("docvqa", "gqa", "infographicsvqa", "m3cot", "textvqa", "vsr", "zoom")


def vlir(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "vlir", *args], capture_output=True, text=True, timeout=300)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tree")
    vlir("sample", "--out", str(out), "--per-source", "4", "--seed", "1")
    return out


def test_sources_lists_every_adapter_with_its_files():
    out = vlir("sources").stdout
    for name in SOURCES:
        assert f"\n{name}: " in "\n" + out
    assert "TextVQA_0.5.1_{split}.json" in out and "files:" in out


def test_sample_writes_every_source_deterministically(tree, tmp_path):
    assert sorted(p.name for p in tree.iterdir()) == sorted(SOURCES)
    vlir("sample", "--out", str(tmp_path / "again"), "--per-source", "4", "--seed", "1")
    files = sorted(p.relative_to(tree) for p in tree.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file())
    for rel in files:
        assert (tree / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes(), rel


@pytest.mark.parametrize("source", ["textvqa", "docvqa", "gqa", "infographicsvqa", "vsr", "zoom"])
def test_read_prints_json_lines_with_the_documented_fields(tree, source):
    r = vlir("read", "--source", source, "--root", str(tree / source), "--split", "train", "--limit", "3")
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(lines) == 3
    for s in lines:
        assert set(s) >= {"id", "source", "split", "image", "width", "height", "question", "answers",
                          "evidence", "meta"}
        assert s["source"] == source and not Path(s["image"]).is_absolute()
        for ev in s["evidence"]:
            x1, y1, x2, y2 = ev["box"]
            assert 0 <= x1 < x2 <= s["width"] and 0 <= y1 < y2 <= s["height"]
            assert ev["kind"] in ("ocr_word", "ocr_line", "object")


def test_read_reports_rejects_on_stderr_and_bad_files_exit_2(tree, tmp_path):
    root = tmp_path / "textvqa"
    root.mkdir()
    (root / "TextVQA_0.5.1_val.json").write_text(json.dumps({"data": [
        {"question_id": 1, "image_id": "a"}]}))  # malformed: no question
    r = vlir("read", "--source", "textvqa", "--root", str(root), "--split", "val")
    assert r.stdout == ""
    rejects = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    assert rejects and rejects[0]["id"].startswith("textvqa/val/") and rejects[0]["reason"] == "malformed"
    (root / "TextVQA_0.5.1_val.json").write_text("{not json")
    r = vlir("read", "--source", "textvqa", "--root", str(root), "--split", "val", ok=False)
    assert r.returncode == 2 and "TextVQA_0.5.1_val.json" in r.stderr and "Traceback" not in r.stderr
    r = vlir("read", "--source", "nope", "--root", str(root), "--split", "val", ok=False)
    assert r.returncode == 2 and "unknown source" in r.stderr


def test_build_validate_card_show_and_merge_from_the_command_line(tree, tmp_path):
    args = ["build", "--source", "all", "--root", str(tree), "--split", "val", "--tasks", "2", "--no-progress"]
    vlir(*args, "--out", str(tmp_path / "one"))
    assert "OK" in vlir("validate", str(tmp_path / "one")).stdout
    vlir(*args, "--out", str(tmp_path / "a"), "--num-shards", "2", "--shard-index", "0")
    vlir(*args, "--out", str(tmp_path / "b"), "--num-shards", "2", "--shard-index", "1")
    assert not (tmp_path / "a" / "manifest.json").exists()
    vlir("merge", str(tmp_path / "a"), str(tmp_path / "b"))
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "one" / "manifest.json").read_bytes()
    vlir("card", str(tmp_path / "one"))
    assert (tmp_path / "one" / "README.md").read_text().startswith("---\n")
    r = vlir("show", str(tmp_path / "one"), "--n", "7", "--out", str(tmp_path / "b.html"))
    assert "(7 records)" in r.stdout and (tmp_path / "b.html").stat().st_size > 1000
    r = vlir("show", str(tmp_path / "one"), "--source", "nope", "--out", str(tmp_path / "n.html"), ok=False)
    assert r.returncode == 2 and "--source nope" in r.stderr
    bad = vlir("build", "--source", "gqa", "--root", str(tree / "gqa"), "--split", "nosuch",
               "--out", str(tmp_path / "x"), ok=False)
    assert bad.returncode == 2 and "unknown split" in bad.stderr


def test_build_with_a_broken_config_exits_2_naming_it(tree, tmp_path):
    config = tmp_path / "build.yaml"
    config.write_text("checks: {foo: 1}\n")
    r = vlir("build", "--source", "textvqa", "--root", str(tree / "textvqa"), "--split", "val",
             "--out", str(tmp_path / "o"), "--config", str(config), "--no-progress", ok=False)
    assert r.returncode == 2 and "build.yaml" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------------------------
# Issue 13: one bad input never aborts a split; bad --split / --out are one line, exit 2
# ---------------------------------------------------------------------------------------------

def _textvqa(root: Path, records: list[dict], ocr: str | None = None) -> Path:
    from tests.conftest import make_image

    (root / "train_images").mkdir(parents=True)
    make_image(320, 240).save(root / "train_images" / "good.jpg")
    (root / "TextVQA_0.5.1_val.json").write_text(json.dumps({"data": records}))
    if ocr is not None:
        (root / "TextVQA_Rosetta_OCR_v0.2_val.json").write_text(ocr)
    return root


def _rec(qid: int, image_id: str) -> dict:
    return {"question": "what does it say?", "question_id": qid, "image_id": image_id,
            "answers": ["coffee"] * 10, "set_name": "val"}


def test_read_goes_on_after_a_nul_byte_path_and_a_nan_in_the_ocr(tmp_path):
    ocr = ('{"data": [{"image_id": "good", "ocr_tokens": ["coffee", "tea"], "ocr_info": ['
           '{"word": "coffee", "bounding_box": {"top_left_x": NaN, "top_left_y": 0.1, "width": 0.2, '
           '"height": 0.1, "rotation": 0}}, {"word": "tea", "bounding_box": {"top_left_x": 0.5, '
           '"top_left_y": 0.1, "width": 0.2, "height": 0.1, "rotation": 0}}]}]}')
    root = _textvqa(tmp_path / "textvqa", [_rec(1, "bad\x00name"), _rec(2, "good")], ocr)
    r = vlir("read", "--source", "textvqa", "--root", str(root), "--split", "val")
    assert "Traceback" not in r.stderr
    rejects = [json.loads(ln) for ln in r.stderr.splitlines() if ln.startswith("{")]
    assert [(x["id"], x["reason"]) for x in rejects] == [("textvqa/val/1", "unsafe_path")]
    assert "NUL byte" in rejects[0]["detail"]
    (good,) = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [e["label"] for e in good["evidence"]] == ["tea"]  # the NaN box refused, the rest read


@pytest.mark.parametrize("args, message", [
    (["--split", ""], "--split '' names no split"),
    (["--split", " , "], "names no split"),
    (["--out", "/etc/passwd/x"], "--out /etc/passwd/x: /etc/passwd is not a directory"),
])
def test_bad_split_and_out_are_one_line_exit_2(tree, tmp_path, args, message):
    base = {"--split": "val", "--out": str(tmp_path / "o")}
    base.update(dict(zip(args[::2], args[1::2])))
    r = vlir("build", "--source", "gqa", "--root", str(tree / "gqa"), "--no-progress",
             *[x for kv in base.items() for x in kv], ok=False)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "o" / "manifest.json").exists()


@pytest.mark.parametrize("verb", [["card"], ["show", "--out", "page.html"], ["validate"]])
def test_verbs_tell_an_interrupted_build_from_a_foreign_folder(vlir_output, tmp_path, verb):
    (vlir_output / "manifest.json").unlink()
    r = vlir(verb[0], str(vlir_output), *verb[1:], ok=False)
    assert r.returncode == 2 and "an incomplete build (rerun the build command to finish" in r.stderr, r.stderr
    (tmp_path / "foreign").mkdir()
    r = vlir(verb[0], str(tmp_path / "foreign"), *verb[1:], ok=False)
    assert r.returncode == 2 and "not a vlir output" in r.stderr, r.stderr
