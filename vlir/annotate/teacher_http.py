"""The teacher's wire: one official ``openai.AsyncOpenAI`` client, a concurrency semaphore, the
retry policy (tenacity) and a circuit breaker, living on the annotator's event loop.

What a failure means decides what happens to the sample:

* **Transport failures** say nothing about the sample: connection refused or dropped, the total
  deadline passed (``timeout_s`` covers connect to last byte, so a server that drips bytes cannot
  hold a build), 408/409/5xx, 429, or a body that is no chat completion (an HTML error page, with
  status 200 or labelled JSON). They are retried — 429 waits what ``Retry-After`` says (plus up to
  10 % jitter, so a crowd of waiting requests does not return in lockstep), the rest back off
  exponentially with jitter — and past the retries they raise
  :class:`~vlir.annotate.base.AnnotatorUnavailable`: the build keeps the sample waiting for a
  rerun instead of rejecting it.
* **A circuit breaker**: after ``breaker_failures`` transport failures in a row (429 excepted: that
  is the server pacing us, not a dead endpoint) every further request of this annotator fails at
  once as unavailable, so a dead endpoint costs a task a handful of requests, not minutes of
  retries per sample.
* **Answers wrong about the sample** are :class:`AnnotationError` rejects: a 400 (other than a
  refused ``response_format``), other 4xx, or a body over ``max_response_bytes`` (read no further).
* A refused key or an unknown model would fail every record alike: :class:`TeacherFatalError`
  stops the run.

The key is read from the environment when the client is made and masked in any message
(:func:`vlir.secrets.redact`), whatever a careless server echoes back.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import time
from collections import Counter

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from vlir.annotate.base import AnnotationError, AnnotatorUnavailable
from vlir.annotate.teacher_cache import CachedAnswer
from vlir.annotate.teacher_config import TeacherConfig
from vlir.annotate.teacher_prompt import TeacherRequest
from vlir.secrets import redact

log = logging.getLogger(__name__)

_STRUCTURED_WORDS = ("response_format", "json_schema", "structured", "guided")
_HTTP_ERROR = "teacher_http_error"
_warned_no_key = False  # once per process, not once per build task


class TeacherFatalError(RuntimeError):
    """The run cannot go on (key refused, model unknown): every record would fail the same way."""


class _Transport(Exception):
    """One failed attempt that says nothing about the sample (retried). ``cause`` is the client's
    exception (its response's ``Retry-After`` is honoured); ``counts_for_breaker`` is False for 429."""

    def __init__(self, what: str, detail: str = "", cause: Exception | None = None,
                 counts_for_breaker: bool = True):
        super().__init__(f"{what}: {detail}" if detail else what)
        self.what, self.detail, self.cause, self.counts_for_breaker = what, detail, cause, counts_for_breaker


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
    annotator's counter (requests, retries, tokens, structured_fallbacks, transport_failures)."""

    def __init__(self, config: TeacherConfig, counts: Counter):
        import openai

        global _warned_no_key
        self.config = config
        self.counts = counts
        self.structured = True  # until the server refuses response_format json_schema
        self.in_flight = 0
        self._sem = asyncio.Semaphore(config.concurrency)
        self._failures_in_a_row = 0
        self._last_failure = ""
        key = os.environ.get(config.api_key_env)
        if not key and not _warned_no_key:
            _warned_no_key = True
            log.warning("environment variable %s is not set: sending no API key (fine for a local "
                        "vLLM/SGLang server, refused by api.openai.com)", redact(config.api_key_env))
        self._client = openai.AsyncOpenAI(api_key=key or "EMPTY", base_url=config.base_url,
                                          max_retries=0, timeout=config.timeout_s)

    async def aclose(self) -> None:
        await self._client.close()

    @property
    def breaker_open(self) -> bool:
        return self._failures_in_a_row >= self.config.breaker_failures

    def _unavailable(self, detail: str) -> AnnotatorUnavailable:
        return AnnotatorUnavailable(_HTTP_ERROR, self.scrub(detail)[:400])

    def _fast_fail(self) -> AnnotatorUnavailable:
        self.counts["breaker_fast_fails"] += 1
        return self._unavailable(f"endpoint down, not asked ({self.config.breaker_failures} transport "
                                 f"failures in a row; last: {self._last_failure})")

    async def send(self, request: TeacherRequest) -> CachedAnswer:
        cfg = self.config
        params = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
        if self.breaker_open:
            raise self._fast_fail()
        # Image encoding and JSON off the event loop, before taking a slot: a slot's time is the
        # request's time. The body is bytes, so the client does not re-walk the message list.
        bodies = {self.structured: await asyncio.to_thread(request.body, cfg.model, params, self.structured)}
        retrying = AsyncRetrying(stop=stop_after_attempt(cfg.max_retries + 1), wait=self._wait,
                                 retry=retry_if_exception_type(_Transport), before_sleep=self._log_retry,
                                 sleep=asyncio.sleep, reraise=True)
        async with self._sem:  # backing off holds the slot: a struggling server gets less load
            try:
                async for attempt in retrying:
                    with attempt:
                        answer = await self._attempt(request, bodies, params)
            except _Transport as exc:
                retries = retrying.statistics.get("attempt_number", 1) - 1
                raise self._unavailable(f"{exc.what} after {retries} retries: {exc.detail}") from None
        self.counts["prompt_tokens"] += answer.prompt_tokens
        self.counts["completion_tokens"] += answer.completion_tokens
        return answer

    async def _attempt(self, request: TeacherRequest, bodies: dict[bool, bytes],
                       params: dict) -> CachedAnswer:
        """One POST (two if the server refuses structured outputs), within the total deadline."""
        import httpx2
        import openai

        cfg = self.config
        if self.breaker_open:  # opened while this request waited for a slot or backed off
            raise self._fast_fail()
        while True:
            structured = self.structured
            if structured not in bodies:
                bodies[structured] = await asyncio.to_thread(request.body, cfg.model, params, structured)
            self.counts["requests"] += 1
            self.in_flight += 1
            try:
                async with asyncio.timeout(cfg.timeout_s):
                    raw = await self._post(bodies[structured])
            except TimeoutError:
                raise self._failed(_Transport("Timeout", f"no complete answer within the {cfg.timeout_s:g} s "
                                              "deadline")) from None
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
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
                raise AnnotationError(_HTTP_ERROR, f"HTTP 400: {message[:300]}") from None
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status in (408, 409, 429) or status >= 500:
                    raise self._failed(_Transport(f"HTTP {status}", self.scrub(str(exc))[:200], exc,
                                                  counts_for_breaker=status != 429)) from None
                raise AnnotationError(_HTTP_ERROR, f"HTTP {status}: {self.scrub(str(exc))[:300]}") from None
            except openai.APIConnectionError as exc:
                cause = exc.__cause__ or exc
                raise self._failed(_Transport(type(exc).__name__, f"{type(cause).__name__}: {cause}")) from None
            except httpx2.RequestError as exc:  # while reading the body: cut off, reset, bad encoding
                raise self._failed(_Transport(type(exc).__name__, f"the answer broke off: {exc}")) from None
            finally:
                self.in_flight -= 1
            answer = self._read_answer(raw)
            self._failures_in_a_row = 0
            return answer

    async def _post(self, body: bytes) -> tuple[int, str, bytes]:
        """(status, content type, body) of one POST; the body is read no further than
        ``max_response_bytes`` (a larger one is a reject, never held whole)."""
        import httpx2

        cap = self.config.max_response_bytes
        resp = await self._client.post("/chat/completions", cast_to=httpx2.Response, content=body, stream=True)
        try:
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > cap:
                raise AnnotationError("teacher_response_too_large",
                                      f"the response declares {int(declared)} bytes; the cap is {cap} "
                                      "(teacher.max_response_bytes)")
            chunks, size = [], 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise AnnotationError("teacher_response_too_large",
                                          f"the response exceeds {cap} bytes (teacher.max_response_bytes)")
                chunks.append(chunk)
            return resp.status_code, resp.headers.get("content-type", ""), b"".join(chunks)
        finally:
            await resp.aclose()

    def _read_answer(self, raw: tuple[int, str, bytes]) -> CachedAnswer:
        """The chat completion's content and token counts, or a transport failure naming what the
        body was instead (an HTML page, JSON of another shape)."""
        status, ctype, body = raw
        try:
            data = json.loads(body)
            content = data["choices"][0]["message"].get("content") or ""
            usage = data.get("usage") or {}
            if not isinstance(content, str):
                raise TypeError("content is not a string")
            answer = CachedAnswer(content, int(usage.get("prompt_tokens") or 0),
                                  int(usage.get("completion_tokens") or 0))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            text = body[:2000].decode("utf-8", "replace")
            head = " ".join(text[:120].split())
            kind = "an HTML page" if "<html" in text.lower() or "<!doctype" in text.lower() \
                else "a body that is not a chat completion"
            raise self._failed(_Transport(f"HTTP {status}", f"{kind} ({ctype or 'no content type'}, "
                                          f"{len(body)} bytes, starts {head!r}); is "
                                          f"{self.config.base_url} an OpenAI-compatible /v1 endpoint?")) from None
        return answer

    def _failed(self, exc: _Transport) -> _Transport:
        """Count a transport failure towards the breaker (a 429 does not)."""
        self.counts["transport_failures"] += 1
        if exc.counts_for_breaker:
            self._failures_in_a_row += 1
            self._last_failure = self.scrub(str(exc))[:160]
            if self._failures_in_a_row == self.config.breaker_failures:
                log.warning("teacher at %s: %d transport failures in a row (last: %s); failing this "
                            "task's remaining requests fast, rerun to continue", self.config.base_url,
                            self._failures_in_a_row, self._last_failure)
        return exc

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return self.retry_delay(state.attempt_number - 1, getattr(exc, "cause", None) or exc or Exception())

    def _log_retry(self, state: RetryCallState) -> None:
        self.counts["retries"] += 1
        exc = state.outcome.exception() if state.outcome else None
        log.info("teacher %s; retry %d/%d in %.2fs (%d requests in flight)", getattr(exc, "what", exc),
                 state.attempt_number, self.config.max_retries, state.upcoming_sleep, self.in_flight)

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
        return redact(text, (self.config.api_key_env,))
