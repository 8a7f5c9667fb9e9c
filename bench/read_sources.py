"""Streaming read of GQA-format files: peak memory must not grow with the file.

Generates, in a temp dir, a GQA tree in the official layout: ``images/`` (a pool of small JPEGs),
``{split}_sceneGraphs.json`` for them, and a small (``val``) and a 10x larger (``train``) question
file with real-shaped records (semantic programs, annotations, entailed/equivalent lists; ~1 KB
each). Each is read by the ``gqa`` adapter in its own subprocess (every question becomes a Sample
with evidence from the scene-graph index), which reports its peak RSS and rate; after a warm-up
round, ``--pairs`` (>= 5) interleaved rounds (bench/_timing.py).

Prints the RSS of both, their ratio (target <= 1.5; the median of the per-round ratios, with
min-max) and the large file's RSS (target < 2 GiB), and samples/s. Default sizes 20k and 200k keep
six rounds within a few minutes on a shared CPU; ``--sizes 100000,1000000`` is the full-size run
(~1 GB, like the real 1.4 GB train file). The last line, also written to out/bench/read_sources.json,
is one JSON object: ``{"rss_ratio_large_vs_small": ..., "rss_mb_large": ..., "samples_per_s": ...}``.

Usage: ``python bench/read_sources.py [--sizes 20000,200000] [--pairs 5] [--keep DIR] [--graph-images 75000]``
(the last also builds the scene-graph index of a GQA-train-sized graph and reports its peak RSS).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
import _timing as T  # noqa: E402

from vlir.sources.samples.scenes import draw_scene  # noqa: E402
from vlir.sources.samples.synth import save_image  # noqa: E402

IMAGES = 400
NAMES = ("cup", "table", "man", "shirt", "car", "tree", "dog", "sign", "window", "plate")
RELATIONS = ("to the left of", "to the right of", "on", "near", "behind")

CHILD = r"""
import json, resource, sys, time
from collections import Counter
from vlir.sources.gqa import GQASource
root, split = sys.argv[1], sys.argv[2]
stats, n, regions = Counter(), 0, 0
t0 = time.perf_counter()
for item in GQASource().iter_samples(root, split, stats):
    n += 1
    regions += len(getattr(item, "evidence", ()))
