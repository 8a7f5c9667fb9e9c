"""Configuration of the teacher annotator (``vlir build --annotator teacher``).

One dataclass, loadable from a YAML mapping (:meth:`TeacherConfig.from_dict`); the build's flags
``--base-url``, ``--model``, ``--api-key-env``, ``--concurrency`` and ``--timeout`` override its
fields. The API key itself is never a field: only the *name* of the environment variable that holds
it, so no config file, manifest or log can carry the secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

#: 1280 * 28 * 28: a multiple of Qwen2.5-VL's 28-px grid, ~1 MP — enough detail for GPT-4o's
#: high-detail tiling and for a Qwen2.5-VL-72B teacher without paying for a full-resolution scan.
DEFAULT_IMAGE_MAX_PIXELS = 1280 * 28 * 28


def _f(default: Any, help: str) -> Any:  # noqa: A002 - "help" mirrors TRL-style config fields
    return field(default=default, metadata={"help": help})


@dataclass
class TeacherConfig:
    """Where the teacher lives and how to talk to it.

    Fields:
        base_url: OpenAI-compatible endpoint (``https://api.openai.com/v1``, or a vLLM / SGLang
            server such as ``http://localhost:8000/v1``).
        model: model name as the server knows it (``gpt-4o``, ``Qwen/Qwen2.5-VL-72B-Instruct``).
        api_key_env: name of the environment variable holding the key (read at client creation).
        concurrency: requests in flight at once (asyncio semaphore).
        timeout_s: per-request timeout; a request past it is retried.
        max_retries: retries per request on 429, 5xx, connection errors and timeouts.
        temperature: sampling temperature of the teacher.
        max_tokens: completion-token cap per request.
        image_max_pixels: pixel budget of the image as sent; boxes come back in that pixel space.
        hints: send the source's evidence boxes as hints.
        judge: second pass asking, per look, whether the crop shows the look's label.
        cache_path: SQLite cache of every request/response pair (the build passes
            ``<out>/cache/teacher.sqlite``).
        max_hints: at most this many evidence regions are sent as hints (the most relevant first).
        backoff_s: first retry delay without a ``Retry-After``; doubles each retry, with jitter.
        max_backoff_s: cap of the retry delay, ``Retry-After`` included.
    """

    base_url: str = _f("https://api.openai.com/v1", "OpenAI-compatible endpoint, ending in /v1.")
    model: str = _f("gpt-4o", "Model name as the server knows it.")
    api_key_env: str = _f("OPENAI_API_KEY", "Environment variable holding the API key.")
    concurrency: int = _f(8, "Requests in flight at once.")
    timeout_s: float = _f(120.0, "Per-request timeout in seconds.")
    max_retries: int = _f(6, "Retries per request on 429, 5xx, connection errors and timeouts.")
    temperature: float = _f(0.2, "Sampling temperature of the teacher.")
    max_tokens: int = _f(1024, "Completion-token cap per request.")
    image_max_pixels: int = _f(DEFAULT_IMAGE_MAX_PIXELS, "Pixel budget of the image as sent.")
    hints: bool = _f(True, "Send the source's evidence boxes as hints.")
    judge: bool = _f(False, "Ask, per look, whether the crop shows its label (rejects: judge_region).")
    cache_path: str | None = _f(None, "SQLite cache file; None keeps no cache.")
    max_hints: int = _f(24, "At most this many evidence regions are sent as hints.")
    backoff_s: float = _f(0.5, "First retry delay without Retry-After (doubles, with jitter).")
    max_backoff_s: float = _f(60.0, "Cap of any retry delay, Retry-After included.")

    def __post_init__(self) -> None:
        if not self.base_url or not str(self.base_url).startswith(("http://", "https://")):
            raise ValueError(f"teacher base_url must be an http(s) URL such as "
                             f"http://localhost:8000/v1, got {self.base_url!r}")
        if not self.model:
            raise ValueError("teacher model is empty: name the model the server serves (e.g. gpt-4o)")
        if not self.api_key_env or not self.api_key_env.replace("_", "").isalnum():
            raise ValueError(f"api_key_env must be the NAME of an environment variable (e.g. "
                             f"OPENAI_API_KEY), never the key itself; got a value of length "
                             f"{len(self.api_key_env or '')}")
        if self.concurrency < 1:
            raise ValueError(f"teacher concurrency must be >= 1, got {self.concurrency}")
        if self.timeout_s <= 0:
            raise ValueError(f"teacher timeout_s must be > 0, got {self.timeout_s}")
        if self.max_retries < 0:
            raise ValueError(f"teacher max_retries must be >= 0, got {self.max_retries}")
        if self.max_tokens < 1:
            raise ValueError(f"teacher max_tokens must be >= 1, got {self.max_tokens}")
        if self.image_max_pixels < 4 * 28 * 28:
            raise ValueError(f"image_max_pixels must be at least {4 * 28 * 28}, got {self.image_max_pixels}")
        if self.max_hints < 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("max_hints, backoff_s and max_backoff_s must be >= 0")
        if self.cache_path is not None:
            self.cache_path = str(self.cache_path)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "TeacherConfig":
        """Build from a YAML mapping; unknown keys are an error that lists the known ones."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            hint = " (put the key in the environment variable named by api_key_env)" \
                if any("key" in k and k != "api_key_env" for k in unknown) else ""
            raise ValueError(f"unknown teacher config keys {unknown}{hint}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TeacherConfig":
        """Read a YAML file holding the mapping (optionally under a top-level ``teacher:`` key)."""
        import yaml

        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if isinstance(data, dict) and isinstance(data.get("teacher"), dict):
            data = data["teacher"]
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a teacher config must be a mapping")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """For the manifest: every field (no secret lives here, only the variable's name)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
