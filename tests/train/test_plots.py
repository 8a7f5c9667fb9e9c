"""Training curves: a PNG from metrics.jsonl, optional keys skipped, EMA smoothing."""

from __future__ import annotations

import json

import pytest

from vlir.train.plots import ema, plot_metrics, read_metrics


def test_plot_writes_png_and_skips_absent_keys(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": i, "loss": 5 - 0.1 * i, "lr": 1e-3}) + "\n" for i in range(1, 9)) + "\n")
    assert len(read_metrics(path)) == 8
    out = plot_metrics(path, tmp_path / "plots" / "loss.png", keys=("loss", "lr", "reward/absent"),
                       smooth=("loss",), title="t")
    assert out is not None and out.read_bytes()[:4] == b"\x89PNG"
    assert plot_metrics(path, tmp_path / "none.png", keys=("reward/absent",)) is None
    assert not (tmp_path / "none.png").exists()


def test_ema():
    assert ema([]) == []
    assert ema([1.0, 1.0, 1.0]) == [1.0, 1.0, 1.0]
    assert ema([0.0, 10.0], alpha=0.5) == pytest.approx([0.0, 5.0])


def test_plot_note_makes_the_figure_taller(tmp_path):
    from PIL import Image

    rows = [{"step": i, "reward": 0.1 * i} for i in range(1, 5)]
    plain = plot_metrics(rows, tmp_path / "a.png", keys=("reward",))
    noted = plot_metrics(rows, tmp_path / "b.png", keys=("reward",), note="line 1\nline 2\nline 3")
    assert Image.open(noted).size[1] > Image.open(plain).size[1]
