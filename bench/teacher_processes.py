"""Teacher concurrency 32 in one process against 2 x 16 in two: what bounds c32 here, and the way
around it that ``vlir build`` already has.

bench/teacher_throughput.py measures one annotator at concurrency 32 against a loopback server
whose every answer takes exactly ``latency``. Each record costs ~3 ms of the client's CPU (image
encode, request building, the HTTP client, parsing, the SQLite cache, the schema check), much of it
on the one event loop of the process: while the loop works on one answer the other finished
requests wait, and a new request goes out later than the ideal would have it. The more requests in
flight per loop and the shorter the latency, the larger that share: c32 at 200 ms loses ~14 %, at
1 s ~5 %. That bound is one Python process's loop, not the design of the requests; ``vlir build
--workers W`` runs a task per worker process, each with ``--concurrency`` requests in flight
(teacher.concurrency is per task), so the same 32 in flight as ``--workers 2 --concurrency 16``
have two loops. This bench compares exactly that: one process at c32 against two forked processes
at c16 each, every side annotating ``--records`` fresh records through the same loopback server (a
separate process, as in the other bench), interleaved (bench/_timing.py), rate over the ideal
``32 / latency``. Each worker times its own annotation (from a shared start to its last answer, one
monotonic clock): making the images, opening the connections (a full warm-up wave) and the process's
exit are not the annotator's work.

    python bench/teacher_processes.py [--latency-ms 200] [--records 320] [--pairs 5]

The last line, also written to out/bench/teacher_processes.json, is one JSON object.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing as T  # noqa: E402
from teacher_throughput import make_items  # noqa: E402
from vlir.annotate.teacher import TeacherAnnotator  # noqa: E402
from vlir.annotate.teacher_config import TeacherConfig  # noqa: E402

IN_FLIGHT = 32


def annotate(base_url: str, concurrency: int, offset: int, n: int, cache: str, start: mp.Barrier,
             times: "mp.Queue") -> None:
    """One worker process: its own annotator (loop, client, cache) on ``n`` fresh records, begun
    when every worker of the side is ready (images made and the client started before timing);
    puts its (start, end) ``perf_counter`` (one monotonic clock for all processes) on ``times``:
    the process's exit (threads joined, finalizers) is not the annotator's work and is not timed."""
    logging.basicConfig(level=logging.ERROR)
    annotator = TeacherAnnotator(TeacherConfig(base_url=base_url, model="fake-teacher", concurrency=concurrency,
                                               cache_path=cache, timeout_s=30))
    items = make_items(n, offset=offset)
    # one full wave first: every one of the client's ``concurrency`` connections open before timing
    list(annotator.annotate_stream(make_items(concurrency, offset=offset + n)))
    start.wait()
    t0 = time.perf_counter()
    results = [r for _, r in annotator.annotate_stream(items)]
    times.put((t0, time.perf_counter()))
    annotator.close()
    failed = sum(1 for r in results if not hasattr(r, "answer"))
    if failed:
        raise SystemExit(f"{failed} of {n} records failed")


class Side:
    """``processes`` workers sharing ``IN_FLIGHT`` requests in flight; each call is one measurement."""

    def __init__(self, base_url: str, processes: int, records: int, tmp: Path):
        self.base_url, self.processes, self.records, self.tmp = base_url, processes, records, tmp
        self.calls = 0

    def __call__(self) -> float:
        """Seconds from the moment every worker is ready until the last one has its answers."""
        ctx = mp.get_context("fork")
        start, times = ctx.Barrier(self.processes), ctx.Queue()
        share = self.records // self.processes
        offset = 50_000_000 * self.processes + 100_000 * self.calls
        self.calls += 1
        workers = [ctx.Process(target=annotate, args=(self.base_url, IN_FLIGHT // self.processes, offset + k * share,
                                                      share, str(self.tmp / f"p{self.processes}-{self.calls}-{k}.sqlite"),
                                                      start, times)) for k in range(self.processes)]
        for w in workers:
            w.start()
        spans = [times.get(timeout=600) for _ in workers]
        for w in workers:
            w.join()
        seconds = max(end for _, end in spans) - min(begin for begin, _ in spans)
        if any(w.exitcode for w in workers):
            raise RuntimeError(f"a worker failed: exit codes {[w.exitcode for w in workers]}")
        return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--records", type=int, default=320, help="records per measurement (10 rounds of 32)")
    parser.add_argument("--pairs", type=int, default=T.MIN_PAIRS)
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    ideal = IN_FLIGHT / latency
    T.header("teacher_processes", args.pairs)
    server = subprocess.Popen([sys.executable, "-m", "vlir.testing.openai_server", "--latency-ms", str(args.latency_ms)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            sides = {"1 x c32": Side(base_url, 1, args.records, Path(tmp)),
                     "2 x c16": Side(base_url, 2, args.records, Path(tmp))}
            seconds = T.interleaved(sides, args.pairs, measure=lambda _name, side: side())  # the workers' own span
    finally:
        server.stdin.close()
        server.wait(10)
    ratios = {name: [args.records / s / ideal for s in secs] for name, secs in seconds.items()}
    gain = T.pairwise_ratio(seconds["1 x c32"], seconds["2 x c16"], 3)
    result = {"latency_ms": args.latency_ms, "records": args.records, "pairs": args.pairs, "ideal_per_s": ideal}
    for name, values in ratios.items():
        print(f"{name}: rate / ideal ({ideal:.0f} rec/s = {IN_FLIGHT} / {latency:g} s) = {T.fmt(T.spread(values))}")
        result[f"ratio_{name.replace(' x ', '_x_')}"] = T.spread(values, 3)
    print(f"two processes over one, same {IN_FLIGHT} in flight: {T.fmt(gain)} x the rate")
    result["two_over_one"] = gain
    T.write_result("teacher_processes", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
