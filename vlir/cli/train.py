"""``vlir train <method>``: the training verbs. Each method's command lives in its own module
(``vlir/cli/sft.py``, ``vlir/cli/grpo.py``) and registers on :data:`train_app`; heavy imports
(torch, transformers, deepspeed) happen inside the commands, never at import time."""

from __future__ import annotations

import typer

from vlir.cli import app

train_app = typer.Typer(help="Train a model on VLIR (SFT, then R-GRPO).", no_args_is_help=True)
app.add_typer(train_app, name="train")
