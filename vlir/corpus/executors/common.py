"""What every executor shares: the build's progress (record counters, bar, one line per task) and
worker logging. Executors import it; it imports no executor, so ``local`` (which picks the runner)
and ``ray_cluster`` depend on it and not on each other."""

from __future__ import annotations

import logging
import multiprocessing as mp
import time

from vlir.corpus.build_plan import SourceRead, task_counts

log = logging.getLogger("vlir.corpus.executors.local")  # the build's progress lines keep their logger

NOISY_LOGGERS = ("httpx", "httpcore", "openai")  # one INFO line per HTTP request


def worker_logging(level: int, fmt: str | None = None) -> None:
    """In a worker process: log at the parent's level (``-v`` reaches the workers), quiet the HTTP
    client's one-line-per-request INFO, and, where the process has no handler yet (a Ray worker),
    write to stderr in the parent's format."""
    root = logging.getLogger()
    root.setLevel(level)
    if fmt is not None and not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(fmt))
        root.addHandler(handler)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else logging.WARNING)


def log_format() -> str | None:
    """The format of this process's first log handler (what workers should write), if any."""
    for handler in logging.getLogger().handlers:
        if handler.formatter is not None and handler.formatter._fmt:
            return handler.formatter._fmt
    return None


class Progress:
    """The build's record counters, progress bar and one INFO line per finished task, whichever
    executor runs the tasks. Forked workers bump the shared counters record by record
    (:func:`_bump`); executors whose workers share no memory (Ray) :meth:`add` a task's counts
    when it ends."""

    def __init__(self, todo: int, show: bool):
        ctx = mp.get_context("fork")
        self.counters = (ctx.Value("q", 0), ctx.Value("q", 0))
        self.todo = todo
        self.finished = self.waiting = 0
        self.bar = _progress_bar(show)
        self.start = time.monotonic()

    @property
    def records(self) -> int:
        return self.counters[0].value + self.counters[1].value

    def add(self, accepted: int, rejected: int) -> None:
        for counter, n in zip(self.counters, (accepted, rejected)):
            with counter.get_lock():
                counter.value += n

    def expect(self, read: SourceRead) -> None:
        """Add a finished read's items (for the tasks still to run) to the bar's total: its ETA."""
        if self.bar is not None:
            counts = task_counts(read.folder)
            self.bar.total = (self.bar.total or 0) + sum(counts.get(t, 0) for t in read.tasks)

    def refresh(self) -> None:
        if self.bar is not None:
            a, r = self.counters[0].value, self.counters[1].value
            self.bar.n = a + r
            self.bar.set_postfix(accepted=a, rejected=r, refresh=False)
            self.bar.refresh()

    def task_finished(self, key: str, task: int, left: int = 0) -> None:
        self.waiting += left
        if left:  # the task stays incomplete: its samples wait for the teacher
            log.info("build: %s task %d: %d sample(s) waiting on the teacher", key, task, left)
            return
        self.finished += 1
        n = self.records
        rate = n / max(time.monotonic() - self.start, 1e-9)
        log.info("build: %s task %d done; %d/%d task(s), %d record(s) (%d accepted), %.1f records/s",
                 key, task, self.finished, self.todo, n, self.counters[0].value, rate)

    def close(self) -> None:
        self.refresh()
        if self.bar is not None:
            self.bar.close()
        log.info("build: %d records in %.1fs", self.records, time.monotonic() - self.start)


def _progress_bar(enabled: bool):
    if not enabled:
        return None
    from vlir.progress import bar

    # no bar when stderr is not a terminal (logs, CI) or with vlir -q; the total (for the ETA)
    # grows as each source read finishes (Progress.expect)
    return bar(unit="rec", desc="build")
