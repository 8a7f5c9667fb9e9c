"""R-GRPO through a vLLM server this process starts (``make train-served``): the checkpoint at
``model_path`` is served from the vLLM environment (dev mode, for the weight-sync endpoints), the
recipe's ``rollout`` section is pointed at it (``engine: served``), and the trainer of
:mod:`vlir.train.grpo` runs unchanged: the same rewards, advantages, loss and masks, its old
log-probs recomputed by its own model on the server's token ids, the weights synced into the server
after each optimizer step (:mod:`vlir.train.weight_sync`). The server stops with the run.

    python -m vlir.train.grpo_served --config recipes/grpo_tiny.yaml model_path=out/train/sft_served ...

The checkpoint must be one vLLM loads: the tiny model of ``vlir vllm tiny-model`` (or its SFT
output: the video processor vLLM wants is added here) or a real Qwen2.5-VL.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Sequence

from vlir.train.grpo_config import GRPOConfig


def run_served(cfg: GRPOConfig, python: str | Path | None = None) -> Path:
    """Serve ``cfg.model_path``, run R-GRPO through it, stop the server; returns the output folder."""
    from vlir.serving.tiny import add_video_processor
    from vlir.serving.vllm_env import VLLMServer
    from vlir.train import common, grpo

    model = Path(cfg.model_path)
    out = Path(cfg.output_dir)
    if not (model / "video_preprocessor_config.json").is_file():
        add_video_processor(model, python)  # a trainer's save has none; vLLM refuses a folder without one
    # the output folder is this run's (refused, resumed or fresh: the trainer's own rule, on the
    # model folder as served) before the server's log goes into it; where the server listens (not
    # known yet) is not part of the run's identity (vlir.train.common.NOT_IDENTITY): any URL stands in
    common.claim_output(dataclasses.replace(cfg, rollout={**cfg.rollout, "engine": "served",
                                                          "base_url": ["http://127.0.0.1/v1"]}), rank=0)
    with VLLMServer(model, python=python, dev_mode=True, log_path=out / "vllm_server.log") as server:
        logging.getLogger(__name__).info("vLLM serving %s at %s", model, server.base_url)
        rollout = {**cfg.rollout, "engine": "served", "base_url": [server.base_url],
                   "served_model": server.served_name}
        return grpo.run(dataclasses.replace(cfg, rollout=rollout))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vlir.train.grpo_served", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="R-GRPO recipe YAML (see recipes/)")
    parser.add_argument("--vllm-python", default=None, help="the vLLM environment's python (default: "
                        "$VLIR_VLLM_PYTHON or .venv-vllm/bin/python)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the recipe")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("httpx", "httpx2"):  # a line per rollout request otherwise
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        cfg = GRPOConfig.load(args.config, args.overrides)
    except (OSError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    from vlir.train.common import RunRefused

    try:
        run_served(cfg, args.vllm_python)
    except RunRefused as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
