"""``vlir build --executor ray`` (issue 16.1): the same tasks, markers and manifest as the local
executor, run as Ray tasks on a local Ray instance (one for this module, 2 CPUs). A Ray build is
byte-identical to a local one; a worker SIGKILLed mid-task is retried by Ray (or, past the
retries, the rerun finishes) and the output is the local build's; a task's own error comes back as
itself; ``import vlir`` and the local build never import ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.corpus.executors.test_local import default_sigint

from vlir.corpus.build import BuildConfig, Job
from vlir.corpus.executors.local import run_build
from vlir.sources.registry import get_source
from vlir.testing.openai_server import FakeOpenAIServer, Status

#: Only a hang guard: each wait below is for a state the build reaches (a held teacher request, a
#: process's end), never for time to pass, so a loaded machine only makes it slower.
HANG_GUARD = 900
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2 * HANG_GUARD)]


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray instance for the module; its GCS address lets a CLI subprocess join it."""
    ray = pytest.importorskip("ray", reason="the ray extra (make test installs it)")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 << 20,
             logging_level="WARNING", log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def gqa_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gqa") / "gqa"
    get_source("gqa").write_sample_tree(root, 12, 0)
    return root


@pytest.fixture(scope="module")
def textvqa_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("textvqa") / "textvqa"
    get_source("textvqa").write_sample_tree(root, 8, 0)
    return root


def tree_bytes(out: Path) -> dict[str, bytes]:
    """Every file of an output (the teacher cache aside), by relative path."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and "cache" not in p.relative_to(out).parts}


def shard_bytes(out: Path) -> dict[str, bytes]:
    manifest = json.loads((out / "manifest.json").read_text())
    return {s["path"]: (out / s["path"]).read_bytes() for s in manifest["shards"]}


def without_annotator_stats(out: Path) -> dict:
    """The manifest minus the teacher's request counters (a resumed task finds answers in the
    cache: fewer requests, more cache hits; the records are the same)."""
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.pop("annotator_stats")
    return manifest


def test_import_vlir_and_the_local_build_never_import_ray(gqa_root, tmp_path):
    code = f"""
import sys
import vlir, vlir.cli.build, vlir.corpus.executors.local
from vlir.corpus.build import BuildConfig, Job
from vlir.corpus.executors.local import run_build
run_build(BuildConfig(tasks=2), [Job("gqa", "val", {str(gqa_root)!r})], {str(tmp_path / 'out')!r},
          workers=2, show_progress=False)
