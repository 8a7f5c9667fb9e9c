"""Check a trainer config's inputs before anything slow happens.

Loading a 7B model takes minutes and DeepSpeed compiles its ``shm_comm_op`` on the first process
group (~40-60 s on a cold cache): a typo in ``data_dir`` used to be reported after all that. The
checks here are file-system look-ups only (no torch): the CLI, the module entry point and
:func:`vlir.train.common.run_trainer` call :func:`check_inputs` first. Every problem found is
named, in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"  # a built corpus (vlir.corpus.layout.MANIFEST; not imported: stays light)


def input_problems(cfg: Any) -> list[str]:
    """What is missing among ``cfg``'s inputs: the model (unless it is to be built), the data, the
    DeepSpeed JSON. SFT reads a corpus (``manifest.json``), R-GRPO an RL set (``part-*.parquet``)."""
    from vlir.train.recipe_files import resolve

    problems = []
    model = Path(cfg.model_path)
    if not (model / "config.json").is_file() and not getattr(cfg, "build_model", ""):
        problems.append(f"model_path={cfg.model_path}: no checkpoint there (no config.json); point it at "
                        "a model folder or set build_model=tiny")
    data = Path(cfg.data_dir)
    if cfg.kind == "SFT":
        if not (data / MANIFEST).is_file():
            problems.append(f"data_dir={cfg.data_dir}: no {MANIFEST} there, not a built vlir corpus "
                            "(`vlir build ... --out DIR`)")
    elif not (data.is_file() or any(data.glob("part-*.parquet"))):
        problems.append(f"data_dir={cfg.data_dir}: no part-*.parquet there, not an RL set (`vlir rl-data`)")
    deepspeed = Path(resolve(cfg.deepspeed, None))
    if not deepspeed.is_file():
        problems.append(f"deepspeed={cfg.deepspeed}: no such DeepSpeed JSON (packaged ones: "
                        "`vlir recipes list`)")
    return problems


def check_inputs(cfg: Any) -> None:
    """Raise ``FileNotFoundError`` naming every missing input of ``cfg`` (one line)."""
    problems = input_problems(cfg)
    if problems:
        raise FileNotFoundError(f"{cfg.kind} config: " + "; ".join(problems))
