"""The teacher's wire: one official ``openai.AsyncOpenAI`` client per endpoint, a concurrency
semaphore, the retry policy (tenacity) and a circuit breaker per endpoint, living on the
annotator's event loop.

Several endpoints (``teacher.base_url`` a list: replicas of one model) share the load: each attempt
goes to the endpoint with the fewest requests in flight (ties in turn), and a retry goes to one
this request has not failed at yet, at once (the backoff applies only when every endpoint failed
it). Each endpoint counts its requests, answers, failures and latency (the manifest's
``annotator_stats.endpoints``).

What a failure means decides what happens to the sample:

* **Transport failures** say nothing about the sample: connection refused or dropped, the total
  deadline passed (``timeout_s`` covers connect to last byte, so a server that drips bytes cannot
  hold a build), 408/409/5xx, 429, or a body that is no chat completion (an HTML error page, with
  status 200 or labelled JSON). They are retried — 429 waits what ``Retry-After`` says (plus up to
  10 % jitter, so a crowd of waiting requests does not return in lockstep), the rest back off
  exponentially with jitter — and past the retries they raise
  :class:`~vlir.annotate.base.AnnotatorUnavailable`: the build keeps the sample waiting for a
  rerun instead of rejecting it.
* **A circuit breaker per endpoint**: after ``breaker_failures`` transport failures in a row at one
  endpoint (429 excepted: that is the server pacing us, not a dead endpoint) it is benched for
  ``bench_s`` seconds and its requests go to the others; then one request at a time probes it (a
  success puts it back, a failure benches it again). When every endpoint is benched, requests
  fail at once as unavailable, so a dead endpoint costs a task a handful of requests, not minutes
  of retries per sample.
* **Answers wrong about the sample** are :class:`AnnotationError` rejects: a 400 (other than a
  refused ``response_format``), other 4xx, or a body over ``max_response_bytes`` (read no further).
* A refused key or an unknown model would fail every record alike: :class:`TeacherFatalError`
  stops the run.

The key is read from the environment when the client is made and masked in any message
(:func:`vlir.secrets.redact`), whatever a careless server echoes back.

The parts every LLM caller shares live in :mod:`vlir.llm`: the clients (:func:`vlir.llm.client.openai_client`,
SDK retries off), the key (:mod:`vlir.llm.keys`), the delays and the transport statuses
(:mod:`vlir.llm.retry`), the breaker state (:class:`vlir.llm.breaker.Breaker`) and the answer cache
(:mod:`vlir.llm.cache`). What stays here is the teacher's own: the asynchronous loop over several
endpoints, the body streamed under a size cap, structured-output fallback, and what each failure
means for a sample.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from vlir.annotate.base import AnnotationError, AnnotatorUnavailable
from vlir.annotate.teacher_config import TeacherConfig
from vlir.annotate.teacher_prompt import TeacherRequest
from vlir.llm.breaker import Breaker
from vlir.llm.cache import CachedAnswer
from vlir.llm.client import openai_client
from vlir.llm.retry import RetryPolicy, retry_after_s, retryable_status
from vlir.secrets import redact

__all__ = ["Endpoint", "TeacherFatalError", "TeacherHTTP", "retry_after_s"]

log = logging.getLogger(__name__)

_STRUCTURED_WORDS = ("response_format", "json_schema", "structured", "guided")
_HTTP_ERROR = "teacher_http_error"


class TeacherFatalError(RuntimeError):
    """The run cannot go on (key refused, model unknown): every record would fail the same way."""


class _Transport(Exception):
    """One failed attempt that says nothing about the sample (retried). ``cause`` is the client's
    exception (its response's ``Retry-After`` is honoured); ``counts_for_breaker`` is False for 429."""

    def __init__(self, what: str, detail: str = "", cause: Exception | None = None,
                 counts_for_breaker: bool = True):
        super().__init__(f"{what}: {detail}" if detail else what)
        self.what, self.detail, self.cause, self.counts_for_breaker = what, detail, cause, counts_for_breaker


class Endpoint:
    """One base URL: its client, the requests in flight there, its breaker and its counters
    (``counts``: requests, answered, failures, benched, latency_s)."""

    def __init__(self, index: int, url: str, client, counts: Counter, breaker: Breaker):
        self.index, self.url, self.client, self.counts, self.breaker = index, url, client, counts, breaker
        self.in_flight = 0

    def available(self) -> bool:
        """Not benched; after a bench, only one probe at a time."""
        return self.breaker.available(self.in_flight)


class TeacherHTTP:
    """Sends :class:`TeacherRequest` s. Create and use it on one event loop; ``counts`` is the
    annotator's counter (requests, retries, tokens, structured_fallbacks, transport_failures),
    ``endpoint_counts`` its counters per base URL."""

    def __init__(self, config: TeacherConfig, counts: Counter, endpoint_counts: dict[str, Counter] | None = None):
        self.config = config
        self.counts = counts
        self.structured = True  # until the server refuses response_format json_schema
        self._sem = asyncio.Semaphore(config.concurrency)
        self._turn = 0  # breaks ties between equally busy endpoints in turn
        self._last_failure = ""
        self.policy = RetryPolicy(config.max_retries, config.backoff_s, config.max_backoff_s)
        endpoint_counts = {} if endpoint_counts is None else endpoint_counts
        self.endpoints = [
            Endpoint(i, url, openai_client(url, config.api_key_env, config.timeout_s, asynchronous=True),
                     endpoint_counts.setdefault(url, Counter()), Breaker(config.breaker_failures, config.bench_s))
            for i, url in enumerate(config.base_urls)]

    async def aclose(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.client.close()

    @property
    def in_flight(self) -> int:
        return sum(e.in_flight for e in self.endpoints)

    def pick(self, tried: set[int] = frozenset()) -> Endpoint | None:
        """The endpoint for the next attempt: among those not benched, preferring any this request
        has not failed at (``tried``: their indices), the one with the fewest requests in flight,
        ties in turn. None when every endpoint is benched."""
        n = len(self.endpoints)
        up = [e for e in self.endpoints if e.available()]
        if not up:
            return None
        fresh = [e for e in up if e.index not in tried] or up
        self._turn += 1
        return min(fresh, key=lambda e: (e.in_flight, (e.index - self._turn) % n))

    def _unavailable(self, detail: str) -> AnnotatorUnavailable:
        return AnnotatorUnavailable(_HTTP_ERROR, self.scrub(detail)[:400])

    def _fast_fail(self) -> AnnotatorUnavailable:
        self.counts["breaker_fast_fails"] += 1
        which = "endpoint" if len(self.endpoints) == 1 else f"all {len(self.endpoints)} endpoints"
        return self._unavailable(f"{which} down, not asked ({self.config.breaker_failures} transport "
                                 f"failures in a row; last: {self._last_failure})")

    async def send(self, request: TeacherRequest) -> CachedAnswer:
        cfg = self.config
        params = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
        if self.pick() is None:
            raise self._fast_fail()
        # Image encoding and JSON off the event loop, before taking a slot: a slot's time is the
        # request's time. The body is bytes, so the client does not re-walk the message list.
        bodies = {self.structured: await asyncio.to_thread(request.body, cfg.model, params, self.structured)}
        tried: set[int] = set()  # endpoints this request failed at: its retries go elsewhere first
        retrying = AsyncRetrying(stop=stop_after_attempt(cfg.max_retries + 1),
                                 wait=lambda state: self._wait(state, tried),
                                 retry=retry_if_exception_type(_Transport), before_sleep=self._log_retry,
                                 sleep=asyncio.sleep, reraise=True)
        async with self._sem:  # backing off holds the slot: a struggling server gets less load
            try:
                async for attempt in retrying:
                    with attempt:
                        answer = await self._attempt(request, bodies, params, tried)
            except _Transport as exc:
                retries = retrying.statistics.get("attempt_number", 1) - 1
                raise self._unavailable(f"{exc.what} after {retries} retries: {exc.detail}") from None
        self.counts["prompt_tokens"] += answer.prompt_tokens
        self.counts["completion_tokens"] += answer.completion_tokens
        return answer

    async def _attempt(self, request: TeacherRequest, bodies: dict[bool, bytes], params: dict,
                       tried: set[int]) -> CachedAnswer:
        """One POST (two if the server refuses structured outputs) to the endpoint :meth:`pick`
        chooses, within the total deadline."""
        import httpx2
        import openai

        cfg = self.config
        endpoint = self.pick(tried)
        if endpoint is None:  # benched while this request waited for a slot or backed off
            raise self._fast_fail()
        try:
            while True:
                structured = self.structured
                if structured not in bodies:
                    bodies[structured] = await asyncio.to_thread(request.body, cfg.model, params, structured)
                self.counts["requests"] += 1
                endpoint.counts["requests"] += 1
                endpoint.in_flight += 1
                start = time.monotonic()
                try:
                    async with asyncio.timeout(cfg.timeout_s):
                        raw = await self._post(endpoint, bodies[structured])
                except TimeoutError:
                    raise self._failed(endpoint, _Transport("Timeout", f"no complete answer within the "
                                                            f"{cfg.timeout_s:g} s deadline")) from None
                except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
                    raise TeacherFatalError(
                        f"the teacher server at {endpoint.url} refused the request with HTTP "
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
                    if retryable_status(status):
                        raise self._failed(endpoint, _Transport(f"HTTP {status}", self.scrub(str(exc))[:200], exc,
                                                                counts_for_breaker=status != 429)) from None
                    raise AnnotationError(_HTTP_ERROR, f"HTTP {status}: {self.scrub(str(exc))[:300]}") from None
                except openai.APIConnectionError as exc:
                    cause = exc.__cause__ or exc
                    raise self._failed(endpoint, _Transport(type(exc).__name__,
                                                            f"{type(cause).__name__}: {cause}")) from None
                except httpx2.RequestError as exc:  # while reading the body: cut off, reset, bad encoding
                    raise self._failed(endpoint, _Transport(type(exc).__name__,
                                                            f"the answer broke off: {exc}")) from None
                finally:
                    endpoint.in_flight -= 1
                answer = self._read_answer(endpoint, raw)
                endpoint.breaker.succeeded()
                endpoint.counts["answered"] += 1
                endpoint.counts["latency_s"] += time.monotonic() - start
                return answer
        except _Transport:
            tried.add(endpoint.index)
            raise

    async def _post(self, endpoint: Endpoint, body: bytes) -> tuple[int, str, bytes]:
        """(status, content type, body) of one POST; the body is read no further than
        ``max_response_bytes`` (a larger one is a reject, never held whole)."""
        import httpx2

        cap = self.config.max_response_bytes
        resp = await endpoint.client.post("/chat/completions", cast_to=httpx2.Response, content=body,
                                          stream=True)
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

    def _read_answer(self, endpoint: Endpoint, raw: tuple[int, str, bytes]) -> CachedAnswer:
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
            raise self._failed(endpoint, _Transport(f"HTTP {status}", f"{kind} ({ctype or 'no content type'}, "
                                                    f"{len(body)} bytes, starts {head!r}); is {endpoint.url} "
                                                    "an OpenAI-compatible /v1 endpoint?")) from None
        return answer

    def _failed(self, endpoint: Endpoint, exc: _Transport) -> _Transport:
        """Count a transport failure at ``endpoint`` towards its breaker (a 429 does not); at
        ``breaker_failures`` in a row it is benched for ``bench_s``."""
        cfg = self.config
        self.counts["transport_failures"] += 1
        endpoint.counts["failures"] += 1
        if exc.counts_for_breaker:
            detail = self._last_failure = self.scrub(str(exc))[:160]
            if endpoint.breaker.failed(detail):
                endpoint.counts["benched"] += 1
                others = sum(e.available() for e in self.endpoints)
                log.warning("teacher at %s: %d transport failures in a row (last: %s); benched for %g s, %s",
                            endpoint.url, endpoint.breaker.failures_in_a_row, detail, cfg.bench_s,
                            f"its requests go to the {others} other endpoint(s)" if others else
                            "no endpoint left: this task's requests fail fast (rerun to continue)")
        return exc

    def _wait(self, state: RetryCallState, tried: set[int]) -> float:
        """No wait when an endpoint this request has not failed at is up (fail over at once);
        otherwise :meth:`retry_delay`."""
        if any(e.index not in tried for e in self.endpoints if e.available()):
            return 0.0
        exc = state.outcome.exception() if state.outcome else None
        return self.retry_delay(state.attempt_number - 1, getattr(exc, "cause", None) or exc or Exception())

    def _log_retry(self, state: RetryCallState) -> None:
        self.counts["retries"] += 1
        exc = state.outcome.exception() if state.outcome else None
        log.info("teacher %s; retry %d/%d in %.2fs (%d requests in flight)", getattr(exc, "what", exc),
                 state.attempt_number, self.config.max_retries, state.upcoming_sleep, self.in_flight)

    def retry_delay(self, attempt: int, exc: Exception) -> float:
        """Retry-After (+ up to 10 % jitter) when given, else exponential backoff, equal jitter
        (:meth:`vlir.llm.retry.RetryPolicy.delay`)."""
        return self.policy.delay(attempt, exc)

    def scrub(self, text: str) -> str:
        """Never let the key reach a message, whatever the server echoed."""
        return redact(text, (self.config.api_key_env,))
