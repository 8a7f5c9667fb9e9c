"""The recipes that ship with vlir, and how a path written inside a recipe is found.

``recipes/`` (YAML trainer configs, DeepSpeed JSON, a Slurm script) is package data: in the
repository ``vlir/recipes`` links to it, and a wheel carries the files, so ``vlir recipes list`` /
``vlir recipes copy DIR`` work from an installed vlir and a recipe runs from any working directory.

A relative path written in a recipe (``deepspeed: deepspeed/zero2.json``) is resolved against the
recipe file's folder, not the working directory; a relative path given as a ``key=value`` override
against the working directory. A relative path that exists in neither place but names a packaged
recipe file (``deepspeed/zero3.json``, the default ``deepspeed/zero2.json``) is that file. No torch.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

PACKAGE_DIR = "recipes"
SUFFIXES = (".yaml", ".json", ".sbatch")


def packaged_dir() -> Path:
    """The folder of the packaged recipes (inside the installed package)."""
    return Path(str(resources.files("vlir").joinpath(PACKAGE_DIR)))


def list_recipes() -> list[str]:
    """Every packaged recipe file, relative to the recipes folder (``sft_tiny.yaml``,
    ``deepspeed/zero2.json``...), sorted."""
    root = packaged_dir()
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.suffix in SUFFIXES)


def copy_recipes(dest: Path, names: list[str] | None = None, overwrite: bool = False) -> list[Path]:
    """Copy packaged recipes (all, or ``names``) into ``dest`` keeping their sub-folders, so the
    paths inside them (``deepspeed/zero2.json``) still resolve. Refuses to overwrite a file unless
    ``overwrite``; returns the written paths."""
    known = list_recipes()
    names = known if not names else names
    unknown = [n for n in names if n not in known]
    if unknown:
        raise FileNotFoundError(f"no packaged recipe {unknown[0]!r} (see `vlir recipes list`)")
    targets = [(packaged_dir() / n, Path(dest) / n) for n in names]
    existing = [str(t) for _, t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists (pass --overwrite to replace it)")
    for src, target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    return [t for _, t in targets]


def resolve(value: str, base: Path | None) -> str:
    """Where a relative path of a recipe lives: under ``base`` (the recipe file's folder; None: the
    working directory) when it exists there, else the packaged recipe of that name when there is
    one, else ``value`` unchanged (the input check then names it). Absolute paths are kept."""
    if not value or Path(value).is_absolute():
        return value
    here = (base / value) if base is not None else Path(value)
    if here.exists():
        return str(here)
    packaged = packaged_dir() / value
    if packaged.is_file():
        return str(packaged)
    return str(here)
