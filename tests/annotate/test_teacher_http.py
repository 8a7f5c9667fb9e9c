"""Retry policy of the teacher's HTTP layer (unit level; the loopback tests cover the wire)."""

from __future__ import annotations

import email.utils
import time
from collections import Counter
from types import SimpleNamespace

import pytest

from vlir.annotate.teacher_config import TeacherConfig
from vlir.annotate.teacher_http import TeacherHTTP, retry_after_s


def exc_with(headers: dict) -> Exception:
    e = Exception("x")
    e.response = SimpleNamespace(headers=headers)
    return e


def test_retry_after_forms():
    assert retry_after_s(exc_with({"retry-after": "3"})) == 3
    assert retry_after_s(exc_with({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    date = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3 <= retry_after_s(exc_with({"retry-after": date})) <= 5.5
    assert retry_after_s(exc_with({})) is None and retry_after_s(Exception()) is None


def test_backoff_grows_with_jitter_and_is_capped(monkeypatch):
    monkeypatch.setenv("VLIR_TEST_KEY", "k")
    http = TeacherHTTP(TeacherConfig(api_key_env="VLIR_TEST_KEY", backoff_s=1.0, max_backoff_s=5.0), Counter())
    plain = Exception()
    for attempt, (lo, hi) in enumerate([(0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (2.5, 5.0), (2.5, 5.0)]):
        delays = [http.retry_delay(attempt, plain) for _ in range(50)]
        assert lo <= min(delays) and max(delays) <= hi and len(set(delays)) > 1
    told = [http.retry_delay(0, exc_with({"retry-after": "2"})) for _ in range(50)]
    assert 2.0 <= min(told) and max(told) <= 2.2
    assert http.retry_delay(0, exc_with({"retry-after": "600"})) == 5.0


def test_scrub_hides_the_key(monkeypatch):
    monkeypatch.setenv("VLIR_TEST_KEY", "sk-abcdef")
    http = TeacherHTTP(TeacherConfig(api_key_env="VLIR_TEST_KEY"), Counter())
    assert http.scrub("bad key sk-abcdef!") == "bad key ***!"
