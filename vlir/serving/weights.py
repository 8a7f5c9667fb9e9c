"""Weight sync: put a trainer's new policy weights into a running vLLM server.

The R-GRPO-with-a-server loop (README, "Scaling out") is: roll out on the server, train a step,
push the weights, repeat. vLLM 0.32 serves the needed endpoints when started with
``VLLM_SERVER_DEV_MODE=1`` (``VLLMServer(dev_mode=True)``, ``vlir vllm serve --dev-mode``):

* ``POST /pause?mode=wait`` / ``POST /resume``: no request runs while weights change;
* ``POST /collective_rpc {"method": "reload_weights", "kwargs": {"weights_path": DIR}}``: every
  worker reloads its weights in place from a checkpoint folder (safetensors), the path that works on
  any device. On GPUs the fast path is vLLM's weight-transfer engines (``/init_weight_transfer_engine``,
  ``/update_weights`` over NCCL or CUDA IPC), which need CUDA;
* ``POST /reset_prefix_cache``: cached prefixes were computed with the old weights;
* ``POST /update_weight_version``, ``GET /weight_info``: the policy version rollouts were made with;
* ``POST /weight_checker {"action": "checksum"}``: per-parameter digests, to prove a round trip.

Plain HTTP (urllib): the trainer's environment needs nothing of vLLM.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any


def _post(url: str, path: str, body: dict[str, Any] | None = None, timeout: float = 600.0) -> Any:
    data = json.dumps(body or {}).encode("utf-8")
    req = urllib.request.Request(f"{url}{path}", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def _root(url: str) -> str:
    """The server root of a base URL (``http://h:p/v1`` -> ``http://h:p``)."""
    url = url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def load_weights(url: str, checkpoint: str | Path, version: str | None = None) -> None:
    """Reload the served model's weights from ``checkpoint`` (a folder with the same architecture,
    e.g. a trainer's ``save_pretrained`` output), between a pause and a resume; the prefix cache
    is reset and ``version`` (if given) becomes the server's weight version."""
    root = _root(url)
    folder = Path(checkpoint).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {folder}")
    _post(root, "/pause?mode=wait")
    try:
        _post(root, "/collective_rpc", {"method": "reload_weights", "kwargs": {"weights_path": str(folder)}})
        _post(root, "/reset_prefix_cache")
        if version is not None:
            _post(root, "/update_weight_version", {"new_version": version})
    finally:
        _post(root, "/resume")


def checksums(url: str) -> dict[str, str]:
    """Per-parameter digests of the served weights (vLLM's own parameter names)."""
    return _post(_root(url), "/weight_checker", {"action": "checksum"})["checksums"]


def weight_version(url: str) -> str | None:
    with urllib.request.urlopen(f"{_root(url)}/weight_info", timeout=60) as resp:
        return json.loads(resp.read()).get("weight_version")
