"""Build against its floor in CPU time: what the build spends beyond decoding and encoding crops.

bench/build_throughput.py compares wall-clock rates; on a shared 2-core machine under load its
rounds spread from 0.65 to 2.2 and the median says little. CPU time (user + system of every
process: the ``vlir build`` subprocess with its workers, and the floor's worker pool, read with
``RUSAGE_CHILDREN`` once each has been reaped) is what the neighbours do not inflate. Same tree,
records and worker count as bench/build_throughput.py; one warm-up round, then ``PAIRS``
rounds alternating build and floor; prints floor CPU / build CPU (the share of the build's CPU
that is the floor's work), the median of the per-round ratios with min-max. What it does not see:
time the build waits (the serial read before the tasks, a worker idle at the end), which only the
wall-clock bench measures.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
import _timing as T  # noqa: E402
from build_throughput import LARGE, N, WORKERS, floor_seconds, make_tree  # noqa: E402

PAIRS = 5


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    T.header("build_cpu", PAIRS)
    with tempfile.TemporaryDirectory() as tmp:
        root, out = Path(tmp) / "textvqa", Path(tmp) / "out"
        make_tree(root, LARGE)
        builds, floors = [], []
        for i in range(PAIRS + 1):  # round 0: the warm-up
            shutil.rmtree(out, ignore_errors=True)
            start = children_cpu()
            subprocess.run([sys.executable, "-m", "vlir", "build", "--source", "textvqa", "--root", str(root),
                            "--split", "train", "--out", str(out), "--workers", str(WORKERS), "--tasks",
                            str(WORKERS), "--limit", str(N), "--no-progress"], check=True, capture_output=True)
            build = children_cpu() - start
            start = children_cpu()
            floor_seconds(root, out)  # its pool's workers are joined (and counted) when it returns
            floor = children_cpu() - start
            if i:
                builds.append(build)
                floors.append(floor)
    ratio = T.pairwise_ratio(floors, builds, 3)
    print(f"build: {N} records, {WORKERS} workers: {T.fmt(T.spread(builds), ' CPU-s', digits=2)}; "
          f"floor: {T.fmt(T.spread(floors), ' CPU-s', digits=2)}")
    print(f"floor CPU / build CPU = {T.fmt(ratio)}")
    T.write_result("build_cpu", {"floor_over_build_cpu": ratio["median"], "floor_over_build_cpu_spread": ratio,
                                 "build_cpu_s": T.spread(builds, 2), "floor_cpu_s": T.spread(floors, 2),
                                 "records": N, "pairs": PAIRS})


if __name__ == "__main__":
    main()
