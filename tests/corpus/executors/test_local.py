"""Issue 13, signals and concurrency: Ctrl-C and SIGTERM stop a multi-worker build at once and the
rerun resumes byte-identical; one build per OUT (lock); a full disk ends in one line, not a
traceback; progress at INFO and ``-v`` in the workers. Each runs the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlir.corpus.validate import validate_output
from vlir.testing.hold import HOLD_DIR, HOLD_FROM

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(900)]  # HANG_GUARD: a hang, not load, fails it

#: A bound that only guards against a hang: nothing in these tests waits for time to pass, each
#: waits for a state (a file, a process's end) that the build under test reaches.
HANG_GUARD = 900


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "vlir", *args]


@pytest.fixture(scope="module")
def gqa_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    subprocess.run(_cli("sample", "--out", str(root), "--per-source", "24", "--source", "gqa"),
                   check=True, capture_output=True, timeout=HANG_GUARD)
    return root / "gqa"


def build_args(root: Path, out: Path, *extra: str) -> list[str]:
    return _cli("build", "--source", "gqa", "--root", str(root), "--split", "train,val", "--tasks", "16",
                "--no-progress", "--out", str(out), *extra)


@pytest.fixture(scope="module")
def reference(gqa_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "out"
    subprocess.run(build_args(gqa_root, out), check=True, capture_output=True, timeout=HANG_GUARD)
    return out


def shard_bytes(out: Path) -> dict[str, bytes]:
    manifest = json.loads((out / "manifest.json").read_text())
    return {s["path"]: (out / s["path"]).read_bytes() for s in manifest["shards"]}


def _wait_for(pred, proc, timeout: float = HANG_GUARD) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():
        if proc.poll() is not None:
            return
        time.sleep(0.005)


def held_build(root: Path, out: Path, hold: Path, *extra: str, hold_from: int = 8) -> subprocess.Popen:
    """The build with every task numbered ``hold_from`` or more held at its start
    (:mod:`vlir.testing.hold`) until ``hold/release`` exists."""
    hold.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, HOLD_DIR: str(hold), HOLD_FROM: str(hold_from)}
    return subprocess.Popen(build_args(root, out, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=env, preexec_fn=default_sigint)


def default_sigint() -> None:
    """In the child: Ctrl-C's default action, as in a terminal. A suite started in the background
    by a non-interactive shell (``make test &``) runs with SIGINT ignored, which every child
    inherits; Python then leaves it ignored and the Ctrl-C case would wait for its hang guard."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_a_two_worker_build_and_the_rerun_resumes_byte_identical(gqa_root, reference,
                                                                                tmp_path, sig):
    """Item 6: with --workers 2 the pool used to run every queued task after Ctrl-C. Tasks 8-15 of
    each split are held at their start, so when both workers hold one the build cannot end: the
    signal always meets running work (it used to race a sample build that can finish in the time
    a loaded machine takes to deliver it). Ctrl-C in a terminal signals the whole foreground group
    (the workers too); SIGTERM goes to the parent alone."""
    out, hold = tmp_path / "out", tmp_path / "hold"
    proc = held_build(gqa_root, out, hold, "--workers", "2")
    _wait_for(lambda: len(list(hold.glob("held-*"))) >= 2, proc)
    assert proc.poll() is None, proc.communicate()[1]
    os.killpg(proc.pid, sig) if sig == signal.SIGINT else os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=HANG_GUARD)
    assert proc.returncode == 128 + sig, err
    assert "interrupted; rerun the same command to resume" in err and "Traceback" not in err
    # tasks 0-7 of the split whose tasks went first are done; the held ones and the queue are not
    assert len(list(out.glob(".vlir/**/completions/*"))) == 8, "queued tasks ran after the signal"
    assert not (out / "manifest.json").exists() and not (out / ".vlir" / "lock").exists()
    assert not list(out.glob("**/*.tmp"))
    r = subprocess.run(_cli("validate", str(out)), capture_output=True, text=True, timeout=HANG_GUARD)
    assert r.returncode == 2 and "an incomplete build (rerun the build command to finish" in r.stderr
    r = subprocess.run(build_args(gqa_root, out, "--workers", "2"), capture_output=True, text=True,
                       timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    assert (out / "manifest.json").read_bytes() == (reference / "manifest.json").read_bytes()
    assert shard_bytes(out) == shard_bytes(reference)
    assert validate_output(out).ok


def test_second_build_into_the_same_out_fails_fast(gqa_root, tmp_path):
    """Item 7: a lock with the holder's pid and host; the second build exits 2 in one line. The
    first build's tasks are held, so it still holds the lock when the second one starts."""
    out, hold = tmp_path / "out", tmp_path / "hold"
    first = held_build(gqa_root, out, hold, hold_from=0)
    _wait_for(lambda: list(hold.glob("held-*")), first)
    holder = json.loads((out / ".vlir" / "lock").read_text())
    assert holder == {"pid": first.pid, "host": socket.gethostname()}
    second = subprocess.run(build_args(gqa_root, out), capture_output=True, text=True, timeout=HANG_GUARD)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"vlir: error: {out} is being built by pid {first.pid} on {socket.gethostname()}; wait for it to "
        f"finish, or delete {out / '.vlir' / 'lock'} if that build is gone"]
    (hold / "release").touch()
    _, err = first.communicate(timeout=HANG_GUARD)
    assert first.returncode == 0, err
    assert not (out / ".vlir" / "lock").exists() and validate_output(out).ok


