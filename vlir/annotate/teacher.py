"""The teacher annotator: chains written by any OpenAI-compatible model (GPT-4o, or a vLLM / SGLang
server running Qwen2.5-VL-72B-Instruct), the way the paper's VLIR chains were written.

Per sample: one request with the image (padded or ``smart_resize``d within ``image_max_pixels``),
the question verbatim, the gold answer and, with ``hints``, the evidence boxes; the answer must be
JSON matching ``teacher_chain.schema.json`` (structured outputs where the server has them, plain
JSON otherwise). An unusable answer is retried once with (a bounded excerpt of) it and the error quoted back, then rejected
(``teacher_invalid_json`` / ``teacher_schema``). With ``judge`` on, each look's crop (rendered by
:func:`vlir.crops.render_crop`) is shown with its label and a "no" rejects (``judge_region``).

Built to run for days against a rate-limited API: requests run concurrently under a semaphore on
one event loop owned by the annotator (in its own thread, so requests stay in flight while the
caller checks and writes results), spread over one endpoint or several replicas; retries, the
choice of endpoint and the per-endpoint breakers live in :mod:`vlir.annotate.teacher_http`; every
answered request is committed to the SQLite cache at once, so a rerun or a resume after ``kill -9``
never pays for an answer twice. A per-record failure is an :class:`AnnotationError` in the results:
a verdict on the sample (a reject), or :class:`AnnotatorUnavailable` when the endpoint could not be
reached (the build keeps the sample waiting for a rerun); only a refused key or unknown model
(which would reject every record) raises :class:`TeacherFatalError`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future
from typing import Any, Iterable, Iterator

import vlir
from vlir.annotate.base import AnnotateInput, AnnotationError, Annotator, AnnotatorUnavailable
from vlir.llm.cache import AnswerCache, cache_key
from vlir.annotate.teacher_config import TeacherConfig
from vlir.annotate.teacher_http import TeacherFatalError, TeacherHTTP
from vlir.annotate.teacher_prompt import (
    ParseError, TeacherRequest, chain_request, judge_request, parse_chain, parse_judge,
    prompt_hash, repair_request, teacher_budget,
)
from vlir.crops import render_crop
from vlir.records import Chain, Provenance

__all__ = ["TeacherAnnotator", "TeacherConfig", "TeacherFatalError", "merge_stats"]

log = logging.getLogger(__name__)

_COUNTERS = ("records", "requests", "retries", "cache_hits", "prompt_tokens", "completion_tokens",
             "repairs", "judge_requests", "judge_rejections", "structured_fallbacks",
             "transport_failures", "breaker_fast_fails", "unavailable")
#: per endpoint (``stats()["endpoints"][url]``): attempts sent, answers read, transport failures,
#: times benched, and the seconds the answered ones took (mean latency = latency_s / answered)
_ENDPOINT_COUNTERS = ("requests", "answered", "failures", "benched")
_PROGRESS_EVERY_S = 30.0  # an INFO line on the teacher's progress at most this often


def _endpoint_stats(counts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: int(counts.get(k, 0)) for k in _ENDPOINT_COUNTERS}
    out["latency_s"] = round(float(counts.get("latency_s", 0.0)), 3)
    return out


def merge_stats(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Sum two :meth:`TeacherAnnotator.stats` dicts (one per worker process) for the manifest."""
    out: dict[str, Any] = {k: int(a.get(k, 0)) + int(b.get(k, 0)) for k in _COUNTERS}
    out["failures"] = dict(sorted((Counter(a.get("failures") or {}) +
                                   Counter(b.get("failures") or {})).items()))
    ea, eb = a.get("endpoints") or {}, b.get("endpoints") or {}
    out["endpoints"] = {url: _endpoint_stats({k: (ea.get(url) or {}).get(k, 0) + (eb.get(url) or {}).get(k, 0)
                                              for k in (*_ENDPOINT_COUNTERS, "latency_s")})
                        for url in dict.fromkeys([*ea, *eb])}
    return out


