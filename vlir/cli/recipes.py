"""``vlir recipes``: list the recipes that ship with vlir and copy them where you want to edit them
(the copies keep their sub-folders, so ``deepspeed: deepspeed/zero2.json`` inside a recipe still
resolves: a path in a recipe is relative to the recipe file)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from vlir.cli import app, fail

recipes_app = typer.Typer(help="List and copy the packaged training recipes (YAML + DeepSpeed JSON).",
                          no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")


@recipes_app.command("list")
def list_() -> None:
    """Print every packaged recipe (relative paths) and the folder they live in."""
    from vlir.train.recipe_files import list_recipes, packaged_dir

    for name in list_recipes():
        typer.echo(name)
    typer.echo(f"(in {packaged_dir()})", err=True)


@recipes_app.command("copy")
def copy(
    dest: Path = typer.Argument(..., help="Folder to copy the recipes into (created if needed)."),
    names: Optional[List[str]] = typer.Option(None, "--name", help="Copy only this recipe (repeatable); "
                                              "default: all."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace files that exist in DEST."),
) -> None:
    """Copy packaged recipes into DEST; then e.g. `vlir train sft --config DEST/sft_tiny.yaml`."""
    from vlir.train.recipe_files import copy_recipes

    try:
        written = copy_recipes(dest, names or None, overwrite)
    except (FileNotFoundError, FileExistsError) as exc:
        fail(str(exc))
    typer.echo(f"copied {len(written)} recipe file(s) into {dest}")
