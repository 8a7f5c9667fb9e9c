"""``vlir vllm``: the vLLM side of vlir (``vlir vllm tiny-model``, ``vlir vllm serve``).

vLLM runs from its own environment (``make vllm-venv``; :mod:`vlir.serving.vllm_env`), found via
``--vllm-python``, ``$VLIR_VLLM_PYTHON`` or ``.venv-vllm/bin/python``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vlir.cli import app, fail

vllm_app = typer.Typer(help="Serve models with vLLM (its own environment: make vllm-venv).", no_args_is_help=True)
app.add_typer(vllm_app, name="vllm")

PYTHON = typer.Option(None, "--vllm-python", help="The vLLM environment's python (default: $VLIR_VLLM_PYTHON, "
                      "else .venv-vllm/bin/python).")


@vllm_app.command("tiny-model")
def tiny_model(
    out: Path = typer.Option(Path("out/models/tiny-vllm"), "--out", help="Folder to write the checkpoint to."),
    seed: int = typer.Option(0, "--seed", help="Weight and tokenizer seed."),
    vllm_python: Optional[Path] = PYTHON,
) -> None:
    """Write the tiny random Qwen2.5-VL in sizes vLLM's CPU kernels take, with a full processor."""
    from vlir.serving.tiny import build_tiny_vllm_model

    try:
        path = build_tiny_vllm_model(out, seed=seed, python=vllm_python)
    except (FileNotFoundError, RuntimeError) as exc:
        fail(str(exc))
    typer.echo(f"wrote {path}; serve it with: vlir vllm serve --model {path}")


@vllm_app.command("serve")
def serve(
    model: Path = typer.Option(..., "--model", help="Checkpoint folder (with a video processor: vlir vllm tiny-model)."),
    port: int = typer.Option(8000, "--port", help="Loopback port."),
    served_name: Optional[str] = typer.Option(None, "--served-model-name", help="Name clients use (default: --model)."),
    dev_mode: bool = typer.Option(False, "--dev-mode", help="VLLM_SERVER_DEV_MODE=1: the weight-update endpoints."),
    vllm_python: Optional[Path] = PYTHON,
) -> None:
    """Start vLLM's OpenAI-compatible server on 127.0.0.1:PORT until interrupted (Ctrl-C or SIGTERM
    stop the server with it)."""
    import signal
    import time

    from vlir.serving.vllm_env import VLLMServer

    if not model.is_dir():
        fail(f"--model {model} is not a checkpoint folder")
    try:
        server = VLLMServer(model, port=port, python=vllm_python, served_name=served_name, dev_mode=dev_mode)
    except FileNotFoundError as exc:
        fail(str(exc))
    def _interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    with server:
        typer.echo(f"serving {model} at {server.base_url} (model name {server.served_name}); Ctrl-C stops it")
        try:
            while server.proc is not None and server.proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
