"""A teacher outage during ``vlir build`` (issue 13.3): samples whose teacher call failed for
transport reasons are not written as rejects and leave their task unfinished; the build ends
non-zero with "N samples waiting on the teacher; rerun", and the same command, once the server is
back, builds them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vlir.corpus.build import BuildConfig, Job, SamplesWaiting
from vlir.corpus.executors.local import run_build
from vlir.corpus.manifest import task_done
from vlir.sources.registry import get_source
from vlir.testing.openai_server import FakeOpenAIServer, Status, refused_url


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tree") / "textvqa"
    get_source("textvqa").write_sample_tree(root, 6, 0)
    return root


def teacher_config(base_url: str) -> BuildConfig:
    return BuildConfig(annotator="teacher", tasks=2, teacher={
        "base_url": base_url, "model": "fake-teacher", "max_retries": 1, "backoff_s": 0.01,
        "breaker_failures": 3, "concurrency": 2})


def test_a_500_storm_leaves_tasks_unfinished_and_the_rerun_builds_them(tree, tmp_path):
    jobs = [Job("textvqa", "val", str(tree))]
    out = tmp_path / "out"
    with FakeOpenAIServer() as srv:
        srv.script("", Status(500))
        cfg = teacher_config(srv.base_url)
        with pytest.raises(SamplesWaiting, match=r"\d+ sample\(s\) waiting on the teacher.*rerun") as info:
            run_build(cfg, jobs, out, show_progress=False)
        total = sum(1 for _ in get_source("textvqa").iter_samples(tree, "val"))
        assert info.value.waiting == total > 0
        assert not any(task_done(out, "textvqa", "val", t) for t in range(cfg.tasks))
        assert not list(out.rglob("*.parquet")) and not (out / "manifest.json").exists()
        asked = srv.count()
        assert asked <= cfg.tasks * 3 + 2  # the breaker: a few requests per task, not retries per sample

        srv.unscript()  # the outage is over: the same command continues
        manifest = run_build(cfg, jobs, out, show_progress=False)
        assert srv.count() > asked
    split = manifest["splits"]["textvqa/val"]
    assert split["accepted"] + split["rejected"] == total
    assert "teacher_http_error" not in split["rejected_by_reason"]


@pytest.mark.subprocess
def test_cli_says_how_many_wait_and_exits_75(tree, tmp_path):
    r = subprocess.run([sys.executable, "-m", "vlir", "build", "--source", "textvqa", "--root", str(tree),
                        "--split", "val", "--out", str(tmp_path / "out"), "--annotator", "teacher",
                        "--base-url", refused_url(), "--model", "m", "--tasks", "1", "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 75, r.stderr
    assert "waiting on the teacher" in r.stderr and "rerun the same command" in r.stderr
    assert "Traceback" not in r.stderr
