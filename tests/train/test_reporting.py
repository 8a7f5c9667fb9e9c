"""The reporter without a trainer: the progress bar counts optimizer steps toward a total (its
ETA), only rank 0 writes, and TensorBoard gets numeric values only."""

from __future__ import annotations

import pytest

from vlir import progress
from vlir.train.reporting import Reporter, problems


def test_bar_counts_steps_from_a_resume_point(tmp_path, monkeypatch):
    import io

    from tqdm import tqdm

    monkeypatch.delenv(progress.QUIET_ENV, raising=False)
    seen = {}

    def on_a_terminal(**kwargs):  # as progress.bar, with a (pretend) terminal on stderr
        seen.update(kwargs)
        return tqdm(total=kwargs["total"], initial=kwargs["initial"], file=io.StringIO(), disable=False)

    monkeypatch.setattr(progress, "bar", on_a_terminal)
    rep = Reporter([], tmp_path, {}, "sft-run", rank=0)
    rep.start(total=5, done=2)  # resumed at step 2 of 5
    rep.log({"step": 3, "loss": 1.5})
    assert (rep.bar.n, rep.bar.total) == (3, 5) and seen["desc"] == "sft" and seen["enabled"]
    rep.close()
    monkeypatch.undo()
    monkeypatch.setenv(progress.QUIET_ENV, "1")
    quiet = Reporter([], tmp_path, {}, "grpo-run", rank=0)
    quiet.start(total=5)
    assert quiet.bar.disable
    quiet.close()


def test_only_rank_0_writes_and_only_numbers(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    other = Reporter(["tensorboard"], tmp_path / "r1", {}, "sft-x", rank=1)
    other.log({"step": 1, "loss": 2.0})
    other.close()
    assert not (tmp_path / "r1").exists()
    rep = Reporter(["tensorboard"], tmp_path / "r0", {}, "sft-x", rank=0)
    rep.log({"step": 1, "loss": 2.0, "grad_norm": None, "kl": float("nan"), "finish/stop": 1})
    rep.close()
    acc = EventAccumulator(str(tmp_path / "r0" / "runs"))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == ["finish/stop", "loss"]
    assert problems(["tensorboard", "wandb"]) == [] and problems("tensorboard")
