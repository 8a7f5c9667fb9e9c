"""Shared pieces of the issue-13 probes (bench/faults.py runs them): the probe registry, a scratch
context with small sample trees, and helpers that run the real CLI in a subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SENTINEL = "sk-faultsSENTINEL0123456789abcdef"
PROBES: list[tuple[str, Callable[["Ctx"], tuple[str, str, bool]]]] = []


def probe(case: str):
    def register(fn):
        PROBES.append((case, fn))
        return fn
    return register


class Ctx:
    """A scratch folder with small sample trees, and helpers to run the CLI."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.n = 0
        self.trees = tmp / "trees"
        self.cli("sample", "--out", str(self.trees), "--per-source", "12", "--source", "gqa",
                 "--source", "textvqa", check=True)

    def fresh(self, name: str = "p") -> Path:
        self.n += 1
        return self.tmp / f"{name}{self.n}"

    def cli(self, *args: str, check: bool = False, timeout: float = 300, env: dict | None = None,
            **kw) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, "-m", "vlir", *args], capture_output=True, text=True,
                           timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, **kw)
        if check and r.returncode != 0:
            raise RuntimeError(f"vlir {' '.join(args)} failed: {r.stderr[-2000:]}")
        return r

    def gqa_build(self, out: Path, *extra: str) -> list[str]:
        return ["build", "--source", "gqa", "--root", str(self.trees / "gqa"), "--split", "train,val",
                "--out", str(out), "--no-progress", *extra]

    def textvqa_tree(self, records: list[dict], images: dict[str, bytes], ocr: str | None = None) -> Path:
        root = self.fresh("textvqa")
        (root / "train_images").mkdir(parents=True)
        for name, data in images.items():
            (root / "train_images" / f"{name}.jpg").write_bytes(data)
        (root / "TextVQA_0.5.1_val.json").write_text(json.dumps({"data": records}))
        if ocr is not None:
            (root / "TextVQA_Rosetta_OCR_v0.2_val.json").write_text(ocr)
        return root


def rec(qid: int, image_id: str, sized: bool = True, answer: str = "coffee") -> dict:
    r = {"question": "what does the sign say?", "question_id": qid, "image_id": image_id,
         "answers": [answer] * 10, "set_name": "val"}
    return {**r, "image_width": 320, "image_height": 240} if sized else r


def jpeg() -> bytes:
    from tests.conftest import make_image

    buf = io.BytesIO()
    make_image(320, 240).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def one_line_exit_2(r: subprocess.CompletedProcess) -> tuple[str, bool]:
    err = [ln for ln in r.stderr.strip().splitlines() if " INFO " not in ln and " WARNING " not in ln]
    ok = r.returncode == 2 and len(err) == 1 and "Traceback" not in r.stderr
    return f"exit {r.returncode}, {len(err)} line(s): {(err or [''])[0][:90]}", ok


def files_holding(root: Path, needle: str) -> list[str]:
    hits = []
    for p in root.rglob("*") if root.exists() else ():
        if p.is_file() and needle.encode() in p.read_bytes():
            hits.append(p.relative_to(root).as_posix())
    return hits


def markers(out: Path) -> int:
    return len(list(out.glob(".vlir/**/completions/*"))) + len(list(out.glob("*/*/completions/*")))


def wait(pred, proc, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not pred() and proc.poll() is None:
        time.sleep(0.005)


def build_textvqa(ctx: Ctx, root: Path) -> tuple[subprocess.CompletedProcess, dict[str, list[str]]]:
    from vlir.corpus.shards import iter_rows

    out = ctx.fresh()
    r = ctx.cli("build", "--source", "textvqa", "--root", str(root), "--split", "val", "--out", str(out),
                "--tasks", "1", "--no-progress")
    reasons = {row["id"]: row["reasons"] for p in sorted(out.glob("**/*.parquet"))
               for row in iter_rows(p, columns=["id", "reasons"])}
    return r, reasons

