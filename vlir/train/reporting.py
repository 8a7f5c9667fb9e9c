"""``report_to``: TensorBoard and Weights & Biases beside ``metrics.jsonl`` (the source of truth).

Each figure a trainer logs (one row per optimizer step) is also written by the libraries' own
writers: ``torch.utils.tensorboard.SummaryWriter`` into ``output_dir/runs`` (``tensorboard
--logdir output_dir/runs``), and ``wandb`` in **offline** mode unless ``WANDB_MODE`` says
otherwise (runs land in ``output_dir/wandb``; ``wandb sync`` uploads them later; the project is
``$WANDB_PROJECT`` or ``vlir``). Rank 0 only. Non-numeric values (None) are left out of both.
The reporter also owns the training progress bar (:meth:`Reporter.start`), ticked by each row.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPORTERS = ("tensorboard", "wandb")
TENSORBOARD_DIR = "runs"


def problems(report_to: Any) -> list[str]:
    if not isinstance(report_to, list) or not all(isinstance(r, str) for r in report_to):
        return [f"report_to must be a list of {', '.join(REPORTERS)}, got {report_to!r}"]
    return [f"report_to: unknown {r!r} (known: {', '.join(REPORTERS)})" for r in report_to if r not in REPORTERS]


class Reporter:
    """The writers named by ``report_to``; :meth:`log` one metrics row, :meth:`close` at the end."""

    def __init__(self, report_to: list[str], out: Path, config: dict[str, Any], name: str, rank: int = 0):
        self.tb = self.wandb = self.bar = None
        self.rank, self.name = rank, name
        if rank != 0:
            return
        out = Path(out)
        if "tensorboard" in report_to:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(out / TENSORBOARD_DIR))
        if "wandb" in report_to:
            import wandb

            os.environ.setdefault("WANDB_MODE", "offline")
            (out / "wandb").parent.mkdir(parents=True, exist_ok=True)
            self.wandb = wandb.init(project=os.environ.get("WANDB_PROJECT", "vlir"), name=name, dir=str(out),
                                    config=config, reinit="finish_previous")
            log.info("wandb run %s (%s mode) in %s", self.wandb.id, os.environ["WANDB_MODE"], out / "wandb")

    def start(self, total: int, done: int = 0) -> None:
        """The training progress bar (rank 0; ETA over optimizer steps; off when quiet or not a TTY)."""
        from vlir.progress import bar

        if self.bar is not None:
            self.bar.close()
        self.bar = bar(total=total, desc=self.name.split("-", 1)[0], unit="step", initial=done,
                       enabled=self.rank == 0)

    def log(self, row: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.update(1)
        step = int(row["step"])
        values = {k: float(v) for k, v in row.items() if k != "step" and isinstance(v, (int, float))
                  and not isinstance(v, bool) and math.isfinite(float(v))}
        if self.tb is not None:
            for key, value in values.items():
                self.tb.add_scalar(key, value, step)
        if self.wandb is not None:
            self.wandb.log(values, step=step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None
