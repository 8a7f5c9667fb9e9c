"""One R-GRPO step with the local engine vs the served (vLLM) engine, on this CPU, tiny model.

Both sides run the real ``GRPOTrainer`` on the zoom task's RL prompts (the zoom sample tree built by
``vlir build``'s engine, ``vlir rl-data`` from its val split) from the vLLM-ready tiny Qwen2.5-VL
(``vlir vllm tiny-model``), ``make train``'s R-GRPO recipe sizes (``recipes/grpo_tiny.yaml``: 8
prompts x 5 samples, 64 sampled tokens): ``local`` rolls out with transformers in the trainer's
process; ``served`` through a vLLM server from ``.venv-vllm`` (dev mode), its weights reloaded from a
folder after every optimizer step. Read from metrics.jsonl, per step: ``rollout``, ``sync`` (served
only), ``forward_backward`` and the whole ``step``; the first step of each run is a warm-up and is
dropped. Median / min / max over ``STEPS - 1`` steps each, printed side by side; the last line, also
written to out/bench/grpo_served.json, is the JSON of it all. On a 2-core CPU with a model of a few
MB, vLLM's per-request overhead is expected to dominate: this measures the plumbing, not the GPU case
(docs/vllm.md has the GPU layout and published figures).

    VLIR_VLLM_PYTHON=.venv-vllm/bin/python .venv/bin/python bench/grpo_served.py
"""

from __future__ import annotations

import dataclasses
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

import _timing as T  # noqa: E402

STEPS = int(os.environ.get("BENCH_STEPS", "5"))
PHASES = ("rollout", "sync", "forward_backward", "step")


def run(kind: str, model: Path, data: Path, work: Path, python: str | None) -> dict[str, list[float]]:
    from vlir.train.grpo import run as run_local
    from vlir.train.grpo_config import GRPOConfig
    from vlir.train.grpo_served import run_served
    from vlir.train.plots import read_metrics

    cfg = GRPOConfig.load(REPO / "recipes/grpo_tiny.yaml", [
        f"model_path={model}", f"data_dir={data}", f"output_dir={work / kind}", f"max_steps={STEPS}",
        f"deepspeed={REPO / 'recipes/deepspeed/zero2.json'}", "plot=false"])
    out = run_served(cfg, python) if kind == "served" else run_local(dataclasses.replace(cfg))
    rows = read_metrics(out / "metrics.jsonl")[1:]  # the first step warms up
    return {p: [float(r.get(f"timing_s/{p}", 0.0)) for r in rows] for p in PHASES}


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    from vlir.corpus.build import BuildConfig, Job
    from vlir.corpus.executors.local import run_build
    from vlir.serving.tiny import build_tiny_vllm_model
    from vlir.sources.samples.zoom import write_zoom_tree
    from vlir.train.rl_data import build_rl_set

    python = os.environ.get("VLIR_VLLM_PYTHON")
    work = Path(tempfile.mkdtemp(prefix="bench-grpo-served-"))
    model = build_tiny_vllm_model(work / "model", seed=0, python=python)
    write_zoom_tree(work / "tree", {"val": 64}, seed=0)
    run_build(BuildConfig(), [Job("zoom", "val", str(work / "tree"))], work / "vlir", show_progress=False)
    build_rl_set(work / "vlir", work / "zoom/rl", {"zoom": 64}, seed=0, split="val")
    load = T.load_average()
    results = {kind: run(kind, model, work / "zoom/rl", work, python) for kind in ("local", "served")}
    stats = {kind: {p: T.spread(v, 3) for p, v in r.items()} for kind, r in results.items()}
    print(f"R-GRPO step on CPU, tiny model, zoom recipe, {STEPS - 1} steps each (load {load}):")
    for p in PHASES:
        print(f"  {p:17s} local {T.fmt(stats['local'][p], ' s')}   served {T.fmt(stats['served'][p], ' s')}")
    record = {"steps": STEPS - 1, "load_average": load, **stats}
    T.write_result("grpo_served", record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
