"""Issue-13 probes of the teacher and config items (1, 3, 4, 9): loopback servers that refuse,
answer 500, drip, send HTML or a 40 MB body (the faults of :mod:`vlir.testing.openai_faults`), and
config files with a key or wrong types."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from fault_kit import SENTINEL, Ctx, files_holding, markers, one_line_exit_2, probe


# ---------------------------------------------------------------------------------------------
# Teacher servers
# ---------------------------------------------------------------------------------------------

def fault_server(fault):
    """A loopback OpenAI server (:mod:`vlir.testing.openai_server`) answering every request with
    ``fault`` (an empty match catches them all)."""
    from vlir.testing.openai_server import FakeOpenAIServer

    server = FakeOpenAIServer().start()
    server.script("", fault)
    return server


def _faults():
    """The fault of each raw probe: ``drip`` (a 200 trickling out a byte every 0.5 s, for minutes),
    ``html`` (200, text/html), ``html_json`` (the page labelled JSON), ``huge`` (a 40 MB
    valid-looking answer)."""
    from vlir.testing.openai_server import Drip, Html, Huge

    return {"drip": Drip(content="x" * 600, interval_s=0.5), "html": Html(),
            "html_json": Html(content_type="application/json"),
            "huge": Huge(size=40_000_000, before='{"steps": [{"think": "', after='"}], "answer": "coffee"}')}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _teacher_build(ctx: Ctx, base_url: str, out: Path, extra_cfg: str = "", timeout: float = 600,
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
    hits = files_holding(out, SENTINEL)
    leaked = SENTINEL in r.stderr + r.stdout
    return ("exit 2 before anything is written; key in no file, not echoed",
            f"exit {r.returncode}; key in files {hits or 'none'}; echoed {leaked}",
            r.returncode == 2 and not hits and not leaked)


@probe("1 key passed as --api-key-env")
def p_key_as_env_name(ctx):
    out = ctx.fresh()
    r = ctx.cli("build", "--source", "textvqa", "--root", str(ctx.trees / "textvqa"), "--split", "val",
                "--out", str(out), "--annotator", "teacher", "--api-key-env", SENTINEL, "--no-progress")
    hits = files_holding(out, SENTINEL)
    leaked = SENTINEL in r.stderr + r.stdout
    return ("exit 2; key in no file, not echoed", f"exit {r.returncode}; files {hits or 'none'}; echoed {leaked}",
            r.returncode == 2 and not hits and not leaked)


# ---------------------------------------------------------------------------------------------
# 3, 4. teacher transport
# ---------------------------------------------------------------------------------------------

@probe("3 teacher connection refused")
def p_refused(ctx):
    out = ctx.fresh()
    r, dt = _teacher_build(ctx, f"http://127.0.0.1:{_free_port()}/v1", out)
    rc = None if r is None else r.returncode
    return ("exit != 0, no task marked complete (rerun retries)", f"exit {rc}, {markers(out)} complete, {dt:.0f} s",
            rc not in (None, 0) and markers(out) == 0)


@probe("3 teacher 500 storm, then back")
def p_500(ctx):
    """Not final: after the storm, the same command against the recovered server asks again."""
    from vlir.testing.openai_server import FakeOpenAIServer, Status

    out = ctx.fresh()
    with FakeOpenAIServer() as server:
        server.script("", Status(500))
        r, dt = _teacher_build(ctx, server.base_url, out)
        with server._lock:  # the server recovers
            server._rules.clear()
        before = server.count()
        r2, _ = _teacher_build(ctx, server.base_url, out)
        asked = server.count() - before
    rc, rc2 = (None if x is None else x.returncode for x in (r, r2))
    return ("exit != 0; the rerun asks the recovered server and exits 0",
            f"exit {rc} in {dt:.0f} s; rerun exit {rc2}, {asked} request(s)", rc not in (None, 0) and rc2 == 0 and asked > 0)


@probe("4 teacher slow drip")
def p_drip(ctx):
    server = fault_server(_faults()["drip"])
    out = ctx.fresh()
    try:
        r, dt = _teacher_build(ctx, server.base_url, out, timeout=600, limit="1")
    finally:
        server.stop()
    return ("the build ends (total deadline per request)",
            "still running after 600 s" if r is None else f"ended in {dt:.0f} s, exit {r.returncode}",
            r is not None and "Traceback" not in r.stderr)


def _html_probe(mode: str):
    """An HTML page answered with 200, labelled ``text/html`` (``html``) or JSON (``html_json``)."""
    def run(ctx):
        server = fault_server(_faults()[mode])
        try:
            r, _ = _teacher_build(ctx, server.base_url, ctx.fresh(), limit="1")
        finally:
            server.stop()
        tb = r is None or "Traceback" in r.stderr
        return "no traceback", "hung" if r is None else f"exit {r.returncode}, traceback {tb}", not tb
    return run


probe("4 teacher HTML body, status 200")(_html_probe("html"))
probe("4 teacher HTML labelled JSON")(_html_probe("html_json"))


@probe("4 teacher 40 MB answer")
def p_huge(ctx):
    server = fault_server(_faults()["huge"])
    out = ctx.fresh()
    try:
        r, _ = _teacher_build(ctx, server.base_url, out, limit="1")
    finally:
        server.stop()
    cache = sum(p.stat().st_size for p in (out / "cache").glob("*")) if (out / "cache").exists() else 0
    ok = r is not None and "Traceback" not in r.stderr and cache < 5e6
    return "capped: cache < 5 MB, no traceback", f"cache {cache / 1e6:.1f} MB, exit {None if r is None else r.returncode}", ok


# (config text, annotator, the key the one-line error must name)
CONFIG_CASES = [("teacher: {bogus: 1}", "teacher", "bogus"), ("teacher: {concurrency: many}", "teacher", "concurrency"),
                ("tasks: 4.5", "grounded", "tasks"), ('embed_images: "no"', "grounded", "embed_images"),
                ('tasks: "four"', "grounded", "tasks"), ("tasks: true", "grounded", "tasks"),
                ("row_group_rows: -5", "grounded", "row_group_rows"),
                ("max_image_pixels: -1", "grounded", "max_image_pixels")]


def _config_probe(text: str, annotator: str, key: str):
    def run(ctx):
        cfg = ctx.fresh("cfg").with_suffix(".yaml")
        cfg.write_text(text + "\n")
        r = ctx.cli("build", "--source", "textvqa", "--root", str(ctx.trees / "textvqa"), "--split", "val",
                    "--out", str(ctx.fresh()), "--annotator", annotator, "--config", str(cfg), "--no-progress",
                    "--limit", "1", env={"OPENAI_API_KEY": "x"})
        line, ok = one_line_exit_2(r)  # `line` is cut for the table: look for the key in the whole error
        return f"exit 2, one line naming {key}", line, ok and key in r.stderr
    return run


for _text, _ann, _key in CONFIG_CASES:
    probe(f"9 config {_text}")(_config_probe(_text, _ann, _key))

