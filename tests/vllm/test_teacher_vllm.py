"""``vlir build --annotator teacher`` against a real vLLM server, structured outputs on: every sample
ends in shards or rejects, the manifest's token counts are the server's own (its Prometheus
counters), and a rerun asks the server nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.subprocess, pytest.mark.timeout(900)]  # the shared server starts in ~70-200 s

COUNTERS = ("vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:request_success_total")


def vlir(*args: str) -> str:
    env = {**os.environ, "OPENAI_API_KEY": "EMPTY"}
    proc = subprocess.run([sys.executable, "-m", "vlir", *args], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, f"vlir {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


def counters(server) -> dict[str, float]:
    metrics = server.metrics()
    return {name: metrics.get(name, 0.0) for name in COUNTERS}


def test_teacher_build_against_vllm(vllm_server, tmp_path):
    vlir("sample", "--out", str(tmp_path / "s"), "--per-source", "3", "--source", "textvqa")
    config = tmp_path / "build.yaml"
    config.write_text("teacher:\n  max_tokens: 48\n  temperature: 0.0\n")  # a random model pads JSON to the cap
    args = ["build", "--source", "textvqa", "--root", str(tmp_path / "s" / "textvqa"), "--split", "train,val",
            "--out", str(tmp_path / "out"), "--annotator", "teacher", "--base-url", vllm_server.base_url,
            "--model", str(vllm_server.served_name), "--config", str(config), "--no-progress"]
    before = counters(vllm_server)
    vlir(*args)
    after = counters(vllm_server)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    splits = manifest["splits"].values()
    accepted, rejected = sum(s["accepted"] for s in splits), sum(s["rejected"] for s in splits)
    stats = manifest["annotator_stats"]
    assert accepted + rejected == 6  # 3 per split, every one accounted for
    assert stats["requests"] == after["vllm:request_success_total"] - before["vllm:request_success_total"] > 0
    assert stats["prompt_tokens"] == after["vllm:prompt_tokens_total"] - before["vllm:prompt_tokens_total"] > 0
    assert stats["completion_tokens"] == after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"]
    assert stats.get("structured_fallbacks", 0) == 0  # vLLM honoured response_format json_schema

    vlir(*args)  # the rerun: nothing left to ask
    assert counters(vllm_server) == after
