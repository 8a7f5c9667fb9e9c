"""Finding the vLLM environment and starting its server, without vLLM: the error paths."""

from __future__ import annotations

import sys

import pytest

from vlir.serving import vllm_env


def test_a_missing_environment_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setenv(vllm_env.ENV_VAR, str(tmp_path / "nope" / "python"))
    with pytest.raises(FileNotFoundError, match="make vllm-venv"):
        vllm_env.vllm_python()
    monkeypatch.setenv(vllm_env.ENV_VAR, sys.executable)
    assert str(vllm_env.vllm_python()) == sys.executable


def test_the_server_command(tmp_path):
    cmd = vllm_env.server_command(tmp_path, 8123, python=sys.executable, served_name="tiny")
    assert cmd[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--port") + 1] == "8123" and cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--served-model-name") + 1] == "tiny" and "--limit-mm-per-prompt" in cmd


@pytest.mark.subprocess
def test_a_server_that_dies_while_starting_reports_its_log(tmp_path):
    """This interpreter has no vllm module: the server exits at once, and its output is quoted."""
    server = vllm_env.VLLMServer(tmp_path, python=sys.executable, log_path=tmp_path / "log", startup_timeout_s=60)
    with pytest.raises(RuntimeError, match="No module named 'vllm'"):
        server.start()
    assert server.proc.poll() is not None
