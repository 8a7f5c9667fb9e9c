"""What every trainer config shares on top of :class:`vlir.config.Config` (YAML recipes,
``key=value`` overrides, strict types, ``help()``): the module entry point (``--config`` plus
overrides, as ``python -m`` and ``deepspeed --module`` call it), and :class:`TrainerConfig`, the
fields and checks of what both trainers run on (image budget, chat, AdamW, DeepSpeed engine,
freezing, checkpoints). ``SFTConfig`` and ``GRPOConfig`` subclass :class:`TrainerConfig` and add
only their own fields and checks, so a shared setting is declared and checked once. No torch here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

from vlir.config import Config, ConfigError, option

PRECISIONS = ("auto", "bf16", "fp32")

_f = option  # the trainer configs' short name for a documented field

__all__ = ["PRECISIONS", "ConfigError", "RecipeConfig", "TrainerConfig", "_f"]


class RecipeConfig(Config):
    """Mixin for a ``@dataclass`` trainer config loaded from a recipe. ``kind`` names it in messages."""

    kind: ClassVar[str] = "recipe"

    @classmethod
    def main(cls, run: Callable[[Any], Any], prog: str, doc: str | None,
             argv: Sequence[str] | None = None) -> int:
        """A trainer module's ``main``: ``--config`` + ``key=value`` overrides (the form both
        ``python -m`` and ``deepspeed --module`` call), then ``run(config)``. A bad recipe is one
        line on stderr and exit code 2."""
        parser = argparse.ArgumentParser(prog=prog, description=doc,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--config", help="recipe YAML (see recipes/)")
        parser.add_argument("--local_rank", "--local-rank", type=int, default=None,
                            help="set by the deepspeed launcher")
        parser.add_argument("overrides", nargs="*", help="key=value overrides of the recipe")
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            cfg = cls.load(args.config, args.overrides)
        except (OSError, ValueError) as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 2
        from vlir.train.common import RunRefused

        try:
            run(cfg)
        except RunRefused as exc:  # output_dir holds another run, nothing to resume, no data
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 2
        return 0


@dataclass
class TrainerConfig(RecipeConfig):
    """The settings SFT and R-GRPO share, with one default, one help text and one check each.

    A subclass's fields follow these in ``help()``; it calls :meth:`shared_problems` from its
    ``validate``."""

    # --- images and chat
    min_pixels: int = _f(0, "Image processor min pixels (0: the checkpoint's).")
    max_pixels: int = _f(0, "Image processor max pixels (0: the checkpoint's); the released "
                            "VLM-R3 agent uses 2048*28*28 = 1605632.")
    chat: dict = _f({}, "Overrides for vlir.models.chat.ChatConfig fields (instruction, system, a "
                        "*_budget as [min_pixels, max_pixels]).")
    # --- AdamW
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    adam_beta1: float = _f(0.9, "AdamW beta1.")
    adam_beta2: float = _f(0.999, "AdamW beta2.")
    adam_eps: float = _f(1e-8, "AdamW epsilon.")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm (0: no clipping).")
    seed: int = _f(0, "Seed of a built model's weights, of shuffling and dropout (SFT) and of the "
                      "rollouts' sampling (R-GRPO).")
    # --- engine
    deepspeed: str = _f("recipes/deepspeed/zero2.json", "DeepSpeed JSON; its 'auto' values are "
                                                       "filled from this config.")
    precision: str = _f("auto", "auto (bf16 on GPU, fp32 on CPU), bf16 or fp32.")
    gradient_checkpointing: bool = _f(False, "Recompute activations in backward to save memory.")
    freeze_vision_tower: bool = _f(True, "Freeze the vision encoder (patch embed + blocks).")
    freeze_merger: bool = _f(True, "Freeze the vision-language merger (projector).")
    # --- checkpoints
    save_steps: int = _f(0, "Save a checkpoint every this many optimizer steps (0: only at the end).")
    keep_checkpoints: int = _f(2, "DeepSpeed checkpoints kept in output_dir/checkpoints (0: all).")
    resume: bool | str = _f("auto", "auto: continue the run in output_dir from its last checkpoint when it "
                                    "is the same run (docs/run-identity.md), else start fresh; true: must "
                                    "resume (settings may change, data and model may not); false: refuse a "
                                    "non-empty output_dir.", choices=("auto", True, False))

    def shared_problems(self) -> list[str]:
        """The checks of the shared fields, in the words ``validate`` uses."""
        problems = []
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("min_pixels", "max_pixels", "save_steps", "keep_checkpoints"):
            if int(getattr(self, name)) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_grad_norm < 0:
            problems.append(f"max_grad_norm must be >= 0, got {self.max_grad_norm}")
        if not isinstance(self.chat, dict):
            problems.append(f"chat must be a mapping of ChatConfig fields, got {self.chat!r}")
        if not self.deepspeed:
            problems.append("deepspeed must name a DeepSpeed JSON (see recipes/deepspeed/)")
        return problems
