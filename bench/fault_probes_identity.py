"""Issue-23 probes of run identity (failures 7-10) and its weak spots: every folder vlir writes
knows what made it, predictions files are checked row by row, reports escape data, and a bad
``--model`` or an empty corpus is one line. Each runs the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from fault_kit import REPO, Ctx, one_line_exit_2, probe, wait


def _reencoded_copy(src: Path, dest: Path) -> Path:
    from PIL import Image

    shutil.copytree(src, dest)
    for path in dest.rglob("*.jpg"):
        with Image.open(path) as im:
            im.convert("RGB").save(path, format="JPEG", quality=55)
    return dest


def _textvqa_build(root: Path, out: Path, *extra: str) -> list[str]:
    return ["build", "--source", "textvqa", "--root", str(root), "--split", "val", "--out", str(out),
            "--tasks", "2", "--no-progress", *extra]


# ---------------------------------------------------------------------------------------------
# 7. builds: resume and merge across roots; a teacher resumed on a new endpoint
# ---------------------------------------------------------------------------------------------

@probe("23.7 resume from a re-encoded --root")
def p_resume_other_root(ctx: Ctx):
    a = ctx.trees / "textvqa"
    b = _reencoded_copy(a, ctx.fresh("reencoded"))
    out = ctx.fresh()
    ctx.cli(*_textvqa_build(a, out, "--num-shards", "2", "--shard-index", "0"), check=True)
    r = ctx.cli(*_textvqa_build(b, out))
    line, one = one_line_exit_2(r)
    return ("exit 2, one line naming inputs.textvqa, no manifest", line[:110],
            one and "inputs.textvqa" in r.stderr and not (out / "manifest.json").exists())


@probe("23.7 merge parts from different roots")
def p_merge_other_root(ctx: Ctx):
    a = ctx.trees / "textvqa"
    b = _reencoded_copy(a, ctx.fresh("reencoded"))
    m0, m1 = ctx.fresh("m0"), ctx.fresh("m1")
    ctx.cli(*_textvqa_build(a, m0, "--num-shards", "2", "--shard-index", "0"), check=True)
    ctx.cli(*_textvqa_build(b, m1, "--num-shards", "2", "--shard-index", "1"), check=True)
    r = ctx.cli("merge", str(m0), str(m1))
    line, one = one_line_exit_2(r)
    said = "merge only parts of one build" in r.stderr and "inputs.textvqa" in r.stderr
    return "exit 2, one line: parts of different builds", f"{line[:60]} … {r.stderr.strip()[-50:]}", one and said


@probe("23.7 teacher resumed on a new endpoint URL")
def p_new_endpoint(ctx: Ctx):
    from vlir.testing.openai_faults import refused_url
    from vlir.testing.openai_server import FakeOpenAIServer

    out = ctx.fresh()
    args = _textvqa_build(ctx.trees / "textvqa", out, "--annotator", "teacher", "--model", "m", "--limit", "4")
    first = ctx.cli(*args, "--base-url", refused_url(), env={"OPENAI_API_KEY": "sk-x"})  # the outage
    with FakeOpenAIServer() as srv:
        second = ctx.cli(*args, "--base-url", srv.base_url, "--concurrency", "2", env={"OPENAI_API_KEY": "sk-x"})
    return ("outage: not complete; rerun on the new URL: exit 0", f"first exit {first.returncode}, rerun exit "
            f"{second.returncode} {second.stderr.strip().splitlines()[-1:]}",
            first.returncode != 0 and second.returncode == 0 and (out / "manifest.json").is_file())


# ---------------------------------------------------------------------------------------------
# 8, 9. eval: another model into the same OUT; predictions files
# ---------------------------------------------------------------------------------------------

def _tiny(ctx: Ctx) -> Path:
    path = ctx.tmp / "tiny-model"
    if not (path / "config.json").is_file():
        subprocess.run([sys.executable, "-c", "import sys; from vlir.models import build_tiny_model; "
                        "build_tiny_model(sys.argv[1], 'tiny', seed=0)", str(path)], check=True,
                       capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=900)
    return path


def _vstar(ctx: Ctx) -> Path:
    root = ctx.tmp / "vstar"
    if not root.is_dir():
        ctx.cli("eval", "--benchmark", "vstar", "--write-sample", str(root), check=True)
    return root


@probe("23.8 eval --model B into model A's OUT")
def p_eval_other_model(ctx: Ctx):
    a = _tiny(ctx)
    b = ctx.fresh("modelB")
    shutil.copytree(a, b)
    (b / "config.json").write_text(json.dumps(json.loads((b / "config.json").read_text()), indent=1))
    out = ctx.fresh()
    common = ["eval", "--benchmark", "vstar", "--root", str(_vstar(ctx)), "--out", str(out), "--limit", "2",
              "--max-new-tokens", "8"]
    ctx.cli(*common, "--model", str(a), check=True)
    r = ctx.cli(*common, "--model", str(b))
    line, one = one_line_exit_2(r)
    said = f"--model {a.resolve()}, not {b.resolve()}" in r.stderr
    return "exit 2, one line naming both models", f"{line[:60]} … {r.stderr.strip()[-60:]}", one and said


def _predictions(ctx: Ctx) -> list[dict]:
    path = ctx.tmp / "first-eval" / "predictions.jsonl"
    if not path.is_file():
        ctx.cli("eval", "--benchmark", "vstar", "--root", str(_vstar(ctx)), "--out", str(path.parent), "--limit", "2",
                "--max-new-tokens", "8", "--model", str(_tiny(ctx)), check=True)
    return [json.loads(x) for x in path.read_text().splitlines()]


def _rescore(ctx: Ctx, rows: list, *extra: str) -> subprocess.CompletedProcess:
    p = ctx.fresh("pred").with_suffix(".jsonl")
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return ctx.cli("eval", "--benchmark", "vstar", "--predictions", str(p), "--out", str(ctx.fresh()), *extra)


@probe("23.9 duplicate prediction rows")
def p_duplicates(ctx: Ctx):
    rows = _predictions(ctx)
    r = _rescore(ctx, [rows[0], rows[0], rows[0], rows[1]])
    line, one = one_line_exit_2(r)
    return ("exit 2, one line naming the id and line", line[:110],
            one and f"line 2: a second prediction for id {rows[0]['id']!r}" in r.stderr)


@probe("23.9 unknown prediction ids")
def p_unknown(ctx: Ctx):
    rows = _predictions(ctx)
    out = ctx.fresh()
    p = out.with_suffix(".jsonl")
    p.write_text("".join(json.dumps(r) + "\n" for r in [*rows, {**rows[0], "id": "vstar/nope"}]))
    r = ctx.cli("eval", "--benchmark", "vstar", "--predictions", str(p), "--root", str(_vstar(ctx)), "--out", str(out))
    unknown = json.loads((out / "scores.json").read_text())["protocol"].get("unknown_ids") if r.returncode == 0 else None
    return ("exit 0, 1 unknown id counted, warned, left out", f"exit {r.returncode}, unknown_ids {unknown}, "
            f"warned {'does not have' in r.stderr}", r.returncode == 0 and unknown == 1 and "does not have" in r.stderr)


@probe("23.9 malformed prediction rows")
def p_malformed(ctx: Ctx):
    rows = _predictions(ctx)
    bad = ["[1, 2]", "42", json.dumps({k: v for k, v in rows[0].items() if k != "id"}),
           json.dumps({**rows[0], "item": {**rows[0]["item"], "answer": 3}})]
    runs = [_rescore(ctx, [rows[0], b]) for b in bad]
    results = [(one_line_exit_2(r), r.stderr) for r in runs]
    return ("each: exit 2, one line naming line 2", "; ".join(err.strip()[-40:] for _, err in results),
            all(one and ", line 2: " in err for (_, one), err in results))


@probe("23.11 weak: <script> in a category (report.md)")
def p_report_script(ctx: Ctx):
    rows = _predictions(ctx)
    evil = [{**r, "item": {**r["item"], "category": "<script>alert(1)</script>"}} for r in rows]
    out = ctx.fresh()
    p = out.with_suffix(".jsonl")
    p.write_text("".join(json.dumps(r) + "\n" for r in evil))
    r = ctx.cli("eval", "--benchmark", "vstar", "--predictions", str(p), "--out", str(out), "--html")
    texts = [(out / n).read_text() for n in ("report.md", "index.html") if (out / n).is_file()]
    return ("exit 0, no raw <script> in report.md or index.html", f"exit {r.returncode}, raw "
            f"{[('<script>' in t) for t in texts]}", r.returncode == 0 and len(texts) == 2 and
            not any("<script>" in t for t in texts))


@probe("23.11 weak: --model with truncated weights")
def p_truncated(ctx: Ctx):
    m = ctx.fresh("truncated")
    shutil.copytree(_tiny(ctx), m)
    weights = m / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    r = ctx.cli("eval", "--benchmark", "vstar", "--root", str(_vstar(ctx)), "--model", str(m), "--out", str(ctx.fresh()))
    line, one = one_line_exit_2(r)
    (m / "model.safetensors").unlink()
    r2 = ctx.cli("eval", "--benchmark", "vstar", "--root", str(_vstar(ctx)), "--model", str(m), "--out", str(ctx.fresh()))
    line2, one2 = one_line_exit_2(r2)
    return ("exit 2, one line each (truncated, missing)", f"{r.stderr.strip()[-60:]}; {r2.stderr.strip()[-45:]}",
            one and one2 and "model.safetensors: truncated" in r.stderr and "has no weights" in r2.stderr)


# ---------------------------------------------------------------------------------------------
# 10. training: a rerun after kill -9; an empty corpus
# ---------------------------------------------------------------------------------------------

def _sft(ctx: Ctx, data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vlir.train.sft", "--config", "recipes/sft_tiny.yaml",
            f"model_path={_tiny(ctx)}", f"data_dir={data}", f"output_dir={out}", *extra]


def _run(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}, **kw)


@probe("23.10 SFT rerun after kill -9")
def p_sft_kill(ctx: Ctx):
    data, out = ctx.fresh("corpus"), ctx.fresh("sft")
    ctx.cli(*ctx.gqa_build(data), check=True)
    args = _sft(ctx, data, out, "max_steps=10", "save_steps=3")
    first = _run(args, start_new_session=True)
    metrics = out / "metrics.jsonl"
    wait(lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 5, first, timeout=900)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate()
    killed_at = len(metrics.read_text().splitlines()) if metrics.is_file() else 0
    again = _run(args)
    _, err = again.communicate(timeout=900)
    steps = [json.loads(x)["step"] for x in metrics.read_text().splitlines()] if metrics.is_file() else []
    return ("the rerun resumes: steps 1-10 once each in metrics.jsonl", f"killed after {killed_at} rows; rerun "
            f"exit {again.returncode}, steps {steps}", again.returncode == 0 and steps == list(range(1, 11)))


@probe("23.11 weak: SFT on 0 accepted records")
def p_sft_empty(ctx: Ctx):
    data, out = ctx.fresh("empty"), ctx.fresh("sft")
    data.mkdir()
    (data / "manifest.json").write_text(json.dumps({"splits": {"gqa/train": {
        "source": "gqa", "split": "train", "accepted": 0, "rejected": 7}}}))
    t0 = time.monotonic()
    proc = _run(_sft(ctx, data, out))
    _, err = proc.communicate(timeout=900)
    lines = [ln for ln in err.splitlines() if "error" in ln.lower()]
    ok = proc.returncode == 2 and len(lines) == 1 and "0 accepted records" in lines[0] and not out.exists()
    return ("exit 2, one line, before loading the model; nothing written", f"exit {proc.returncode} in "
            f"{time.monotonic() - t0:.0f} s, {lines[:1]}, output_dir exists {out.exists()}", ok)
