"""Shared measuring rules for the benches, so every figure is taken the same way.

Why: a bench that times each side once gives a different ratio a minute later (another process
wakes up, a cache is cold). Every bench here therefore

* runs a warm-up round of each side first (not counted);
* then ``pairs`` (>= 5) rounds that alternate the sides (A, B, A, B, ...) so load from other
  processes hits both alike;
* reports, per figure, the median and the min-max over the rounds, and for a ratio the median of
  the *pairwise* ratios (round i of A over round i of B), which cancels load that drifts slowly;
* prints how many repetitions and the spread, and the load average (the CPU is often shared).

``python bench/X.py`` from the repository root; the last line of each bench is one JSON object,
also written to ``$VLIR_OUT/bench/<name>.json`` (``make bench OUT=...`` sets ``VLIR_OUT``; default
``out``).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("VLIR_OUT") or REPO / "out")  # make's OUT: corpus, models, results
MIN_PAIRS = 5


def spread(values: Sequence[float], digits: int = 4) -> dict[str, Any]:
    """``{"median", "min", "max", "n"}`` of some measurements."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("no measurements")
    return {"median": round(statistics.median(vals), digits), "min": round(min(vals), digits),
            "max": round(max(vals), digits), "n": len(vals)}


def interleaved(sides: dict[str, Callable[[], Any]], pairs: int = MIN_PAIRS, warmup: int = 1,
                measure: Callable[[str, Callable[[], Any]], float] | None = None) -> dict[str, list[float]]:
    """Run each side ``warmup`` times, then ``pairs`` rounds of every side in turn; returns each
    side's measurements (seconds of wall time by default; ``measure(name, fn)`` can return any
    other figure, e.g. a peak RSS read by the side itself)."""
    if pairs < MIN_PAIRS:
        raise ValueError(f"at least {MIN_PAIRS} interleaved rounds are needed for a trustworthy median, got {pairs}")
    measure = measure or (lambda _name, fn: wall(fn))
    for _ in range(warmup):
        for name, fn in sides.items():
            measure(name, fn)
    out: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(pairs):
        for name, fn in sides.items():
            out[name].append(measure(name, fn))
    return out


def wall(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pairwise_ratio(numerator: Sequence[float], denominator: Sequence[float], digits: int = 4) -> dict[str, Any]:
    """Median and min-max of ``numerator[i] / denominator[i]`` (the ratio a bench checks)."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(f"need equally many rounds on both sides, got {len(numerator)} and {len(denominator)}")
    return spread([n / d for n, d in zip(numerator, denominator)], digits)


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return []


def fmt(stats: dict[str, Any], unit: str = "", scale: float = 1.0, digits: int = 3) -> str:
    """``median (min-max, n=..)`` for printing."""
    def f(x):
        return f"{x * scale:.{digits}f}"

    return f"{f(stats['median'])}{unit} (min {f(stats['min'])}, max {f(stats['max'])}, n={stats['n']})"


def header(name: str, pairs: int, warmup: int = 1) -> None:
    print(f"{name}: {warmup} warm-up round(s), then {pairs} interleaved rounds per side; "
          f"figures are median (min, max); ratios are the median of pairwise ratios; "
          f"load average {load_average()} on {os.cpu_count()} CPUs")


def write_result(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """Add the load average, write ``OUT/bench/<name>.json`` and print the JSON line."""
    result = dict(result, load_average=load_average())
    out = OUT / "bench"
    out.mkdir(parents=True, exist_ok=True)
    line = json.dumps(result)
    (out / f"{name}.json").write_text(line + "\n")
    print(line)
    return result
