"""The trainers' shared plumbing: checkpoint pruning order, freezing, and the cache switch (the
DeepSpeed save/resume paths run in test_sft.py and test_grpo.py)."""

from __future__ import annotations

from vlir.train import common


def test_prune_keeps_the_newest_by_step_number(tmp_path):
    for step in (2, 9, 10, 11):
        (tmp_path / f"step-{step}").mkdir()
    (tmp_path / "latest").write_text("step-11")
    common.prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-10", "step-11"]  # not "step-9"
    common.prune_checkpoints(tmp_path, keep=0)  # 0 keeps all
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-10", "step-11"]


def test_freeze_and_cache_switch(tiny_model_dir):
    from vlir.models import load_model

    model, _ = load_model(tiny_model_dir)
    common.freeze(model, vision_tower=True, merger=False)
    visual = model.model.visual
    assert not any(p.requires_grad for n, p in visual.named_parameters() if not n.startswith("merger."))
    assert all(p.requires_grad for p in visual.merger.parameters())
    trainable, total = common.parameter_counts(model)
    assert 0 < trainable < total
    common.freeze(model, vision_tower=False, merger=True, language_model=True)
    assert common.parameter_counts(model)[0] == 0
    assert common.use_cache(model, False) is True and common.use_cache(model, True) is False
