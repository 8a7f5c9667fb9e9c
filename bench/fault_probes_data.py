"""Issue-13 probes of the data items (2, 5, 6, 7, 8, 9, 10), the weak spots and logging."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from fault_kit import REPO, Ctx, build_textvqa, jpeg, markers, one_line_exit_2, probe, rec, wait
from vlir.testing.hold import HOLD_DIR, HOLD_FROM


# ---------------------------------------------------------------------------------------------
# 2. paths from files
# ---------------------------------------------------------------------------------------------

@probe("2 merge with ../victim in stats")
def p_merge_traversal(ctx):
    from tests.conftest import make_output

    base = ctx.fresh("merge")
    base.mkdir()
    victim = base / "victim" / "important.txt"
    victim.parent.mkdir()
    victim.write_text("keep")
    other = make_output(base / "other")
    stats = next(other.rglob("stats/00000.json"))
    data = json.loads(stats.read_text())
    data["shards"][0]["path"] = "../victim/important.txt"
    stats.write_text(json.dumps(data))
    r = ctx.cli("merge", str(base / "target"), str(other))
    line, one = one_line_exit_2(r)
    return ("refused (exit 2, one line), victim untouched", f"{line}; victim {victim.read_text()!r}",
            one and victim.read_text() == "keep")


@probe("2 validate with ../ in manifest")
def p_validate_traversal(ctx):
    from tests.conftest import make_output

    base = ctx.fresh("val")
    out = make_output(base / "out")
    (base / "victim.parquet").write_bytes(b"x")
    m = json.loads((out / "manifest.json").read_text())
    m["shards"].append({"path": "../victim.parquet", "kind": "accepted", "rows": 0, "bytes": 1, "sha256": "0" * 64})
    (out / "manifest.json").write_text(json.dumps(m))
    r = ctx.cli("validate", str(out))
    ok = r.returncode == 1 and "not followed" in r.stderr
    return "exit 1, the path reported as not followed", f"exit {r.returncode}; 'not followed' {'not followed' in r.stderr}", ok


# ---------------------------------------------------------------------------------------------
# 5. one bad input never aborts a split
# ---------------------------------------------------------------------------------------------

@probe("5 60000x60000 PNG sized by the adapter")
def p_bomb(ctx):
    from tests.test_images import bomb_png

    root = ctx.textvqa_tree([rec(1, "bomb", sized=False), rec(2, "good")],
                            {"bomb": bomb_png(60000, 60000), "good": jpeg()})
    r, reasons = build_textvqa(ctx, root)
    got = reasons.get("textvqa/val/1")
    return ("exit 0, record 1 rejected image_too_large, record 2 built", f"exit {r.returncode}, {got}, {len(reasons)} rows",
            r.returncode == 0 and got == ["image_too_large"] and len(reasons) == 2)


@probe("5 NUL byte in an image path (read)")
def p_nul_read(ctx):
    root = ctx.textvqa_tree([rec(1, "a\x00b", sized=False), rec(2, "good")], {"good": jpeg()})
    r = ctx.cli("read", "--source", "textvqa", "--root", str(root), "--split", "val")
    ok = r.returncode == 0 and "Traceback" not in r.stderr and '"unsafe_path"' in r.stderr and len(r.stdout.splitlines()) == 1
    return "exit 0, record 1 Invalid unsafe_path", f"exit {r.returncode}, unsafe_path {'unsafe_path' in r.stderr}", ok


@probe("5 NUL byte in an image path (build)")
def p_nul_build(ctx):
    root = ctx.textvqa_tree([rec(1, "a\x00b"), rec(2, "good")], {"good": jpeg()})
    r, reasons = build_textvqa(ctx, root)
    got = reasons.get("textvqa/val/1")
    return "exit 0, record 1 rejected unsafe_path", f"exit {r.returncode}, {got}", r.returncode == 0 and got == ["unsafe_path"]


@probe("5 NaN in OCR JSON")
def p_nan_ocr(ctx):
    word = '{"word": "%s", "bounding_box": {"top_left_x": %s, "top_left_y": 0.1, "width": 0.2, "height": 0.1, "rotation": 0}}'
    ocr = '{"data": [{"image_id": "good", "ocr_tokens": [], "ocr_info": [%s, %s]}]}' % (
        word % ("coffee", "NaN"), word % ("tea", "0.5"))
    root = ctx.textvqa_tree([rec(1, "good")], {"good": jpeg()}, ocr)
    r = ctx.cli("read", "--source", "textvqa", "--root", str(root), "--split", "val")
    labels = [e["label"] for ln in r.stdout.splitlines() for e in json.loads(ln)["evidence"]]
    return "exit 0, the NaN box refused, others read", f"exit {r.returncode}, evidence {labels}", r.returncode == 0 and labels == ["tea"]


@probe("5 NaN in a scene graph")
def p_nan_sg(ctx):
    import shutil

    root = ctx.fresh("gqa")
    shutil.copytree(ctx.trees / "gqa", root)
    sg = next(root.rglob("val_sceneGraphs.json"))
    text = sg.read_text()
    sg.write_text(text.replace('"x": ', '"x": NaN, "x_": ', 1))
    r = ctx.cli("read", "--source", "gqa", "--root", str(root), "--split", "val")
    n = len(r.stdout.splitlines())
    return "exit 0, the split read (one object refused)", f"exit {r.returncode}, {n} samples", r.returncode == 0 and n > 0


# ---------------------------------------------------------------------------------------------
# 6, 7. signals and concurrency
# ---------------------------------------------------------------------------------------------

def _held(ctx: Ctx, out: Path, hold: Path, hold_from: int, *extra: str) -> subprocess.Popen:
    """A gqa build whose tasks numbered ``hold_from`` or more wait at their start until
    ``hold/release`` exists (:mod:`vlir.testing.hold`): the probe acts on a build in a known
    state instead of racing one that can end first on a loaded machine."""
    hold.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), HOLD_DIR: str(hold), HOLD_FROM: str(hold_from)}
    return subprocess.Popen([sys.executable, "-m", "vlir", *ctx.gqa_build(out, *extra)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal


def _interrupt(ctx: Ctx, sig: int) -> tuple[str, str, bool]:
    """Signal a 2-worker build while both workers hold a task (tasks 8-15 of each split wait)."""
    ref = ctx.fresh("ref")
    ctx.cli(*ctx.gqa_build(ref, "--tasks", "16"), check=True)
    out, hold = ctx.fresh(), ctx.fresh("hold")
    proc = _held(ctx, out, hold, 8, "--tasks", "16", "--workers", "2")
    wait(lambda: len(list(hold.glob("held-*"))) >= 2, proc, timeout=900)
    running = proc.poll() is None
    t0 = time.monotonic()
    os.killpg(proc.pid, sig) if sig == signal.SIGINT else os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=900)
    stop_s = time.monotonic() - t0
    done = markers(out)
    v = ctx.cli("validate", str(out))
    incomplete = "an incomplete build" in v.stderr
    ctx.cli(*ctx.gqa_build(out, "--tasks", "16", "--workers", "2"))
    same = (out / "manifest.json").exists() and (out / "manifest.json").read_bytes() == (ref / "manifest.json").read_bytes()
    said = "interrupted; rerun the same command to resume" in err
    ok = running and proc.returncode == 128 + sig and said and done == 8 and incomplete and same
    return (f"exit {128 + sig}, says how to resume, 8/32 tasks, validate: incomplete, rerun identical",
            f"exit {proc.returncode} after {stop_s:.1f} s, {done}/32 tasks, message {said}, "
            f"validate incomplete {incomplete}, rerun identical {same}", ok)


@probe("6 Ctrl-C with --workers 2")
def p_sigint(ctx):
    return _interrupt(ctx, signal.SIGINT)


@probe("6 SIGTERM with --workers 2")
def p_sigterm(ctx):
    return _interrupt(ctx, signal.SIGTERM)


@probe("7 two builds into one OUT")
def p_two_builds(ctx):
    """The first build holds its tasks (and so the lock) until the second has been refused."""
    out, hold = ctx.fresh(), ctx.fresh("hold")
    first = _held(ctx, out, hold, 0, "--tasks", "8")
    wait(lambda: list(hold.glob("held-*")), first, timeout=900)
    second = ctx.cli(*ctx.gqa_build(out, "--tasks", "8"))
    (hold / "release").touch()
    err_first = first.communicate(timeout=900)[1]
    line, one = one_line_exit_2(second)
    ok = one and "is being built by pid" in line and first.returncode == 0 and "Traceback" not in err_first
    return ("the second exits 2 in one line naming the first; the first builds",
            f"second: {line[:90]}; first exit {first.returncode}", ok)


@probe("7 stale lock (dead pid)")
def p_stale_lock(ctx):
    out = ctx.fresh()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (out / ".vlir").mkdir(parents=True)
    (out / ".vlir" / "lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    r = ctx.cli(*ctx.gqa_build(out))
    return "taken over, exit 0", f"exit {r.returncode}", r.returncode == 0


# ---------------------------------------------------------------------------------------------
# 8, 9, 10
# ---------------------------------------------------------------------------------------------

@probe("8 duplicate question_id")
def p_duplicates(ctx):
    root = ctx.textvqa_tree([rec(1, "good"), rec(1, "good", answer="tea")], {"good": jpeg()})
    out = ctx.fresh()
    b = ctx.cli("build", "--source", "textvqa", "--root", str(root), "--split", "val", "--out", str(out), "--no-progress")
    v = ctx.cli("validate", str(out))
    dup = "duplicate_id" in (out / "manifest.json").read_text() if (out / "manifest.json").exists() else False
    return ("build 0 and validate 0; the second is a duplicate_id reject", f"build {b.returncode}, validate {v.returncode}, "
            f"duplicate_id {dup}", b.returncode == 0 and v.returncode == 0 and dup)


@probe('9 --split ""')
def p_split_empty(ctx):
    line, ok = one_line_exit_2(ctx.cli("build", "--source", "gqa", "--root", str(ctx.trees / "gqa"), "--split", "",
                                        "--out", str(ctx.fresh())))
    return "exit 2, one line", line, ok


@probe("9 --out /etc/passwd/x")
def p_out_file(ctx):
    line, ok = one_line_exit_2(ctx.cli(*ctx.gqa_build(Path("/etc/passwd/x"))))
    return "exit 2, one line", line, ok


@probe("10 docs/corpus.md loading snippet")
def p_readme(ctx):
    import re

    base = ctx.fresh("readme")
    ctx.cli("build", "--source", "gqa", "--root", str(ctx.trees / "gqa"), "--split", "train",
            "--out", str(base / "out" / "vlir"), "--no-progress", check=True)
    ctx.cli("card", str(base / "out" / "vlir"), check=True)  # the snippet loads by the card's configs too
    snippet = [b for b in re.findall(r"```python\n(.*?)```", (REPO / "docs" / "corpus.md").read_text(), re.S)
               if "data_dir=" in b][0]
    code = snippet + "\nprint(len(ds), sorted(set(ds['status'])))\n"
    r = subprocess.run([sys.executable, "-c", code], cwd=base, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    m = json.loads((base / "out" / "vlir" / "manifest.json").read_text())["splits"]["gqa/train"]
    want = f"{m['accepted']} ['accepted']"
    got = r.stdout.strip().splitlines()[-1] if r.returncode == 0 and r.stdout.strip() else r.stderr.strip().splitlines()[-1][:90]
    return f"runs; {want}", got, got == want


# ---------------------------------------------------------------------------------------------
# Weak spots, logging
# ---------------------------------------------------------------------------------------------

def _limit_fsize():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))


@probe("weak disk full (file size limit)")
def p_disk_full(ctx):
    out = ctx.fresh()
    r = ctx.cli(*ctx.gqa_build(out, "--workers", "2"), preexec_fn=_limit_fsize)
    line, one = one_line_exit_2(r)
    clean = not list(out.glob("**/*.tmp")) and "Exception ignored" not in r.stderr
    r2 = ctx.cli(*ctx.gqa_build(out))
    after = not list(out.glob("**/*.tmp")) and r2.returncode == 0
    return ("one line naming OUT and space, no temp files after the rerun", f"{line}; clean {clean}; rerun ok {after}",
            one and str(out) in line and clean and after)


def _validate_after(ctx: Ctx, change: Callable[[Path], None]) -> tuple[int, str]:
    from tests.conftest import make_output

    out = make_output(ctx.fresh("v") / "out")
    change(out)
    r = ctx.cli("validate", str(out))
    return r.returncode, r.stderr


for _rel in ("gqa/val/extra.parquet", "stray.parquet", "gqa/val/part-00000.parquet.tmp", "gqa/val/PART-00001.PARQUET"):
    def _stray(ctx, rel=_rel):
        def add(out):
            (out / rel).write_bytes(b"PAR1")
        code, err = _validate_after(ctx, add)
        return "exit 1, the file named", f"exit {code}, named {rel in err}", code == 1 and rel in err
    probe(f"weak stray {_rel}")(_stray)


@probe("weak re-hashed shard")
def p_rehash(ctx):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vlir.corpus.shards import sha256_file

    def edit(out):
        p = next(out.glob("gqa/val/part-*.parquet"))
        t = pq.read_table(p)
        rows = t.to_pylist()
        rows[0]["answer"] = "blue"
        pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), p)
        m = json.loads((out / "manifest.json").read_text())
        for s in m["shards"]:
            if (out / s["path"]) == p:
                s["sha256"], s["bytes"] = sha256_file(p), p.stat().st_size
        (out / "manifest.json").write_text(json.dumps(m))
    code, _ = _validate_after(ctx, edit)
    return "exit 1", f"exit {code}", code == 1


@probe("weak swapped corners from a teacher")
def p_swapped(ctx):
    from vlir.annotate.teacher_prompt import SentImage
    from vlir.geometry import MODEL_PIXELS

    try:
        box = SentImage.plan(640, 480, MODEL_PIXELS).to_original([30, 40, 10, 20])
        return "refused like other bad boxes", f"accepted as {box.as_list()}", False
    except ValueError as exc:
        return "refused like other bad boxes", f"refused: {exc}"[:90], True


@probe("weak GQA box with negative w/h")
def p_negative(ctx):
    from collections import Counter

    from vlir.sources.support import object_region

    region = object_region(50, 10, -20, 10, "cup", 100, 100, Counter())
    return "refused", "refused" if region is None else f"became {region.box.as_list()}", region is None


@probe("weak reject details: no absolute paths")
def p_abs_detail(ctx):
    from vlir.corpus.shards import iter_rows

    root = ctx.textvqa_tree([rec(1, "truncated"), rec(2, "missing")], {"truncated": jpeg()[:400]})
    out = ctx.fresh()
    ctx.cli("build", "--source", "textvqa", "--root", str(root), "--split", "val", "--out", str(out), "--no-progress")
    metas = [row["meta"] for p in out.glob("rejects/**/*.parquet") for row in iter_rows(p, columns=["meta"])]
    leaked = [m for m in metas if str(ctx.tmp) in m]
    return "details relative to the source root", f"{len(leaked)} of {len(metas)} hold a local path", bool(metas) and not leaked


@probe("weak FIFO named .jpg")
def p_fifo(ctx):
    root = ctx.textvqa_tree([rec(1, "fifo", sized=False)], {})
    os.mkfifo(root / "train_images" / "fifo.jpg")
    r = ctx.cli("read", "--source", "textvqa", "--root", str(root), "--split", "val", timeout=60)
    said = "not a regular file" in r.stderr
    return '"not a regular file"', f"exit {r.returncode}, {'not a regular file' if said else r.stderr[-80:]}", said


@probe("D6 progress at INFO, -v in workers")
def p_logging(ctx):
    r = ctx.cli(*ctx.gqa_build(ctx.fresh(), "--tasks", "4", "--workers", "2"))
    info = "records/s" in r.stderr
    args = ctx.gqa_build(ctx.fresh(), "--tasks", "4", "--workers", "2")
    v = subprocess.run([sys.executable, "-m", "vlir", "-v", *args], capture_output=True, text=True, timeout=300)
    debug = sum("DEBUG vlir.corpus.build: task" in ln for ln in v.stderr.splitlines())
    return "INFO progress lines; -v: DEBUG lines from the 8 worker tasks", f"records/s {info}, worker DEBUG lines {debug}", info and debug == 8


