"""Rollout engine cost on the tiny model, in R-GRPO's real shape and per trajectory.

1. R-GRPO shape: 4 zoom-task prompts (``vlir.sources.samples.zoom``) x M = 5 samples = 20 rows in one
   batch, temperature 1, two crops per trajectory (crop calls forced by a scripted policy, then free
   text), ``NEW_TOKENS`` sampled tokens per row; against a plain batched ``model.generate`` of the
   same 20 prompts and the same number of new tokens, whose hook forces the same text (target: rollout
   wall <= 1.3 x generate; the rollout also encodes the crops and attends to them). The scripted
   boxes are the same for the 5 samples of a prompt, so the engine's per-call crop memo
   (``Rollout._crop_inputs``) renders one crop in five, as it does in training once a group agrees
   on where to look; with five different boxes per group every crop would be rendered.
2. The share of an R-GRPO step spent in rollout: real ``GRPOTrainer`` steps (make train's recipe sizes:
   8 prompts x 5, the same scripted crops) read from its ``timing_s/rollout`` over
   ``timing_s/step``.
3. One trajectory with 0, 2 and 4 crops: tokens forwarded per trajectory token with KV reuse
   (target <= 1.1) and in re-prefill mode, and KV wall over a plain generate.

Every timing is repeated (see ``bench/_timing.py``): one warm-up, then ``PAIRS`` interleaved rounds;
ratios are medians of pairwise ratios. The last line, also written to out/bench/rollout.json, is
``{"wall_vs_generate_grpo": .., "rollout_share_of_step": .., "forwarded_per_token_kv": ..,
"wall_vs_generate": .., ...}`` with median/min/max for each.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import _timing as T  # noqa: E402
from vlir.models import build_tiny_model, chat, load_model, special_ids  # noqa: E402
from vlir.rollout import Rollout, RolloutConfig  # noqa: E402
from vlir.testing.scripted import ScriptedLogits  # noqa: E402

PAIRS = 5
NEW_TOKENS = 64  # per R-GRPO row (the zoom recipe's max_new_tokens)
PROMPTS, SAMPLES = 4, 5
GRPO_CALLS = ['<think> The square at the top left.\n\n{"bbox_2d": [22, 22, 34, 34]}',
              ' It is red.\n\n{"bbox_2d": [78, 22, 90, 34]}']
SINGLE_TOKENS = 256
# boxes inside the model's view of the 448x336 picture at make train's max_pixels 12544 (112x84):
# larger ones map outside the image and end as bad calls, not crops
CALLS = ['{"bbox_2d": [5, 8, 35, 30]}\n', ' {"bbox_2d": [50, 38, 75, 65]}\n',
         ' {"bbox_2d": [0, 0, 100, 75]}\n', ' {"bbox_2d": [25, 25, 45, 50]}\n']


class NoStop:
    """The scripted crops, and no end-of-turn token: every row samples exactly its budget, so both
    sides produce the same number of tokens (generate's ``min_new_tokens`` does the same)."""

    def __init__(self, processor, segments):
        self.script = ScriptedLogits(processor, segments) if segments else None
        ids = special_ids(processor)
        self.banned = [ids["im_end"], processor.tokenizer.eos_token_id]

    def __call__(self, input_ids, scores):
        scores = self.script(input_ids, scores) if self.script else scores
        scores[:, self.banned] = float("-inf")
        return scores


def generate_fn(model, inputs: dict, new_tokens: int, hook, sample: bool):
    from transformers import LogitsProcessorList

    def run():
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 do_sample=sample, temperature=1.0 if sample else None, top_p=None, top_k=None,
                                 logits_processor=LogitsProcessorList([hook]))
        assert out.shape[1] - inputs["input_ids"].shape[1] == new_tokens
    return run


