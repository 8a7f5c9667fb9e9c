"""``vlir merge`` trusts nothing it reads from another output: shard paths in its task stats must
be the paths that task writes (issue 13, item 2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_output
from vlir.corpus.manifest import ManifestError, merge
from vlir.corpus.validate import validate_output


def _other_with_shard_path(tmp_path: Path, path: str) -> Path:
    other = make_output(tmp_path / "other")
    stats = other / ".vlir/gqa/val/stats/00000.json"
    data = json.loads(stats.read_text())
    data["shards"][0]["path"] = path
    stats.write_text(json.dumps(data))
    return other


@pytest.mark.parametrize("path", ["../victim/important.txt", "/tmp/victim-abs.txt",
                                  "gqa/val/../../../victim/important.txt", "gqa/train/part-00000.parquet",
                                  "gqa/val/part-00007.parquet"])
@pytest.mark.subprocess
def test_merge_refuses_shard_paths_that_are_not_the_tasks_own(tmp_path, path):
    victim = tmp_path / "victim" / "important.txt"
    victim.parent.mkdir()
    victim.write_text("keep me")
    other = _other_with_shard_path(tmp_path, path)
    target = tmp_path / "target"
    target.mkdir()
    before = sorted(p for p in tmp_path.rglob("*") if "target" not in p.parts)
    r = subprocess.run([sys.executable, "-m", "vlir", "merge", str(target), str(other)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "refused" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert victim.read_text() == "keep me"
    assert sorted(p for p in tmp_path.rglob("*") if "target" not in p.parts) == before
    assert not list(target.rglob("*.parquet"))


def test_merge_of_a_clean_output_is_valid(tmp_path):
    other = make_output(tmp_path / "other")
    target = tmp_path / "target"
    merge(target, [other])
    assert validate_output(target).ok
    assert (target / "gqa/val/part-00000.parquet").read_bytes() == (other / "gqa/val/part-00000.parquet").read_bytes()


def test_stats_naming_a_task_it_is_not_is_refused(tmp_path):
    other = make_output(tmp_path / "other")
    shutil.copy(other / ".vlir/gqa/val/stats/00000.json", other / ".vlir/gqa/val/stats/00003.json")
    with pytest.raises(ManifestError, match="lives elsewhere"):
        merge(tmp_path / "target", [other])
