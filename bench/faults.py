"""The adversarial probe list of issue 13, run against the real CLI: each probe is a small function
(bench/fault_probes_*.py) that sets up one fault, runs ``vlir`` in a subprocess and returns
(expected, observed, ok).

    python bench/faults.py            # all probes; prints case | expected | observed | verdict
    python bench/faults.py 6 weak     # only probes whose case starts with "6" or "weak"

The last line (also written to out/bench/faults.json) is one JSON object with the counts. Teacher
probes use the loopback server of :mod:`vlir.testing.openai_server` where it has the fault, and a
raw socket server for the answers it cannot give (HTML bodies, a slow drip, a huge body).
Exit status: 0 when every probe is OK, 1 otherwise.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fault_probes_data  # noqa: E402,F401 (registers its probes)
import fault_probes_guarantees  # noqa: E402,F401
import fault_probes_identity  # noqa: E402,F401
import fault_probes_teacher  # noqa: E402,F401
from fault_kit import PROBES, REPO, Ctx  # noqa: E402


def _order(entry) -> tuple:
    head = entry[0].split()[0]
    number = head.split(".")[0]
    return (0, int(number), head) if number.isdigit() else (1, 0, head)


def main(argv: list[str]) -> int:
    wanted = [a for a in argv if not a.startswith("-")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="vlir-faults-") as tmp:
        ctx = Ctx(Path(tmp))
        for case, fn in sorted(PROBES, key=_order):
            if wanted and not any(case.startswith(w) for w in wanted):
                continue
            t0 = time.monotonic()
            try:
                expected, observed, ok = fn(ctx)
            except Exception as exc:  # a probe that breaks is a failure, not the end of the run
                expected, observed, ok = "(probe ran)", f"probe error {type(exc).__name__}: {exc}"[:120], False
            rows.append((case, expected, observed, "OK" if ok else "FAIL"))
            print(f"{case:<40} | {expected:<60} | {observed} | {rows[-1][3]} ({time.monotonic() - t0:.0f} s)",
                  flush=True)
    n_ok = sum(r[3] == "OK" for r in rows)
    print()
    print(f"{'case':<40} | verdict")
    for r in rows:
        print(f"{r[0]:<40} | {r[3]}")
    summary = {"probes": len(rows), "ok": n_ok, "fail": len(rows) - n_ok,
               "failed": [r[0] for r in rows if r[3] != "OK"]}
    dest = REPO / "out" / "bench"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "faults.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    print(json.dumps(summary))
    return 0 if n_ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
