"""``vlir build``: sources -> chains -> checks -> crops -> shards (see :mod:`vlir.corpus.build`)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from vlir.cli import app, fail

#: sysexits.h's "temporary failure; the user is invited to retry": samples wait on the teacher
EX_TEMPFAIL = 75


@app.command()
def build(
    source: str = typer.Option(..., "--source", help="textvqa, docvqa, gqa, infographicsvqa, vsr, m3cot, zoom, "
                               "or all (the five VQA sources and zoom, each under ROOT/<source>; what is "
                               "absent is reported and skipped)."),
    root: Path = typer.Option(..., "--root", help="Folder with the official download (for all: the parent)."),
    split: str = typer.Option(..., "--split", help="Split name(s), comma-separated: train,val"),
    out: Path = typer.Option(..., "--out", help="Output folder (shards, rejects, manifest)."),
    annotator: Optional[str] = typer.Option(None, "--annotator", help="grounded (default) or teacher."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                          help="Worker processes (default 1); with --executor ray, the most "
                                          "tasks in flight (default: every CPU of the cluster)."),
    executor: str = typer.Option("local", "--executor", help="local (this machine's processes) or ray "
                                 "(Ray tasks; needs the ray extra)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address",
                                              help="With --executor ray: the cluster to join (auto, "
                                              "ray://HOST:10001, HOST:6379); default $RAY_ADDRESS, else a "
                                              "local Ray instance for this build."),
    num_shards: int = typer.Option(1, "--num-shards", min=1, help="Machines sharing this build."),
    shard_index: int = typer.Option(0, "--shard-index", min=0, help="This machine's index."),
    limit: Optional[int] = typer.Option(None, "--limit", min=0, help="First K samples per source/split."),
    tasks: Optional[int] = typer.Option(None, "--tasks", min=1, help="Partitions per source/split."),
    embed_images: Optional[bool] = typer.Option(None, "--embed-images/--reference-images",
                                                help="Store original image bytes in the shards."),
    config: Optional[Path] = typer.Option(None, "--config", help="Build config YAML (flags override)."),
    base_url: Optional[List[str]] = typer.Option(None, "--base-url",
                                                 help="Teacher: OpenAI-compatible endpoint; repeat it for "
                                                 "several replicas (each request goes to the least busy)."),
    model: Optional[str] = typer.Option(None, "--model", help="Teacher: model name."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env",
                                              help="Teacher: NAME of the environment variable holding the API key "
                                              "(never the key itself)."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1, help="Teacher: requests in flight."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0.1, help="Teacher: total deadline of one request attempt (s)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    strict: bool = typer.Option(False, "--strict", help="With --source all: fail (before writing anything) "
                                "when a source or split is missing, instead of building what is present."),
    model_family: Optional[str] = typer.Option(None, "--model-family",
                                               help="Snap looks to this model family's box grid and render crops "
                                                    "on its pixel grid: qwen2_5_vl (default) or qwen3_vl."),
) -> None:
    """Build VLIR shards from a source's official files."""
    from vlir.corpus.build import BuildConfig, SamplesWaiting
    from vlir.corpus.executors.local import BuildInterrupted, DiskFull, run_build
    from vlir.corpus.lock import OutputLocked
    from vlir.corpus.manifest import ManifestError
    from vlir.secrets import redact

    if config is not None and not config.is_file():
        fail(f"--config {config} not found")
    if not root.is_dir():
        fail(f"--root {root} is not a directory")
    splits = [s.strip() for s in split.split(",") if s.strip()]
    if not splits:
        fail(f"--split {split!r} names no split (e.g. --split val or --split train,val)")
    if shard_index >= num_shards:
        fail(f"--shard-index {shard_index} must be smaller than --num-shards {num_shards}")
    if executor not in ("local", "ray"):
        fail(f"--executor must be local or ray, got {executor!r}")
    if ray_address is not None and executor != "ray":
        fail("--ray-address needs --executor ray")
    urls = list(base_url or ())
    teacher = {k: v for k, v in {"base_url": (urls[0] if len(urls) == 1 else urls) or None, "model": model,
                                 "api_key_env": api_key_env,
                                 "concurrency": concurrency, "timeout_s": timeout}.items() if v is not None}
    try:
        cfg = BuildConfig.from_yaml(config, annotator=annotator, limit=limit, tasks=tasks,
                                    embed_images=embed_images, teacher=teacher or None, model_family=model_family)
    except (ValueError, TypeError) as exc:
        fail(f"bad build config: {redact(str(exc))}")
    if (out_problem := _out_problem(out, create=False)):  # a flag error: before the sources are looked at
        fail(out_problem)
    jobs, missing = plan_jobs(source, root, splits)
    for gap in missing:
        typer.echo(f"vlir: {'missing' if strict else 'skipped'}: {gap['source']}{_split_part(gap)}: {gap['reason']}",
                   err=True)
    if missing and strict:
        fail(f"--strict: {len(missing)} source/split(s) missing under {root}; nothing was built")
    if not jobs:
        fail(f"nothing to build under {root}: every source asked for is missing")
    fatal: tuple[type[BaseException], ...] = (ManifestError, OutputLocked, DiskFull)
    if cfg.annotator == "teacher":
        from vlir.annotate.teacher import TeacherFatalError

        fatal += (TeacherFatalError,)
    temporary: tuple[type[BaseException], ...] = (SamplesWaiting,)
    if executor == "ray":
        try:
            from vlir.corpus.executors.ray_cluster import WorkerLost
        except ModuleNotFoundError as exc:
            fail(str(exc))
        temporary += (WorkerLost,)
    if (out_problem := _out_problem(out)):
        fail(out_problem)
    try:
        manifest = run_build(cfg, jobs, out, workers=workers, num_shards=num_shards,
                             shard_index=shard_index, show_progress=progress, executor=executor,
                             ray_address=ray_address, missing=missing)
    except fatal as exc:
        fail(redact(str(exc)))
    except temporary as exc:  # the same command picks up where it stopped
        typer.echo(f"vlir: {redact(str(exc))}", err=True)
        raise typer.Exit(EX_TEMPFAIL) from None
    except BuildInterrupted as exc:
        typer.echo("vlir: interrupted; rerun the same command to resume", err=True)
        raise typer.Exit(128 + exc.signum) from None
    if manifest is None:
        typer.echo(f"shard {shard_index}/{num_shards} done in {out}; run `vlir merge` when all are done")
        return
    typer.echo(f"{'source/split':<28} {'accepted':>9} {'rejected':>9}  top reasons")
    for key, s in manifest["splits"].items():
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(s["rejected_by_reason"].items(), key=lambda x: -x[1])[:3])
        typer.echo(f"{key:<28} {s['accepted']:>9} {s['rejected']:>9}  {reasons}")
    if missing:
        typer.echo(f"not built (missing under {root}): "
                   + ", ".join(f"{g['source']}{_split_part(g)}" for g in missing) + " (listed in the manifest)")
    typer.echo(f"manifest: {out / 'manifest.json'}")


