"""recipes/slurm/build_array.sbatch runs as Slurm would run it (the array's environment variables
set by hand, bash instead of sbatch): two array tasks and the merge job end with the same shards
and manifest as one local build, into one shared folder or into one folder per array task."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from vlir.sources.registry import get_source

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "recipes" / "slurm" / "build_array.sbatch"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vsr_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("src") / "vsr"
    get_source("vsr").write_sample_tree(root, 10, 0)
    return root


def sbatch(env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {**os.environ, "VLIR": f"{shlex.quote(sys.executable)} -m vlir", **env}
    return subprocess.run(["bash", str(SCRIPT)], env=full, capture_output=True, text=True, timeout=300,
                          cwd=REPO)


@pytest.mark.parametrize("separate", ["", "1"], ids=["shared-out", "one-folder-per-task"])
def test_the_array_and_its_merge_equal_one_local_build(vsr_root, tmp_path, separate):
    common = {"SOURCE": "vsr", "ROOT": str(vsr_root), "SPLIT": "train,val", "SLURM_CPUS_PER_TASK": "1"}
    ref = tmp_path / "ref"
    r = subprocess.run([sys.executable, "-m", "vlir", "build", "--source", "vsr", "--root", str(vsr_root),
                        "--split", "train,val", "--tasks", "8", "--out", str(ref), "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    for index in ("0", "1"):
        r = sbatch({**common, "OUT": str(out), "SEPARATE": separate, "SLURM_ARRAY_TASK_COUNT": "2",
                    "SLURM_ARRAY_TASK_ID": index})
        assert r.returncode == 0, r.stderr
        # in a shared folder the last array task to finish sees every task done
        if separate or index == "0":
            assert "run `vlir merge` when all are done" in r.stdout
    assert (out / "manifest.json").exists() == (not separate)
    r = sbatch({"OUT": str(out), "SEPARATE": separate, "MERGE": "1"})
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    reference = json.loads((ref / "manifest.json").read_text())
    assert manifest["splits"] == reference["splits"] and manifest["config"] == reference["config"]
    assert manifest["shards"] == reference["shards"]  # paths, rows and sha256 of every shard
    for shard in manifest["shards"]:
        assert (out / shard["path"]).read_bytes() == (ref / shard["path"]).read_bytes()
    assert (tmp_path / "out.parts").is_dir() == bool(separate)


def test_it_refuses_to_run_outside_an_array(tmp_path):
    r = sbatch({"OUT": str(tmp_path / "out"), "ROOT": str(tmp_path), "SLURM_ARRAY_TASK_COUNT": ""})
    assert r.returncode != 0 and "submit with --array" in r.stderr