def test_stale_lock_of_a_dead_process_is_taken_over(gqa_root, tmp_path):
    out = tmp_path / "out"
    dead = subprocess.Popen(["true"])
    dead.wait()
    (out / ".vlir").mkdir(parents=True)
    (out / ".vlir" / "lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    r = subprocess.run(build_args(gqa_root, out), capture_output=True, text=True, timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    assert not (out / ".vlir" / "lock").exists()


def _limit_file_size() -> None:  # in the child: writes past 30 kB fail (EFBIG), as a full disk would
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))


def test_disk_full_is_one_line_and_the_rerun_leaves_no_temp_files(gqa_root, reference, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(build_args(gqa_root, out, "--workers", "2"), capture_output=True, text=True,
                       timeout=HANG_GUARD, preexec_fn=_limit_file_size)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if " INFO " not in ln]
    assert len(lines) == 1 and lines[0].startswith(f"vlir: error: {out}: "), r.stderr
    assert "MB free" in lines[0] and "rerun the same command" in lines[0]
    assert "Exception ignored" not in r.stderr and "Traceback" not in r.stderr
    assert not list(out.glob("**/*.tmp")) and not (out / ".vlir" / "lock").exists()
    r = subprocess.run(build_args(gqa_root, out), capture_output=True, text=True, timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    assert shard_bytes(out) == shard_bytes(reference) and not list(out.glob("**/*.tmp"))


def test_progress_is_logged_and_verbose_reaches_the_workers(gqa_root, tmp_path):
    """Deliver 6: INFO lines per finished task with records/s; -v shows the workers' DEBUG lines."""
    r = subprocess.run(build_args(gqa_root, tmp_path / "a", "--workers", "2"), capture_output=True,
                       text=True, timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    assert "32/32 task(s)" in r.stderr and "records/s" in r.stderr
    assert "DEBUG" not in r.stderr
    args = build_args(gqa_root, tmp_path / "b", "--workers", "2")
    r = subprocess.run([*args[:3], "-v", *args[3:]], capture_output=True, text=True, timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    worker_lines = [ln for ln in r.stderr.splitlines() if "DEBUG vlir.corpus.build: task gqa/" in ln]
    assert len(worker_lines) == 32  # with --workers 2 every task runs in a worker process


def test_no_space_left_names_out_and_cleans_up(tmp_path, monkeypatch):
    """ENOSPC mid-shard (in-process, one worker): DiskFull naming OUT, no temp file, lock released."""
    import errno

    from vlir.corpus.build import BuildConfig, Job
    from vlir.corpus.executors.local import DiskFull, run_build
    from vlir.corpus.shards import ShardWriter
    from vlir.sources.registry import get_source

    get_source("vsr").write_sample_tree(tmp_path / "vsr", 4, 0)

    def full(self, record):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ShardWriter, "write", full)
    out = tmp_path / "out"
    with pytest.raises(DiskFull, match=rf"^{out}: disk full \(No space left on device\); [\d.]+ MB free"):
        run_build(BuildConfig(tasks=2), [Job("vsr", "val", str(tmp_path / "vsr"))], out, show_progress=False)
    assert not list(out.glob("**/*.tmp")) and not (out / ".vlir" / "lock").exists()


def test_num_shards_machines_share_a_folder_each_with_its_own_lock(tmp_path):
    """--num-shards machines may build into one shared folder: each holds .vlir/lock-I-of-N, and
    clears only its own tasks' temp files."""
    from vlir.corpus.build import BuildConfig, Job
    from vlir.corpus.executors.local import run_build
    from vlir.corpus.lock import OutputLocked
    from vlir.sources.registry import get_source

    get_source("vsr").write_sample_tree(tmp_path / "vsr", 4, 0)
    jobs, out = [Job("vsr", "val", str(tmp_path / "vsr"))], tmp_path / "out"
    (out / ".vlir" / "tmp").mkdir(parents=True)
    other_machine_tmp = out / ".vlir" / "tmp" / "abc-part-00001.parquet.tmp"
    other_machine_tmp.write_bytes(b"being written")
    (out / ".vlir" / "lock-1-of-2").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    assert run_build(BuildConfig(tasks=2), jobs, out, num_shards=2, shard_index=0, show_progress=False) is None
    assert other_machine_tmp.exists()
    with pytest.raises(OutputLocked, match="lock-1-of-2"):
        run_build(BuildConfig(tasks=2), jobs, out, num_shards=2, shard_index=1, show_progress=False)
