"""The LLM judge some official scripts use (HR-Bench's yes/no judge), through any
OpenAI-compatible chat-completions endpoint, cached in SQLite.

Off by default: a benchmark's rule-based path is what ``vlir eval --benchmark`` reports unless
``--judge-model`` is given, and ``scores.json`` says which ("judge": "rule-based" or the model).
Every reply is stored in the same SQLite cache the teacher uses
(:class:`vlir.annotate.teacher_cache.TeacherCache`, keyed by model + prompt hash, temperature 0),
so re-scoring a run never asks twice. The API key is read from the environment variable named by
``api_key_env`` at call time and is never written anywhere (not in the cache, not in scores.json).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from vlir.annotate.teacher_cache import CachedAnswer, TeacherCache, cache_key

KIND = "benchmark-judge"


class Judge:
    """``ask(prompt) -> reply`` with caching. ``client`` may be injected (tests: a fake with
    ``chat.completions.create``); otherwise an ``openai.OpenAI`` is built on first use."""

    def __init__(self, model: str, cache_path: str | Path, base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", client=None):
        self.model, self.base_url, self.api_key_env = model, base_url, api_key_env
        self.cache = TeacherCache(cache_path)
        self._client = client
        self.calls = 0

    def describe(self) -> dict[str, str | None]:
        """What scores.json records about the judge (no key)."""
        return {"model": self.model, "base_url": self.base_url, "api_key_env": self.api_key_env}

    def _get_client(self):
        if self._client is None:
            from openai import OpenAI

            key = os.environ.get(self.api_key_env)
            if not key:
                raise ValueError(f"--judge-model needs an API key in ${self.api_key_env}")
            self._client = OpenAI(api_key=key, base_url=self.base_url)
        return self._client

    def ask(self, prompt: str, system: str | None = None) -> str:
        request = (system or "") + "\0" + prompt
        prompt_hash = hashlib.sha256(request.encode("utf-8")).hexdigest()
        key = cache_key(self.model, KIND, prompt_hash, "")
        hit = self.cache.get(key)
        if hit is not None:
            return hit.content
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        resp = self._get_client().chat.completions.create(model=self.model, messages=messages, temperature=0)
        self.calls += 1
        content = resp.choices[0].message.content or ""
        usage = getattr(resp, "usage", None)
        self.cache.put(key, model=self.model, prompt_hash=KIND, request_hash=prompt_hash, image_sha256="",
                       kind=KIND, answer=CachedAnswer(content, int(getattr(usage, "prompt_tokens", 0) or 0),
                                                      int(getattr(usage, "completion_tokens", 0) or 0)))
        return content
