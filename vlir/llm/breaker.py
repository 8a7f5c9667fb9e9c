"""A circuit breaker for one endpoint: after ``threshold`` transport failures in a row it is
benched for ``bench_s`` seconds, then one request at a time probes it (a success closes it, a
failure benches it again). A dead endpoint so costs a handful of requests, not minutes of
retries per request. A 429 is the server pacing us, not a dead endpoint: callers do not count it.
"""

from __future__ import annotations

import time


class Breaker:
    """State of one endpoint's breaker. ``available(in_flight)`` says whether a request may go
    there now; :meth:`failed` / :meth:`succeeded` record an attempt's outcome."""

    def __init__(self, threshold: int, bench_s: float, clock=time.monotonic):
        self.threshold, self.bench_s, self.clock = threshold, bench_s, clock
        self.failures_in_a_row = 0
        self.benched_until = 0.0
        self.last_failure = ""

    @property
    def tripped(self) -> bool:
        return self.failures_in_a_row >= self.threshold

    def available(self, in_flight: int = 0) -> bool:
        """Closed; or benched time over and no probe already in flight."""
        if not self.tripped:
            return True
        return self.clock() >= self.benched_until and in_flight == 0

    def failed(self, detail: str) -> bool:
        """Count a transport failure; True when it (re)benches the endpoint."""
        self.failures_in_a_row += 1
        self.last_failure = detail
        if self.tripped:
            self.benched_until = self.clock() + self.bench_s
            return True
        return False

    def succeeded(self) -> None:
        self.failures_in_a_row = 0
