"""The LLM judge some official scripts use (MMVP's GPT grader, MathVista's GPT extraction,
HR-Bench's yes/no judge), through any OpenAI-compatible chat-completions endpoint.

Off by default: a benchmark's rule-based path is what ``vlir eval --benchmark`` reports unless
``--judge-model`` is given, and ``scores.json`` says which ("judge": "rule-based" or the model).
Each benchmark builds its call as the official script does (:class:`JudgeRequest`: the messages,
system and user, and the sampling parameters it sends); :class:`Judge` sends it through the
shared LLM client (:class:`vlir.llm.client.ChatCaller`: retries on transport failures, a
breaker, the key read from ``$api_key_env`` at call time and never written) and caches every
reply in SQLite (:class:`vlir.llm.cache.AnswerCache`, keyed by model + the exact request), so
re-scoring a run never asks twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlir.llm.client import ChatCaller, LLMError
from vlir.llm.retry import RetryPolicy

KIND = "benchmark-judge"
JudgeError = LLMError  # what a failed judge call raises (one line, exit 2 on the command line)


@dataclass(frozen=True)
class JudgeRequest:
    """One call as an official script makes it: ``messages`` (OpenAI chat format) and the
    sampling parameters it sets; None means "not sent" (the server's default)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    n: int | None = None

    @classmethod
    def user(cls, prompt: str, **params: Any) -> "JudgeRequest":
        return cls([{"role": "user", "content": prompt}], **params)

    def params(self) -> dict[str, Any]:
        """The keyword arguments besides ``model`` and ``messages`` that go on the wire."""
        sent = {"temperature": self.temperature, "max_tokens": self.max_tokens, "top_p": self.top_p, "n": self.n}
        return {k: v for k, v in sent.items() if v is not None}


class Judge:
    """``ask(request) -> reply`` with caching. ``client`` may be injected (tests: a fake with
    ``chat.completions.create``); otherwise an ``openai.OpenAI`` is built on first use."""

    def __init__(self, model: str, cache_path: str | Path, base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", client=None, policy: RetryPolicy = RetryPolicy()):
        self.model, self.base_url, self.api_key_env = model, base_url, api_key_env
        self.caller = ChatCaller(model, base_url, api_key_env=api_key_env, policy=policy, cache=cache_path,
                                 kind=KIND, client=client, required_by="--judge-model")

    @property
    def calls(self) -> int:
        """Requests sent (cache hits excluded, retries included)."""
        return self.caller.calls

    def describe(self) -> dict[str, str | None]:
        """What scores.json records about the judge (no key)."""
        return {"model": self.model, "base_url": self.base_url, "api_key_env": self.api_key_env}

    def ask(self, request: JudgeRequest) -> str:
        """The reply's content, unstripped, as the official scripts receive it."""
        return self.caller.complete(list(request.messages), **request.params()).content
