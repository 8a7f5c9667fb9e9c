"""Training curves from ``metrics.jsonl``: ``loss.png`` for SFT, ``rewards.png`` for R-GRPO.

matplotlib's Agg backend is selected explicitly, so plotting works on headless machines and never
opens a window. One panel per metric key, raw values plus an exponential moving average (a
few-dozen-step CPU run is noisy; the trend is what a reader looks for).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)


def read_metrics(path: str | Path) -> list[dict]:
    """The JSON objects of a metrics file, one per line (blank lines skipped)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def ema(values: Sequence[float], alpha: float = 0.2) -> list[float]:
    out: list[float] = []
    for v in values:
        out.append(v if not out else alpha * v + (1 - alpha) * out[-1])
    return out


def plot_metrics(metrics: str | Path | list[dict], out_png: str | Path, keys: Sequence[str] = ("loss",),
                 x: str = "step", title: str = "", smooth: Sequence[str] | None = None,
                 note: str = "") -> Path | None:
    """Plot ``keys`` against ``x`` into ``out_png``; returns the path, or None with nothing to plot.

    Keys absent from every row are skipped, so one call can name optional metrics. ``smooth``
    names the keys that get an EMA line (default: all; a schedule like ``lr`` needs none);
    ``note`` is printed under the panels (R-GRPO: the first- vs last-quarter figures).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics) if not isinstance(metrics, list) else metrics
    present = [k for k in keys if any(isinstance(r.get(k), (int, float)) for r in rows)]
    if not present:
        log.warning("no %s values to plot", list(keys))
        return None
    note_h = 0.18 * (note.count("\n") + 1) if note else 0.0
    fig, axes = plt.subplots(len(present), 1, figsize=(6.4, 2.6 * len(present) + note_h), squeeze=False)
    for ax, key in zip(axes[:, 0], present):
        pts = [(r[x], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and x in r]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        ax.plot(xs, ys, color="#9bb7d4", linewidth=1, label=key)
        if len(ys) > 2 and (smooth is None or key in smooth):
            ax.plot(xs, ema(ys), color="#1f4e79", linewidth=2, label=f"{key} (EMA)")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    axes[-1, 0].set_xlabel(x)
    if title:
        axes[0, 0].set_title(title)
    if note:
        fig.text(0.02, 0.005, note, family="monospace", fontsize=8, va="bottom")
        fig.tight_layout(rect=(0, note_h / (2.6 * len(present) + note_h), 1, 1))
    else:
        fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
