"""LoRA (peft) and report_to on the tiny model: LoRA SFT lowers the loss with only the adapters
trainable, writes the merged model (loadable like any checkpoint) and the adapter (loadable with
peft onto the base), and TensorBoard / W&B (offline) get the same rows as metrics.jsonl."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))
os.environ.setdefault("DS_ACCELERATOR", "cpu")

torch = pytest.importorskip("torch")
pytest.importorskip("deepspeed")
peft = pytest.importorskip("peft")

from tests.train.test_sft import make_cfg, write_corpus  # noqa: E402
from vlir.train.sft import SFTTrainer  # noqa: E402
from vlir.train.sft_config import SFTConfig  # noqa: E402

pytestmark = [pytest.mark.train, pytest.mark.deepspeed]
LORA = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj", "up_proj", "down_proj"]}


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir, make_record):
    corpus = write_corpus(tmp_path_factory.mktemp("corpus"), make_record, {"synth/train": 12})
    out = tmp_path_factory.mktemp("sft_lora")
    cfg = make_cfg(out, tiny_model_dir, corpus, lora=LORA, report_to=["tensorboard", "wandb"], learning_rate=2e-2,
                   max_steps=10)
    os.environ.pop("WANDB_MODE", None)  # the reporter's default: offline
    trainer = SFTTrainer(cfg)
    trainer.setup()
    trainable = sorted(n for n, p in trainer.engine.module.named_parameters() if p.requires_grad)
    trainer.train()
    trainer.save_checkpoint()
    trainer.cleanup()
    return out, trainable


def test_lora_sft_lowers_the_loss_training_only_adapters(lora_run):
    out, trainable = lora_run
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert all("language_model" in n for n in trainable)  # never the vision tower or merger
    assert {n.rsplit(".lora_", 1)[0].rsplit(".", 1)[1] for n in trainable} == {"q_proj", "v_proj", "up_proj",
                                                                                  "down_proj"}
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 10 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.05, losses


def test_lora_checkpoint_is_merged_and_the_adapter_loads_onto_the_base(lora_run, tiny_model_dir, tiny):
    from peft import PeftModel

    from vlir.models import load_model

    out, _ = lora_run
    merged, processor = load_model(out)  # an ordinary checkpoint: infer, eval and R-GRPO load it
    assert not any("lora" in k for k in merged.state_dict())
    base, _ = load_model(tiny_model_dir)
    adapted = PeftModel.from_pretrained(base, out / "adapter").eval()
    ids = torch.tensor([[5, 17, 42, 99, 3, 8]])
    with torch.no_grad():
        a, b = merged.eval()(input_ids=ids).logits, adapted(input_ids=ids).logits
        plain = tiny[0](input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-4)  # merged == base + adapter
    assert not torch.allclose(a, plain, atol=1e-3)  # and training changed something


def test_tensorboard_and_wandb_get_the_metric_rows(lora_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _ = lora_run
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    events = list((out / "runs").glob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file"
    acc = EventAccumulator(str(out / "runs"))
    acc.Reload()
    loss = [(e.step, e.value) for e in acc.Scalars("loss")]
    assert loss == [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in rows]
    offline = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert offline, "no offline W&B run"


def test_lora_and_report_to_are_checked_with_the_config():
    with pytest.raises(ValueError, match="lora.rank: unknown key"):
        SFTConfig(lora={"rank": 8})
    with pytest.raises(ValueError, match="report_to: unknown 'mlflow'"):
        SFTConfig(report_to=["mlflow"])
    from vlir.train.grpo_config import GRPOConfig

    assert GRPOConfig(lora=LORA, report_to=["tensorboard"]).lora == LORA
