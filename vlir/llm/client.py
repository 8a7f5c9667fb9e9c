"""The ``openai`` clients and one synchronous chat call with the shared retry policy, breaker,
key reading and answer cache.

Every client is built by :func:`openai_client`, with the SDK's own retries off
(``max_retries=0``): :class:`vlir.llm.retry.RetryPolicy` is the only retry loop, so a request's
retries are counted, logged and bounded in one place. The key comes from
:func:`vlir.llm.keys.api_key` when the client is made and is masked in every message this module
raises (:func:`vlir.secrets.redact`), whatever a careless server echoes back.

Users: the teacher (:mod:`vlir.annotate.teacher_http`: asynchronous clients, one per endpoint,
its own loop over them); the benchmark judge (:mod:`vlir.eval.benchmarks.judge`:
:class:`ChatCaller` with a cache); the served rollout engine (:func:`served_caller`: a
:class:`ChatCaller` without a cache, whose :meth:`ChatCaller.create` returns the SDK's response).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from vlir.llm import keys, retry
from vlir.llm.breaker import Breaker
from vlir.llm.cache import AnswerCache, CachedAnswer, cache_key
from vlir.secrets import redact

log = logging.getLogger(__name__)


class LLMError(ValueError):
    """A chat call that cannot succeed (refused key, unknown model, bad request, retries spent,
    endpoint benched): one line, key masked; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def openai_client(base_url: str | None, api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 120.0, *,
                  asynchronous: bool = False, required_by: str | None = None):
    """An ``openai.OpenAI`` (or ``AsyncOpenAI``) for ``base_url`` with the key from
    ``$api_key_env`` (see :func:`vlir.llm.keys.api_key`), ``timeout_s`` per attempt, SDK retries off."""
    import openai

    key = keys.api_key(api_key_env, required_by=required_by)
    cls = openai.AsyncOpenAI if asynchronous else openai.OpenAI
    return cls(api_key=key, base_url=base_url, max_retries=0, timeout=timeout_s)


def request_hash(messages: Any, params: dict[str, Any]) -> str:
    """sha256 over the messages and the sampling parameters, canonical JSON."""
    raw = json.dumps([messages, params], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class ChatCaller:
    """Synchronous chat completions against one endpoint for one model.

    ``client`` may be injected (tests: anything with ``chat.completions.create``); otherwise an
    :func:`openai_client` is made on first use. ``cache`` (a path or an :class:`AnswerCache`)
    stores every answer of :meth:`complete` under ``kind``. ``calls`` counts requests sent
    (retries included), ``retries`` the retries.
    """

    def __init__(self, model: str, base_url: str | None = None, *, api_key_env: str = "OPENAI_API_KEY",
                 timeout_s: float = 120.0, policy: retry.RetryPolicy = retry.RetryPolicy(),
                 breaker: Breaker | None = None, cache: str | Path | AnswerCache | None = None,
                 kind: str = "chat", client: Any = None, required_by: str | None = None):
        self.model, self.base_url, self.api_key_env = model, base_url, keys.check_env_name(api_key_env)
        self.timeout_s, self.policy, self.kind, self.required_by = timeout_s, policy, kind, required_by
        self.breaker = breaker or Breaker(threshold=max(1, policy.max_retries + 1), bench_s=30.0)
        self.cache = AnswerCache(cache) if isinstance(cache, (str, Path)) else cache
        self._client = client
        self.calls = 0
        self.retries = 0

    @property
    def client(self):
        if self._client is None:
            self._client = openai_client(self.base_url, self.api_key_env, self.timeout_s,
                                         required_by=self.required_by)
        return self._client

    def scrub(self, text: str) -> str:
        return redact(text, (self.api_key_env,))

    def create(self, **kwargs: Any) -> Any:
        """``client.chat.completions.create(**kwargs)`` (``model`` defaults to this caller's) under
        the retry policy and the breaker; the SDK's response object. Failures: :class:`LLMError`."""
        import openai

        where = self.base_url or "the OpenAI API"

        def attempt():
            if not self.breaker.available():  # checked before every attempt: a benched endpoint is not asked
                raise LLMError(f"{self.model} at {where}: endpoint benched after {self.breaker.failures_in_a_row} "
                               f"transport failures in a row (last: {self.breaker.last_failure})")
            self.calls += 1
            try:
                resp = self.client.chat.completions.create(**{"model": self.model, **kwargs})
            except Exception as exc:
                if retry.is_transport(exc) and not (isinstance(exc, openai.APIStatusError) and exc.status_code == 429):
                    self.breaker.failed(self.scrub(f"{type(exc).__name__}: {exc}")[:160])
                raise
            self.breaker.succeeded()
            return resp

        def on_retry(number: int, exc: BaseException, delay: float) -> None:
            self.retries += 1
            log.info("%s at %s: %s; retry %d/%d in %.2fs", self.model, where, self.scrub(str(exc))[:160],
                     number, self.policy.max_retries, delay)

        try:
            return retry.call(self.policy, attempt, on_retry=on_retry)
        except openai.APIStatusError as exc:
            raise LLMError(f"{self.model} at {where}: HTTP {exc.status_code}: {self.scrub(str(exc))[:300]}"
                           + (f" (check the key in ${self.api_key_env})" if exc.status_code in (401, 403) else ""),
                           status=exc.status_code) from None
        except openai.APIConnectionError as exc:
            raise LLMError(f"{self.model} at {where}: {type(exc).__name__} after {self.policy.max_retries} "
                           f"retries: {self.scrub(str(exc.__cause__ or exc))[:300]}") from None

    def complete(self, messages: list[dict[str, Any]], **params: Any) -> CachedAnswer:
        """The answer to ``messages`` with sampling ``params`` (temperature, max_tokens, ...), from
        the cache when this exact request was answered before."""
        digest = request_hash(messages, params)
        key = cache_key(self.model, self.kind, digest, "")
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        resp = self.create(messages=messages, **params)
        try:
            content = resp.choices[0].message.content or ""
        except (AttributeError, IndexError, TypeError):
            raise LLMError(f"{self.model} at {self.base_url or 'the OpenAI API'}: the answer is no chat "
                           "completion") from None
        usage = getattr(resp, "usage", None)
        answer = CachedAnswer(content, int(getattr(usage, "prompt_tokens", 0) or 0),
                              int(getattr(usage, "completion_tokens", 0) or 0))
        if self.cache is not None:
            self.cache.put(key, model=self.model, prompt_hash=self.kind, request_hash=digest, image_sha256="",
                           kind=self.kind, answer=answer)
        return answer


def served_caller(base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 600.0,
                  max_retries: int = 2, client: Any = None) -> ChatCaller:
    """What the served rollout engine needs: a :class:`ChatCaller` for ``model`` at ``base_url``
    (key from ``$api_key_env``, none sent when unset), ``max_retries`` transport retries under the
    shared policy, no cache (sampling must not be replayed). ``caller.create(**kwargs)`` is a
    drop-in for ``client.chat.completions.create(**kwargs)``."""
    return ChatCaller(model, base_url, api_key_env=api_key_env, timeout_s=timeout_s,
                      policy=retry.RetryPolicy(max_retries=max_retries), client=client)
