"""The same trainers on the tiny Qwen3-VL: SFT steps from a corpus, then an R-GRPO step with real
crops from its output (the stages of ``make train-qwen3_vl``, shortened). The GRPO forward must
recompute the rollout's log-probs exactly: deepstack and Qwen3-VL's rope in a plain forward of the
trajectory agree with the engine's cached decoding."""

from __future__ import annotations

import dataclasses
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("deepspeed")

from vlir.crops import encode_png  # noqa: E402
from vlir.corpus.shards import write_records  # noqa: E402

from tests.rollout_helpers import tiny_dir  # noqa: E402
from tests.train.test_grpo import ForceCrop  # noqa: E402
from tests.train.test_sft import REPO, write_corpus  # noqa: E402  (its import sets DeepSpeed's CPU env)

pytestmark = pytest.mark.train
DEEPSPEED = str(REPO / "recipes/deepspeed/zero2.json")


@pytest.mark.deepspeed
def test_sft_then_rgrpo_on_qwen3(tmp_path, make_record):
    from vlir.models import load_model
    from vlir.train.grpo import GRPOTrainer
    from vlir.train.grpo_config import GRPOConfig
    from vlir.train.sft import SFTTrainer
    from vlir.train.sft_config import SFTConfig

    corpus = write_corpus(tmp_path / "corpus", make_record, {"synth/train": 4})
    sft = SFTTrainer(SFTConfig(model_path=str(tiny_dir("qwen3_vl_tiny")), data_dir=str(corpus),
                               output_dir=str(tmp_path / "sft"), deepspeed=DEEPSPEED, max_steps=2,
                               per_device_batch_size=2, gradient_accumulation_steps=1, learning_rate=3e-3,
                               warmup_steps=0, seed=0, keep_checkpoints=1))
    sft.setup()
    trainable = {n for n, p in sft.engine.module.named_parameters() if p.requires_grad}
    sft.train()
    sft.save_checkpoint()
    sft.cleanup()
    assert trainable and not any(".visual." in n or n.startswith("visual.") for n in trainable)
    model, processor = load_model(tmp_path / "sft")
    assert model.config.model_type == "qwen3_vl"

    rows = []
    for seed in (1, 2):
        record, image = make_record(1, seed=seed)
        sample = dataclasses.replace(record.sample, source="gqa", id=f"gqa/train/{seed}")
        rows.append(dataclasses.replace(record, sample=sample, crops=(), image_bytes=encode_png(image)))
    write_records(tmp_path / "rl" / "part-00000.parquet", rows)
    cfg = GRPOConfig(model_path=str(tmp_path / "sft"), data_dir=str(tmp_path / "rl"),
                     output_dir=str(tmp_path / "grpo"), deepspeed=DEEPSPEED, precision="fp32",
                     num_generations=2, prompts_per_step=2, per_device_batch_size=2, rollout={"max_new_tokens": 24},
                     max_steps=1, learning_rate=1e-3, lr_scheduler="constant", seed=0)
    grpo = GRPOTrainer(cfg, logits_processor=ForceCrop(processor))
    grpo.setup()
    trajs = grpo._rollout(grpo._prompts(0), 0)
    assert len(trajs) == 4 and all(len(t.crops) == 1 for t in trajs)
    logp, _ = grpo._forward(grpo.engine, trajs)
    for i, t in enumerate(trajs):
        mask = torch.tensor(t.action_mask, dtype=torch.bool)
        assert torch.allclose(logp[i, : len(t.token_ids)][mask], torch.tensor(t.logprobs)[mask], atol=1e-4)
    grpo.train()
    grpo.save_checkpoint()
    grpo.cleanup()
    metrics = [json.loads(line) for line in (tmp_path / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1] and metrics[0]["crops_per_trajectory"] == 1.0
    assert load_model(tmp_path / "grpo")[0].config.model_type == "qwen3_vl"