dt = time.perf_counter() - t0
print(json.dumps({"items": n, "regions": regions, "seconds": dt, "stats": dict(stats),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_images_and_graphs(root: Path, seed: int) -> dict[str, list[tuple[str, str]]]:
    """The image pool and its scene graph (written for both splits); returns imageId -> objects."""
    rng = random.Random(seed)
    graphs, objects_of = {}, {}
    for i in range(IMAGES):
        image_id = str(2_300_000 + i)
        names = rng.sample(NAMES, 4)
        img, drawn = draw_scene(rng, names, 320, 240)
        save_image(img, root / "images" / f"{image_id}.jpg", "JPEG")
        objects, ids = {}, [str(1_000_000 + 20 * i + k) for k in range(len(drawn))]
        for k, o in enumerate(drawn):
            objects[ids[k]] = {"name": o.name, "x": o.x, "y": o.y, "w": o.w, "h": o.h,
                               "attributes": [o.color],
                               "relations": [{"name": rng.choice(RELATIONS), "object": ids[j]}
                                             for j in range(len(drawn)) if j != k]}
        graphs[image_id] = {"width": 320, "height": 240, "objects": objects}
        objects_of[image_id] = [(ids[k], o.name) for k, o in enumerate(drawn)]
    text = json.dumps(graphs)
    for split in ("train", "val"):
        (root / f"{split}_sceneGraphs.json").write_text(text)
    return objects_of


def write_questions(path: Path, n: int, objects_of: dict[str, list[tuple[str, str]]], seed: int) -> None:
    """``n`` real-shaped questions, written incrementally (the generator holds one at a time)."""
    rng = random.Random(seed)
    image_ids = list(objects_of)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("{")
        for q in range(n):
            image_id = image_ids[q % len(image_ids)]
            (a, an), (b, bn) = rng.sample(objects_of[image_id], 2)
            rel = rng.choice(RELATIONS)
            qid = f"{q:08d}"
            question = f"What is the {an} {rel} the {bn} made of?"
            ops = [("select", [], f"{bn} ({b})"), ("relate", [0], f"{an},{rel},s ({a})"),
                   ("query", [1], "material")]
            record = {
                "semantic": [{"operation": o, "dependencies": d, "argument": g} for o, d, g in ops],
                "entailed": [f"{q + k:08d}" for k in range(1, 4)], "equivalent": [qid],
                "question": question, "imageId": image_id, "isBalanced": True,
                "groups": {"global": "material", "local": f"14-{bn}_{rel},s"}, "answer": "wood",
                "semanticStr": "->".join(f"{o}: {g}" + (f" [{d[0]}]" if d else "") for o, d, g in ops),
                "annotations": {"answer": {}, "question": {"3": a, str(4 + len(rel.split()) + 1): b},
                                "fullAnswer": {"1": a}},
                "types": {"detailed": "materialRelS", "semantic": "rel", "structural": "query"},
                "fullAnswer": f"The {an} is made of wood.",
            }
            fh.write(("," if q else "") + json.dumps(qid) + ": " + json.dumps(record))
        fh.write("}")


GRAPH_CHILD = r"""
import json, resource, sys, time
from vlir.sources.scenegraph import SceneGraphIndex
t0 = time.perf_counter()
index = SceneGraphIndex.build(sys.argv[1])
print(json.dumps({"images": len(index), "index_mb": index.nbytes / 2**20, "seconds": time.perf_counter() - t0,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure_scene_graph(work: Path, images: int, objects_per_image: int = 20) -> dict:
    """A GQA-train-sized scene graph (75k images x ~20 objects ~ 0.4 GB): the index build's
    peak RSS, so the compact index is measured at the real scale too."""
    rng = random.Random(3)
    path = work / "big_sceneGraphs.json"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("{")
        for i in range(images):
            ids = [str(5_000_000 + objects_per_image * i + k) for k in range(objects_per_image)]
            objects = {oid: {"name": rng.choice(NAMES), "x": rng.randint(0, 400), "y": rng.randint(0, 300),
                             "w": rng.randint(5, 100), "h": rng.randint(5, 100),
                             "attributes": ["white", "wooden"],
                             "relations": [{"name": rng.choice(RELATIONS), "object": rng.choice(ids)}
                                           for _ in range(3)]} for oid in ids}
            fh.write(("," if i else "") + json.dumps(str(i)) + ": " +
                     json.dumps({"width": 500, "height": 375, "objects": objects}))
        fh.write("}")
    out = subprocess.run([sys.executable, "-c", GRAPH_CHILD, str(path)], cwd=REPO, check=True,
                         capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["file_mb"] = path.stat().st_size / 2**20
    path.unlink()
    return result


def measure(root: Path, split: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(root), split], cwd=REPO, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,200000", help="small,large question counts")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved rounds after the warm-up")
    parser.add_argument("--keep", type=Path, help="generate here and keep the files")
    parser.add_argument("--graph-images", type=int, default=0,
                        help="also time the scene-graph index on a graph of N images (GQA train: 75000)")
    args = parser.parse_args()
    small, large = (int(v) for v in args.sizes.split(","))
    work = args.keep or Path(tempfile.mkdtemp(prefix="vlir-bench-read-"))
    try:
        t0 = time.perf_counter()
        objects_of = make_images_and_graphs(work, seed=0)
        write_questions(work / "val_balanced_questions.json", small, objects_of, seed=1)
        write_questions(work / "train_balanced_questions.json", large, objects_of, seed=2)
        sizes_mb = {s: (work / f"{s}_balanced_questions.json").stat().st_size / 2**20 for s in ("val", "train")}
        print(f"generated {small:,} + {large:,} questions ({sizes_mb['val']:.0f} MB + "
              f"{sizes_mb['train']:.0f} MB) over {IMAGES} images in {time.perf_counter() - t0:.0f} s")
        T.header("read_sources", args.pairs)
        sizes = {"val": small, "train": large}

        def read(split: str) -> dict:
            r = measure(work, split)
            n = sizes[split]
            assert r["items"] == n and r["stats"].get("samples") == n, r
            assert r["regions"] == 2 * n, r  # both annotated objects resolved for every question
            return r

        runs: dict[str, list[dict]] = {"val": [], "train": []}
        T.interleaved({split: (lambda split=split: runs[split].append(read(split))) for split in sizes},
                      args.pairs, measure=lambda _name, fn: fn() or 0.0)
        runs = {k: v[1:] for k, v in runs.items()}  # drop the warm-up round
        rss = {k: [r["rss_mb"] for r in v] for k, v in runs.items()}
        rate = [large / r["seconds"] for r in runs["train"]]
        ratio = T.pairwise_ratio(rss["train"], rss["val"])
        for split, n in sizes.items():
            print(f"{n:>9,} questions: peak RSS {T.fmt(T.spread(rss[split]), ' MB', digits=1)}, "
                  f"{T.fmt(T.spread([n / r['seconds'] for r in runs[split]]), ' samples/s', digits=0)}")
        print(f"RSS ratio {large:,} vs {small:,}: {T.fmt(ratio)} (target <= 1.5); "
              f"RSS at {large:,}: {T.spread(rss['train'])['max']:.0f} MB at most (target < 2048)")
        result = {"rss_ratio_large_vs_small": ratio["median"], "rss_mb_large": T.spread(rss["train"], 1)["median"],
                  "samples_per_s": T.spread(rate, 1)["median"], "pairs": args.pairs,
                  "rss_ratio_spread": ratio, "rss_mb_small": T.spread(rss["val"], 1),
                  "rss_mb_large_spread": T.spread(rss["train"], 1), "samples_per_s_spread": T.spread(rate, 1),
                  "questions_small": small, "questions_large": large,
                  "file_mb_large": round(sizes_mb["train"], 1)}
        if args.graph_images:
            g = measure_scene_graph(work, args.graph_images)
            print(f"scene graph of {g['images']:,} images ({g['file_mb']:.0f} MB): index {g['index_mb']:.1f} MB, "
                  f"peak RSS {g['rss_mb']:.0f} MB, built in {g['seconds']:.0f} s")
            result.update({"scene_graph_images": g["images"], "scene_graph_file_mb": round(g["file_mb"], 1),
                           "scene_graph_index_mb": round(g["index_mb"], 1),
                           "scene_graph_rss_mb": round(g["rss_mb"], 1)})
        T.write_result("read_sources", result)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
