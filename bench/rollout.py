"""Rollout engine cost on the tiny model: tokens forwarded per trajectory token, and wall time
against a plain ``model.generate``.

For trajectories with 0, 2 and 4 crops (crop calls forced by a scripted policy, then free greedy
text up to the same number of sampled tokens), it runs the engine with KV reuse and in re-prefill
mode and prints

* forwarded / trajectory tokens: every token the language model processed, over the final
  trajectory length (target <= 1.1 with KV reuse; re-prefill printed beside it);
* wall time of the KV rollout over a plain ``model.generate`` of the same number of new tokens
  from the same prompt (target <= 1.3x; the rollout also encodes the crops and attends to them).

The last line, also written to out/bench/rollout.json, is one JSON object:
``{"forwarded_per_token_kv": ..., "forwarded_per_token_reprefill": ..., "wall_vs_generate": ...}``
(the 4-crop trajectory, the worst case), plus the per-crop-count figures.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from vlir.rollout import Rollout, RolloutConfig  # noqa: E402
from vlir.testing.scripted import ScriptedLogits  # noqa: E402
from vlir.models import chat  # noqa: E402
from vlir.models import build_tiny_model, load_model  # noqa: E402

NEW_TOKENS = 256
REPEATS = 3
CALLS = ['{"bbox_2d": [20, 30, 140, 120]}\n', ' {"bbox_2d": [200, 150, 300, 260]}\n',
         ' {"bbox_2d": [0, 0, 400, 300]}\n', ' {"bbox_2d": [100, 100, 180, 200]}\n']


def picture() -> Image.Image:
    img = Image.new("RGB", (448, 336), (90, 160, 210))
    draw = ImageDraw.Draw(img)
    for i in range(6):
        draw.rectangle((20 + 70 * i, 40 + 30 * i, 70 + 70 * i, 120 + 30 * i), fill=(40 * i, 200 - 30 * i, 90))
    return img


def timed(fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model, processor = load_model(build_tiny_model(Path(tmp) / "tiny"))
    image, question = picture(), "Which shape is the largest?"
    enc = chat.encode_prompt(question, image, processor)
    gen_inputs = {k: v.unsqueeze(0) if k != "pixel_values" and v.dim() == 1 else v for k, v in enc.items()}

    def generate():
        with torch.inference_mode():
            return model.generate(**gen_inputs, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                  do_sample=False)

    t_generate, out = timed(generate)
    assert out.shape[1] - gen_inputs["input_ids"].shape[1] == NEW_TOKENS
    results = {}
    print(f"{'crops':>5} {'traj tokens':>12} {'fwd/tok kv':>11} {'fwd/tok reprefill':>18} "
          f"{'kv s':>7} {'reprefill s':>12} {'generate s':>11} {'kv/generate':>12}")
    for n_crops in (0, 2, 4):
        row = {}
        for mode in ("kv", "reprefill"):
            engine = Rollout(model, processor, RolloutConfig(
                temperature=0.0, max_new_tokens=NEW_TOKENS, mode=mode,
                logits_processor=ScriptedLogits(processor, ["<think> "] if not n_crops else
                                                ["<think> " + CALLS[0]] + CALLS[1:n_crops])))
            engine.generate([(question, image)])  # warm-up
            engine.stats.update(forwarded_tokens=0, padded_tokens=0, forwards=0)
            seconds, trajs = timed(lambda: engine.generate([(question, image)]))
            [traj] = trajs
            assert len(traj.crops) == n_crops and traj.num_sampled == NEW_TOKENS, (len(traj.crops), traj.finish_reason)
            row[mode] = {"seconds": seconds, "forwarded_per_token":
                         engine.stats["forwarded_tokens"] / REPEATS / len(traj.token_ids),
                         "tokens": len(traj.token_ids)}
        results[n_crops] = {"trajectory_tokens": row["kv"]["tokens"],
                            "forwarded_per_token_kv": round(row["kv"]["forwarded_per_token"], 4),
                            "forwarded_per_token_reprefill": round(row["reprefill"]["forwarded_per_token"], 4),
                            "kv_seconds": round(row["kv"]["seconds"], 4),
                            "reprefill_seconds": round(row["reprefill"]["seconds"], 4),
                            "generate_seconds": round(t_generate, 4),
                            "wall_vs_generate": round(row["kv"]["seconds"] / t_generate, 4)}
        r = results[n_crops]
        print(f"{n_crops:>5} {r['trajectory_tokens']:>12} {r['forwarded_per_token_kv']:>11.3f} "
              f"{r['forwarded_per_token_reprefill']:>18.3f} {r['kv_seconds']:>7.3f} {r['reprefill_seconds']:>12.3f} "
              f"{r['generate_seconds']:>11.3f} {r['wall_vs_generate']:>12.2f}")
    worst = results[4]
    summary = {"forwarded_per_token_kv": worst["forwarded_per_token_kv"],
               "forwarded_per_token_reprefill": worst["forwarded_per_token_reprefill"],
               "wall_vs_generate": worst["wall_vs_generate"], "new_tokens": NEW_TOKENS,
               "by_crops": {str(k): v for k, v in results.items()}}
    out_dir = REPO / "out" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "rollout.json").write_text(json.dumps(summary) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
