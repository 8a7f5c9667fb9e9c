"""Two real R-GRPO steps on the tiny model: real rollouts with real crops (a logits processor forces
the bbox JSON a random model would rarely write), rewards, the masked loss, a DeepSpeed step;
then checkpoint and resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("deepspeed")

from vlir.crops import encode_png  # noqa: E402
from vlir.corpus.shards import write_records  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SCRIPT = '<think> look {"bbox_2d": [0, 0, 84, 56]}'


class ForceCrop:
    """Forces ``SCRIPT`` at the start of every trajectory, so each one crops once; after the crop
    the policy samples freely (so the group's rewards differ)."""

    def __init__(self, processor):
        from vlir.models import special_ids

        self.script = processor.tokenizer.encode(SCRIPT, add_special_tokens=False)
        self.vision_start = special_ids(processor)["vision_start"]

    def __call__(self, input_ids, scores):
        for i, row in enumerate(input_ids.tolist()):
            if row.count(self.vision_start) > 1:  # the crop is in: free sampling
                continue
            k = next(k for k in range(len(self.script) - 1, -1, -1) if k == 0 or row[-k:] == self.script[:k])
            scores[i] = float("-inf")
            scores[i, self.script[k]] = 0.0
        return scores


@pytest.fixture(scope="module")
def rl_set(tmp_path_factory, make_record):
    """Two GQA-like prompts with embedded images, written as the RL set."""
    rows = []
    for seed in (1, 2):
        record, image = make_record(1, seed=seed)
        sample = dataclasses.replace(record.sample, source="gqa", id=f"gqa/train/{seed}")
        rows.append(dataclasses.replace(record, sample=sample, crops=(), image_bytes=encode_png(image)))
    out = tmp_path_factory.mktemp("rl")
    write_records(out / "part-00000.parquet", rows)
    return out


def _config(tmp_path, tiny_model_dir, rl_set, **kw):
    from vlir.train.grpo_config import GRPOConfig

    values = dict(model_path=str(tiny_model_dir), data_dir=str(rl_set), output_dir=str(tmp_path / "grpo"),
                  deepspeed=str(REPO / "recipes/deepspeed/zero2.json"), precision="fp32",
                  num_generations=3, prompts_per_step=2, per_device_batch_size=3, rollout={"max_new_tokens": 36},
                  max_steps=2, learning_rate=1e-3, lr_scheduler="constant", seed=0)
    values.update(kw)
    return GRPOConfig(**values)


def _params(model):
    visual = {n: p.detach().clone() for n, p in model.model.visual.named_parameters()}
    policy = {n: p.detach().clone() for n, p in model.model.language_model.named_parameters()}
    return visual, policy


@pytest.mark.deepspeed
def test_two_rgrpo_steps_with_real_crops_then_resume(tmp_path, tiny_model_dir, rl_set, tiny):
    from vlir.train.grpo import METRICS, GRPOTrainer

    trainer = GRPOTrainer(_config(tmp_path, tiny_model_dir, rl_set), logits_processor=ForceCrop(tiny[1]))
    trainer.setup()
    assert trainer.grad_accum == 2  # 2 prompts x 3 samples in micro-batches of 3
    assert not any(p.requires_grad for p in trainer.engine.module.model.visual.parameters())

    # the training forward recomputes exactly the rollout's log-probs at the policy's tokens
    trajs = trainer._rollout(trainer._prompts(0), 0)
    assert len(trajs) == 6 and all(len(t.crops) == 1 for t in trajs)
    logp, batch = trainer._forward(trainer.engine, trajs)
    for i, t in enumerate(trajs):
        mask = torch.tensor(t.action_mask, dtype=torch.bool)
        assert mask.sum() < len(t.token_ids) - t.prompt_length  # the crop block is masked out
        got = logp[i, : len(t.token_ids)][mask]
        assert torch.allclose(got, torch.tensor(t.logprobs)[mask], atol=1e-4)

    visual0, policy0 = _params(trainer.engine.module)
    trainer.train()
    visual1, policy1 = _params(trainer.engine.module)
    assert all(torch.equal(visual0[n], visual1[n]) for n in visual0)  # tower and merger frozen
    assert any(not torch.equal(policy0[n], policy1[n]) for n in policy0)

    rows = [json.loads(line) for line in (trainer.out / METRICS).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["loss"] == r["loss"] and abs(r["loss"]) < 1e3  # finite
        assert r["crops_per_trajectory"] == 1.0 and r["completions/mean_length"] > 0
        assert {"rewards/accuracy/mean", "rewards/format/mean", "rewards/region/mean", "rewards/length/mean",
                "rewards/accuracy/std", "accuracy", "reward_std", "frac_reward_zero_std", "advantages/std",
                "completions/max_length", "completions/clipped_ratio", "crops/bad_box_rate", "crops/hit_rate",
                "grad_norm", "learning_rate", "timing_s/rollout", "timing_s/ref", "timing_s/forward_backward",
                "timing_s/optimizer"} <= set(r)
        assert r["accuracy"] == r["rewards/accuracy/mean"]  # the reward's value, not a recomputation
        assert r["clip_ratio/low_mean"] == r["clip_ratio/high_mean"] == 0.0  # one update per batch: ratio 1
        assert r["entropy"] > 0 and r["timing_s/rollout"] > 0 and r["timing_s/forward_backward"] > 0
        # the engine's sampling log-probs are the trainer's on the same ids (KV cache vs full forward)
        assert r["rollout/logprob_gap"] < 1e-3
    assert any(r["reward_std"] > 0 for r in rows)  # the group saw different rewards

    trainer.save_checkpoint()
    trainer.cleanup()
    out = Path(tmp_path / "grpo")
    assert (out / "config.json").is_file() and (out / "rewards.png").stat().st_size > 0
    assert (out / "checkpoints" / "step-2").is_dir()

    # resume for one more step, now with a KL term to the reference (the initial checkpoint)
    again = GRPOTrainer(_config(tmp_path, tiny_model_dir, rl_set, max_steps=3, resume=True, beta=0.04),
                        logits_processor=ForceCrop(tiny[1]))
    again.setup()
    assert again.step == 2 and again.ref_model is not None
    again.train()
    again.cleanup()
    rows = [json.loads(x) for x in (out / METRICS).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert "kl" not in rows[0] and 0 < rows[2]["kl"] < 10  # the policy has moved from the reference


@pytest.mark.deepspeed
def test_zero3_step_and_save_load_like_a_checkpoint(tmp_path, tiny_model_dir, rl_set, tiny):
    """recipes/deepspeed/zero3.json (the 7B recipe's low-memory option): the rollout gathers the
    partitioned weights, a step trains, and the consolidated save loads with the published keys."""
    from safetensors.torch import load_file

    from vlir.train.grpo import GRPOTrainer
    from vlir.models import load_model

    cfg = _config(tmp_path, tiny_model_dir, rl_set, deepspeed=str(REPO / "recipes/deepspeed/zero3.json"),
                  max_steps=1)
    trainer = GRPOTrainer(cfg, logits_processor=ForceCrop(tiny[1]))
    trainer.setup()
    assert trainer.zero_stage == 3
    trainer.train()
    trainer.save_checkpoint()
    trainer.cleanup()
    out = tmp_path / "grpo"
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert set(before) == set(after)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("model.layers."))
    load_model(out)


def test_config_rejects_bad_batches_and_rewards(tmp_path, tiny_model_dir, rl_set):
    from vlir.train.grpo_config import GRPOConfig

    cfg = _config(tmp_path, tiny_model_dir, rl_set)
    with pytest.raises(ValueError, match="multiple of the world size"):
        cfg.micro_batches(4) if cfg.prompts_per_step % 4 else GRPOConfig(prompts_per_step=3).micro_batches(2)
    with pytest.raises(ValueError, match="micro-batches"):
        dataclasses.replace(cfg, per_device_batch_size=4).micro_batches(1)
    with pytest.raises(ValueError, match="rewards"):
        dataclasses.replace(cfg, rewards=[{"weight": 1}])
    with pytest.raises(ValueError, match="temperature"):
        dataclasses.replace(cfg, rollout={"temperature": 0.0})


@pytest.mark.parametrize("name,world", [("grpo_qwen2_5_vl_7b.yaml", 8), ("grpo_tiny.yaml", 1),
                                            ("grpo_qwen3_vl_tiny.yaml", 1)])
def test_recipes_load_and_their_deepspeed_batches_add_up(name, world):
    from vlir.train.ds_config import load_deepspeed_config
    from vlir.train.grpo_config import GRPOConfig
    from vlir.train.rewards import get_reward

    text = (REPO / "recipes" / name).read_text()
    assert "vlir train grpo" in text or "deepspeed --num_gpus" in text  # the launch command header
    cfg = GRPOConfig.load(REPO / "recipes" / name)
    for spec in cfg.reward_specs():
        get_reward(spec.name)
    accum = cfg.micro_batches(world)
    ds = load_deepspeed_config(REPO / cfg.deepspeed, micro_batch=cfg.per_device_batch_size, grad_accum=accum,
                               world_size=world, lr=cfg.learning_rate, betas=(0.9, 0.999), eps=1e-8,
                               weight_decay=0.0, grad_clip=cfg.max_grad_norm, bf16=world > 1, on_cpu=world == 1)
    assert ds["train_batch_size"] == cfg.prompts_per_step * cfg.num_generations
    if name.startswith("grpo_qwen2_5_vl_7b"):  # the paper's settings
        assert (cfg.num_generations, cfg.beta, cfg.learning_rate, cfg.max_steps, cfg.rollout_config().temperature) == (5, 0.0, 1e-6, 300, 1.0)
        assert cfg.per_device_batch_size == 1 and cfg.prompts_per_step == 16
        assert cfg.freeze_vision_tower and cfg.freeze_merger
        assert [(s.name, s.weight) for s in cfg.reward_specs()] == [  # the released code's own set
            ("vlmr3/accuracy", 1.0), ("vlmr3/format", 1.0), ("vlmr3/repeat", 1.0), ("vlmr3/length", 1.0)]