def plan_jobs(source: str, root: Path, splits: list[str]) -> tuple[list, list[dict[str, str]]]:
    """The jobs to build and, for ``--source all``, what is missing: a source whose folder is absent
    (one entry, split ``*``), a split it does not have or whose record files are absent. A single
    source is checked the same way, but what is missing there is an error (exit 2) before any
    write. Only the record files are looked for (:meth:`Source.record_files`), not loaded."""
    from vlir.corpus.build import ALL_SOURCES, Job
    from vlir.sources.base import SourceError
    from vlir.sources.registry import get_source

    every = source == "all"
    jobs, missing = [], []
    for name in list(ALL_SOURCES) if every else [source]:
        adapter = get_source(name)  # unknown names fail here with the list of choices
        src_root = root / name if every else root
        if not src_root.is_dir():
            if not every:
                fail(f"--root {src_root} is not a directory")
            missing.append({"source": name, "split": "*", "reason": f"no folder {src_root}"})
            continue
        for sp in splits:
            try:
                adapter.record_files(src_root, sp)
            except SourceError as exc:
                if not every:
                    raise
                missing.append({"source": name, "split": sp, "reason": " ".join(str(exc).split())})
                continue
            jobs.append(Job(name, sp, str(src_root)))
    return jobs, missing


def _split_part(gap: dict[str, str]) -> str:
    return "" if gap["split"] == "*" else f"/{gap['split']}"


def _out_problem(out: Path, create: bool = True) -> str | None:
    """Why ``--out`` cannot be a build folder (a file, or under one), before any work starts;
    ``create``: also make it (nothing is written before the sources are known to be there)."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                return f"--out {out}: {p} is not a directory"
            break
    if not create:
        return None
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"--out {out}: cannot create it ({exc.strerror or exc})"
    return None
