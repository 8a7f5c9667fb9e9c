"""One vLLM server for tests/vllm, serving the vLLM-ready tiny Qwen2.5-VL built by vlir.

The server runs from the separate vLLM environment (``make vllm-venv``; ``$VLIR_VLLM_PYTHON`` or
``.venv-vllm/bin/python``): the tests skip, saying so, where it is absent (``make test`` always
builds it). Start-up takes ~70-140 s on two cores, so every test here shares the one server
(dev mode on, for the weight-update endpoints) on a free loopback port; it is stopped after the
package's last test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    from vlir.serving.vllm_env import vllm_python as find

    try:
        return find()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="package")
def tiny_vllm_dir(vllm_python, tmp_path_factory) -> Path:
    from vlir.serving.tiny import build_tiny_vllm_model

    return build_tiny_vllm_model(tmp_path_factory.mktemp("tiny-vllm") / "model", seed=0, python=vllm_python)


@pytest.fixture(scope="package")  # stopped after tests/vllm's last test, not idling through the rest
def vllm_server(vllm_python, tiny_vllm_dir, tmp_path_factory):
    from vlir.serving.vllm_env import VLLMServer

    log = tmp_path_factory.mktemp("vllm") / "server.log"
    with VLLMServer(tiny_vllm_dir, python=vllm_python, dev_mode=True, log_path=log) as server:
        yield server
