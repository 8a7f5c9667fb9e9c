"""The adversarial probe list of issue 13, run against the real CLI: each probe is a small function
that sets up one fault, runs ``vlir`` in a subprocess and returns (expected, observed, ok).

    python bench/faults.py            # all probes; prints case | expected | observed | verdict
    python bench/faults.py 6 weak     # only probes whose case starts with "6" or "weak"

The last line (also written to out/bench/faults.json) is one JSON object with the counts. Teacher
probes use the loopback server of :mod:`vlir.testing.openai_server` where it has the fault, and a
raw socket server here for the answers it cannot give (HTML bodies, a slow drip, a huge body).
Exit status: 0 when every probe is OK, 1 otherwise.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


def _rec(qid: int, image_id: str, sized: bool = True, answer: str = "coffee") -> dict:
    r = {"question": "what does the sign say?", "question_id": qid, "image_id": image_id,
         "answers": [answer] * 10, "set_name": "val"}
    return {**r, "image_width": 320, "image_height": 240} if sized else r


def _jpeg() -> bytes:
    from tests.conftest import make_image

    buf = io.BytesIO()
    make_image(320, 240).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _one_line_exit_2(r: subprocess.CompletedProcess) -> tuple[str, bool]:
    err = [ln for ln in r.stderr.strip().splitlines() if " INFO " not in ln and " WARNING " not in ln]
    ok = r.returncode == 2 and len(err) == 1 and "Traceback" not in r.stderr
    return f"exit {r.returncode}, {len(err)} line(s): {(err or [''])[0][:90]}", ok


def _files_holding(root: Path, needle: str) -> list[str]:
    hits = []
    for p in root.rglob("*") if root.exists() else ():
        if p.is_file() and needle.encode() in p.read_bytes():
            hits.append(p.relative_to(root).as_posix())
    return hits


# ---------------------------------------------------------------------------------------------
# Teacher servers
# ---------------------------------------------------------------------------------------------

class RawServer:
    """Answers every POST with one fault: ``html`` (200, text/html), ``html_json`` (200, labelled
    JSON), ``drip`` (headers, then a byte every 0.5 s), ``huge`` (a 40 MB valid-looking answer)."""

    def __init__(self, mode: str):
        mode_ = mode

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if mode_ == "drip":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    try:
                        for _ in range(600):
                            self.wfile.write(b" ")
                            self.wfile.flush()
                            time.sleep(0.5)
                    except OSError:
                        pass
                    return
                if mode_ == "huge":
                    content = json.dumps({"steps": [{"think": "x" * 40_000_000}], "answer": "coffee"})
                    body = json.dumps({"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                                       "choices": [{"index": 0, "finish_reason": "stop",
                                                    "message": {"role": "assistant", "content": content}}],
                                       "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
                    ctype = "application/json"
                else:
                    body = b"<html><body>502 Bad Gateway</body></html>"
                    ctype = "text/html" if mode_ == "html" else "application/json"
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _teacher_build(ctx: Ctx, base_url: str, out: Path, extra_cfg: str = "", timeout: float = 120,
                   limit: str = "2") -> tuple[subprocess.CompletedProcess | None, float]:
    root = ctx.trees / "textvqa"
    cfg = out.parent / f"{out.name}.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("teacher:\n  max_retries: 1\n  backoff_s: 0.05\n  max_backoff_s: 0.1\n" + extra_cfg)
    args = ["build", "--source", "textvqa", "--root", str(root), "--split", "val", "--out", str(out),
            "--annotator", "teacher", "--base-url", base_url, "--model", "m", "--api-key-env", "FAULTS_KEY",
            "--limit", limit, "--tasks", "1", "--timeout", "2", "--no-progress", "--config", str(cfg)]
    start = time.monotonic()
    try:
        r = ctx.cli(*args, timeout=timeout, env={"FAULTS_KEY": SENTINEL})
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - start
    return r, time.monotonic() - start


def _markers(out: Path) -> int:
    return len(list(out.glob(".vlir/**/completions/*"))) + len(list(out.glob("*/*/completions/*")))


# ---------------------------------------------------------------------------------------------
# 1. secrets
# ---------------------------------------------------------------------------------------------

@probe("1 api_key in --config")
def p_key_in_config(ctx):
    out = ctx.fresh()
    cfg = ctx.tmp / "key.yaml"
    cfg.write_text(f"teacher:\n  api_key: {SENTINEL}\n")
    r = ctx.cli("build", "--source", "textvqa", "--root", str(ctx.trees / "textvqa"), "--split", "val",
                "--out", str(out), "--annotator", "teacher", "--config", str(cfg), "--no-progress")
    hits = _files_holding(out, SENTINEL)
    leaked = SENTINEL in r.stderr + r.stdout
    return ("exit 2 before anything is written; key in no file, not echoed",
            f"exit {r.returncode}; key in files {hits or 'none'}; echoed {leaked}",
            r.returncode == 2 and not hits and not leaked)


@probe("1 key passed as --api-key-env")
def p_key_as_env_name(ctx):
    out = ctx.fresh()
    r = ctx.cli("build", "--source", "textvqa", "--root", str(ctx.trees / "textvqa"), "--split", "val",
                "--out", str(out), "--annotator", "teacher", "--api-key-env", SENTINEL, "--no-progress")
    hits = _files_holding(out, SENTINEL)
    leaked = SENTINEL in r.stderr + r.stdout
    return ("exit 2; key in no file, not echoed", f"exit {r.returncode}; files {hits or 'none'}; echoed {leaked}",
            r.returncode == 2 and not hits and not leaked)


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
    line, one = _one_line_exit_2(r)
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
# 3, 4. teacher transport
# ---------------------------------------------------------------------------------------------

@probe("3 teacher connection refused")
def p_refused(ctx):
    out = ctx.fresh()
    r, dt = _teacher_build(ctx, f"http://127.0.0.1:{_free_port()}/v1", out)
    rc = None if r is None else r.returncode
    return ("exit != 0, no task marked complete (rerun retries)", f"exit {rc}, {_markers(out)} complete, {dt:.0f} s",
            rc not in (None, 0) and _markers(out) == 0)


@probe("3 teacher 500 storm")
def p_500(ctx):
    from vlir.testing.openai_server import FakeOpenAIServer, Status

    out = ctx.fresh()
    with FakeOpenAIServer() as server:
        server.script("", Status(500))
        r, dt = _teacher_build(ctx, server.base_url, out)
    rc = None if r is None else r.returncode
    return ("exit != 0, no task marked complete", f"exit {rc}, {_markers(out)} complete, {dt:.0f} s",
            rc not in (None, 0) and _markers(out) == 0)


@probe("4 teacher slow drip")
def p_drip(ctx):
    server = RawServer("drip")
    out = ctx.fresh()
    try:
        r, dt = _teacher_build(ctx, server.base_url, out, timeout=90, limit="1")
    finally:
        server.stop()
    return ("the build ends (total deadline per request)",
            "still running after 90 s" if r is None else f"ended in {dt:.0f} s, exit {r.returncode}",
            r is not None and "Traceback" not in r.stderr)


@probe("4 teacher HTML body, status 200")
def p_html(ctx):
    server = RawServer("html")
    try:
        r, _ = _teacher_build(ctx, server.base_url, ctx.fresh(), limit="1")
    finally:
        server.stop()
    tb = r is None or "Traceback" in r.stderr
    return "no traceback", "hung" if r is None else f"exit {r.returncode}, traceback {tb}", not tb


@probe("4 teacher HTML labelled JSON")
def p_html_json(ctx):
    server = RawServer("html_json")
    try:
        r, _ = _teacher_build(ctx, server.base_url, ctx.fresh(), limit="1")
    finally:
        server.stop()
    tb = r is None or "Traceback" in r.stderr
    return "no traceback", "hung" if r is None else f"exit {r.returncode}, traceback {tb}", not tb


@probe("4 teacher 40 MB answer")
def p_huge(ctx):
    server = RawServer("huge")
    out = ctx.fresh()
    try:
        r, _ = _teacher_build(ctx, server.base_url, out, limit="1")
    finally:
        server.stop()
    cache = sum(p.stat().st_size for p in (out / "cache").glob("*")) if (out / "cache").exists() else 0
    ok = r is not None and "Traceback" not in r.stderr and cache < 5e6
    return "capped: cache < 5 MB, no traceback", f"cache {cache / 1e6:.1f} MB, exit {None if r is None else r.returncode}", ok


# ---------------------------------------------------------------------------------------------
# 5. one bad input never aborts a split
# ---------------------------------------------------------------------------------------------

def _build_textvqa(ctx: Ctx, root: Path) -> tuple[subprocess.CompletedProcess, dict[str, list[str]]]:
    from vlir.shards import iter_rows

    out = ctx.fresh()
    r = ctx.cli("build", "--source", "textvqa", "--root", str(root), "--split", "val", "--out", str(out),
                "--tasks", "1", "--no-progress")
    reasons = {row["id"]: row["reasons"] for p in sorted(out.glob("**/*.parquet"))
               for row in iter_rows(p, columns=["id", "reasons"])}
    return r, reasons


@probe("5 60000x60000 PNG sized by the adapter")
def p_bomb(ctx):
    from tests.test_images import bomb_png

    root = ctx.textvqa_tree([_rec(1, "bomb", sized=False), _rec(2, "good")],
                            {"bomb": bomb_png(60000, 60000), "good": _jpeg()})
    r, reasons = _build_textvqa(ctx, root)
    got = reasons.get("textvqa/val/1")
    return ("exit 0, record 1 rejected image_too_large, record 2 built", f"exit {r.returncode}, {got}, {len(reasons)} rows",
            r.returncode == 0 and got == ["image_too_large"] and len(reasons) == 2)


@probe("5 NUL byte in an image path (read)")
def p_nul_read(ctx):
    root = ctx.textvqa_tree([_rec(1, "a\x00b", sized=False), _rec(2, "good")], {"good": _jpeg()})
    r = ctx.cli("read", "--source", "textvqa", "--root", str(root), "--split", "val")
    ok = r.returncode == 0 and "Traceback" not in r.stderr and '"unsafe_path"' in r.stderr and len(r.stdout.splitlines()) == 1
    return "exit 0, record 1 Invalid unsafe_path", f"exit {r.returncode}, unsafe_path {'unsafe_path' in r.stderr}", ok


@probe("5 NUL byte in an image path (build)")
def p_nul_build(ctx):
    root = ctx.textvqa_tree([_rec(1, "a\x00b"), _rec(2, "good")], {"good": _jpeg()})
    r, reasons = _build_textvqa(ctx, root)
    got = reasons.get("textvqa/val/1")
    return "exit 0, record 1 rejected unsafe_path", f"exit {r.returncode}, {got}", r.returncode == 0 and got == ["unsafe_path"]


@probe("5 NaN in OCR JSON")
def p_nan_ocr(ctx):
    word = '{"word": "%s", "bounding_box": {"top_left_x": %s, "top_left_y": 0.1, "width": 0.2, "height": 0.1, "rotation": 0}}'
    ocr = '{"data": [{"image_id": "good", "ocr_tokens": [], "ocr_info": [%s, %s]}]}' % (
        word % ("coffee", "NaN"), word % ("tea", "0.5"))
    root = ctx.textvqa_tree([_rec(1, "good")], {"good": _jpeg()}, ocr)
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

def _wait(pred, proc, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not pred() and proc.poll() is None:
        time.sleep(0.005)


def _interrupt(ctx: Ctx, sig: int) -> tuple[str, str, bool]:
    ref, out = ctx.fresh("ref"), ctx.fresh()
    ctx.cli(*ctx.gqa_build(ref, "--tasks", "16"), check=True)
    proc = subprocess.Popen([sys.executable, "-m", "vlir", *ctx.gqa_build(out, "--tasks", "16", "--workers", "2")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait(lambda: _markers(out) > 0, proc)
    t0 = time.monotonic()
    os.killpg(proc.pid, sig) if sig == signal.SIGINT else os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    stop_s = time.monotonic() - t0
    done = _markers(out)
    v = ctx.cli("validate", str(out))
    incomplete = "an incomplete build" in v.stderr
    ctx.cli(*ctx.gqa_build(out, "--tasks", "16", "--workers", "2"))
    same = (out / "manifest.json").exists() and (out / "manifest.json").read_bytes() == (ref / "manifest.json").read_bytes()
    said = "interrupted; rerun the same command to resume" in err
    ok = proc.returncode == 128 + sig and said and done < 32 and stop_s < 10 and incomplete and same
    return (f"exit {128 + sig} in seconds, says how to resume, validate: incomplete, rerun identical",
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
    out = ctx.fresh()
    results = []
    for _ in range(5):
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        a = subprocess.Popen([sys.executable, "-m", "vlir", *ctx.gqa_build(out, "--tasks", "8")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        b = subprocess.Popen([sys.executable, "-m", "vlir", *ctx.gqa_build(out, "--tasks", "8")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ea, eb = a.communicate(timeout=300)[1], b.communicate(timeout=300)[1]
        codes = sorted((a.returncode, b.returncode))
        tb = "Traceback" in ea + eb
        results.append((codes, tb))
    ok = all((codes == [0, 2] or codes == [0, 0]) and not tb for codes, tb in results) and any(
        c == [0, 2] for c, _ in results)
    return ("one builds, the other exits 2 in one line (or starts after); no traceback",
            ", ".join(f"{c}{' TB' if tb else ''}" for c, tb in results), ok)


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
    root = ctx.textvqa_tree([_rec(1, "good"), _rec(1, "good", answer="tea")], {"good": _jpeg()})
    out = ctx.fresh()
    b = ctx.cli("build", "--source", "textvqa", "--root", str(root), "--split", "val", "--out", str(out), "--no-progress")
    v = ctx.cli("validate", str(out))
    dup = "duplicate_id" in (out / "manifest.json").read_text() if (out / "manifest.json").exists() else False
    return ("build 0 and validate 0; the second is a duplicate_id reject", f"build {b.returncode}, validate {v.returncode}, "
            f"duplicate_id {dup}", b.returncode == 0 and v.returncode == 0 and dup)


CONFIG_CASES = [("teacher: {bogus: 1}", "teacher"), ("teacher: {concurrency: many}", "teacher"),
                ("tasks: 4.5", "grounded"), ('embed_images: "no"', "grounded"), ('tasks: "four"', "grounded"),
                ("tasks: true", "grounded"), ("row_group_rows: -5", "grounded"), ("max_image_pixels: -1", "grounded")]


def _config_probe(text: str, annotator: str):
    def run(ctx):
        cfg = ctx.fresh("cfg").with_suffix(".yaml")
        cfg.write_text(text + "\n")
        r = ctx.cli("build", "--source", "textvqa", "--root", str(ctx.trees / "textvqa"), "--split", "val",
                    "--out", str(ctx.fresh()), "--annotator", annotator, "--config", str(cfg), "--no-progress",
                    "--limit", "1", env={"OPENAI_API_KEY": "x"})
        line, ok = _one_line_exit_2(r)
        return "exit 2, one line", line, ok
    return run


for _text, _ann in CONFIG_CASES:
    probe(f"9 config {_text}")(_config_probe(_text, _ann))


@probe('9 --split ""')
def p_split_empty(ctx):
    line, ok = _one_line_exit_2(ctx.cli("build", "--source", "gqa", "--root", str(ctx.trees / "gqa"), "--split", "",
                                        "--out", str(ctx.fresh())))
    return "exit 2, one line", line, ok


@probe("9 --out /etc/passwd/x")
def p_out_file(ctx):
    line, ok = _one_line_exit_2(ctx.cli(*ctx.gqa_build(Path("/etc/passwd/x"))))
    return "exit 2, one line", line, ok


@probe("10 README loading snippet")
def p_readme(ctx):
    import re

    base = ctx.fresh("readme")
    ctx.cli("build", "--source", "gqa", "--root", str(ctx.trees / "gqa"), "--split", "train",
            "--out", str(base / "out" / "vlir"), "--no-progress", check=True)
    snippet = [b for b in re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
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
    line, one = _one_line_exit_2(r)
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

    from vlir.shards import sha256_file

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
    from vlir.shards import iter_rows

    root = ctx.textvqa_tree([_rec(1, "truncated"), _rec(2, "missing")], {"truncated": _jpeg()[:400]})
    out = ctx.fresh()
    ctx.cli("build", "--source", "textvqa", "--root", str(root), "--split", "val", "--out", str(out), "--no-progress")
    metas = [row["meta"] for p in out.glob("rejects/**/*.parquet") for row in iter_rows(p, columns=["meta"])]
    leaked = [m for m in metas if str(ctx.tmp) in m]
    return "details relative to the source root", f"{len(leaked)} of {len(metas)} hold a local path", bool(metas) and not leaked


@probe("weak FIFO named .jpg")
def p_fifo(ctx):
    root = ctx.textvqa_tree([_rec(1, "fifo", sized=False)], {})
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
    debug = sum("DEBUG vlir.build: task" in ln for ln in v.stderr.splitlines())
    return "INFO progress lines; -v: DEBUG lines from the 8 worker tasks", f"records/s {info}, worker DEBUG lines {debug}", info and debug == 8


# ---------------------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    wanted = [a for a in argv if not a.startswith("-")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="vlir-faults-") as tmp:
        ctx = Ctx(Path(tmp))
        for case, fn in PROBES:
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
