"""The teacher annotator: chains written by any OpenAI-compatible model (GPT-4o, or a vLLM / SGLang
server running Qwen2.5-VL-72B-Instruct), the way the paper's VLIR chains were written.

Per sample: one request with the image (``smart_resize``d within ``image_max_pixels``), the
question verbatim, the gold answer and, with ``hints``, the evidence boxes; the answer must be JSON
matching ``teacher_chain.schema.json`` (structured outputs where the server has them, plain JSON
otherwise). An unusable answer is retried once with the error quoted back, then rejected
(``teacher_invalid_json`` / ``teacher_schema``). With ``judge`` on, each look's crop (rendered by
:func:`vlir.crops.render_crop`) is shown with its label and a "no" rejects (``judge_region``).

Built to run for days against a rate-limited API: requests run concurrently under a semaphore on
one event loop owned by the annotator; 429 (honouring Retry-After), 5xx, connection errors and
timeouts are retried with exponential backoff and jitter; every answered request is committed to
the SQLite cache at once, so a rerun or a resume after ``kill -9`` never pays for an answer twice.
A per-record failure is an :class:`AnnotationError` in the results; only a refused key or unknown
model (which would reject every record) raises :class:`TeacherFatalError`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from collections import Counter
from typing import Any

import vlir
from vlir.annotate.base import AnnotateInput, AnnotationError, Annotator
from vlir.annotate.teacher_cache import CachedAnswer, TeacherCache, cache_key
from vlir.annotate.teacher_config import TeacherConfig
from vlir.annotate.teacher_prompt import (
    ParseError, TeacherRequest, chain_request, judge_request, parse_chain, parse_judge,
    prompt_hash, repair_request, teacher_budget,
)
from vlir.crops import render_crop
from vlir.records import Chain, Provenance

log = logging.getLogger(__name__)

_COUNTERS = ("records", "requests", "retries", "cache_hits", "prompt_tokens", "completion_tokens",
             "repairs", "judge_requests", "judge_rejections", "structured_fallbacks")
_STRUCTURED_WORDS = ("response_format", "json_schema", "structured", "guided")
_WARNED_NO_KEY = False  # once per process, not once per task


class TeacherFatalError(RuntimeError):
    """The run cannot go on (key refused, model unknown): every record would fail the same way."""


def merge_stats(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Sum two :meth:`TeacherAnnotator.stats` dicts (one per worker process) for the manifest."""
    out: dict[str, Any] = {k: int(a.get(k, 0)) + int(b.get(k, 0)) for k in _COUNTERS}
    out["failures"] = dict(sorted((Counter(a.get("failures") or {}) +
                                   Counter(b.get("failures") or {})).items()))
    return out


def _retry_after_s(exc: Exception) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, ``retry-after`` seconds or date)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
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


