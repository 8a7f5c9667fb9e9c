"""A build output knows what made it (issue 23, failure 7): resuming or merging from another
source root (re-encoded images) is refused in one line naming the source; a copy of the same data
at another path, or a teacher on a new endpoint URL, is the same build."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from vlir.corpus.build import BuildConfig, Job
from vlir.corpus.executors.local import run_build
from vlir.corpus.manifest import ManifestError, merge, write_build_info
from vlir.corpus.validate import validate_output
from vlir.sources.registry import get_source


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A: a TextVQA sample tree; copy: the same bytes elsewhere; reencoded: A's images saved again."""
    base = tmp_path_factory.mktemp("roots")
    a = base / "a"
    get_source("textvqa").write_sample_tree(a, 8, 0)
    copy = base / "copy"
    shutil.copytree(a, copy)
    reencoded = base / "reencoded"
    shutil.copytree(a, reencoded)
    for path in reencoded.rglob("*"):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            with Image.open(path) as im:
                im.load()
                im.convert("RGB").save(path, format="JPEG" if path.suffix.lower() != ".png" else "PNG",
                                       **({"quality": 60} if path.suffix.lower() != ".png" else {"compress_level": 1}))
    return a, copy, reencoded


def _jobs(root: Path) -> list[Job]:
    return [Job("textvqa", "val", str(root))]


def test_resuming_from_another_root_with_reencoded_images_is_refused(roots, tmp_path):
    a, _, reencoded = roots
    out, cfg = tmp_path / "out", BuildConfig(tasks=2)
    assert run_build(cfg, _jobs(a), out, num_shards=2, shard_index=0, show_progress=False) is None
    with pytest.raises(ManifestError) as exc:
        run_build(cfg, _jobs(reencoded), out, show_progress=False)
    assert "inputs.textvqa" in str(exc.value) and "--out" in str(exc.value)
    assert not (out / "manifest.json").exists()  # nothing of B was written
    assert json.loads((out / "build.json").read_text())["roots"]["textvqa"] == str(a.resolve())


def test_resuming_from_a_copy_of_the_same_data_is_the_same_build(roots, tmp_path):
    a, copy, _ = roots
    cfg = BuildConfig(tasks=2)
    run_build(cfg, _jobs(a), tmp_path / "out", num_shards=2, shard_index=0, show_progress=False)
    manifest = run_build(cfg, _jobs(copy), tmp_path / "out", show_progress=False)
    assert manifest is not None and validate_output(tmp_path / "out").ok
    assert manifest["identity"]["inputs"]["textvqa"]["files"] > 0


def test_merging_parts_built_from_different_roots_is_refused(roots, tmp_path):
    a, _, reencoded = roots
    cfg = BuildConfig(tasks=2)
    run_build(cfg, _jobs(a), tmp_path / "m0", num_shards=2, shard_index=0, show_progress=False)
    run_build(cfg, _jobs(reencoded), tmp_path / "m1", num_shards=2, shard_index=1, show_progress=False)
    with pytest.raises(ManifestError) as exc:
        merge(tmp_path / "m0", [tmp_path / "m1"])
    assert "inputs.textvqa" in str(exc.value) and "merge only parts of one build" in str(exc.value)
    assert not list((tmp_path / "m0").glob("textvqa/val/part-00001*"))  # nothing copied


def test_the_teacher_endpoint_and_concurrency_are_not_identity(tmp_path):
    teacher = {"model": "m", "base_url": "http://10.0.0.1:8000/v1", "concurrency": 8}
    write_build_info(tmp_path, {"annotator": "teacher", "teacher": teacher}, {"gqa": str(tmp_path / "src")})
    moved = {**teacher, "base_url": "http://10.0.0.2:8000/v1", "concurrency": 32, "timeout_s": 30}
    write_build_info(tmp_path, {"annotator": "teacher", "teacher": moved, "batch_size": 64},
                     {"gqa": str(tmp_path / "src")})
    assert json.loads((tmp_path / "build.json").read_text())["config"]["teacher"]["base_url"] == moved["base_url"]
    with pytest.raises(ManifestError, match=r"config\.teacher\.model: \"m\" -> \"other\""):
        write_build_info(tmp_path, {"annotator": "teacher", "teacher": {**moved, "model": "other"}},
                         {"gqa": str(tmp_path / "src")})


def test_a_source_not_built_yet_may_join_the_output(tmp_path):
    write_build_info(tmp_path, {"tasks": 2}, {"gqa": str(tmp_path / "gqa")})
    write_build_info(tmp_path, {"tasks": 2}, {"vsr": str(tmp_path / "vsr")})
    info = json.loads((tmp_path / "build.json").read_text())
    assert set(info["identity"]["inputs"]) == set(info["roots"]) == {"gqa", "vsr"}


@pytest.mark.subprocess
def test_cli_refuses_another_root_with_exit_2_and_one_line(roots, tmp_path):
    a, _, reencoded = roots
    out = tmp_path / "out"
    common = ["--source", "textvqa", "--split", "val", "--out", str(out), "--tasks", "2", "--no-progress"]
    first = subprocess.run([sys.executable, "-m", "vlir", "build", "--root", str(a), *common],
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    r = subprocess.run([sys.executable, "-m", "vlir", "build", "--root", str(reencoded), *common],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    line = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(line) == 1 and "inputs.textvqa" in line[0] and "use a new --out" in line[0]
