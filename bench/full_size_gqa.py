"""The plan at GQA's real size: temp disk, peak RSS and records/s per core of the one read.

GQA train-balanced has ~943k questions over ~72k scene graphs. This writes such a split in the
official layout (:func:`vlir.sources.samples.gqa.write_gqa_split_at_scale`: the question and
scene-graph files at full size, images hard links to a few small scenes, because the read checks
that each image exists but never decodes it), then measures the build's plan stage on it: the
one read of the split (:func:`vlir.corpus.build_plan.read_source`, ``TASKS`` tasks) followed by every
task streaming its share (:func:`vlir.corpus.build_plan.task_items`), in a fresh child process per
round. The annotator and the crops are not run: they cost the same per record at any split size
(bench/build_throughput.py measures them) and would drown the plan's cost.

Per round: peak temp disk (the plan's folder, polled every 50 ms while the child runs), the
child's peak RSS, and records per CPU-second (user + system time of the child: records/s per
core). Two sizes, the large ``--scale`` times the small, over the same scene graphs (GQA's
questions per graph at the large size; the scene-graph index is the graph file's, flat in the
questions), in interleaved rounds (bench/_timing.py).
Targets: peak temp disk <= 5 % of the question file; RSS large/small <= 1.1.

Usage: ``python bench/full_size_gqa.py`` (small: 10k and 90k questions, a few minutes) or
``python bench/full_size_gqa.py --full`` (100k and 943k questions, ~72k scene graphs; needs ~1 GB
of disk in ``--tmp`` and tens of minutes). The last line, also written to
out/bench/full_size_gqa.json, is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
import _timing as T  # noqa: E402

from vlir.sources.samples.gqa import write_gqa_split_at_scale  # noqa: E402

TASKS = 4
QUESTIONS_PER_GRAPH = 943_000 / 72_140  # GQA train-balanced

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from vlir.corpus.build import BuildConfig, Job
from vlir.corpus.build_plan import read_source, source_reads, task_items
root, out, tasks = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
cfg, job = BuildConfig(tasks=tasks), Job("gqa", "train", root)
[read] = source_reads([(job, t) for t in range(tasks)], out)
t0 = time.perf_counter()
n = read_source(cfg, read)
t1 = time.perf_counter()
shared = sum(1 for t in range(tasks) for _ in task_items(read.folder, t))
t2 = time.perf_counter()
assert shared == n, (shared, n)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"items": n, "read_s": t1 - t0, "tasks_s": t2 - t1, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "rss_mb": usage.ru_maxrss / 1024}))
"""


def folder_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:  # renamed or removed between the listing and the stat
                pass
    return total


