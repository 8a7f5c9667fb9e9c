"""The CPU cost of building each VLIR source at its real image sizes, and what all of VLIR costs.

Per source, synthetic JPEGs (noise background and drawn words: :mod:`vlir.sources.samples.synth`,
JPEG quality 90) at the official images' sizes: GQA (Visual Genome) 500x375, 800x600 and 1024x768;
TextVQA (OpenImages) 1024x768; DocVQA scans 1700x2200; InfographicsVQA 1000x3000; VSR (COCO)
640x480. Per record the bench does the floor of a grounded build, in CPU time: decode the
original (as the build does: :func:`vlir.images.decode_image`, which verifies the whole file) and
render its crops (:func:`vlir.crops.render_crop`: cut, LANCZOS zoom, PNG), with the looks per
accepted record of the grounded sample build (VSR 2, GQA 1.34, the OCR sources 1) and boxes of
5-30 % of each side. Records/s per core = records / CPU-second, median of ``--pairs`` interleaved
rounds (bench/_timing.py). A whole build costs more than this floor by the build/floor ratio of
bench/build_throughput.py (``--overhead``, default its measured median), which the CPU-hours
below divide by.

Records per source are the official train+val counts (GQA balanced: 943,000 + 132,062; TextVQA
34,602 + 5,000; DocVQA 39,463 + 5,349; InfographicsVQA 23,946 + 2,801; VSR random split
7,680 + 1,097). Wall time on C cores = CPU time / C, plus the serial one read per split (GQA
train: ~150 s at bench/full_size_gqa.py's 6.3k records/s per core), assuming the records spread
evenly (Ray: ``--executor ray``, tasks >= cores).

The last line, also written to out/bench/source_costs.json, is one JSON object.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
from pathlib import Path

from PIL import ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
import _timing as T  # noqa: E402

from vlir.crops import render_crop  # noqa: E402
from vlir.images import decode_image  # noqa: E402
from vlir.records import Box  # noqa: E402
from vlir.sources.samples import synth  # noqa: E402

SOURCES = {  # sizes (w, h), looks per record, train + val records
    "gqa": ([(500, 375), (800, 600), (1024, 768)], 1.34, 943_000 + 132_062),
    "textvqa": ([(1024, 768)], 1.0, 34_602 + 5_000),
    "docvqa": ([(1700, 2200)], 1.0, 39_463 + 5_349),
    "infographicsvqa": ([(1000, 3000)], 1.0, 23_946 + 2_801),
    "vsr": ([(640, 480)], 2.0, 7_680 + 1_097),
}
SERIAL_READ_S = {"gqa": 1_075_062 / 6320}  # the one read per split, before its tasks (others: seconds)
CORES = (1, 16, 128)


def jpeg(rng: random.Random, w: int, h: int) -> bytes:
    img = synth.noise_background(rng, w, h)
    draw = ImageDraw.Draw(img)
    for _ in range(max(4, w * h // 60_000)):
        synth.draw_text(draw, (rng.randint(0, w - 200), rng.randint(0, h - 40)), rng.choice(synth.WORDS),
                        rng.randint(18, 40), fill=(10, 10, 10))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def records(source: str, n: int, seed: int = 0) -> list[tuple[bytes, list[Box]]]:
    sizes, looks, _ = SOURCES[source]
    rng = random.Random(f"{seed}/{source}")
    images = [jpeg(rng, *sizes[i % len(sizes)]) for i in range(max(3, len(sizes)))]
    out = []
    for i in range(n):
        data = images[i % len(images)]
        w, h = sizes[(i % len(images)) % len(sizes)]
        k = int(looks) + (1 if rng.random() < looks - int(looks) else 0)
        boxes = []
        for _ in range(k):
            bw, bh = rng.uniform(0.05, 0.3) * w, rng.uniform(0.05, 0.3) * h
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            boxes.append(Box(x, y, x + bw, y + bh))
        out.append((data, boxes))
    return out


def floor(items) -> None:
    for data, boxes in items:
        image = decode_image(data, "bench")
        for box in boxes:
            render_crop(image, box)


def cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def hours(s: float) -> str:
    return f"{s / 3600:.2f} h" if s >= 360 else f"{s / 60:.1f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20, help="records per source per round")
    parser.add_argument("--pairs", type=int, default=T.MIN_PAIRS)
    parser.add_argument("--overhead", type=float, default=None,
                        help="build/floor (default: out/bench/build_throughput.json's, else 0.77)")
    args = parser.parse_args()
    ratio = args.overhead
    if ratio is None:
        import json

        saved = T.OUT / "bench" / "build_throughput.json"
        ratio = json.loads(saved.read_text())["build_over_floor"] if saved.is_file() else 0.77
    T.header("source_costs", args.pairs)
    work = {s: records(s, args.records) for s in SOURCES}
    rounds = T.interleaved({s: (lambda s=s: floor(work[s])) for s in SOURCES}, args.pairs,
                           measure=lambda _n, fn: cpu(fn))
    table, total_cpu = {}, 0.0
    print(f"build/floor {ratio:.3f} (bench/build_throughput.py); per-core rates are the floor's x that")
    print("| source | image size(s) | looks/record | floor rec/s/core | build rec/s/core | train+val records | "
          "CPU-hours | wall 1 core | wall 16 cores | wall 128 cores |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s, (sizes, looks, n) in SOURCES.items():
        rate = T.spread([args.records / c for c in rounds[s]], 1)
        build_rate = rate["median"] * ratio
        cpu_s = n / build_rate
        serial = SERIAL_READ_S.get(s, 0.0)
        walls = {c: serial + cpu_s / c for c in CORES}
        total_cpu += cpu_s
        table[s] = {"sizes": sizes, "looks": looks, "floor_records_per_cpu_s": rate, "build_records_per_cpu_s":
                    round(build_rate, 1), "records": n, "cpu_hours": round(cpu_s / 3600, 3),
                    "wall_s": {str(c): round(w) for c, w in walls.items()}}
        print(f"| {s} | {', '.join(f'{w}x{h}' for w, h in sizes)} | {looks} | {T.fmt(rate, digits=1)} | "
              f"{build_rate:.1f} | {n:,} | {cpu_s / 3600:.2f} | " + " | ".join(hours(walls[c]) for c in CORES) + " |")
    print(f"all of VLIR: {total_cpu / 3600:.2f} CPU-hours")
    T.write_result("source_costs", {"build_over_floor": ratio, "pairs": args.pairs, "records_per_round": args.records,
                                    "sources": table, "total_cpu_hours": round(total_cpu / 3600, 3)})


if __name__ == "__main__":
    main()