assert (__import__("pathlib").Path({str(tmp_path / 'out')!r}) / "manifest.json").is_file()
print(sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_without_ray_installed_the_cli_says_how_to_get_it(gqa_root, tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from vlir.cli import main; "
            f"sys.exit(main(['build', '--source', 'gqa', '--root', {str(gqa_root)!r}, '--split', 'val', "
            f"'--out', {str(tmp_path / 'out')!r}, '--executor', 'ray', '--no-progress']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_GUARD)
    assert r.returncode == 2
    assert r.stderr.strip() == "vlir: error: --executor ray needs Ray: pip install 'vlir[ray]' (ray==2.60.0)"


def test_a_ray_build_is_byte_identical_to_a_local_build(ray_cluster, gqa_root, tmp_path):
    cfg = BuildConfig(tasks=5)
    jobs = [Job("gqa", split, str(gqa_root)) for split in ("train", "val")]
    local = run_build(cfg, jobs, tmp_path / "local", workers=2, show_progress=False)
    on_ray = run_build(cfg, jobs, tmp_path / "ray", executor="ray", show_progress=False)
    assert on_ray == local and local["splits"]["gqa/val"]["accepted"] > 0
    assert tree_bytes(tmp_path / "ray") == tree_bytes(tmp_path / "local")
    assert len(list((tmp_path / "ray").glob(".vlir/gqa/*/completions/*"))) == 10


def ray_task_pids() -> list[int]:
    """Processes running a vlir build task on Ray (Ray titles a busy worker ``ray::<task name>``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                title = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::vlir "):
                pids.append(int(entry))
    return pids


def wait_dead(pid: int, timeout: float = HANG_GUARD) -> None:
    """Until ``pid`` is gone (reaped by Ray). A zombie is not enough: its main thread shows ``Z``
    while other threads may still hold its sockets open."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"pid {pid} still there {timeout} s after SIGKILL")
        time.sleep(0.01)


def teacher_cfg(url: str) -> BuildConfig:
    return BuildConfig(annotator="teacher", tasks=3, teacher={
        "base_url": url, "model": "fake-teacher", "concurrency": 2, "max_retries": 1, "backoff_s": 0.01})


@pytest.mark.parametrize("max_retries", [3, 0], ids=["ray-retries", "rerun"])
def test_a_worker_killed_mid_task_ends_identical_to_a_local_build(ray_cluster, textvqa_root, tmp_path,
                                                                    max_retries):
    """Every task waits on the teacher (the server holds its answers) when one worker is SIGKILLed:
    Ray re-runs that task on a new worker, or, with no retries left, the build says so and the
    same call again finishes it. Either way the shards and the manifest's records are the local
    build's, and no answered request is asked twice (the dead worker's answers were cached)."""
    jobs = [Job("textvqa", split, str(textvqa_root)) for split in ("train", "val")]
    with FakeOpenAIServer() as srv:
        cfg = teacher_cfg(srv.base_url)
        run_build(cfg, jobs, tmp_path / "local", show_progress=False)
        before = srv.answered_keys()
        assert before and max(before.values()) == 1
        srv.hold()
        result: dict = {}

        def build() -> None:
            try:
                result["manifest"] = run_build(cfg, jobs, tmp_path / "ray", executor="ray",
                                               ray_max_retries=max_retries, show_progress=False)
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                result["error"] = exc

        thread = threading.Thread(target=build)
        thread.start()
        deadline = time.monotonic() + HANG_GUARD
        while time.monotonic() < deadline and not (srv.waiting() and ray_task_pids()):
            time.sleep(0.05)
        pids = ray_task_pids()
        assert pids and srv.waiting(), "no Ray worker got to its teacher requests"
        assert os.getpid() not in pids  # the task (and its teacher calls) runs in a Ray worker
        os.kill(pids[0], signal.SIGKILL)
        wait_dead(pids[0])  # its sockets closed: the server sees its client gone, answers nobody
        srv.release()
        thread.join(300)
        assert not thread.is_alive()
        if max_retries == 0:
            from vlir.corpus.executors.ray_cluster import WorkerLost

            assert isinstance(result.get("error"), WorkerLost), result
            assert "rerun the same command" in str(result["error"])
            assert not (tmp_path / "ray" / "manifest.json").exists()
            result["manifest"] = run_build(cfg, jobs, tmp_path / "ray", executor="ray",
                                           ray_max_retries=max_retries, show_progress=False)
        assert "error" not in result or max_retries == 0, result.get("error")
        on_ray = srv.answered_keys() - before
    assert result["manifest"] is not None
    assert shard_bytes(tmp_path / "ray") == shard_bytes(tmp_path / "local")
    assert without_annotator_stats(tmp_path / "ray") == without_annotator_stats(tmp_path / "local")
    # the Ray build (its own cache) asked what the local build asked: the dead worker's requests got
    # no answer (held), so its retry asks them once. Past the retries the build also cancels the
    # other running task, whose worker may die between an answer and its cache commit.
    assert set(on_ray) == set(before)
    if max_retries:
        assert on_ray == before
    else:
        assert max(on_ray.values()) <= 2
    assert not list((tmp_path / "ray").glob("**/*.tmp"))


def test_a_task_error_comes_back_as_itself(ray_cluster, textvqa_root, tmp_path):
    from vlir.annotate.teacher import TeacherFatalError

    with FakeOpenAIServer() as srv:
        srv.script("", Status(401, message="bad key"))
        with pytest.raises(TeacherFatalError, match="HTTP 401"):
            run_build(teacher_cfg(srv.base_url), [Job("textvqa", "val", str(textvqa_root))],
                      tmp_path / "out", executor="ray", show_progress=False)
    assert not (tmp_path / "out" / ".vlir" / "lock").exists()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "vlir", *args]


def test_cli_joins_an_existing_cluster_and_matches_the_local_cli(ray_cluster, gqa_root, tmp_path):
    common = ["build", "--source", "gqa", "--root", str(gqa_root), "--split", "val", "--tasks", "3",
              "--no-progress"]
    r = subprocess.run(_cli(*common, "--out", str(tmp_path / "local")), capture_output=True, text=True,
                       timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(_cli("-v", *common, "--out", str(tmp_path / "ray"), "--executor", "ray",
                            "--ray-address", ray_cluster), capture_output=True, text=True, timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    assert tree_bytes(tmp_path / "ray") == tree_bytes(tmp_path / "local")
    # -v reaches the workers: their DEBUG lines come back through Ray, tagged with the task
    assert any("(vlir gqa/val task" in ln and "DEBUG vlir.corpus.build: task gqa/val" in ln
               for ln in r.stderr.splitlines()), r.stderr
    r = subprocess.run(_cli(*common, "--out", str(tmp_path / "x"), "--ray-address", ray_cluster),
                       capture_output=True, text=True, timeout=HANG_GUARD)
    assert r.returncode == 2 and "--ray-address needs --executor ray" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_cancels_the_ray_tasks_and_the_rerun_resumes(ray_cluster, textvqa_root, tmp_path, sig):
    """The driver stops as a local build does (exit 128+signal, lock and temp files gone), and the
    tasks it had on Ray are cancelled (their workers killed), not left writing into OUT."""
    out = tmp_path / "out"
    with FakeOpenAIServer() as srv:
        args = _cli("build", "--source", "textvqa", "--root", str(textvqa_root), "--split", "val",
                    "--out", str(out), "--annotator", "teacher", "--base-url", srv.base_url, "--model", "m",
                    "--tasks", "3", "--no-progress", "--executor", "ray", "--ray-address", ray_cluster)
        srv.hold()
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, preexec_fn=default_sigint)
        deadline = time.monotonic() + HANG_GUARD
        while time.monotonic() < deadline and proc.poll() is None and not (srv.waiting() and ray_task_pids()):
            time.sleep(0.05)
        assert proc.poll() is None and ray_task_pids(), "no Ray task got to its teacher requests"
        os.killpg(proc.pid, sig) if sig == signal.SIGINT else proc.send_signal(sig)
        _, err = proc.communicate(timeout=HANG_GUARD)
        assert proc.returncode == 128 + sig, err
        assert "interrupted; rerun the same command to resume" in err and "Traceback" not in err
        assert not (out / ".vlir" / "lock").exists() and not list(out.glob("**/*.tmp"))
        deadline = time.monotonic() + HANG_GUARD
        while time.monotonic() < deadline and ray_task_pids():
            time.sleep(0.1)
        assert not ray_task_pids(), "a cancelled task's worker is still running"
        srv.release(abandon=True)
        r = subprocess.run(args, capture_output=True, text=True, timeout=HANG_GUARD)
        assert r.returncode == 0, r.stderr
    assert (out / "manifest.json").is_file()
