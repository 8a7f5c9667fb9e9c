"""Oracle replay: the contract between data, training and inference.

A stored record's assistant text, teacher-forced through the rollout engine, must make the engine
cut the very crops the shard stores (byte for byte) and produce exactly the ids and labels that
``vlir.models.chat.encode_record`` renders for SFT.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from vlir.corpus import shards  # noqa: E402
from vlir.records import Box, Look  # noqa: E402
from vlir.rollout import ReplayMismatch, Rollout, RolloutConfig  # noqa: E402
from vlir.models import chat  # noqa: E402
from vlir.models import model_budget  # noqa: E402

from tests.rollout_helpers import snapped_record, tiny  # noqa: E402
from tests.train.conftest import build_record  # noqa: E402


def engine(mode: str = "kv") -> Rollout:
    model, processor = tiny()
    return Rollout(model, processor, RolloutConfig(temperature=0.0, mode=mode, keep_scores=True))


def grid_record(n_looks: int, seed: int, size=(320, 240)):
    record, image = build_record(n_looks, seed=seed, size=size)
    return snapped_record(record, image, model_budget(tiny()[1])), image


def assert_replays(record, image, mode="kv"):
    _, processor = tiny()
    enc = chat.encode_record(record, image, processor)
    traj = engine(mode).replay(record, image)
    ids = enc["input_ids"].tolist()
    assert traj.token_ids == ids
    labels = [t if m else chat.IGNORE_INDEX for t, m in zip(traj.token_ids, traj.action_mask)]
    assert labels == enc["labels"].tolist()
    assert [c.png for c in traj.crops] == [c.png for c in record.crops]
    assert torch.equal(traj.image_grid_thw, enc["image_grid_thw"])
    assert torch.equal(traj.pixel_values, enc["pixel_values"])
    assert traj.finish_reason == "answer" and traj.answer == record.chain.answer
    return traj


@pytest.mark.parametrize("n_looks, size", [(0, (320, 240)), (1, (320, 240)), (4, (320, 240)),
                                           (2, (1000, 700)), (3, (150, 400))])
def test_replay_reproduces_crops_ids_and_labels(n_looks, size):
    record, image = grid_record(n_looks, seed=n_looks, size=size)
    traj = assert_replays(record, image)
    assert len(traj.crops) == n_looks
    for look, box in zip(record.chain.looks, traj.boxes):
        assert box == look.box


def test_replay_through_a_shard(tmp_path):
    """The crops as a shard stores and returns them (Parquet round trip) replay exactly too."""
    records = [grid_record(n, seed=10 + n) for n in (1, 3)]
    shards.write_records(tmp_path / "part-00000.parquet", [r for r, _ in records])
    for stored, (_, image) in zip(shards.read_records(tmp_path / "part-00000.parquet"), records):
        assert_replays(stored, image)


@pytest.mark.slow
def test_replay_of_a_real_build(tmp_path):
    """``vlir build`` (sample trees, grounded annotator, the tiny model's budget as the build's model
    view) -> shards -> every accepted record replays exactly."""
    from vlir.corpus.build import BuildConfig, Job
    from vlir.corpus.executors.local import run_build
    from vlir.sources.registry import get_source

    budget = model_budget(tiny()[1])
    jobs = []
    for name in ("textvqa", "gqa", "docvqa"):
        get_source(name).write_sample_tree(tmp_path / "src" / name, 3, 0)
        jobs.append(Job(name, "val", str(tmp_path / "src" / name)))
    cfg = BuildConfig(tasks=1, model_budget=budget)
    run_build(cfg, jobs, tmp_path / "out", show_progress=False)
    corpus = shards.Corpus(tmp_path / "out")
    replayed = looks = 0
    for source, split in corpus.splits():
        for record in corpus.records(source, split):
            traj = assert_replays(record, corpus.image(record))
            replayed += 1
            looks += len(traj.crops)
    assert replayed >= 5 and looks >= replayed


def test_replay_in_reprefill_mode_and_logprobs_agree():
    record, image = grid_record(2, seed=5)
    kv = assert_replays(record, image, "kv")
    ref = assert_replays(record, image, "reprefill")
    torch.testing.assert_close(torch.tensor(kv.logprobs), torch.tensor(ref.logprobs), atol=2e-5, rtol=1e-5)


def test_replay_reports_crops_cut_from_an_off_grid_box():
    """A record whose crop was cut from a box the model cannot write (off the model-space grid: on
    a 1000x700 image the tiny model sees 532x364, so the box says [54, 53, 108, 106]) is reported,
    naming the box: the engine can only cut what the bbox numbers say."""
    from vlir.crops import render_crop

    record, image = build_record(1, seed=3, size=(1000, 700))
    box = Box(101, 101, 203, 203)
    steps = [Look(box, s.label) if isinstance(s, Look) else s for s in record.chain.steps]
    off_grid = type(record)(record.sample, type(record.chain)(steps, record.chain.answer), record.provenance,
                            crops=[render_crop(image, box)])
    assert snapped_record(off_grid, image, model_budget(tiny()[1])).crops[0].png != off_grid.crops[0].png
    with pytest.raises(ReplayMismatch, match="crop 0"):
        engine().replay(off_grid, image)


def test_replay_rejects_a_record_whose_look_leaves_the_image():
    record, image = grid_record(1, seed=4)
    steps = [Look(Box(0, 0, 10, 10)) if isinstance(s, Look) else s for s in record.chain.steps]
    tampered = type(record)(record.sample, type(record.chain)(steps, record.chain.answer), record.provenance,
                            crops=record.crops)
    with pytest.raises(ReplayMismatch):
        engine().replay(tampered, image)