def one_round(root: Path, work: Path) -> dict:
    """Run the plan stage in a child; poll the temp folder for its peak size."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(root), str(work), str(TASKS)],
                             stdout=subprocess.PIPE, text=True, env=env)
    peak = 0
    done = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, folder_bytes(work / ".vlir"))
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    stdout, _ = child.communicate()
    done.set()
    poller.join()
    if child.returncode:
        raise SystemExit(f"plan child failed with exit code {child.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    shutil.rmtree(work, ignore_errors=True)
    return dict(result, temp_bytes=peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="100k and 943k questions (GQA train-balanced)")
    parser.add_argument("--questions", type=int, default=None, help="the large size (default 90k; 943k with --full)")
    parser.add_argument("--scale", type=int, default=9, help="large / small question count")
    parser.add_argument("--pairs", type=int, default=T.MIN_PAIRS)
    parser.add_argument("--tmp", default=None, help="where to write the trees (default: the system temp dir)")
    parser.add_argument("--keep", default=None, help="write the trees here and keep them; a later run "
                                                     "with the same sizes reuses them")
    parser.add_argument("--single", action="store_true",
                        help="one round per size, no warm-up (a full-size round is minutes of CPU; "
                             "temp disk and RSS barely vary, the rate's spread is then unknown)")
    args = parser.parse_args()
    large = args.questions or (943_000 if args.full else 90_000)
    sizes = {"small": large // args.scale, "large": large}
    # both sizes over the large split's scene graphs: the index is the scene-graph file's (flat in
    # the questions); what must not grow is what the plan holds per question
    graphs = max(1, round(large / QUESTIONS_PER_GRAPH))
    if args.single:
        args.pairs = 1
        print(f"full_size_gqa: a single round per size (no warm-up, no spread); load average "
              f"{T.load_average()} on {os.cpu_count()} CPUs")
    else:
        T.header("full_size_gqa", args.pairs)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        trees = Path(args.keep) if args.keep else Path(tmp)
        files = {}
        for name, questions in sizes.items():
            start = time.perf_counter()
            marker = trees / name / f".written-{questions}-{graphs}.json"
            if marker.is_file():
                files[name] = json.loads(marker.read_text())
            else:
                shutil.rmtree(trees / name, ignore_errors=True)
                files[name] = write_gqa_split_at_scale(trees / name, "train", questions, graphs)
                marker.write_text(json.dumps(files[name]))
            print(f"{name}: {questions} questions over {graphs} scene graphs: question file "
                  f"{files[name]['questions_bytes'] / 1e6:.0f} MB, scene graphs "
                  f"{files[name]['scene_graphs_bytes'] / 1e6:.0f} MB (written in {time.perf_counter() - start:.0f}s)",
                  flush=True)
        rounds: dict[str, list[dict]] = {name: [] for name in sizes}

        def measure(name: str, fn) -> float:
            result = fn()
            rounds[name].append(result)
            print(f"  {name}: {json.dumps(result)}", flush=True)
            return result["rss_mb"]

        sides = {name: (lambda name=name: one_round(trees / name, Path(tmp) / f"out-{name}")) for name in sizes}
        if args.single:
            for name, side in sides.items():
                measure(name, side)
        else:
            T.interleaved(sides, args.pairs, measure=measure)
    report = {}
    for name, questions in sizes.items():
        kept = rounds[name][-args.pairs:]  # the warm-up round is not counted
        temp_pct = [100 * r["temp_bytes"] / files[name]["questions_bytes"] for r in kept]
        rate = [r["items"] / r["cpu_s"] for r in kept]
        report[name] = {"questions": questions, "question_file_mb": round(files[name]["questions_bytes"] / 1e6, 1),
                        "temp_mb": T.spread([r["temp_bytes"] / 1e6 for r in kept], 1),
                        "temp_pct_of_questions": T.spread(temp_pct, 2), "rss_mb": T.spread([r["rss_mb"] for r in kept], 0),
                        "records_per_cpu_s": T.spread(rate, 0),
                        "read_s": T.spread([r["read_s"] for r in kept], 1), "tasks_s": T.spread([r["tasks_s"] for r in kept], 1)}
        print(f"{name} ({questions} questions): peak temp disk {T.fmt(report[name]['temp_mb'], ' MB', digits=1)} = "
              f"{T.fmt(report[name]['temp_pct_of_questions'], ' %', digits=2)} of the question file (target <= 5 %); "
              f"peak RSS {T.fmt(report[name]['rss_mb'], ' MB', digits=0)}; "
              f"{T.fmt(report[name]['records_per_cpu_s'], ' records/s per core', digits=0)}")
    rss = T.pairwise_ratio([r["rss_mb"] for r in rounds["large"][-args.pairs:]],
                           [r["rss_mb"] for r in rounds["small"][-args.pairs:]], 3)
    print(f"RSS {sizes['large']}/{sizes['small']} questions = {T.fmt(rss)} (target <= 1.1)")
    T.write_result("full_size_gqa", {"tasks": TASKS, "pairs": args.pairs, "sizes": report,
                                     "rss_ratio_large_vs_small": rss["median"], "rss_ratio_spread": rss,
                                     "temp_pct_of_questions_large": report["large"]["temp_pct_of_questions"]["median"]})


if __name__ == "__main__":
    main()