def grpo_shape(model, processor) -> dict:
    from vlir.sources.samples.zoom import make_question

    cfg = chat.ChatConfig.for_processor(processor, instruction="")
    question = "What color is the square at the top left?"
    images = [make_question(i, "val", 0)[0] for i in range(PROMPTS)]
    encs = [chat.encode_prompt(question, im, processor, cfg) for im in images]
    rows = [e for e in encs for _ in range(SAMPLES)]
    inputs = {"input_ids": torch.stack([e["input_ids"] for e in rows]),
              "attention_mask": torch.ones(len(rows), rows[0]["input_ids"].shape[0], dtype=torch.long),
              "pixel_values": torch.cat([e["pixel_values"] for e in rows]),
              "image_grid_thw": torch.cat([e["image_grid_thw"] for e in rows])}
    hook = NoStop(processor, GRPO_CALLS)
    engine = Rollout(model, processor, RolloutConfig(temperature=1.0, max_new_tokens=NEW_TOKENS, max_crops=4,
                                                     chat=cfg, crop_budget=cfg.crop_budget, seed=0,
                                                     logits_processor=hook))
    trajs = []

    def rollout():
        with torch.inference_mode():
            trajs[:] = engine.generate([(question, im) for im in images], SAMPLES)

    # generate forces the same text (the two calls, a newline where the engine puts the crop), so
    # the scripted hook does as much per-row work on both sides (it is bench scaffolding, not the
    # engine; with GRPO_CALLS alone it would stop forcing generate's rows after the first call)
    same_text = NoStop(processor, ["\n".join(GRPO_CALLS)])
    times = T.interleaved({"rollout": rollout, "generate": generate_fn(model, inputs, NEW_TOKENS, same_text, True)},
                          PAIRS)
    assert len(trajs) == PROMPTS * SAMPLES
    assert all(len(t.crops) == 2 and t.num_sampled == NEW_TOKENS for t in trajs), \
        [(len(t.crops), t.num_sampled, t.finish_reason) for t in trajs]
    return {"rows": len(trajs), "new_tokens_per_row": NEW_TOKENS, "crops_per_row": 2,
            "trajectory_tokens": max(len(t.token_ids) for t in trajs),
            "rollout_s": T.spread(times["rollout"]), "generate_s": T.spread(times["generate"]),
            "wall_vs_generate": T.pairwise_ratio(times["rollout"], times["generate"])}


def step_share(model_dir: Path, work: Path) -> dict:
    """Real R-GRPO steps on the zoom RL set (built as make train builds it); the rollout's share of each step."""
    from vlir.corpus.build import BuildConfig, Job
    from vlir.corpus.executors.local import run_build
    from vlir.sources.samples.zoom import write_zoom_tree
    from vlir.train.grpo import GRPOTrainer
    from vlir.train.grpo_config import GRPOConfig
    from vlir.train.rl_data import build_rl_set

    write_zoom_tree(work / "zoom", {"val": 64}, seed=0)
    run_build(BuildConfig(), [Job("zoom", "val", str(work / "zoom"))], work / "zoom-vlir", show_progress=False)
    build_rl_set(work / "zoom-vlir", work / "zoom-rl", {"zoom": 64}, seed=0, split="val")
    cfg = GRPOConfig.load(REPO / "recipes/grpo_tiny.yaml", [
        f"model_path={model_dir}", f"data_dir={work / 'zoom-rl'}", f"output_dir={work / 'grpo'}",
        f"deepspeed={REPO / 'recipes/deepspeed/zero2.json'}", f"max_steps={PAIRS + 1}", "plot=false"])
    trainer = GRPOTrainer(cfg, logits_processor=NoStop(load_model(model_dir)[1], GRPO_CALLS))
    trainer.setup()
    try:
        trainer.train()
    finally:
        trainer.cleanup()
    rows = [json.loads(line) for line in (work / "grpo/metrics.jsonl").read_text().splitlines()][1:]  # 1: warm-up
    return {"steps": len(rows), "prompts_x_samples": f"{cfg.prompts_per_step}x{cfg.num_generations}",
            "step_s": T.spread([r["timing_s/step"] for r in rows]),
            "rollout_s": T.spread([r["timing_s/rollout"] for r in rows]),
            "forward_backward_s": T.spread([r["timing_s/forward_backward"] for r in rows]),
            "rollout_share": T.spread([r["timing_s/rollout"] / r["timing_s/step"] for r in rows])}


def picture() -> Image.Image:
    img = Image.new("RGB", (448, 336), (90, 160, 210))
    draw = ImageDraw.Draw(img)
    for i in range(6):
        draw.rectangle((20 + 70 * i, 40 + 30 * i, 70 + 70 * i, 120 + 30 * i), fill=(40 * i, 200 - 30 * i, 90))
    return img


