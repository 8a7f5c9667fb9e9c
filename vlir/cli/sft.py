"""``vlir train sft``: supervised fine-tuning on VLIR shards (one process; for several GPUs use the
``deepspeed`` launcher on ``vlir.train.sft``, see ``recipes/sft_qwen2_5_vl_7b.yaml``). torch,
transformers and deepspeed are imported inside the command only."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vlir.cli.train import run_recipe, train_app


@train_app.command("sft", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sft(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", help="Recipe YAML (recipes/sft_*.yaml)."),
    show_config: bool = typer.Option(False, "--show-config", help="Print every config key and exit."),
) -> None:
    """SFT of Qwen2.5-VL or Qwen3-VL with DeepSpeed (vision tower and merger frozen). Writes the model
    (save_pretrained layout), metrics.jsonl, loss.png and DeepSpeed checkpoints to output_dir.
    Extra arguments are key=value overrides (e.g. max_steps=10 resume=true)."""
    from vlir.train.sft_config import SFTConfig

    run_recipe(ctx, config, show_config, SFTConfig, "vlir.train.sft", "SFT done")