class TeacherAnnotator(Annotator):
    """See the module docstring. ``TeacherAnnotator(TeacherConfig(...))``; the build calls
    :meth:`annotate_many` with batches of about :attr:`batch_size` items."""

    name = "teacher"

    def __init__(self, config: TeacherConfig):
        self.config = config
        self.budget = teacher_budget(config.image_max_pixels)
        self._prompt_hash = prompt_hash()
        self._cache = TeacherCache(config.cache_path) if config.cache_path else None
        self._counts: Counter = Counter()
        self._failures: Counter = Counter()
        self._structured = True
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._pid: int | None = None
        self._sem: asyncio.Semaphore | None = None
        self._inflight: dict[str, asyncio.Future] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for k in ("_loop", "_client", "_sem", "_inflight", "_pid"):
            state[k] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_runtime()

    @property
    def batch_size(self) -> int:
        """Items per :meth:`annotate_many` call that keep ``concurrency`` requests in flight."""
        return 4 * self.config.concurrency

    # -- the Annotator interface -------------------------------------------------------------
    def provenance(self) -> Provenance:
        return Provenance(annotator="teacher", vlir_version=vlir.__version__,
                          teacher_model=self.config.model, prompt_hash=self._prompt_hash)

    def annotate(self, item: AnnotateInput) -> Chain:
        result = self.annotate_many([item])[0]
        if isinstance(result, AnnotationError):
            raise result
        return result

    def annotate_many(self, items: list[AnnotateInput]) -> list[Chain | AnnotationError]:
        if not items:
            return []
        return self._event_loop().run_until_complete(self._run_many(items))

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: int(self._counts[k]) for k in _COUNTERS}
        out["failures"] = dict(sorted(self._failures.items()))
        return out

    def close(self) -> None:
        if self._loop is not None and self._pid == os.getpid() and not self._loop.is_closed():
            if self._client is not None:
                self._loop.run_until_complete(self._client.close())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
        if self._cache is not None:
            self._cache.close()
        self._reset_runtime()

    # -- runtime -----------------------------------------------------------------------------
    def _event_loop(self) -> asyncio.AbstractEventLoop:
        """One loop and one client per process (rebuilt after a fork: neither survives one)."""
        if self._loop is None or self._pid != os.getpid():
            self._reset_runtime()
            self._loop = asyncio.new_event_loop()
            self._pid = os.getpid()
        return self._loop

    def _make_client(self) -> Any:
        import openai

        global _WARNED_NO_KEY
        key = os.environ.get(self.config.api_key_env)
        if not key:
            if not _WARNED_NO_KEY:
                _WARNED_NO_KEY = True
                log.warning("environment variable %s is not set: sending no API key (fine for a local "
                            "vLLM/SGLang server, refused by api.openai.com)", self.config.api_key_env)
            key = "EMPTY"
        return openai.AsyncOpenAI(api_key=key, base_url=self.config.base_url, max_retries=0,
                                  timeout=self.config.timeout_s)

    async def _run_many(self, items: list[AnnotateInput]) -> list[Chain | AnnotationError]:
        if self._client is None:
            self._client = self._make_client()
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.config.concurrency)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._one(item)) for item in items]
        except* TeacherFatalError as eg:
            raise eg.exceptions[0] from None
        return [t.result() for t in tasks]

    async def _one(self, item: AnnotateInput) -> Chain | AnnotationError:
        self._counts["records"] += 1
        try:
            chain = await self._chain(item)
            if self.config.judge:
                await self._judge(item, chain)
            return chain
        except AnnotationError as exc:
            self._failures[exc.reason] += 1
            log.debug("teacher rejected %s: %s", item.sample.id, exc)
            return exc

    async def _chain(self, item: AnnotateInput) -> Chain:
        sample, cfg = item.sample, self.config
        try:
            request = chain_request(sample, item.image, item.image_sha256, self.budget,
                                    cfg.hints, cfg.max_hints)
        except ValueError as exc:  # an aspect ratio smart_resize refuses
            raise AnnotationError("teacher_image", str(exc)) from None
        content = await self._ask(request, item.image_sha256)
        try:
            return parse_chain(content, sample, self.budget)
        except ParseError as first:
            self._counts["repairs"] += 1
            content = await self._ask(repair_request(request, content, str(first)), item.image_sha256)
            try:
                return parse_chain(content, sample, self.budget)
            except ParseError as second:
                raise AnnotationError(second.reason, f"after one repair: {second}") from None

    async def _judge(self, item: AnnotateInput, chain: Chain) -> None:
        async def verdict(index: int, look: Any) -> tuple[int, str, bool]:
            try:
                crop = await asyncio.to_thread(render_crop, item.image, look.box)
            except ValueError:  # outside the image: box_in_image rejects it, nothing to judge
                return index, look.label, True
            self._counts["judge_requests"] += 1
            content = await self._ask(judge_request(crop.png, look.label), item.image_sha256)
            try:
                return index, look.label, parse_judge(content)
            except ParseError as exc:
                raise AnnotationError(exc.reason, f"judge of look {index + 1}: {exc}") from None

        results = await asyncio.gather(*(verdict(i, lk) for i, lk in enumerate(chain.looks)))
        refused = [(i, label) for i, label, ok in results if not ok]
        if refused:
            self._counts["judge_rejections"] += 1
            detail = "; ".join(f"look {i + 1} ({label!r})" for i, label in refused)
            raise AnnotationError("judge_region", f"the judge says the crop does not show: {detail}")

    # -- one request: cache, in-flight dedup, retries ------------------------------------------
    async def _ask(self, request: TeacherRequest, image_sha256: str) -> str:
        cfg = self.config
        params = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
        request_hash = request.request_hash(params)
        key = cache_key(cfg.model, self._prompt_hash, request_hash, image_sha256)
        if self._cache is not None:
            hit = self._cache.get(key)
            if hit is not None:
                self._counts["cache_hits"] += 1
                return hit.content
        pending = self._inflight.get(key)
        if pending is not None:  # the same request is already on the wire: share its answer
            self._counts["cache_hits"] += 1
            return (await asyncio.shield(pending)).content
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            answer = await self._send(request)
            future.set_result(answer)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # mark retrieved: nobody else may be waiting
            raise
        finally:
            self._inflight.pop(key, None)
        if self._cache is not None:
            self._cache.put(key, model=cfg.model, prompt_hash=self._prompt_hash,
                            request_hash=request_hash, image_sha256=image_sha256,
                            kind=request.kind, answer=answer)
        return answer.content

    async def _send(self, request: TeacherRequest) -> CachedAnswer:
        import openai
        from openai.types.chat import ChatCompletion

        cfg = self.config
        assert self._sem is not None
        params = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
        # image encoding and JSON off the event loop, and before taking a slot, so a slot's time
        # is the request's time
        bodies = {self._structured: await asyncio.to_thread(request.body, cfg.model, params,
                                                             self._structured)}
        attempt = 0
        async with self._sem:
            while True:
                structured = self._structured
                if structured not in bodies:
                    bodies[structured] = await asyncio.to_thread(request.body, cfg.model, params, structured)
                self._counts["requests"] += 1
                try:
                    resp = await self._client.post("/chat/completions", cast_to=ChatCompletion,
                                                   content=bodies[structured])
                except (openai.AuthenticationError, openai.PermissionDeniedError,
                        openai.NotFoundError) as exc:
                    raise TeacherFatalError(
                        f"the teacher server at {cfg.base_url} refused the request with HTTP "
                        f"{exc.status_code}: check the key in ${cfg.api_key_env} and that it "
                        f"serves model {cfg.model!r}") from None
                except openai.BadRequestError as exc:
                    message = self._scrub(str(exc))
                    if structured and any(w in message.lower() for w in _STRUCTURED_WORDS):
                        if self._structured:
                            self._structured = False
                            self._counts["structured_fallbacks"] += 1
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
                                              f"{what}{tail}: {self._scrub(str(exc))[:300]}") from None
                    delay = self._retry_delay(attempt, exc)
                    attempt += 1
                    self._counts["retries"] += 1
                    log.info("teacher %s; retry %d/%d in %.2fs", what, attempt, cfg.max_retries, delay)
                    await asyncio.sleep(delay)  # holding the slot: backing off throttles us too
                    continue
                break
        content = (resp.choices[0].message.content or "") if resp.choices else ""
        usage = resp.usage
        answer = CachedAnswer(content, int(getattr(usage, "prompt_tokens", 0) or 0),
                              int(getattr(usage, "completion_tokens", 0) or 0))
        self._counts["prompt_tokens"] += answer.prompt_tokens
        self._counts["completion_tokens"] += answer.completion_tokens
        return answer

    def _retry_delay(self, attempt: int, exc: Exception) -> float:
        """Retry-After when the server gives one (plus up to 10 % jitter so a crowd of waiting
        requests does not return in lockstep), else exponential backoff with equal jitter."""
        cfg = self.config
        after = _retry_after_s(exc)
        if after is not None:
            return min(cfg.max_backoff_s, after * (1 + 0.1 * random.random()))
        base = min(cfg.max_backoff_s, cfg.backoff_s * (2 ** attempt))
        return base / 2 + random.random() * base / 2

    def _scrub(self, text: str) -> str:
        """Never let the key reach a message, whatever the server echoed."""
        key = os.environ.get(self.config.api_key_env)
        return text.replace(key, "***") if key and len(key) >= 4 else text
