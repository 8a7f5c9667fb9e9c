"""No API key is ever written or echoed (issue 13.1): a key in a config file or passed as
``--api-key-env`` is refused before anything is written to OUT, naming the field and never the
value; a fixed rerun into the same OUT is not refused; and a key the server echoes back reaches no
file under OUT, the cache or the logs (``-v``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlir.secrets import looks_like_key, redact
from vlir.sources.registry import get_source
from vlir.testing.openai_server import FakeOpenAIServer, Default, Status

pytestmark = pytest.mark.subprocess  # runs the CLI in child interpreters (make test-fast skips)

SENTINEL = "sk-vlirSENTINEL0123456789abcdefXYZ"


@pytest.mark.parametrize("value,secret", [
    (SENTINEL, True), ("sk-proj-abc123def456", True), ("hf_" + "a1" * 12, True),
    ("Bearer abc.def-123", True), ("xK9" * 12, True),
    ("OPENAI_API_KEY", False), ("gpt-4o", False), ("Qwen/Qwen2.5-VL-72B-Instruct", False),
    ("0123456789abcdef" * 4, False), ("http://localhost:8000/v1", False), ("out/cache/teacher.sqlite", False),
])
def test_looks_like_key(value, secret):
    assert looks_like_key(value) is secret


def test_redact_masks_key_shapes_and_the_env_value(monkeypatch):
    monkeypatch.setenv("VLIR_ODD_KEY", "plainword")
    assert redact(f"server said {SENTINEL}!") == "server said ***!"
    assert redact("echo plainword", ("VLIR_ODD_KEY",)) == "echo ***"


def vlir(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vlir", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def files_holding(root: Path, needle: str) -> list[str]:
    """Every file under ``root`` whose bytes contain ``needle`` (SQLite and Parquet included)."""
    raw = needle.encode()
    return [p.as_posix() for p in root.rglob("*") if p.is_file() and raw in p.read_bytes()]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tree") / "textvqa"
    get_source("textvqa").write_sample_tree(root, 4, 0)
    return root


def build_args(tree: Path, out: Path, url: str, *extra: str) -> list[str]:
    return ["build", "--source", "textvqa", "--root", str(tree), "--split", "val", "--out", str(out),
            "--annotator", "teacher", "--base-url", url, "--model", "fake-teacher", "--tasks", "1",
            "--no-progress", *extra]


def test_a_key_in_the_config_file_is_refused_before_anything_is_written(tree, tmp_path):
    out, config = tmp_path / "out", tmp_path / "build.yaml"
    with FakeOpenAIServer() as srv:
        config.write_text(f"teacher:\n  api_key: {SENTINEL}\n")
        bad = vlir(*build_args(tree, out, srv.base_url, "--config", str(config)))
        assert bad.returncode == 2 and "teacher.api_key" in bad.stderr and "environment variable" in bad.stderr
        assert SENTINEL not in bad.stdout + bad.stderr and len(bad.stderr.strip().splitlines()) == 1
        assert not out.exists() or not any(out.rglob("*"))
        config.write_text(f"teacher:\n  api_key_env: {SENTINEL}\n")  # a key under another name
        bad = vlir(*build_args(tree, out, srv.base_url, "--config", str(config)))
        assert bad.returncode == 2 and "teacher.api_key_env" in bad.stderr and SENTINEL not in bad.stderr
        config.write_text("teacher:\n  concurrency: 2\n")  # fixed: the same OUT is not refused
        fixed = vlir(*build_args(tree, out, srv.base_url, "--config", str(config)))
        assert fixed.returncode == 0, fixed.stderr
    assert files_holding(out, SENTINEL) == []


def test_a_key_passed_as_api_key_env_is_never_echoed(tree, tmp_path):
    out = tmp_path / "out"
    with FakeOpenAIServer() as srv:
        bad = vlir(*build_args(tree, out, srv.base_url, "--api-key-env", SENTINEL))
        assert bad.returncode == 2 and "api_key_env" in bad.stderr
        assert SENTINEL not in bad.stdout + bad.stderr and "SENTINEL" not in bad.stderr
        assert not out.exists() or not any(out.rglob("*"))
        env = {**os.environ, "VLIR_SENTINEL_KEY": SENTINEL}
        fixed = vlir(*build_args(tree, out, srv.base_url, "--api-key-env", "VLIR_SENTINEL_KEY"), env=env)
        assert fixed.returncode == 0, fixed.stderr
        assert srv.log and all(e.authorization == f"Bearer {SENTINEL}" for e in srv.log)  # it was used
    assert files_holding(out, SENTINEL) == [] and SENTINEL not in fixed.stdout + fixed.stderr


def test_a_key_the_server_echoes_reaches_no_file_and_no_log(tree, tmp_path):
    out = tmp_path / "out"
    questions = [s.question for s in get_source("textvqa").iter_samples(tree, "val")]
    env = {**os.environ, "VLIR_SENTINEL_KEY": SENTINEL}
    with FakeOpenAIServer() as srv:
        srv.script(questions[0], Status(400, message=f"invalid request from key {SENTINEL}"))
        srv.script(questions[1], Status(503, message=f"overloaded ({SENTINEL})"), Default())
        run = vlir("-v", *build_args(tree, out, srv.base_url, "--api-key-env", "VLIR_SENTINEL_KEY",
                                     "--concurrency", "1"), env=env)
    assert run.returncode == 0, run.stderr
    log = tmp_path / "build.log"
    log.write_text(run.stdout + run.stderr)
    assert "teacher_http_error" in (out / "manifest.json").read_text()  # the echoing 400 is a reject
    assert files_holding(out, SENTINEL) == []  # shards, rejects, manifest, build.json, cache
    assert files_holding(tmp_path, SENTINEL) == []  # the log too
    assert "SENTINEL" not in run.stderr
