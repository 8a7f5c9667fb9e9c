"""The build end to end on the sample trees: deterministic, parallel-invariant, shardable,
resumable after kill -9, and nothing lost on bad input."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from vlir.corpus.build import BuildConfig, Job
from vlir.corpus.executors.local import run_build
from vlir.corpus.manifest import merge
from vlir.corpus.shards import iter_rows, shard_files
from vlir.sources.registry import get_source
from vlir.corpus.validate import validate_output
from vlir.geometry import PixelBudget
from vlir.testing.hold import HOLD_DIR, HOLD_FROM
from tests.conftest import make_image
from tests.test_images import bomb_png

SOURCES = ("textvqa", "docvqa", "gqa", "infographicsvqa", "vsr")


@pytest.fixture(scope="module")
def sample_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    for name in SOURCES:
        get_source(name).write_sample_tree(root / name, 6, 0)
    return root


def jobs_for(root: Path, sources=SOURCES, splits=("train", "val")) -> list[Job]:
    return [Job(s, sp, str(root / s)) for s in sources for sp in splits]


def shard_digests(out: Path) -> dict[str, str]:
    manifest = json.loads((out / "manifest.json").read_text())
    return {s["path"]: s["sha256"] for s in manifest["shards"]}


def all_ids(out: Path) -> Counter:
    ids: Counter = Counter()
    for path in sorted(out.glob("**/*.parquet")):
        for row in iter_rows(path, columns=["id"]):
            ids[row["id"]] += 1
    return ids


def source_ids(root: Path, jobs: list[Job]) -> set[str]:
    return {item.id for job in jobs for item in get_source(job.source).iter_samples(Path(job.root), job.split)}


def test_build_is_valid_complete_and_deterministic(sample_tree, tmp_path):
    jobs = jobs_for(sample_tree)
    cfg = BuildConfig(tasks=3)
    a = run_build(cfg, jobs, tmp_path / "a", show_progress=False)
    b = run_build(cfg, jobs, tmp_path / "b", workers=2, show_progress=False)
    report = validate_output(tmp_path / "a")
    assert report.ok, [str(p) for p in report.problems]
    # nothing lost, nothing twice
    ids = all_ids(tmp_path / "a")
    assert set(ids) == source_ids(sample_tree, jobs) and max(ids.values()) == 1
    # the grounded annotator accepts most of the sample corpus, for every source
    for key, split in a["splits"].items():
        assert split["accepted"] >= 1, (key, split)
    # same inputs + config => byte-identical shards and manifest, whatever the worker count
    assert shard_digests(tmp_path / "a") == shard_digests(tmp_path / "b")
    assert a == b
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()


def test_num_shards_then_merge_equals_single_build(sample_tree, tmp_path):
    jobs = jobs_for(sample_tree, sources=("gqa", "textvqa"))
    cfg = BuildConfig(tasks=4)
    single = run_build(cfg, jobs, tmp_path / "single", show_progress=False)
    assert run_build(cfg, jobs, tmp_path / "m0", num_shards=2, shard_index=0, show_progress=False) is None
    assert run_build(cfg, jobs, tmp_path / "m1", num_shards=2, shard_index=1, show_progress=False) is None
    merged = merge(tmp_path / "m0", [tmp_path / "m1"])
    assert merged == single
    assert validate_output(tmp_path / "m0").ok


def test_rerun_of_complete_build_changes_nothing(sample_tree, tmp_path):
    jobs = jobs_for(sample_tree, sources=("vsr",))
    cfg = BuildConfig(tasks=2)
    first = run_build(cfg, jobs, tmp_path / "o", show_progress=False)
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "o").glob("**/*.parquet")}
    assert run_build(cfg, jobs, tmp_path / "o", show_progress=False) == first
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "o").glob("**/*.parquet")} == mtimes


def test_other_config_on_same_output_is_refused(sample_tree, tmp_path):
    from vlir.corpus.manifest import ManifestError

    jobs = jobs_for(sample_tree, sources=("vsr",), splits=("val",))
    run_build(BuildConfig(tasks=2), jobs, tmp_path / "o", show_progress=False)
    with pytest.raises(ManifestError):
        run_build(BuildConfig(tasks=3), jobs, tmp_path / "o", show_progress=False)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "vlir", *args]


@pytest.mark.subprocess
def test_kill_9_then_resume_is_byte_identical(tmp_path):
    root = tmp_path / "sample"
    subprocess.run(_cli("sample", "--out", str(root), "--per-source", "24", "--source", "gqa",
                        "--source", "textvqa"), check=True, capture_output=True, timeout=300)
    args = ["build", "--source", "gqa", "--root", str(root / "gqa"), "--split", "train,val",
            "--tasks", "8", "--no-progress"]
    ref = tmp_path / "ref"
    subprocess.run(_cli(*args, "--out", str(ref)), check=True, capture_output=True, timeout=300)
    out, hold = tmp_path / "killed", tmp_path / "hold"
    hold.mkdir()
    # tasks 4-7 wait at their start (vlir.testing.hold): the kill always meets a running build
    # (it used to race a sample build whose tasks take milliseconds)
    env = {**os.environ, HOLD_DIR: str(hold), HOLD_FROM: "4"}
    proc = subprocess.Popen(_cli(*args, "--out", str(out)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    while not list(hold.glob("held-*")):
        assert proc.poll() is None, "the build ended before its held task"
        time.sleep(0.005)
    assert len(list(out.glob("**/completions/*"))) == 4  # tasks 0-3 of the split read first
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists()
    r = subprocess.run(_cli(*args, "--out", str(out)), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (out / "manifest.json").read_bytes() == (ref / "manifest.json").read_bytes()
    assert shard_digests(out) == shard_digests(ref)
    assert not list(out.glob("**/*.tmp"))
    assert validate_output(out).ok


# ---------------------------------------------------------------------------------------------
# Bad input: every sample ends in a shard or in rejects, with the right reason
# ---------------------------------------------------------------------------------------------

def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _textvqa_record(qid: int, image_id: str, answer: str = "coffee") -> dict:
    return {"question": "what does the sign say?", "question_id": qid, "image_id": image_id,
            "image_width": 320, "image_height": 240, "answers": [answer] * 10,
            "image_classes": ["sign"], "set_name": "val"}


def test_bad_inputs_are_rejected_with_reasons_and_nothing_is_lost(tmp_path):
    root = tmp_path / "textvqa"
    images = root / "train_images"
    images.mkdir(parents=True)
    good = make_image(320, 240)
    (images / "good.jpg").write_bytes(_jpeg(good))
    (images / "truncated.jpg").write_bytes(_jpeg(make_image(320, 240, seed=3))[:500])
    (images / "notimage.jpg").write_bytes(b"<html>not an image</html>")
    (images / "bomb.jpg").write_bytes(bomb_png())
    (tmp_path / "outside.jpg").write_bytes(_jpeg(good))
    records = [
        _textvqa_record(1, "good"),
        _textvqa_record(2, "missing"),
        _textvqa_record(3, "truncated"),
        _textvqa_record(4, "notimage"),
        _textvqa_record(5, "bomb"),
        _textvqa_record(6, "../../outside"),
        {"question_id": 7, "image_id": "good"},  # malformed: no question
        _textvqa_record(8, "good", answer="sale"),  # its evidence box is inverted and out of bounds
    ]
    (root / "TextVQA_0.5.1_val.json").write_text(json.dumps(
        {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": records}))
    word = {"top_left_x": 0.125, "top_left_y": 0.125, "width": 0.3125, "height": 0.375,
            "rotation": 0.0, "yaw": 0.0, "roll": 0.0, "pitch": 0.0}
    wild = {**word, "top_left_x": 0.9, "width": 0.4}  # runs off the right edge
    ocr = {"data": [{"image_id": "good", "ocr_tokens": ["coffee", "sale"],
                     "ocr_info": [{"word": "coffee", "bounding_box": word},
                                  {"word": "sale", "bounding_box": wild}]}]}
    (root / "TextVQA_Rosetta_OCR_v0.2_val.json").write_text(json.dumps(ocr))
    out = tmp_path / "out"
    manifest = run_build(BuildConfig(tasks=1), [Job("textvqa", "val", str(root))], out, show_progress=False)
    assert validate_output(out).ok
    reasons = {}
    for path in sorted(out.glob("**/*.parquet")):
        for row in iter_rows(path, columns=["id", "status", "reasons"]):
            reasons[row["id"]] = (row["status"], tuple(row["reasons"]))
    assert len(reasons) == len(records)  # nothing lost
    assert reasons["textvqa/val/1"][0] == "accepted"
    assert reasons["textvqa/val/2"] == ("rejected", ("missing_image",))
    assert reasons["textvqa/val/3"] == ("rejected", ("corrupt_image",))
    assert reasons["textvqa/val/4"] == ("rejected", ("not_an_image",))
    assert reasons["textvqa/val/5"] == ("rejected", ("image_too_large",))
    assert reasons["textvqa/val/6"] == ("rejected", ("unsafe_path",))
    assert reasons["textvqa/val/7"][1] == ("malformed",)
    # the out-of-bounds evidence was clipped, not trusted as is
    assert reasons["textvqa/val/8"][0] in ("accepted", "rejected")
    assert manifest["splits"]["textvqa/val"]["rejected"] == 6
    for row in iter_rows(shard_files(out / "textvqa" / "val")[0]):
        for ev in row["evidence"]:
            assert 0 <= ev["box"][0] < ev["box"][2] <= row["width"]


def test_build_clips_evidence_it_is_handed():
    from vlir.corpus.sample_frame import clean_evidence as _clean_evidence
    from vlir.records import Box, Region, Sample

    s = Sample("x/val/1", "x", "val", "a.jpg", 100, 50, "q", ("a",),
               (Region(Box(90, 10, 130, 20), "off the edge", "object"),
                Region(Box(200, 10, 230, 20), "outside", "object"),
                Region(Box(1, 1, 5, 5), "inside", "object")))
    stats = Counter()
    cleaned = _clean_evidence(s, stats)
    assert [r.box for r in cleaned.evidence] == [Box(90, 10, 100, 20), Box(1, 1, 5, 5)]
    assert stats == Counter(evidence_clipped=1, evidence_outside_image=1)


def test_source_counters_are_counted_once_not_once_per_task(sample_tree, tmp_path):
    """The adapter's counters (samples read, missing OCR, missing scene graphs...) are over the
    whole source: they must enter the manifest once, not once per task."""
    jobs = jobs_for(sample_tree, sources=("textvqa",), splits=("val",))
    want: Counter = Counter()
    for job in jobs:
        list(get_source(job.source).iter_samples(Path(job.root), job.split, stats=want))
    manifest = run_build(BuildConfig(tasks=3), jobs, tmp_path / "o", show_progress=False)
    stats = manifest["splits"]["textvqa/val"]["stats"]
    assert stats["samples"] == want["samples"] > 0


@pytest.mark.parametrize("text", [
    "tasks: [1\n",                       # not YAML
    "source_options: 3\n",               # a section that is not a mapping
    "source_options: {textvqa: 3}\n",    # a source's options that are not a mapping
    "checks: {foo: 1}\n",                # unknown check threshold
    "checks: {max_looks: 0}\n",          # out-of-range check threshold
    "grounded: {foo: 1}\n",              # unknown grounded annotator setting
    "grounded: [1]\n",
])
def test_bad_build_config_is_a_value_error_naming_the_file(tmp_path, text):
    """The CLI turns ValueError into exit 2 with one line; anything else escapes as a traceback,
    some of them only later, inside a worker."""
    path = tmp_path / "build.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match="build.yaml"):
        BuildConfig.from_yaml(path)


def test_model_budget_under_grounded_is_refused():
    with pytest.raises(ValueError, match="grounded.model_max_pixels"):
        BuildConfig(grounded={"model_max_pixels": 200704})


def test_budgets_are_knobs_placed_on_the_familys_grid(tmp_path, caplog):
    """One shape ({min_pixels, max_pixels}; null: the family's default), read back on the family's
    grid; the old two-int keys still load, with a deprecation warning, and never beside the new."""
    from vlir.models.registry import default_family, family_for

    assert BuildConfig().model_budget == default_family().view() and BuildConfig().crop_budget == default_family().crop()
    path = tmp_path / "build.yaml"
    path.write_text("model_family: qwen3_vl\ncrop_budget: {min_pixels: 3136, max_pixels: 50176}\n")
    cfg = BuildConfig.from_yaml(path)
    assert cfg.crop_budget == family_for("qwen3_vl").crop(PixelBudget(3136, 50176)) and cfg.crop_budget.factor == 32
    assert cfg.model_budget == family_for("qwen3_vl").view()
    assert BuildConfig.from_dict(cfg.to_dict()) == cfg  # build.json reads back to the same config
    path.write_text("crop_max_pixels: 50176\nmodel_min_pixels: 6272\n")
    with caplog.at_level("WARNING"):
        old = BuildConfig.from_yaml(path)
    assert old.crop_budget == PixelBudget(default_family().crop().min_pixels, 50176)
    assert old.model_budget == PixelBudget(6272, default_family().view().max_pixels)
    assert "crop_min_pixels/crop_max_pixels are deprecated" in caplog.text
    path.write_text("crop_max_pixels: 50176\ncrop_budget: [3136, 50176]\n")
    with pytest.raises(ValueError, match="build.yaml: crop_min_pixels/crop_max_pixels and crop_budget both given"):
        BuildConfig.from_yaml(path)
    path.write_text("crop_budget: {min_pixels: 50176, max_pixels: 3136}\n")
    with pytest.raises(ValueError, match="build.yaml: .*crop_budget must be a pixel budget"):
        BuildConfig.from_yaml(path)


# ---------------------------------------------------------------------------------------------
# Issue 13: duplicate ids, adapters' bad inputs, reject details, layout
# ---------------------------------------------------------------------------------------------

def _textvqa_tree(root: Path, records: list[dict], images: dict[str, bytes]) -> Path:
    (root / "train_images").mkdir(parents=True)
    for name, data in images.items():
        (root / "train_images" / f"{name}.jpg").write_bytes(data)
    (root / "TextVQA_0.5.1_val.json").write_text(json.dumps(
        {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": records}))
    return root


def _rows(out: Path) -> list[dict]:
    return [row for path in sorted(out.glob("**/*.parquet"))
            for row in iter_rows(path, columns=["id", "status", "reasons", "meta", "answers", "reject_detail"])]


@pytest.mark.parametrize("tasks", [1, 3])
def test_duplicate_ids_keep_the_first_and_reject_the_rest(tmp_path, tasks):
    """Item 8: two TextVQA records with one question_id; build exit 0 must imply validate exit 0."""
    root = _textvqa_tree(tmp_path / "textvqa", [
        _textvqa_record(1, "good"), _textvqa_record(2, "good"), _textvqa_record(1, "good", "sale"),
        _textvqa_record(1, "good", "tea")], {"good": _jpeg(make_image(320, 240))})
    out = tmp_path / "out"
    manifest = run_build(BuildConfig(tasks=tasks), [Job("textvqa", "val", str(root))], out, show_progress=False)
    report = validate_output(out)
    assert report.ok, [str(p) for p in report.problems]
    dup = [r for r in _rows(out) if r["id"] == "textvqa/val/1"]
    assert sum(r["reasons"] == ["duplicate_id"] for r in dup) == 2
    first = [r for r in dup if r["reasons"] != ["duplicate_id"]]
    assert len(first) == 1 and first[0]["answers"] == ["coffee"] * 10  # the first in the file
    assert manifest["splits"]["textvqa/val"]["rejected_by_reason"]["duplicate_id"] == 2


def test_adapter_size_probes_and_bad_paths_become_rejects(tmp_path):
    """Item 5 and weak spots: a header-declared 60000x60000 PNG read for its size (no image_width),
    a NUL byte in an image path and a FIFO named .jpg become rejects with reasons; details name
    paths under the source root, never the local absolute path."""
    root = tmp_path / "textvqa"
    no_size = {k: v for k, v in _textvqa_record(1, "bomb").items() if k not in ("image_width", "image_height")}
    records = [no_size, _textvqa_record(2, "nul\x00byte"), _textvqa_record(3, "fifo"),
               _textvqa_record(4, "truncated"), _textvqa_record(5, "good")]
    _textvqa_tree(root, records, {"bomb": bomb_png(60000, 60000), "good": _jpeg(make_image(320, 240)),
                                  "truncated": _jpeg(make_image(320, 240))[:500]})
    os.mkfifo(root / "train_images" / "fifo.jpg")
    out = tmp_path / "out"
    run_build(BuildConfig(tasks=1), [Job("textvqa", "val", str(root))], out, show_progress=False)
    rows = {r["id"]: r for r in _rows(out)}
    assert len(rows) == 5  # nothing lost, the split went on after each bad one
    assert rows["textvqa/val/5"]["reasons"] == ["no_evidence"]  # image fine; no OCR in this tree
    assert rows["textvqa/val/1"]["reasons"] == ["image_too_large"]
    assert rows["textvqa/val/2"]["reasons"] == ["unsafe_path"]
    assert rows["textvqa/val/3"]["reasons"] == ["unreadable_image"]
    assert "not a regular file" in rows["textvqa/val/3"]["reject_detail"]
    assert rows["textvqa/val/4"]["reasons"] == ["corrupt_image"]
    for row in rows.values():
        assert str(tmp_path) not in row["meta"] + (row["reject_detail"] or ""), row
    assert validate_output(out).ok


def test_split_folder_holds_only_accepted_shards(sample_tree, tmp_path):
    """Item 10: load_dataset(data_dir=OUT/SRC/SPLIT) yields exactly the accepted records."""
    from datasets import load_dataset

    out = tmp_path / "o"
    manifest = run_build(BuildConfig(tasks=2), jobs_for(sample_tree, ("gqa",), ("val",)), out, show_progress=False)
    assert sorted(p.name for p in (out / "gqa" / "val").iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    ds = load_dataset("parquet", data_dir=str(out / "gqa" / "val"), split="train")
    assert len(ds) == manifest["splits"]["gqa/val"]["accepted"] and set(ds["status"]) == {"accepted"}
    # a task with no rejects writes no (empty) rejects shard: the folder holds what the manifest lists
    listed = sorted(s["path"] for s in manifest["shards"] if s["kind"] == "rejected")
    assert all(s["rows"] > 0 for s in manifest["shards"])
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("rejects/**/*.parquet")) == listed
    assert not list(out.glob("gqa/**/completions")) and not list(out.glob("gqa/**/stats"))
