"""The teacher's wire: one official ``openai.AsyncOpenAI`` client, a concurrency semaphore and the
retry policy, living on the annotator's event loop.

Retries are ours (the client's own are off) so that each one is counted for the manifest and the
policy is explicit: 429 waits what ``Retry-After`` says (plus a little jitter, so a crowd of waiting
requests does not return in lockstep), 408/409/5xx, dropped connections and timeouts back off
exponentially with jitter; other 4xx fail the record at once. A refused key or an unknown model
would fail every record alike, so it raises :class:`TeacherFatalError` and stops the run instead.
The key is read from the environment when the client is made and scrubbed from any message a
careless server echoes back.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from collections import Counter

from vlir.annotate.base import AnnotationError
from vlir.annotate.teacher_cache import CachedAnswer
from vlir.annotate.teacher_config import TeacherConfig
from vlir.annotate.teacher_prompt import TeacherRequest

log = logging.getLogger(__name__)

_STRUCTURED_WORDS = ("response_format", "json_schema", "structured", "guided")
_warned_no_key = False  # once per process, not once per build task


class TeacherFatalError(RuntimeError):
    """The run cannot go on (key refused, model unknown): every record would fail the same way."""


def retry_after_s(exc: Exception) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, ``retry-after`` seconds or date)."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(0.0, email.utils.mktime_tz(parsed) - time.time())
    return None


class TeacherHTTP:
    """Sends :class:`TeacherRequest` s. Create and use it on one event loop; ``counts`` is the
    annotator's counter (requests, retries, tokens, structured_fallbacks)."""

    def __init__(self, config: TeacherConfig, counts: Counter):
        import openai

        global _warned_no_key
        self.config = config
        self.counts = counts
        self.structured = True  # until the server refuses response_format json_schema
        self._sem = asyncio.Semaphore(config.concurrency)
        key = os.environ.get(config.api_key_env)
        if not key and not _warned_no_key:
            _warned_no_key = True
            log.warning("environment variable %s is not set: sending no API key (fine for a local "
                        "vLLM/SGLang server, refused by api.openai.com)", config.api_key_env)
        self._client = openai.AsyncOpenAI(api_key=key or "EMPTY", base_url=config.base_url,
                                          max_retries=0, timeout=config.timeout_s)

    async def aclose(self) -> None:
        await self._client.close()

    async def send(self, request: TeacherRequest) -> CachedAnswer:
        import openai
        from openai.types.chat import ChatCompletion

        cfg = self.config
        params = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
        # Image encoding and JSON off the event loop, before taking a slot: a slot's time is the
        # request's time. The body is bytes, so the client does not re-walk the message list.
        bodies = {self.structured: await asyncio.to_thread(request.body, cfg.model, params, self.structured)}
        attempt = 0
        async with self._sem:
            while True:
                structured = self.structured
                if structured not in bodies:
                    bodies[structured] = await asyncio.to_thread(request.body, cfg.model, params, structured)
                self.counts["requests"] += 1
                try:
                    resp = await self._client.post("/chat/completions", cast_to=ChatCompletion,
                                                   content=bodies[structured])
                    break
                except (openai.AuthenticationError, openai.PermissionDeniedError,
                        openai.NotFoundError) as exc:
                    raise TeacherFatalError(
                        f"the teacher server at {cfg.base_url} refused the request with HTTP "
                        f"{exc.status_code}: check the key in ${cfg.api_key_env} and that it "
                        f"serves model {cfg.model!r}") from None
                except openai.BadRequestError as exc:
                    message = self.scrub(str(exc))
                    if structured and any(w in message.lower() for w in _STRUCTURED_WORDS):
                        if self.structured:
                            self.structured = False
                            self.counts["structured_fallbacks"] += 1
                            log.warning("the teacher server refused structured outputs (%s); asking "
                                        "for plain JSON from now on", message[:200])
                        continue
                    raise AnnotationError("teacher_http_error", f"HTTP 400: {message[:300]}") from None
                except (openai.APIConnectionError, openai.APIStatusError) as exc:
                    status = getattr(exc, "status_code", None)
                    retryable = status is None or status in (408, 409, 429) or status >= 500
                    what = f"HTTP {status}" if status is not None else type(exc).__name__
                    if not retryable or attempt >= cfg.max_retries:
                        tail = f" after {attempt} retries" if retryable else ""
                        raise AnnotationError("teacher_http_error",
                                              f"{what}{tail}: {self.scrub(str(exc))[:300]}") from None
                    delay = self.retry_delay(attempt, exc)
                    attempt += 1
                    self.counts["retries"] += 1
                    log.info("teacher %s; retry %d/%d in %.2fs", what, attempt, cfg.max_retries, delay)
                    await asyncio.sleep(delay)  # holding the slot: backing off throttles us too
        content = (resp.choices[0].message.content or "") if resp.choices else ""
        usage = resp.usage
        answer = CachedAnswer(content, int(getattr(usage, "prompt_tokens", 0) or 0),
                              int(getattr(usage, "completion_tokens", 0) or 0))
        self.counts["prompt_tokens"] += answer.prompt_tokens
        self.counts["completion_tokens"] += answer.completion_tokens
        return answer

    def retry_delay(self, attempt: int, exc: Exception) -> float:
        """Retry-After (+ up to 10 % jitter) when given, else exponential backoff, equal jitter."""
        cfg = self.config
        after = retry_after_s(exc)
        if after is not None:
            return min(cfg.max_backoff_s, after * (1 + 0.1 * random.random()))
        base = min(cfg.max_backoff_s, cfg.backoff_s * (2 ** attempt))
        return base / 2 + random.random() * base / 2

    def scrub(self, text: str) -> str:
        """Never let the key reach a message, whatever the server echoed."""
        key = os.environ.get(self.config.api_key_env)
        return text.replace(key, "***") if key and len(key) >= 4 else text
