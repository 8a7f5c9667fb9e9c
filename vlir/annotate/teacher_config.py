"""Configuration of the teacher annotator (``vlir build --annotator teacher``).

One dataclass, loadable from a YAML mapping (:meth:`TeacherConfig.from_dict`); the build's flags
``--base-url`` (repeatable), ``--model``, ``--api-key-env``, ``--concurrency`` and ``--timeout``
override its fields. The API key itself is never a field: only the *name* of the environment variable that holds
it, so no config file, manifest or log can carry the secret.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from vlir.config import Config, option
from vlir.geometry import FACTOR, MODEL_PIXELS
from vlir.secrets import redact

#: 1280 cells of the default family's 28-px grid, ~1 MP — enough detail for GPT-4o's
#: high-detail tiling and for a Qwen2.5-VL-72B teacher without paying for a full-resolution scan.
DEFAULT_IMAGE_MAX_PIXELS = 1280 * FACTOR * FACTOR


@dataclass
class TeacherConfig(Config):
    """Where the teacher lives and how to talk to it.

    Fields:
        base_url: OpenAI-compatible endpoint (``https://api.openai.com/v1``, or a vLLM / SGLang
            server such as ``http://localhost:8000/v1``), or a list of them: replicas serving the
            same model, each request sent to the one with the fewest requests in flight.
        model: model name as the server knows it (``gpt-4o``, ``Qwen/Qwen2.5-VL-72B-Instruct``).
        api_key_env: name of the environment variable holding the key (read at client creation).
        concurrency: requests in flight at once per build task, over all endpoints (asyncio
            semaphore); with several endpoints, raise it with their number.
        timeout_s: total deadline of one request attempt, connect to last byte (a server that
            drips bytes cannot hold a build); an attempt past it is retried.
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
        max_response_bytes: a response body larger than this is refused unread past the cap.
        breaker_failures: after this many transport failures in a row at one endpoint (refused,
            timeout, 5xx, a body that is no chat completion) it counts as down and is benched for
            ``bench_s``: its requests go to the other endpoints; with none left, the task's
            requests fail fast and wait for a rerun.
        bench_s: how long a benched endpoint sits out; then one request at a time probes it.
        repair_excerpt_chars: the repair request quotes at most this much of the unusable answer.
    """

    kind: ClassVar[str] = "teacher"
    section: ClassVar[str] = "teacher"

    base_url: str | list[str] = option("https://api.openai.com/v1", "OpenAI-compatible endpoint, ending "
                                       "in /v1, or a list of replicas (the least busy gets each request).")
    model: str = option("gpt-4o", "Model name as the server knows it.")
    api_key_env: str = option("OPENAI_API_KEY", "Environment variable holding the API key.")
    concurrency: int = option(8, "Requests in flight at once.", ge=1)
    timeout_s: float = option(120.0, "Total deadline of one request attempt in seconds.", gt=0)
    max_retries: int = option(6, "Retries per request on 429, 5xx, connection errors and timeouts.", ge=0)
    temperature: float = option(0.2, "Sampling temperature of the teacher.", ge=0)
    max_tokens: int = option(1024, "Completion-token cap per request.", ge=1)
    image_max_pixels: int = option(DEFAULT_IMAGE_MAX_PIXELS, "Pixel budget of the image as sent.",
                                   ge=MODEL_PIXELS.min_pixels)
    hints: bool = option(True, "Send the source's evidence boxes as hints.")
    judge: bool = option(False, "Ask, per look, whether the crop shows its label (rejects: judge_region).")
    cache_path: str | None = option(None, "SQLite cache file; None keeps no cache.")
    max_hints: int = option(24, "At most this many evidence regions are sent as hints.", ge=0)
    backoff_s: float = option(0.5, "First retry delay without Retry-After (doubles, with jitter).", ge=0)
    max_backoff_s: float = option(60.0, "Cap of any retry delay, Retry-After included.", ge=0)
    max_response_bytes: int = option(4 << 20, "Largest response body read; a larger one is refused.",
                                     ge=1024)
    breaker_failures: int = option(8, "Transport failures in a row after which an endpoint is benched "
                                      "(with none left, samples wait for a rerun).", ge=1)
    bench_s: float = option(30.0, "Seconds a benched endpoint sits out before one request probes it.",
                            gt=0)
    repair_excerpt_chars: int = option(2000, "Most characters of a bad answer quoted in the repair "
                                             "request.", ge=80)

    def validate(self) -> list[str]:
        problems = []
        if not self.base_urls:
            problems.append("teacher.base_url is an empty list: name at least one endpoint")
        for url in self.base_urls:
            if not url.startswith(("http://", "https://")):
                problems.append(f"teacher.base_url must be an http(s) URL such as http://localhost:8000/v1, "
                                f"got {redact(repr(url))}")
        twice = sorted({u for u in self.base_urls if self.base_urls.count(u) > 1})
        if twice:
            problems.append(f"teacher.base_url lists {redact(twice[0])} more than once")
        if not self.model:
            problems.append("teacher.model is empty: name the model the server serves (e.g. gpt-4o)")
        if not self.api_key_env or not self.api_key_env.replace("_", "").isalnum():
            problems.append(f"teacher.api_key_env must be the NAME of an environment variable (e.g. "
                            f"OPENAI_API_KEY), never the key itself; got a value of length "
                            f"{len(self.api_key_env or '')}")
        return problems

    @property
    def base_urls(self) -> list[str]:
        """The endpoints, as a list (one for a plain ``base_url``)."""
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TeacherConfig":
        """Read a YAML file holding the mapping (optionally under a top-level ``teacher:`` key)."""
        data = cls.read_yaml(path)
        if isinstance(data.get("teacher"), dict):
            data = data["teacher"]
        return cls.from_dict(data, where=path)

    def to_dict(self) -> dict[str, Any]:
        """For the manifest: every field (no secret lives here, only the variable's name)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
