"""SFT step bench: vlir's DeepSpeed training step against a bare PyTorch step, and padding with and
without length grouping.

    python bench/sft_step.py [--data out/vlir] [--rounds 25] [--steps 1]

On the tiny model (built into out/models/tiny if absent) and a real batch from the sample shards
(`make vlir`), it times ``SFTTrainer.micro_step_on`` (forward through the DeepSpeed engine, engine
backward, engine step: ZeRO-2 from recipes/sft_tiny.yaml, gradient accumulation 1) against
``model(**batch).loss.backward(); AdamW.step(); zero_grad()`` on a second copy of the same model
with the same frozen parameters, on the same batch. Rounds alternate between the two so load from
other processes hits both alike (bench/_timing.py: one warm-up round, then ``--rounds`` >= 5
interleaved rounds of ``--steps`` steps; a round's figure is its mean step time); the ratio checked
is the median of the per-round ratios, printed with its min-max (target <= 1.1). Padding is the share
of padded tokens over 20 epochs of micro-batches with the recipe's batch size (target <= 10 %
grouped). The last line, also written to out/bench/sft_step.json, is
``{"step_overhead": ..., "padding_grouped": ..., "padding_random": ...}``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import _timing as T  # noqa: E402

os.environ.setdefault("OMP_NUM_THREADS", "1")  # both sides alike; on a shared CPU threads only contend
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))


def _per_step(fn, steps: int):
    def run():
        for _ in range(steps):
            fn()
    return lambda: T.wall(run) / steps


def padding(lengths: list[int], batch_size: int, group_size: int, grouped: bool, epochs: int = 20) -> float:
    from vlir.train.sampler import LengthGroupedBatchSampler, padding_fraction

    sampler = LengthGroupedBatchSampler(lengths, batch_size, group_size=group_size, group_by_length=grouped)
    batches = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        batches += list(sampler)
    return padding_fraction(lengths, batches)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(T.OUT / "vlir"), help="built sample corpus (make vlir)")
    parser.add_argument("--recipe", default="recipes/sft_tiny.yaml")
    parser.add_argument("--rounds", type=int, default=25, help="interleaved rounds (>= 5); many short ones pair best under load")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per round and side")
    parser.add_argument("--out", default=str(T.OUT / "bench/sft_step.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.chdir(REPO)
    if not (Path(args.data) / "manifest.json").is_file():
        print(f"sft_step: no corpus at {args.data}; run `make vlir` first", file=sys.stderr)
        return 2

    import torch

    from vlir.models import load_model
    from vlir.train.sft import SFTTrainer
    from vlir.train.sft_config import SFTConfig

    torch.manual_seed(0)
    cfg = SFTConfig.load(args.recipe, [f"data_dir={args.data}", f"output_dir={T.OUT / 'bench/sft_step_run'}",
                                       f"model_path={T.OUT / 'models/tiny'}",
                                       "gradient_accumulation_steps=1", "resume=false", "plot=false"])
    trainer = SFTTrainer(cfg)
    trainer.setup()
    batch = trainer._to_device(next(iter(trainer.loader)))

    bare, _ = load_model(cfg.model_path)
    bare.train()
    for name, p in bare.named_parameters():
        p.requires_grad_(name.startswith("model.language_model.") or name.startswith("lm_head."))
    assert {n for n, p in bare.named_parameters() if p.requires_grad} == \
        {n for n, p in trainer.engine.module.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW([p for p in bare.parameters() if p.requires_grad], lr=cfg.learning_rate)

    def bare_step():
        loss = bare(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def vlir_step():
        trainer.micro_step_on(batch)

    T.header("sft_step", args.rounds)
    times = T.interleaved({"vlir": _per_step(vlir_step, args.steps), "bare": _per_step(bare_step, args.steps)},
                          args.rounds, measure=lambda _name, fn: fn())
    trainer.cleanup()

    tokens = int(batch["attention_mask"].sum())
    v, b = T.spread(times["vlir"]), T.spread(times["bare"])
    overhead = T.pairwise_ratio(times["vlir"], times["bare"])
    lengths, bs, gs = trainer.dataset.lengths, cfg.per_device_batch_size, cfg.length_group_size
    result = {
        "step_overhead": overhead["median"], "step_overhead_spread": overhead, "rounds": args.rounds,
        "steps_per_round": args.steps, "vlir_step_s": v, "bare_step_s": b,
        "padding_grouped": round(padding(lengths, bs, gs, grouped=True), 4),
        "padding_random": round(padding(lengths, bs, gs, grouped=False), 4),
    }
    print(f"batch: {batch['input_ids'].shape[0]} samples, {tokens} tokens, "
          f"{int(batch['image_grid_thw'].shape[0])} images; {len(lengths)} samples in {args.data}")
    print(f"step time per round ({args.rounds} rounds of {args.steps} steps): vlir DeepSpeed "
          f"{T.fmt(v, ' ms', 1000, 1)}, bare PyTorch {T.fmt(b, ' ms', 1000, 1)}")
    print(f"vlir/bare (median of per-round ratios): {T.fmt(overhead)} (target <= 1.1)")
    print(f"padding with batch {bs}: grouped {100 * result['padding_grouped']:.1f} %, "
          f"random {100 * result['padding_random']:.1f} %")
    T.write_result(Path(args.out).stem, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
