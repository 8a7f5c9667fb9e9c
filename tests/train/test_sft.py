"""The SFT trainer on the real DeepSpeed engine (CPU, world size 1, torch_adam): loss goes down,
frozen vision tower and merger, cosine schedule, metrics and plot, save_pretrained output, exact
resume, ZeRO-3 with the dummy vision forward guard and gradient checkpointing; config and CLI."""

from __future__ import annotations

import dataclasses
import io
import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# DeepSpeed JIT-builds its CPU shm comm op once (~40-90 s); the Makefile's cache dir keeps it.
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))
os.environ.setdefault("DS_ACCELERATOR", "cpu")

torch = pytest.importorskip("torch")
pytest.importorskip("deepspeed")
from safetensors.torch import load_file  # noqa: E402

from vlir.corpus.shards import write_records  # noqa: E402
from vlir.train.sft import SFTTrainer  # noqa: E402
from vlir.train.sft_config import SFTConfig  # noqa: E402

pytestmark = pytest.mark.train
STEPS = 8


def write_corpus(root: Path, make_record, splits: dict[str, int], size=(112, 84)) -> Path:
    """A minimal built corpus: one shard per split (images embedded) and the manifest keys
    ``vlir.corpus.shards.Corpus`` reads."""
    manifest = {"splits": {}, "roots": {}}
    for name, n in splits.items():
        source, split = name.split("/")
        records = []
        for i in range(n):
            record, image = make_record((0, 1, 2, 4)[i % 4], seed=i + 100 * len(manifest["splits"]), size=size)
            buf = io.BytesIO()
            image.save(buf, "PNG")
            records.append(dataclasses.replace(record, image_bytes=buf.getvalue(), sample=dataclasses.replace(
                record.sample, id=f"{name}/{i}", source=source, split=split)))
        write_records(root / source / split / "part-00000.parquet", records)
        manifest["splits"][name] = {"source": source, "split": split}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, make_record) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"), make_record, {"synth/train": 12, "synth/val": 3})


def make_cfg(out: Path, model_dir: Path, corpus: Path, **kw) -> SFTConfig:
    values = dict(model_path=str(model_dir), data_dir=str(corpus), output_dir=str(out), splits=["*/train"],
                  deepspeed=str(REPO / "recipes/deepspeed/zero2.json"), max_steps=STEPS,
                  per_device_batch_size=2, gradient_accumulation_steps=2, learning_rate=3e-3,
                  warmup_steps=1, min_lr_ratio=0.1, length_group_size=2, seed=0, keep_checkpoints=1)
    values.update(kw)
    return SFTConfig(**values)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, tiny_model_dir, corpus):
    """One uninterrupted ZeRO-2 run of STEPS steps; the reference for the resume test."""
    out = tmp_path_factory.mktemp("sft_full")
    trainer = SFTTrainer(make_cfg(out, tiny_model_dir, corpus))
    trainer.setup()
    grads = {n: p.requires_grad for n, p in trainer.engine.module.named_parameters()}
    trainer.train()
    trainer.save_checkpoint()
    trainer.cleanup()
    return out, grads


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.deepspeed
def test_loss_goes_down_with_cosine_schedule_and_metrics(full_run):
    out, _ = full_run
    rows = _metrics(out)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    for r in rows:
        assert {"step", "loss", "lr", "tokens_per_s", "padding_fraction", "epoch"} <= set(r)
        assert r["tokens_per_s"] > 0 and 0 <= r["padding_fraction"] < 1
    lrs = [r["lr"] for r in rows]
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(3e-3)  # one warmup step, then the peak
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))  # cosine decay
    assert lrs[-1] >= 3e-4 * 0.999  # floor: min_lr_ratio 0.1
    losses = [r["loss"] for r in rows]
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2 - 0.1
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.deepspeed
def test_vision_tower_and_merger_frozen(full_run, tiny_model_dir):
    out, grads = full_run
    assert not any(g for n, g in grads.items() if n.startswith("model.visual."))
    assert any(g for n, g in grads.items() if n.startswith("model.language_model."))
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    # checkpoints keep Qwen2.5-VL's published key layout: visual.*, model.layers.*, model.embed_tokens
    visual = [k for k in before if k.startswith("visual.")]
    assert any(k.startswith("visual.merger.") for k in visual)
    for k in visual:
        assert torch.equal(before[k], after[k]), k
    changed = [k for k in before if k.startswith("model.") and not torch.equal(before[k], after[k])]
    assert len(changed) > 5


@pytest.mark.deepspeed
def test_output_loads_as_a_checkpoint(full_run):
    from vlir.models import load_model

    out, _ = full_run
    model, processor = load_model(out)
    assert model.config.text_config.use_cache is True
    assert (out / "checkpoints" / "latest").read_text().strip() == f"step-{STEPS}"
    assert [p.name for p in (out / "checkpoints").glob("step-*")] == [f"step-{STEPS}"]
    assert SFTConfig.load(out / "sft_config.yaml").max_steps == STEPS
    ids = processor.tokenizer("<think> the", return_tensors="pt")
    assert model(**ids).logits.shape[-1] == model.config.text_config.vocab_size


