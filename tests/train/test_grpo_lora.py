"""R-GRPO with LoRA and report_to on the tiny model: two steps through the real rollout (forced
crops), only the adapters change, the training forward still reproduces the rollout's log-probs
under the action mask (loss and masks unchanged), TensorBoard gets the rows, and the checkpoint is
the merged model."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("deepspeed")
pytest.importorskip("peft")

from tests.train.test_grpo import ForceCrop, _config, rl_set  # noqa: E402,F401 (rl_set: a fixture)

pytestmark = [pytest.mark.train, pytest.mark.deepspeed]


def test_rgrpo_with_lora_and_tensorboard(tmp_path, tiny_model_dir, rl_set, tiny):  # noqa: F811
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from vlir.models import load_model
    from vlir.train.grpo import METRICS, GRPOTrainer

    cfg = _config(tmp_path, tiny_model_dir, rl_set, lora={"r": 4, "target_modules": ["q_proj", "v_proj"]},
                  report_to=["tensorboard"], learning_rate=1e-2)
    trainer = GRPOTrainer(cfg, logits_processor=ForceCrop(tiny[1]))
    trainer.setup()
    module = trainer.engine.module
    assert all(".lora_" in n for n, p in module.named_parameters() if p.requires_grad)
    trajs = trainer._rollout(trainer._prompts(0), 0)
    logp, _ = trainer._forward(trainer.engine, trajs)
    for i, t in enumerate(trajs):  # the adapters are in the policy the rollout sampled from
        mask = torch.tensor(t.action_mask, dtype=torch.bool)
        assert torch.allclose(logp[i, : len(t.token_ids)][mask], torch.tensor(t.logprobs)[mask], atol=1e-4)
    frozen = {n: p.detach().clone() for n, p in module.named_parameters() if not p.requires_grad}
    adapters = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    trainer.train()
    trainer.save_checkpoint()
    after = dict(module.named_parameters())
    assert all(torch.equal(frozen[n], after[n]) for n in frozen)
    assert any(not torch.equal(adapters[n], after[n]) for n in adapters if ".lora_B." in n)
    trainer.cleanup()
    metrics = tmp_path / "grpo" / METRICS
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    acc = EventAccumulator(str(metrics.parent / "runs"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss")] == [1, 2]
    merged, _ = load_model(tmp_path / "grpo")
    assert not any("lora" in k for k in merged.state_dict())
    assert (tmp_path / "grpo" / "adapter" / "adapter_config.json").is_file()
