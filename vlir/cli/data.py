"""Corpus verbs: ``vlir sources``, ``read``, ``sample``, ``validate``, ``merge``."""

from __future__ import annotations

import json
import sys
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Optional

import typer

from vlir.cli import app, fail
from vlir.records import Invalid


@app.command()
def sources() -> None:
    """List the source adapters and the official files each expects under its root."""
    from vlir.sources.registry import get_source, source_names

    for name in source_names():
        src = get_source(name)
        typer.echo(f"{name}: {src.title}")
        typer.echo(f"  splits:   {', '.join(src.splits)}")
        if src.homepage:
            typer.echo(f"  download: {src.homepage}")
        if src.license:
            typer.echo(f"  license:  {src.license}")
        typer.echo("  files:")
        for f in src.expected_files:
            typer.echo(f"    {f}")


@app.command()
def read(
    source: str = typer.Option(..., "--source", help="Adapter name (see `vlir sources`)."),
    root: Path = typer.Option(..., "--root", help="Folder holding the official download."),
    split: str = typer.Option(..., "--split", help="Split name, e.g. train, val, random/test."),
    limit: Optional[int] = typer.Option(None, "--limit", min=0, help="Stop after N records."),
) -> None:
    """Print a source's samples as JSON lines (rejected records go to stderr with the reason)."""
    from vlir.sources.registry import get_source

    if not root.is_dir():
        fail(f"--root {root} is not a directory")
    adapter = get_source(source)
    stats: Counter = Counter()
    stream = adapter.iter_samples(root, split, stats=stats)
    for item in islice(stream, limit) if limit is not None else stream:
        if isinstance(item, Invalid):
            typer.echo(json.dumps({"id": item.id, "reason": item.reason, "detail": item.detail}), err=True)
        else:
            sys.stdout.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")
    if stats:
        typer.echo("stats: " + json.dumps(dict(sorted(stats.items()))), err=True)


@app.command()
def sample(
    out: Path = typer.Option(..., "--out", help="Folder to write <out>/<source>/ sample trees into."),
    per_source: int = typer.Option(8, "--per-source", min=1, help="Questions per split per source."),
    seed: int = typer.Option(0, "--seed", help="Seed of the deterministic generator."),
    source: Optional[list[str]] = typer.Option(None, "--source", help="Only these sources (repeatable)."),
) -> None:
    """Write a small, deterministic, format-faithful sample of every source's official layout."""
    from vlir.sources.registry import get_source, source_names

    names = source or source_names()
    for name in names:
        get_source(name).write_sample_tree(out / name, per_source, seed)
        typer.echo(f"wrote {out / name}")


@app.command()
def validate(
    out: Path = typer.Argument(..., help="A vlir output folder (holding manifest.json)."),
    max_problems: int = typer.Option(50, "--max-problems", help="How many problems to list."),
) -> None:
    """Check shards against the record schema and the manifest's counts and checksums.

    Exit 0 when clean, 1 with a list of problems (file, row, field, reason), 2 when OUT is not a
    vlir output at all."""
    from vlir.corpus.validate import NotVlirOutput, validate_output

    try:
        report = validate_output(out)
    except NotVlirOutput as exc:
        fail(str(exc))
    for line in report.summary_lines():
        typer.echo(line)
    if report.ok:
        typer.echo(f"OK: {out} is a valid vlir output")
        return
    typer.echo(f"FAILED: {len(report.problems)} problem(s) in {out}", err=True)
    for p in report.problems[:max_problems]:
        typer.echo(f"  {p}", err=True)
    if len(report.problems) > max_problems:
        typer.echo(f"  ... and {len(report.problems) - max_problems} more", err=True)
    raise typer.Exit(1)


@app.command()
def merge(
    outs: list[Path] = typer.Argument(..., help="Output folders of one build's shards; the first "
                                      "receives the others' tasks and the merged manifest."),
) -> None:
    """Write one manifest over the task outputs of several machines (--num-shards builds)."""
    from vlir.corpus.lock import OutputLocked
    from vlir.corpus.manifest import ManifestError
    from vlir.corpus.manifest import merge as merge_outputs

    try:
        manifest = merge_outputs(outs[0], outs[1:])
    except (ManifestError, OutputLocked) as exc:
        fail(str(exc))
    total = sum(s["accepted"] + s["rejected"] for s in manifest["splits"].values())
    typer.echo(f"merged {len(manifest['shards'])} shards, {total} records into {outs[0] / 'manifest.json'}")


@app.command()
def card(out: Path = typer.Argument(..., help="A vlir output folder.")) -> None:
    """Write the dataset card OUT/README.md (Hub layout) with tables and PNG plots in OUT/card/."""
    from vlir.corpus.cards import write_card
    from vlir.paths import ConfinementError

    _require_output(out)
    try:
        typer.echo(f"wrote {write_card(out)}")
    except ConfinementError as exc:  # a manifest naming a split outside OUT
        fail(f"{out / 'manifest.json'}: {exc}")


@app.command()
def show(
    out: Path = typer.Argument(..., help="A vlir output folder."),
    dest: Path = typer.Option(..., "--out", help="HTML file to write."),
    n: int = typer.Option(50, "--n", min=1, help="How many records to show."),
    source: Optional[str] = typer.Option(None, "--source", help="Only this source."),
) -> None:
    """Write one self-contained HTML page showing records: boxes, crops, chain text, checks."""
    from vlir.corpus.show import write_page

    _require_output(out)
    from vlir.corpus.shards import Corpus

    from vlir.paths import ConfinementError

    built = sorted({src for src, _ in Corpus(out).splits()})
    if source is not None and source not in built:
        fail(f"--source {source}: {out} holds {', '.join(built) or 'no source'}")
    try:
        count = write_page(out, dest, n=n, source=source)
    except ConfinementError as exc:  # a manifest naming a split outside OUT
        fail(f"{out / 'manifest.json'}: {exc}")
    typer.echo(f"wrote {dest} ({count} records)")


def _require_output(out: Path) -> None:
    """One-line exit 2 unless ``out`` holds a finished build (an interrupted one says so)."""
    from vlir.corpus import layout

    if (out / layout.MANIFEST).is_file():
        return
    if (out / layout.BUILD_INFO).is_file() or layout.bookkeeping_dir(out).is_dir():
        fail(f"{out} is an incomplete build (rerun the build command to finish)")
    fail(f"{out} is not a vlir output (no manifest.json)")
