"""``vlir rl-data`` (sample the RL set) and ``vlir train grpo`` (R-GRPO). torch, transformers and
deepspeed are imported inside the commands only."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vlir.cli import app, fail
from vlir.cli.train import run_recipe, train_app


def _parse_quotas(items: list[str], per_source: int, sources: str) -> dict[str, int] | None:
    quotas: dict[str, int] = {}
    if sources:
        quotas = {s.strip(): per_source for s in sources.split(",") if s.strip()}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.strip().isdigit():
            fail(f"--quota {item!r}: expected SOURCE=N (e.g. gqa=1000)")
        quotas[name.strip()] = int(value)
    return quotas or None


@app.command("rl-data")
def rl_data(
    root: Path = typer.Option(..., "--root", help="A built VLIR corpus folder (with manifest.json)."),
    out: Path = typer.Option(..., "--out", help="Folder for the RL set (part-00000.parquet; its manifest in .vlir/rl_data.json)."),
    seed: int = typer.Option(0, "--seed", help="Selection seed: same seed and corpus, same RL set."),
    split: str = typer.Option("train", "--split", help="Corpus split to sample from."),
    sources: str = typer.Option("", "--sources",
                                help="Comma-separated sources, each with --per-source records "
                                     "(default: the paper's textvqa,gqa,vsr,docvqa,m3cot present)."),
    per_source: int = typer.Option(1000, "--per-source", help="Records per source (of --sources, or of "
                                                              "the paper's sources by default)."),
    quota: Optional[list[str]] = typer.Option(None, "--quota", help="SOURCE=N, repeatable; overrides."),
) -> None:
    """Sample the R-GRPO set: per-source quotas (the paper: ~5,000 from TextVQA, GQA, VSR, DocVQA,
    M3CoT), deterministic for a seed, images embedded."""
    from vlir.train.rl_data import build_rl_set

    if not (root / "manifest.json").is_file():
        fail(f"{root}: not a built VLIR corpus (no manifest.json); run `make vlir` or `vlir build`")
    if per_source < 1:
        fail("--per-source must be >= 1")
    quotas = _parse_quotas(list(quota or []), per_source, sources)
    try:
        manifest = build_rl_set(root, out, quotas, seed=seed, split=split, per_source=per_source)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(manifest["counts"].items()))
    typer.echo(f"RL set: {manifest['rows']} records ({counts}) -> {out}")


@train_app.command("grpo", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def grpo(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", help="Recipe YAML (recipes/grpo_*.yaml)."),
    show_config: bool = typer.Option(False, "--show-config", help="Print every config key and exit."),
) -> None:
    """R-GRPO from an SFT checkpoint: rollouts with crops, the paper's rewards, the clipped loss on
    policy tokens only. Extra arguments are key=value overrides (e.g. max_steps=10)."""
    from vlir.train.grpo_config import GRPOConfig

    run_recipe(ctx, config, show_config, GRPOConfig, "vlir.train.grpo", "R-GRPO done")