class TeacherAnnotator(Annotator):
    """See the module docstring. ``TeacherAnnotator(TeacherConfig(...))``. Feed it with
    :meth:`annotate_stream` (keeps ``concurrency`` requests in flight across the whole input) or
    :meth:`annotate_many` with batches of at least :attr:`batch_size` items."""

    name = "teacher"

    def __init__(self, config: TeacherConfig):
        self.config = config
        self.budget = teacher_budget(config.image_max_pixels)
        self._prompt_hash = prompt_hash()
        self._cache = AnswerCache(config.cache_path) if config.cache_path else None
        self._counts: Counter = Counter()
        self._failures: Counter = Counter()
        self._endpoint_counts: dict[str, Counter] = {url: Counter() for url in config.base_urls}
        self._last_progress = time.monotonic()
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._http: TeacherHTTP | None = None
        self._pid: int | None = None
        self._inflight: dict[str, asyncio.Future] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for k in ("_loop", "_thread", "_http", "_pid", "_inflight"):
            state[k] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_runtime()

    @property
    def batch_size(self) -> int:
        """Items per :meth:`annotate_many` call (or the :meth:`annotate_stream` window) that keep
        ``concurrency`` requests in flight."""
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
        return [result for _, result in self.annotate_stream(items, window=max(1, len(items)))]

    def annotate_stream(self, items: Iterable[AnnotateInput], window: int | None = None,
                        ) -> Iterator[tuple[AnnotateInput, Chain | AnnotationError]]:
        """``(item, result)`` pairs in input order, with up to ``window`` (default
        :attr:`batch_size`) items being annotated at once. Unlike fixed batches, there is no tail
        where slots idle, and requests keep flowing while the caller checks and writes a result."""
        window = window or self.batch_size
        loop = self._runtime()
        pending: deque[tuple[AnnotateInput, Future]] = deque()
        try:
            for item in items:
                pending.append((item, asyncio.run_coroutine_threadsafe(self._one(item), loop)))
                while len(pending) >= window:
                    done, fut = pending.popleft()
                    yield done, fut.result()
            while pending:
                done, fut = pending.popleft()
                yield done, fut.result()
        finally:
            for _, fut in pending:  # stopped early (fatal error, or the caller gave up)
                fut.cancel()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: int(self._counts[k]) for k in _COUNTERS}
        out["failures"] = dict(sorted(self._failures.items()))
        out["endpoints"] = {url: _endpoint_stats(self._endpoint_counts[url]) for url in self.config.base_urls}
        return out

    def close(self) -> None:
        loop = self._loop
        if loop is not None and self._pid == os.getpid() and not loop.is_closed():
            if self._http is not None:
                asyncio.run_coroutine_threadsafe(self._http.aclose(), loop).result(30)
            asyncio.run_coroutine_threadsafe(loop.shutdown_default_executor(), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            assert self._thread is not None
            self._thread.join(30)
            loop.close()
        if self._cache is not None:
            self._cache.close()
        self._reset_runtime()

    # -- runtime -----------------------------------------------------------------------------
    def _runtime(self) -> asyncio.AbstractEventLoop:
        """The loop thread and the client, one per process (rebuilt after a fork: threads and
        sockets do not survive one)."""
        if self._loop is None or self._pid != os.getpid():
            self._reset_runtime()
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="vlir-teacher", daemon=True)
            thread.start()
            self._loop, self._thread, self._pid = loop, thread, os.getpid()

            async def make() -> TeacherHTTP:
                return TeacherHTTP(self.config, self._counts, self._endpoint_counts)

            self._http = asyncio.run_coroutine_threadsafe(make(), loop).result()
        return self._loop

    async def _one(self, item: AnnotateInput) -> Chain | AnnotationError:
        self._counts["records"] += 1
        try:
            chain = await self._chain(item)
            if self.config.judge:
                await self._judge(item, chain)
            return chain
        except AnnotationError as exc:
            if isinstance(exc, AnnotatorUnavailable):  # not a verdict: the sample waits for a rerun
                self._counts["unavailable"] += 1
            self._failures[exc.reason] += 1
            log.debug("teacher rejected %s: %s", item.sample.id, exc)
            return exc
        except (TeacherFatalError, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - an answer nothing expected: this record's reject
            self._failures["annotator_failed"] += 1
            log.warning("teacher: %s while reading the answer for %s", type(exc).__name__, item.sample.id)
            return AnnotationError("annotator_failed", f"{item.sample.id}: {type(exc).__name__}: {exc}")
        finally:
            self._log_progress()

    def _log_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress < _PROGRESS_EVERY_S:
            return
        self._last_progress = now
        c, http = self._counts, self._http
        log.info("teacher: %d records, %d requests (%d in flight), %d retries, %d cache hits, "
                 "%d waiting on the endpoint", c["records"], c["requests"],
                 http.in_flight if http else 0, c["retries"], c["cache_hits"], c["unavailable"])

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
            repair = repair_request(request, content, str(first), cfg.repair_excerpt_chars)
            content = await self._ask(repair, item.image_sha256)
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
            answer = await self._http.send(request)
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
