"""``vlir train <method>``: the training verbs. Each method's command lives in its own module
(``vlir/cli/sft.py``, ``vlir/cli/grpo.py``) and registers on :data:`train_app`; heavy imports
(torch, transformers, deepspeed) happen inside the commands, never at import time."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import typer

from vlir.cli import app, fail

train_app = typer.Typer(help="Train a model on VLIR (SFT, then R-GRPO).", no_args_is_help=True)
app.add_typer(train_app, name="train")


def run_recipe(ctx: typer.Context, config: Path | None, show_config: bool, config_cls: Any, module: str,
               done: str) -> None:
    """The body every ``vlir train <method>`` shares: ``--show-config`` prints the keys; else load
    the recipe with the extra ``key=value`` arguments as overrides and call ``module.run`` on it.
    A missing recipe, a bad key or value and a missing input are one line and exit code 2."""
    if show_config:
        typer.echo(config_cls.help())
        return
    if config is not None and not config.is_file():
        fail(f"{config}: no such recipe")
    bad = [a for a in ctx.args if "=" not in a]
    if bad:
        fail(f"unexpected arguments {bad}: overrides are key=value")
    from vlir.train.preflight import check_inputs

    try:
        cfg = config_cls.load(config, list(ctx.args))
        check_inputs(cfg)  # before torch, the model and DeepSpeed's op builds
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    run = importlib.import_module(module).run  # torch, transformers and deepspeed load here
    from vlir.train.common import RunRefused

    try:
        out = run(cfg)
    except (FileNotFoundError, RunRefused) as exc:  # RunRefused: output_dir holds another run, no data
        fail(str(exc))
    typer.echo(f"{done}: {out}")