@pytest.mark.deepspeed
def test_resume_continues_exactly(full_run, tmp_path, tiny_model_dir, corpus):
    ref, _ = full_run
    first = SFTTrainer(make_cfg(tmp_path, tiny_model_dir, corpus))
    first.setup()
    first.train(until_step=STEPS // 2)
    first.save_checkpoint()
    first.cleanup()
    with open(tmp_path / "metrics.jsonl", "a") as fh:  # a step logged after the checkpoint, then a crash
        fh.write(json.dumps({"step": STEPS // 2 + 1, "loss": 99.0}) + "\n")

    second = SFTTrainer(make_cfg(tmp_path, tiny_model_dir, corpus, resume=True))
    second.setup()
    assert (second.step, second.micro_step) == (STEPS // 2, STEPS)
    assert second.engine.global_steps == STEPS // 2
    second.train()
    second.save_checkpoint()
    second.cleanup()
    rows, ref_rows = _metrics(tmp_path), _metrics(ref)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    for got, want in zip(rows, ref_rows):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-4)
        assert got["lr"] == pytest.approx(want["lr"], rel=1e-6)
    a, b = load_file(tmp_path / "model.safetensors"), load_file(ref / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


@pytest.mark.deepspeed
def test_zero3_vision_guard_and_gradient_checkpointing(tmp_path, tiny_model_dir, corpus):
    cfg = make_cfg(tmp_path, tiny_model_dir, corpus, deepspeed=str(REPO / "recipes/deepspeed/zero3.json"),
                   max_steps=2, gradient_checkpointing=True)
    trainer = SFTTrainer(cfg)
    trainer.setup()
    assert trainer.zero_stage == 3 and trainer.engine.module.is_activation_checkpointing
    calls = []
    trainer.engine.module.model.visual.register_forward_hook(lambda *a: calls.append(1))
    ids = trainer.processor.tokenizer("<think> a text-only sample </think>", return_tensors="pt")["input_ids"]
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone(),
             "mm_token_type_ids": torch.zeros_like(ids)}
    plain = trainer.engine(**batch).loss
    assert calls == []
    guarded = trainer._loss(batch)
    assert calls == [1]  # the tower ran, so ZeRO-3 gathered its parameters on this rank too
    assert guarded.item() == plain.item()
    trainer.engine.backward(guarded)  # the zero-weighted branch backpropagates cleanly
    trainer.engine.step()
    trainer.cfg = dataclasses.replace(cfg, vision_guard=False)
    trainer._loss(batch)
    assert calls == [1]
    trainer.train()  # real batches (with images) through ZeRO-3 + checkpointing
    trainer.save_checkpoint()  # consolidates the partitioned weights for save_pretrained
    trainer.cleanup()
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert set(before) == set(after)
    for k in before:
        assert before[k].shape == after[k].shape
        if k.startswith("visual."):
            assert torch.equal(before[k], after[k]), k
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("model.layers."))
    assert len(_metrics(tmp_path)) == 2
    from vlir.models import load_model

    load_model(tmp_path)  # the consolidated ZeRO-3 weights load like any checkpoint


# ---------------------------------------------------------------------- config and CLI (no engine)
def test_config_load_overrides_and_validation(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 2e-7\nmax_steps: 3\nchat: {think_open: '<think>'}\n")
    cfg = SFTConfig.load(recipe, ["max_steps=5", "splits=[gqa/train]", "chat.answer_open=<a>", "resume=true"])
    assert cfg.learning_rate == 2e-7 and isinstance(cfg.learning_rate, float)
    assert cfg.max_steps == 5 and cfg.splits == ["gqa/train"] and cfg.resume is True
    assert cfg.chat == {"think_open": "<think>", "answer_open": "<a>"}
    with pytest.raises(ValueError, match="unknown SFT config key learning_rat"):
        SFTConfig.load(None, ["learning_rat=1"])
    with pytest.raises(ValueError, match="precision must be one of"):
        SFTConfig(precision="fp8")
    with pytest.raises(ValueError, match="everything is frozen"):
        SFTConfig(freeze_language_model=True)
    with pytest.raises(ValueError, match="resume must be one of"):
        SFTConfig.load(None, ["resume=maybe"])
    with pytest.raises(ValueError, match="not key=value"):
        SFTConfig.load(None, ["resume"])
    assert all(f"{f.name} = " in SFTConfig.help() for f in dataclasses.fields(SFTConfig))
    assert all(f.metadata.get("help") for f in dataclasses.fields(SFTConfig))


def test_deepspeed_fill():
    from vlir.train.ds_config import fill_deepspeed_config, load_deepspeed_config

    kw = dict(micro_batch=2, grad_accum=8, world_size=4, lr=2e-7, betas=(0.9, 0.999), eps=1e-8,
              weight_decay=0.0, grad_clip=1.0, bf16=True, on_cpu=False)
    cfg = load_deepspeed_config(REPO / "recipes/deepspeed/zero2.json", **kw)
    assert cfg["train_batch_size"] == 64 and cfg["bf16"]["enabled"] is True
    assert cfg["optimizer"]["params"]["lr"] == 2e-7 and "torch_adam" not in cfg["optimizer"]["params"]
    cpu = load_deepspeed_config(REPO / "recipes/deepspeed/zero2.json", **dict(kw, bf16=False, on_cpu=True))
    assert cpu["optimizer"]["params"]["torch_adam"] is True
    with pytest.raises(ValueError, match="does not fill.*scheduler.params.warmup"):
        fill_deepspeed_config({"scheduler": {"params": {"warmup": "auto"}}}, **kw)
    with pytest.raises(ValueError, match="bf16.enabled=False"):
        fill_deepspeed_config({"bf16": {"enabled": False}}, **kw)


def test_cli_show_config_and_bad_input(capsys, tmp_path):
    from vlir.cli import main
    from vlir.train.sft import main as module_main

    assert main(["train", "sft", "--show-config"]) == 0
    assert "learning_rate = 2e-07" in capsys.readouterr().out
    assert main(["train", "sft", "--config", str(tmp_path / "none.yaml")]) == 2
    assert main(["train", "sft", "max_step=3"]) == 2
    assert "unknown SFT config key max_step" in capsys.readouterr().err
    assert main(["train", "sft", "oops"]) == 2
    assert module_main(["--config", str(tmp_path / "none.yaml")]) == 2
