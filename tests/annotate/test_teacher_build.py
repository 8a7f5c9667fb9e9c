"""``vlir build --annotator teacher`` end to end against the loopback server: a build killed with
SIGKILL mid-run and resumed never asks an answered request again and loses no sample; a rebuild
from the cache is byte-identical and free; the sample corpus built by the teacher validates clean."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlir.testing.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.subprocess


def vlir(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vlir", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def check(*args: str) -> str:
    proc = vlir(*args)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"vlir {' '.join(args)} failed:\n{out}\n{err}"
    return out


def cache_rows(path: Path) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(path, timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0
    finally:
        conn.close()


HANG_GUARD = 900  # only a hang guard: the waits are for states the build reaches, never for time


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def running(proc: subprocess.Popen) -> bool:
    """For a wait predicate: a build that died early fails at once, with its stderr, instead of
    leaving the wait to time out."""
    if proc.poll() is not None:
        out, err = proc.communicate()
        raise AssertionError(f"the build exited early with {proc.returncode}:\n{out}\n{err}")
    return True


def totals(out: Path) -> tuple[int, int]:
    manifest = json.loads((out / "manifest.json").read_text())
    splits = manifest["splits"].values()
    return sum(s["accepted"] for s in splits), sum(s["rejected"] for s in splits)


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.parquet"))}


def test_kill_9_mid_build_then_resume_asks_nothing_twice(tmp_path):
    check("sample", "--out", str(tmp_path / "s"), "--per-source", "20", "--source", "textvqa")
    out = tmp_path / "out"
    cache = out / "cache" / "teacher.sqlite"
    with FakeOpenAIServer(latency_s=0.05) as srv:
        args = ["build", "--source", "textvqa", "--root", str(tmp_path / "s" / "textvqa"),
                "--split", "train,val", "--out", str(out), "--tasks", "2", "--annotator", "teacher",
                "--base-url", srv.base_url, "--model", "fake-teacher", "--concurrency", "4",
                "--no-progress"]
        srv.hold_after(12)
        first = vlir(*args, start_new_session=True)
        try:
            # the server answers 12 requests, then holds by itself: the build cannot finish (it
            # used to race a test-side hold() that a loaded machine could deliver too late)
            wait_for(lambda: running(first) and srv.answered() == 12 and cache_rows(cache) == 12
                     and srv.in_flight == srv.waiting() > 0,
                     HANG_GUARD, "12 answers committed to the cache, the next requests parked")
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(HANG_GUARD)
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
        assert first.returncode == -signal.SIGKILL
        assert not (out / "manifest.json").exists()  # it really died mid-run
        answered_before = srv.answered()
        assert 12 <= answered_before < 40
        srv.release(abandon=True)  # the parked requests' client is dead: never answered

        resumed = vlir(*args)
        stdout, stderr = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, stderr
        counts = srv.answered_keys()
        assert all(n == 1 for n in counts.values()), "a request was answered twice"
        assert len(counts) == 40 == srv.answered()  # one answer per sample, none paid twice
        assert srv.answered() > answered_before
        accepted, rejected = totals(out)
        assert accepted + rejected == 40  # every sample in shards or rejects
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["annotator_stats"]["requests"] >= 40 - answered_before

        # Rebuild elsewhere from the same cache: free, and byte-identical shards.
        config = tmp_path / "cached.yaml"
        config.write_text(f"teacher:\n  cache_path: {cache}\n")
        before = srv.count()
        out2 = tmp_path / "out2"
        check(*[a if a != str(out) else str(out2) for a in args], "--config", str(config))
        assert srv.count() == before
        assert shard_bytes(out2) == shard_bytes(out)
    assert "OK" in check("validate", str(out))


def test_teacher_build_of_the_sample_corpus_validates_clean(tmp_path, monkeypatch):
    check("sample", "--out", str(tmp_path / "s"), "--per-source", "3")
    out = tmp_path / "out"
    with FakeOpenAIServer() as srv:
        env = {**os.environ, "VLIR_TEACHER_KEY": "sk-never-written-0451"}
        proc = vlir("build", "--source", "all", "--root", str(tmp_path / "s"), "--split", "val",
                    "--out", str(out), "--tasks", "1", "--annotator", "teacher",
                    "--base-url", srv.base_url, "--model", "fake-teacher",
                    "--api-key-env", "VLIR_TEACHER_KEY", "--no-progress", env=env)
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        # 3 val questions of each of the six `--source all` sources (the five VQA ones and zoom)
        assert srv.count() == 18 and all(e.authorization.endswith("0451") for e in srv.log)
    validate = vlir("validate", str(out))
    report, err = validate.communicate(timeout=120)
    assert validate.returncode == 0, report + err
    accepted, rejected = totals(out)
    assert accepted + rejected == 18 and accepted >= 12
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["annotator_stats"]["requests"] == 18
    assert manifest["annotator_stats"]["prompt_tokens"] == 18 * 100
    for path in out.rglob("*"):
        if path.is_file():
            assert b"sk-never-written-0451" not in path.read_bytes(), path
    assert "sk-never-written-0451" not in stdout + stderr
