"""A broken or hostile teacher endpoint (issue 13.3/13.4), against the loopback server's faults:
refused connections, 500 storms, a slow drip, HTML bodies, huge bodies. Transport failures are
:class:`AnnotatorUnavailable` (no verdict on the sample), a circuit breaker stops hammering a dead
endpoint, and nothing unbounded is read, resent or cached."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.annotate.teacher_support import annotate, config, make_item
from vlir.annotate.base import AnnotationError, AnnotatorUnavailable
from vlir.testing.openai_server import Cut, Default, Drip, FakeOpenAIServer, Html, Huge, Reply, Status, refused_url


@pytest.fixture
def server():
    with FakeOpenAIServer(keep_bodies=True) as srv:
        yield srv


def test_refused_connections_wait_and_the_breaker_stops_the_hammering(server, tmp_path):
    items = [make_item(i) for i in range(12)]
    cfg = config(server, tmp_path, base_url=refused_url(), max_retries=3, breaker_failures=3, concurrency=2)
    results, stats = annotate(cfg, items)
    assert all(isinstance(r, AnnotatorUnavailable) and r.reason == "teacher_http_error" for r in results)
    assert "ConnectError" in results[0].detail or "Connection" in results[0].detail
    # without the breaker: 12 samples x 4 attempts = 48 connections; with it, the breaker's 3 and
    # whatever was already on the wire (at most one per slot) before the rest failed fast
    assert stats["requests"] <= 3 + 2 and stats["breaker_fast_fails"] >= 12 - 2
    assert stats["unavailable"] == 12


def test_a_500_storm_is_no_verdict_and_an_ended_outage_answers(server, tmp_path):
    items = [make_item(i) for i in range(6)]
    server.script("", Status(500))  # an empty match: every request
    results, stats = annotate(config(server, tmp_path, max_retries=2, breaker_failures=4, concurrency=1), items)
    assert all(isinstance(r, AnnotatorUnavailable) for r in results)
    assert server.count() == 4 and stats["retries"] == 3  # one sample's 3 tries, then one more: open
    assert sum("HTTP 500 after 2 retries" in r.detail for r in results) == 1
    assert sum("endpoint down, not asked" in r.detail for r in results) == 5
    server.unscript()
    results, stats = annotate(config(server, tmp_path, max_retries=2, breaker_failures=4, concurrency=1), items)
    assert all(not isinstance(r, AnnotationError) for r in results) and stats["requests"] == 6


def test_429_past_the_retries_waits_but_does_not_open_the_breaker(server, tmp_path):
    limited, fine = make_item(1), make_item(2)
    server.script(limited.sample.question, Status(429, retry_after=0))
    (r_limited, r_fine), stats = annotate(config(server, tmp_path, max_retries=2, breaker_failures=2,
                                                 concurrency=1), [limited, fine])
    assert isinstance(r_limited, AnnotatorUnavailable) and "HTTP 429" in r_limited.detail
    assert not isinstance(r_fine, AnnotationError) and stats["breaker_fast_fails"] == 0


def test_a_slow_drip_is_cut_by_the_total_deadline(server, tmp_path):
    item = make_item(3)
    # ~150 bytes at one per 0.1 s: every read is quick, the whole answer takes ~15 s
    server.script(item.sample.question, Drip(interval_s=0.1))
    (result,), stats = annotate(config(server, tmp_path, timeout_s=1.0, max_retries=0), [item])
    assert isinstance(result, AnnotatorUnavailable)
    assert "Timeout" in result.detail and "deadline" in result.detail


def test_an_answer_cut_off_mid_body_is_retried_not_a_crash(server, tmp_path):
    item = make_item(8)
    server.script(item.sample.question, Cut(keep=40), Default())
    (result,), stats = annotate(config(server, tmp_path), [item])
    assert not isinstance(result, AnnotationError) and stats["retries"] == 1
    server.script("Where is the cut?", Cut(keep=40))
    (result,), _ = annotate(config(server, tmp_path, max_retries=1),
                            [make_item(9, question="Where is the cut?")])
    assert isinstance(result, AnnotatorUnavailable) and "broke off" in result.detail


@pytest.mark.parametrize("fault", [Html(200), Html(200, content_type="application/json")],
                         ids=["html-200", "html-labelled-json"])
def test_an_html_body_is_a_clear_per_sample_error(server, tmp_path, fault):
    item = make_item(4)
    server.script(item.sample.question, fault)
    (result,), stats = annotate(config(server, tmp_path, max_retries=1), [item])
    assert isinstance(result, AnnotatorUnavailable)  # not AttributeError / JSONDecodeError
    assert "an HTML page" in result.detail and "OpenAI-compatible" in result.detail
    assert stats["transport_failures"] == 2 and server.count() == 2


def test_a_huge_body_is_refused_unread_and_never_cached(server, tmp_path):
    item = make_item(5)
    server.script(item.sample.question, Huge(size=8 << 20))
    (result,), stats = annotate(config(server, tmp_path, max_response_bytes=1 << 20), [item])
    assert isinstance(result, AnnotationError) and not isinstance(result, AnnotatorUnavailable)
    assert result.reason == "teacher_response_too_large" and server.count() == 1  # not retried
    conn = sqlite3.connect(tmp_path / "cache.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0


def test_the_repair_request_quotes_a_bounded_excerpt(server, tmp_path):
    item = make_item(6)
    server.script(item.sample.question, Huge(size=300_000), Default())  # a long non-JSON answer
    (result,), stats = annotate(config(server, tmp_path, repair_excerpt_chars=2000), [item])
    assert not isinstance(result, AnnotationError) and stats["repairs"] == 1
    repair = server.log[-1].body["messages"]
    quoted = next(m["content"] for m in repair if m["role"] == "assistant")
    assert len(quoted) < 2100 and "more characters cut" in quoted
    sizes = [len(r[0]) for r in sqlite3.connect(tmp_path / "cache.sqlite").execute(
        "SELECT content FROM responses WHERE kind = 'repair'")]
    assert sizes and max(sizes) < 10_000
    assert len(json.dumps(server.log[-1].body)) < len(json.dumps(server.log[0].body)) + 3000


def test_retries_are_logged_at_info_with_the_requests_in_flight(server, tmp_path, caplog, monkeypatch):
    import vlir.annotate.teacher as teacher

    monkeypatch.setattr(teacher, "_PROGRESS_EVERY_S", 0.0)  # a progress line per record
    item = make_item(7)
    server.script(item.sample.question, Status(503), Default())
    with caplog.at_level("INFO", logger="vlir.annotate"):
        (result,), stats = annotate(config(server, tmp_path), [item])
    assert not isinstance(result, AnnotationError) and stats["retries"] == 1
    lines = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert any("teacher HTTP 503; retry 1/3" in m and "requests in flight" in m for m in lines), lines
    assert any(m.startswith("teacher: 1 records, 2 requests") for m in lines), lines
