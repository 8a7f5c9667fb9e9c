"""Teacher annotator throughput against a loopback chat-completions server with a fixed latency.

With every answer taking ``latency`` seconds, ``concurrency`` requests in flight can at best finish
``concurrency / latency`` records per second; this prints the measured rate against that ideal for
concurrency 8 and 32 (target >= 0.8) and the CPU time vlir's own process spends per record (image
pad or resize + JPEG + base64, request building, the HTTP client, parsing, the SQLite cache),
feeding it the way ``vlir build`` should: :meth:`TeacherAnnotator.annotate_stream`. The server runs
in a separate process so its CPU is not counted; the load average is printed, because on a shared
machine the ratio at concurrency 32 is bounded by the CPU left to this process: the bench also reads the server's own CPU (/proc) and prints the
cores client + server need at the ideal rate; ``--latency-ms 1000`` lowers that need five-fold
(the ideal rate falls, the CPU per record does not), which shows the ratio with the CPU bound removed.

    python bench/teacher_throughput.py [--latency-ms 200] [--rounds 10] [--pairs 5] [--out out]

Measured as every bench (``bench/_timing.py``): one warm-up measurement per concurrency, then
``--pairs`` (>= 5) measurements alternating 8 and 32, each of ``concurrency x rounds`` fresh
records; printed as median (min, max, n).

It also times the chain-schema validation of one answer (``schema_us_per_answer``: jsonschema's
Draft 2020-12 validator, built once). Measured here: 190-410 us per answer (shared 2-core machine),
up from 30 us for the hand-written predicate it replaced: under half a millisecond of a record's CPU,
for a kept library that knows every keyword.

Last line (also written to ``<out>/bench/teacher_throughput.json``):
``{"ratio_c8": ..., "ratio_c32": ..., "cpu_ms_per_record": ..., "schema_us_per_answer": ...}`` (medians),
with ``ratio_c8_spread`` etc. holding median, min, max and n.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing as T  # noqa: E402
from vlir.annotate.base import AnnotateInput  # noqa: E402
from vlir.annotate.teacher import TeacherAnnotator  # noqa: E402
from vlir.annotate.teacher_config import TeacherConfig  # noqa: E402
from vlir.records import Box, Region, Sample  # noqa: E402


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process (Linux /proc): the loopback server's own cost."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_items(n: int, offset: int, width: int = 640, height: int = 480) -> list[AnnotateInput]:
    """Distinct photo-sized images (so nothing is served from the cache), each with one OCR hint."""
    items = []
    for i in range(offset, offset + n):
        img = Image.new("RGB", (width, height), ((i * 37) % 256, (i * 91) % 256, 180))
        draw = ImageDraw.Draw(img)
        for k in range(12):
            x, y = (i * 13 + k * 47) % (width - 80), (i * 29 + k * 31) % (height - 40)
            draw.rectangle((x, y, x + 70, y + 30), fill=((k * 60) % 256, 90, (i * 7) % 256))
            draw.text((x + 4, y + 8), f"W{i}-{k}", fill=(255, 255, 255))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        sample = Sample(id=f"bench/val/{i}", source="textvqa", split="val", image=f"{i}.jpg",
                        width=width, height=height, question=f"What is written on tag {i}?",
                        answers=(f"w{i}",), evidence=(Region(Box(40, 50, 200, 90), f"W{i}", "ocr_word"),))
        items.append(AnnotateInput(sample, img, hashlib.sha256(buf.getvalue()).hexdigest()))
    return items


class Side:
    """One concurrency level: a live annotator whose every call annotates ``concurrency x rounds``
    fresh records (new images each call, so nothing is served from the cache) and returns the
    measured rate over the ideal; the CPU time per record of each call is kept."""

    def __init__(self, base_url: str, concurrency: int, latency_s: float, rounds: int, cache_dir: Path,
                 server_pid: int):
        cfg = TeacherConfig(base_url=base_url, model="fake-teacher", concurrency=concurrency,
                            cache_path=str(cache_dir / f"c{concurrency}.sqlite"), timeout_s=30)
        self.annotator = TeacherAnnotator(cfg)
        self.concurrency, self.ideal, self.n = concurrency, concurrency / latency_s, concurrency * rounds
        self.calls = 0
        self.cpu_ms: list[float] = []
        self.server_pid, self.server_cpu_ms = server_pid, []

    def __call__(self) -> float:
        items = make_items(self.n, offset=self.concurrency * 10_000_000 + self.calls * self.n)
        self.calls += 1
        server0, cpu0, t0 = process_cpu_s(self.server_pid), time.process_time(), time.perf_counter()
        results = [result for _, result in self.annotator.annotate_stream(items)]
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        self.server_cpu_ms.append(1000 * (process_cpu_s(self.server_pid) - server0) / self.n)
        failed = sum(1 for r in results if not hasattr(r, "answer"))
        if failed:
            raise RuntimeError(f"{failed} of {self.n} records failed: {self.annotator.stats()['failures']}")
        self.cpu_ms.append(1000 * cpu / self.n)
        return self.n / wall / self.ideal


def schema_cost(repeat: int = 2000) -> float:
    """Microseconds to validate one typical (valid, two-look) chain answer against the schema."""
    import timeit

    from vlir.annotate.teacher_prompt import schema_error

    answer = {"steps": [{"think": "I need to find the sign."},
                        {"look": {"bbox_2d": [10, 20, 110, 120], "label": "the sign"}},
                        {"think": "It reads stop."},
                        {"look": {"bbox_2d": [30, 40, 130, 140], "label": "the pole"}}], "answer": "stop"}
    assert schema_error(answer) is None
    return 1e6 * min(timeit.repeat(lambda: schema_error(answer), number=repeat, repeat=3)) / repeat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--rounds", type=int, default=10, help="records per measurement = concurrency x rounds")
    parser.add_argument("--pairs", type=int, default=T.MIN_PAIRS, help="interleaved measurements per side (>= 5)")
    parser.add_argument("--out", type=Path, default=T.OUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    latency = args.latency_ms / 1000
    T.header("teacher_throughput", args.pairs)
    server = subprocess.Popen([sys.executable, "-m", "vlir.testing.openai_server",
                               "--latency-ms", str(args.latency_ms)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            sides = {c: Side(base_url, c, latency, args.rounds, Path(tmp), server.pid) for c in (8, 32)}
            try:
                ratios = T.interleaved(sides, args.pairs, measure=lambda _c, side: side())
            finally:
                for side in sides.values():
                    side.annotator.close()
    finally:
        server.stdin.close()
        server.wait(10)
    result = {}
    for c, side in sides.items():
        ratio, cpu = T.spread(ratios[c]), T.spread(side.cpu_ms[1:], 3)  # [1:]: not the warm-up
        print(f"concurrency {c:>2}: {side.n} records per measurement; rate / ideal ({side.ideal:.0f} rec/s = "
              f"{c} / {latency:g}s) = {T.fmt(ratio)} (target >= 0.8); vlir CPU {T.fmt(cpu, ' ms/record', digits=2)}")
        result[f"ratio_c{c}"], result[f"ratio_c{c}_spread"] = ratio["median"], ratio
        result[f"cpu_ms_c{c}"] = cpu
        server_cpu = T.spread(side.server_cpu_ms[1:], 3)
        demand = side.ideal * (cpu["median"] + server_cpu["median"]) / 1000
        print(f"    loopback server CPU {T.fmt(server_cpu, ' ms/record', digits=2)}; at the ideal rate client + "
              f"server need {demand:.2f} core(s) of the {os.cpu_count()} (shared: see the load average)")
        result[f"server_cpu_ms_c{c}"], result[f"cores_needed_at_ideal_c{c}"] = server_cpu, round(demand, 3)
    every_cpu = [v for side in sides.values() for v in side.cpu_ms[1:]]
    schema_us = schema_cost()
    print(f"chain-schema validation (jsonschema, compiled once): {schema_us:.1f} us per answer (best of 3)")
    result.update(cpu_ms_per_record=T.spread(every_cpu, 3)["median"], schema_us_per_answer=round(schema_us, 1),
                  pairs=args.pairs, load_average=T.load_average())
    (args.out / "bench").mkdir(parents=True, exist_ok=True)
    (args.out / "bench" / "teacher_throughput.json").write_text(json.dumps(result) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
