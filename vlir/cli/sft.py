"""``vlir train sft``: supervised fine-tuning on VLIR shards (one process; for several GPUs use the
``deepspeed`` launcher on ``vlir.train.sft``, see ``recipes/sft_qwen2_5_vl_7b.yaml``). torch,
transformers and deepspeed are imported inside the command only."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vlir.cli import fail
from vlir.cli.train import train_app


@train_app.command("sft", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sft(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", help="Recipe YAML (recipes/sft_*.yaml)."),
    show_config: bool = typer.Option(False, "--show-config", help="Print every config key and exit."),
) -> None:
    """SFT of Qwen2.5-VL with DeepSpeed (vision tower and merger frozen). Writes the model
    (save_pretrained layout), metrics.jsonl, loss.png and DeepSpeed checkpoints to output_dir.
    Extra arguments are key=value overrides (e.g. max_steps=10 resume=true)."""
    from vlir.train.sft_config import SFTConfig

    if show_config:
        typer.echo(SFTConfig.help())
        return
    if config is not None and not config.is_file():
        fail(f"{config}: no such recipe")
    bad = [a for a in ctx.args if "=" not in a]
    if bad:
        fail(f"unexpected arguments {bad}: overrides are key=value")
    try:
        cfg = SFTConfig.load(config, list(ctx.args))
    except ValueError as exc:
        fail(str(exc))
    from vlir.train.sft import run

    try:
        out = run(cfg)
    except FileNotFoundError as exc:
        fail(str(exc))
    typer.echo(f"SFT done: {out}")
