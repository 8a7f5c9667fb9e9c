"""The retry policy every LLM call shares: which failures are worth another attempt, how long to
wait before it, and a synchronous tenacity loop (the teacher runs its own asynchronous loop on
the same delays, because it also moves a retry to another endpoint).

Transport failures say nothing about the request: connection refused or dropped, a timeout,
HTTP 408/409/429 and 5xx. They are retried: a 429 (or any answer carrying ``Retry-After``) waits
what the server asked, plus up to 10 % jitter so a crowd of waiting requests does not return in
lockstep; the rest back off exponentially with equal jitter. Everything else (400, 401, 404 ...)
is the caller's to handle at once.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` retries after the first attempt; the n-th retry waits
    ``min(max_backoff_s, backoff_s * 2**n)`` with equal jitter, or ``Retry-After`` when given."""

    max_retries: int = 6
    backoff_s: float = 0.5
    max_backoff_s: float = 60.0

    def delay(self, attempt: int, exc: BaseException) -> float:
        """Seconds before retry number ``attempt`` (0-based) after ``exc``."""
        after = retry_after_s(exc)
        if after is not None:
            return min(self.max_backoff_s, after * (1 + 0.1 * random.random()))
        base = min(self.max_backoff_s, self.backoff_s * (2 ** attempt))
        return base / 2 + random.random() * base / 2


def retry_after_s(exc: BaseException) -> float | None:
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


def retryable_status(status: int) -> bool:
    """HTTP statuses that say nothing about the request: 408, 409, 429 and 5xx."""
    return status in (408, 409, 429) or status >= 500


def is_transport(exc: BaseException) -> bool:
    """Whether an ``openai`` client exception is a transport failure (see the module docstring)."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError is one
        return True
    return isinstance(exc, openai.APIStatusError) and retryable_status(exc.status_code)


def call(policy: RetryPolicy, fn: Callable[[], T], *, retry_on: Callable[[BaseException], bool] = is_transport,
         on_retry: Callable[[int, BaseException, float], None] | None = None,
         sleep: Callable[[float], None] = time.sleep) -> T:
    """``fn()`` with up to ``policy.max_retries`` retries on exceptions ``retry_on`` accepts; the
    last one is re-raised. ``on_retry(retry number, exception, delay)`` is told before each wait."""
    from tenacity import Retrying, retry_if_exception, stop_after_attempt

    def wait(state) -> float:
        return policy.delay(state.attempt_number - 1, state.outcome.exception())

    def before_sleep(state) -> None:
        if on_retry is not None:
            on_retry(state.attempt_number, state.outcome.exception(), state.upcoming_sleep)

    retrying = Retrying(stop=stop_after_attempt(policy.max_retries + 1), wait=wait,
                        retry=retry_if_exception(retry_on), before_sleep=before_sleep, sleep=sleep,
                        reraise=True)
    return retrying(fn)
