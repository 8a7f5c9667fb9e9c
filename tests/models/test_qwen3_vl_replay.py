"""One corpus, two model families: a build for Qwen3-VL snaps looks to its 0-1000 grid and renders
crops on its 32-pixel grid (recorded in the manifest), and oracle replay of those chains through
the Qwen3-VL engine reproduces the stored crops, ids and labels byte for byte."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from vlir import geometry  # noqa: E402
from vlir.corpus import shards  # noqa: E402
from vlir.models import chat, family_for, model_budget  # noqa: E402
from vlir.rollout import ReplayMismatch, Rollout, RolloutConfig  # noqa: E402

from tests.rollout_helpers import snapped_record, tiny  # noqa: E402
from tests.train.conftest import build_record  # noqa: E402

QWEN3 = "qwen3_vl_tiny"


def engine() -> Rollout:
    model, processor = tiny(QWEN3)
    return Rollout(model, processor, RolloutConfig(temperature=0.0))


def assert_replays(record, image):
    _, processor = tiny(QWEN3)
    enc = chat.encode_record(record, image, processor)
    traj = engine().replay(record, image)
    assert traj.token_ids == enc["input_ids"].tolist()
    labels = [t if m else chat.IGNORE_INDEX for t, m in zip(traj.token_ids, traj.action_mask)]
    assert labels == enc["labels"].tolist()
    assert [c.png for c in traj.crops] == [c.png for c in record.crops]
    assert traj.finish_reason == "answer" and traj.answer == record.chain.answer
    return traj


def test_the_qwen3_processor_speaks_the_relative_grid():
    _, processor = tiny(QWEN3)
    budget = model_budget(processor)
    assert (budget.factor, budget.box_grid) == (32, 1000)
    cfg = chat.ChatConfig.for_processor(processor)
    assert cfg.crop_budget.factor == 32 and cfg.crop_budget.box_grid is None
    # the assistant text writes thousandths of the image, whatever its pixel size
    record, image = build_record(1, seed=3, size=(640, 480))
    look = record.chain.looks[0]
    text = chat.assistant_text(chat.assistant_segments(record, cfg, image))
    assert chat.format_look(geometry.to_model(look.box, 640, 480, budget)) in text
    assert geometry.to_model(look.box, 640, 480, budget) == [round(v / s * 1000) for v, s in
                                                              zip(look.box.as_list(), (640, 480, 640, 480))]


@pytest.mark.parametrize("n_looks, size", [(1, (320, 240)), (3, (1000, 700)), (2, (150, 400))])
def test_replay_reproduces_qwen3_crops(n_looks, size):
    _, processor = tiny(QWEN3)
    budget = model_budget(processor)
    record, image = build_record(n_looks, seed=n_looks, size=size)
    record = snapped_record(record, image, budget, chat.ChatConfig.for_processor(processor).crop_budget)
    traj = assert_replays(record, image)
    assert len(traj.crops) == n_looks
    assert [b.as_list() for b in traj.boxes] == [look.box.as_list() for look in record.chain.looks]


def test_a_qwen2_5_corpus_does_not_replay_byte_for_byte_through_qwen3():
    """Negative control: looks snapped to Qwen2.5-VL's pixel grid with its crop budget are not what
    Qwen3-VL's engine cuts, and replay says so (hence the build's model_family)."""
    record, image = build_record(2, seed=7, size=(1000, 700))
    record = snapped_record(record, image, family_for("qwen2_5_vl").budget())
    with pytest.raises(ReplayMismatch, match="differs from the stored one"):
        engine().replay(record, image)


@pytest.mark.slow
def test_a_build_for_qwen3_replays_exactly_and_says_so(tmp_path):
    """``vlir build --model-family qwen3_vl`` with the tiny Qwen3-VL's budget -> shards whose every
    accepted record replays byte for byte; the manifest records the family."""
    from vlir.corpus.build import BuildConfig, Job
    from vlir.corpus.executors.local import run_build
    from vlir.sources.registry import get_source

    _, processor = tiny(QWEN3)
    budget = model_budget(processor)
    jobs = []
    for name in ("textvqa", "gqa", "docvqa"):
        get_source(name).write_sample_tree(tmp_path / "src" / name, 3, 0)
        jobs.append(Job(name, "val", str(tmp_path / "src" / name)))
    cfg = BuildConfig(tasks=1, model_family="qwen3_vl", model_budget=budget)
    assert cfg.model_budget == budget and cfg.crop_budget.factor == 32
    run_build(cfg, jobs, tmp_path / "out", show_progress=False)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["config"]["model_family"] == "qwen3_vl"
    corpus = shards.Corpus(tmp_path / "out")
    replayed = looks = 0
    for source, split in corpus.splits():
        for record in corpus.records(source, split):
            s = record.sample
            for look in record.chain.looks:  # on the grid: thousandths map back to themselves
                assert geometry.snap_to_model(look.box, s.width, s.height, budget) == look.box
            traj = assert_replays(record, corpus.image(record))
            replayed += 1
            looks += len(traj.crops)
    assert replayed >= 5 and looks >= replayed


def test_build_rejects_an_unknown_family():
    from vlir.corpus.build import BuildConfig

    with pytest.raises(ValueError, match="model_family"):
        BuildConfig(model_family="llava")