def single(model, processor) -> dict:
    image, question = picture(), "Which shape is the largest?"
    enc = chat.encode_prompt(question, image, processor)
    inputs = {k: v.unsqueeze(0) if k != "pixel_values" and v.dim() == 1 else v for k, v in enc.items()}
    out = {}
    for n_crops in (0, 2, 4):
        segments = ["<think> " + CALLS[0]] + CALLS[1:n_crops] if n_crops else ["<think> "]
        engines = {mode: Rollout(model, processor, RolloutConfig(temperature=0.0, max_new_tokens=SINGLE_TOKENS,
                                                                 mode=mode, logits_processor=NoStop(processor, segments)))
                   for mode in ("kv", "reprefill")}
        trajs = {}

        def side(mode):
            def run():
                with torch.inference_mode():
                    [trajs[mode]] = engines[mode].generate([(question, image)])
            return run

        times = T.interleaved({"kv": side("kv"), "reprefill": side("reprefill"),
                               "generate": generate_fn(model, inputs, SINGLE_TOKENS, NoStop(processor, segments[:1]),
                                                       False)}, PAIRS)
        fwd = {}
        for mode, engine in engines.items():
            traj = trajs[mode]
            assert len(traj.crops) == n_crops and traj.num_sampled == SINGLE_TOKENS, (len(traj.crops), traj.finish_reason)
            engine.stats.update(forwarded_tokens=0, padded_tokens=0, forwards=0)
            side(mode)()  # count one run's forwarded tokens (deterministic: greedy)
            fwd[mode] = round(engine.stats["forwarded_tokens"] / len(traj.token_ids), 4)
        out[str(n_crops)] = {"trajectory_tokens": len(trajs["kv"].token_ids),
                             "forwarded_per_token_kv": fwd["kv"], "forwarded_per_token_reprefill": fwd["reprefill"],
                             "kv_s": T.spread(times["kv"]), "reprefill_s": T.spread(times["reprefill"]),
                             "generate_s": T.spread(times["generate"]),
                             "wall_vs_generate": T.pairwise_ratio(times["kv"], times["generate"])}
    return out


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    T.header("rollout", PAIRS)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny")
        model, processor = load_model(model_dir, max_pixels=12544)  # make train's view (recipes/grpo_tiny.yaml)
        g = grpo_shape(model, processor)
        print(f"R-GRPO shape, {PROMPTS} prompts x {SAMPLES} samples, {g['crops_per_row']} crops and "
              f"{NEW_TOKENS} sampled tokens per row: rollout {T.fmt(g['rollout_s'], ' s')}, batched generate "
              f"{T.fmt(g['generate_s'], ' s')}; rollout/generate {T.fmt(g['wall_vs_generate'])} (target <= 1.3)")
        s = step_share(model_dir, Path(tmp))
        print(f"R-GRPO step ({s['prompts_x_samples']}, {s['steps']} steps after a warm-up): step "
              f"{T.fmt(s['step_s'], ' s')}, rollout {T.fmt(s['rollout_s'], ' s')}, forward-backward "
              f"{T.fmt(s['forward_backward_s'], ' s')}; rollout share {T.fmt(s['rollout_share'])}")
        by_crops = single(model, processor)
    print(f"one trajectory of {SINGLE_TOKENS} sampled tokens (greedy):")
    for n, r in by_crops.items():
        print(f"  {n} crops: {r['trajectory_tokens']} tokens, forwarded/token kv {r['forwarded_per_token_kv']:.3f} "
              f"(reprefill {r['forwarded_per_token_reprefill']:.3f}); kv/generate {T.fmt(r['wall_vs_generate'])}")
    worst = by_crops["4"]
    T.write_result("rollout", {
        "wall_vs_generate_grpo": g["wall_vs_generate"], "rollout_share_of_step": s["rollout_share"],
        "forwarded_per_token_kv": worst["forwarded_per_token_kv"],
        "forwarded_per_token_reprefill": worst["forwarded_per_token_reprefill"],
        "wall_vs_generate": worst["wall_vs_generate"], "pairs": PAIRS,
        "grpo_shape": g, "grpo_step": s, "by_crops": by_crops})


if __name__ == "__main__":
    main()
