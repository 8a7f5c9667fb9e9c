"""Build throughput against its floor, and memory at two sizes.

Generates a TextVQA-format tree (official file names and OCR layout) with many questions over a
pool of images, then, after one warm-up round, ``PAIRS`` interleaved rounds (bench/_timing.py) of:

1. build ``N`` records with the grounded annotator, 2 workers and one task per worker (``vlir build``
   in a subprocess; every task streams the source and keeps its partition), reading its peak RSS;
2. the floor at the same process count: for the same records, decode the image and encode the same
   crops with Pillow alone (``vlir.crops.render_crop`` is Pillow crop + resize + PNG);
3. the same two for ``LARGE`` records (the large build's peak RSS is the memory check).

The checked ratio is build/floor at ``LARGE`` records (target >= 0.9): a build pays a fixed start-up
(interpreter, imports, the one read of the split, forking, the manifest: ~0.7 s here) that a
1000-record build of ~5 s feels and a real one (10^4-10^6 records) does not; at ``LARGE`` it is
~4 % of the build. Also printed, not checked: build/floor at ``N`` (what the start-up costs a small
build), the marginal build/floor (per-record cost between the two sizes, the start-up cancelled)
and the start-up itself (the build time at ``N`` less ``N`` records at the marginal rate). Each
figure is the median of the per-round ratios with min-max; the RSS ratio LARGE/N has target <= 1.2.
The last line, also written to out/bench/build_throughput.json, is one JSON object.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vlir.crops import render_crop  # noqa: E402
from vlir.records import Box  # noqa: E402
from vlir.corpus.shards import iter_rows  # noqa: E402
from vlir.sources.samples import synth  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
import _timing as T  # noqa: E402

WORKERS = 2
IMAGES = 300
N = 1_000  # records per throughput round (and the small RSS size)
LARGE = 4_000  # the large RSS size (4x N: memory must not grow with the record count)
PAIRS = 5


def make_tree(root: Path, n_questions: int, seed: int = 0) -> None:
    """TextVQA 0.5.1 layout: questions json, Rosetta OCR json, train_images/*.jpg."""
    rng = random.Random(seed)
    images = root / "train_images"
    images.mkdir(parents=True, exist_ok=True)
    ocr, words_of = [], {}
    for i in range(IMAGES):
        w, h = rng.choice([(800, 600), (1024, 768), (640, 480)])
        img = synth.noise_background(rng, w, h)
        draw = ImageDraw.Draw(img)
        info = []
        for _ in range(4):
            word = rng.choice(synth.WORDS)
            size = rng.randint(28, 48)
            x, y = rng.randint(0, w - 300), rng.randint(0, h - 60)
            box = synth.draw_text(draw, (x, y), word, size, fill=(10, 10, 10))
            info.append({"word": word, "bounding_box": {
                "top_left_x": box.x1 / w, "top_left_y": box.y1 / h, "width": box.width / w,
                "height": box.height / h, "rotation": 0.0, "yaw": 0.0, "roll": 0.0, "pitch": 0.0}})
        synth.save_image(img, images / f"img{i:05d}.jpg", "JPEG")
        ocr.append({"image_id": f"img{i:05d}", "ocr_tokens": [t["word"] for t in info], "ocr_info": info})
        words_of[f"img{i:05d}"] = ((w, h), [t["word"] for t in info])
    data = []
    for q in range(n_questions):
        image_id = f"img{q % IMAGES:05d}"
        (w, h), words = words_of[image_id]
        data.append({"question": "what word is written here?", "question_id": q, "image_id": image_id,
                     "image_width": w, "image_height": h, "answers": [words[q % len(words)]] * 10,
                     "image_classes": ["sign"], "set_name": "train"})
    (root / "TextVQA_0.5.1_train.json").write_text(json.dumps(
        {"dataset_type": "train", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": data}))
    (root / "TextVQA_Rosetta_OCR_v0.2_train.json").write_text(json.dumps({"data": ocr}))


def run_build(root: Path, out: Path, limit: int) -> tuple[float, int]:
    """Build in a fresh wrapper process; returns (seconds, peak RSS in MB of the build's largest
    process, read by the wrapper from its own children only)."""
    cmd = [sys.executable, "-m", "vlir", "build", "--source", "textvqa", "--root", str(root),
           "--split", "train", "--out", str(out), "--workers", str(WORKERS), "--tasks", str(WORKERS),
           "--limit", str(limit), "--no-progress"]
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               f"subprocess.run({cmd!r}, check=True, capture_output=True); "
               "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out_text = subprocess.run([sys.executable, "-c", wrapper], check=True, capture_output=True, text=True).stdout
    seconds, rss_kb = out_text.split()
    return float(seconds), int(rss_kb) // 1024


def _floor_chunk(items: list[tuple[str, list[list[float]]]]) -> int:
    for path, boxes in items:
        with Image.open(path) as im:
            img = im.convert("RGB")
        for b in boxes:
            render_crop(img, Box(*b))
    return len(items)


def floor_seconds(root: Path, out: Path) -> tuple[float, int]:
    """Decode each built record's image and encode its crops, with WORKERS processes."""
    items = []
    for part in sorted(out.glob("textvqa/train/*.parquet")):
        for row in iter_rows(part, columns=["image_path", "steps"]):
            boxes = [s["box"] for s in row["steps"] if s["type"] == "look"]
            items.append((str(root / row["image_path"]), boxes))
    chunks = [items[i::WORKERS] for i in range(WORKERS)]
    start = time.perf_counter()
    with ProcessPoolExecutor(WORKERS) as pool:
        n = sum(pool.map(_floor_chunk, chunks))
    return time.perf_counter() - start, n


def main() -> None:
    T.header("build_throughput", PAIRS)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "textvqa"
        make_tree(root, LARGE)
        keys = ("build_n", "floor_n", "build_l", "floor_l", "rss_small", "rss_large")
        rounds: dict[str, list[float]] = {k: [] for k in keys}

        def one_round(i: int, keep: bool) -> None:
            build_n, rss_small = run_build(root, Path(tmp) / f"thr{i}", N)
            floor_n, n_floor = floor_seconds(root, Path(tmp) / f"thr{i}")
            build_l, rss_large = run_build(root, Path(tmp) / f"big{i}", LARGE)
            floor_l, l_floor = floor_seconds(root, Path(tmp) / f"big{i}")
            assert (n_floor, l_floor) == (N, LARGE), (n_floor, l_floor)  # every record built and floored
            for p in Path(tmp).glob(f"*{i}"):
                shutil.rmtree(p)
            if keep:
                for k, v in zip(keys, (build_n, floor_n, build_l, floor_l, rss_small, rss_large)):
                    rounds[k].append(v)

        one_round(-1, keep=False)  # warm-up: page cache, imports
        for i in range(PAIRS):
            one_round(i, keep=True)
    r = rounds
    # build/floor = floor seconds / build seconds for the same records (a rate ratio)
    at_large = T.pairwise_ratio(r["floor_l"], r["build_l"], 3)
    at_n = T.pairwise_ratio(r["floor_n"], r["build_n"], 3)
    marginal = T.pairwise_ratio([fl - fn for fl, fn in zip(r["floor_l"], r["floor_n"])],
                                [bl - bn for bl, bn in zip(r["build_l"], r["build_n"])], 3)
    startup = [bn - N * (bl - bn) / (LARGE - N) for bn, bl in zip(r["build_n"], r["build_l"])]
    rss = T.pairwise_ratio(r["rss_large"], r["rss_small"], 3)
    rate_l = [LARGE / s for s in r["build_l"]]
    print(f"build: {LARGE} records, {WORKERS} workers: {T.fmt(T.spread(rate_l), ' rec/s', digits=0)}; "
          f"{N} records: {T.fmt(T.spread([N / s for s in r['build_n']]), ' rec/s', digits=0)}")
    print(f"floor: decode + crop encode of the same records: "
          f"{T.fmt(T.spread([LARGE / s for s in r['floor_l']]), ' rec/s', digits=0)}")
    print(f"start-up of a build (build at {N} less {N} records at the marginal rate): "
          f"{T.fmt(T.spread(startup), ' s', digits=2)}")
    print(f"peak RSS: {N} records {T.fmt(T.spread(r['rss_small']), ' MB', digits=0)}, "
          f"{LARGE} records {T.fmt(T.spread(r['rss_large']), ' MB', digits=0)}")
    print(f"build/floor at {N} records = {T.fmt(at_n)}; marginal (start-up cancelled) = {T.fmt(marginal)}")
    print(f"build/floor at {LARGE} records = {T.fmt(at_large)} (target >= 0.9); "
          f"RSS {LARGE}/{N} = {T.fmt(rss)} (target <= 1.2)")
    T.write_result("build_throughput", {
        "build_over_floor": at_large["median"], "rss_ratio_large_vs_small": rss["median"],
        "records_per_s": T.spread(rate_l, 1)["median"], "pairs": PAIRS, "records": LARGE, "small": N,
        "build_over_floor_spread": at_large, "build_over_floor_small": at_n, "build_over_floor_marginal": marginal,
        "startup_s": T.spread(startup, 3), "rss_ratio_spread": rss, "records_per_s_spread": T.spread(rate_l, 1),
        "rss_mb_small": T.spread(r["rss_small"], 0), "rss_mb_large": T.spread(r["rss_large"], 0)})


if __name__ == "__main__":
    main()
