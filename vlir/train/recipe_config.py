"""What every trainer config shares on top of :class:`vlir.config.Config` (YAML recipes,
``key=value`` overrides, strict types, ranges and choices declared with ``option()``, ``help()``): the module entry point (``--config`` plus
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
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from vlir.config import Config, ConfigError, option

PRECISIONS = ("auto", "bf16", "fp32")

_f = option  # the trainer configs' short name for a documented field

__all__ = ["PRECISIONS", "ConfigError", "RecipeConfig", "TrainerConfig", "_f"]


class RecipeConfig(Config):
    """Mixin for a ``@dataclass`` trainer config loaded from a recipe. ``kind`` names it in messages."""

    kind: ClassVar[str] = "recipe"
    # fields holding a path to another recipe file: relative to the recipe that names them
    recipe_paths: ClassVar[tuple[str, ...]] = ("deepspeed",)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: Sequence[str] = ()):
        """:meth:`vlir.config.Config.load`, then each of ``recipe_paths`` resolved: a value written in
        the recipe against the recipe file's folder, an override against the working directory,
        else a packaged recipe of that name (:func:`vlir.train.recipe_files.resolve`)."""
        from vlir.train import recipe_files

        cfg = super().load(path, overrides)
        overridden = {o.partition("=")[0] for o in overrides}
        for name in cls.recipe_paths:
            base = Path(path).parent if path is not None and name not in overridden else None
            object.__setattr__(cfg, name, recipe_files.resolve(getattr(cfg, name), base))
        return cfg

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
            from vlir.train.preflight import check_inputs

            check_inputs(cfg)  # before torch, the model or DeepSpeed's op builds
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
    min_pixels: int = _f(0, "Image processor min pixels (0: the checkpoint's).", ge=0)
    max_pixels: int = _f(0, "Image processor max pixels (0: the checkpoint's); the released "
                            "VLM-R3 agent uses its family's default view.", ge=0)
    chat: dict = _f({}, "Overrides for vlir.models.chat.ChatConfig fields (instruction, system, "
                        "crop_budget as {min_pixels: N, max_pixels: N}).")
    # --- AdamW
    weight_decay: float = _f(0.0, "AdamW weight decay.", ge=0)
    adam_beta1: float = _f(0.9, "AdamW beta1.", ge=0, lt=1)
    adam_beta2: float = _f(0.999, "AdamW beta2.", ge=0, lt=1)
    adam_eps: float = _f(1e-8, "AdamW epsilon.", gt=0)
    max_grad_norm: float = _f(1.0, "Gradient clipping norm (0: no clipping).", ge=0)
    seed: int = _f(0, "Seed of a built model's weights, of shuffling and dropout (SFT) and of the "
                      "rollouts' sampling (R-GRPO).")
    # --- engine
    deepspeed: str = _f("deepspeed/zero2.json", "DeepSpeed JSON; its 'auto' values are filled from "
                                               "this config. Relative: to the recipe file (or the "
                                               "working directory for an override), else a packaged "
                                               "recipe (`vlir recipes list`).")
    precision: str = _f("auto", "auto (bf16 on GPU, fp32 on CPU), bf16 or fp32.", choices=PRECISIONS)
    gradient_checkpointing: bool = _f(False, "Recompute activations in backward to save memory.")
    freeze_vision_tower: bool = _f(True, "Freeze the vision encoder (patch embed + blocks).")
    freeze_merger: bool = _f(True, "Freeze the vision-language merger (projector).")
    # --- parameter-efficient training and logging (vlir.train.lora, vlir.train.reporting)
    lora: dict = _f({}, "LoRA via peft on the language model: {r, alpha, dropout, target_modules}; "
                        "empty: full fine-tuning. output_dir gets the merged model, output_dir/adapter "
                        "the adapter alone.")
    report_to: list = _f([], "Also log every metrics row to: tensorboard (output_dir/runs), wandb "
                             "(offline unless WANDB_MODE is set). metrics.jsonl is always written.")
    # --- checkpoints
    save_steps: int = _f(0, "Save a checkpoint every this many optimizer steps (0: only at the end).", ge=0)
    keep_checkpoints: int = _f(2, "DeepSpeed checkpoints kept in output_dir/checkpoints (0: all).", ge=0)
    resume: bool | str = _f("auto", "auto: continue the run in output_dir from its last checkpoint when it "
                                    "is the same run (docs/run-identity.md), else start fresh; true: must "
                                    "resume (settings may change, data and model may not); false: refuse a "
                                    "non-empty output_dir.", choices=("auto", True, False))

    def shared_problems(self) -> list[str]:
        """The cross-field checks of the shared fields (ranges and choices are the fields' own,
        checked by :class:`vlir.config.Config` before ``validate`` runs)."""
        problems = []
        if not self.deepspeed:
            problems.append("deepspeed must name a DeepSpeed JSON (see recipes/deepspeed/)")
        from vlir.train import lora, reporting  # light: peft and the writers load only when used

        return problems + lora.problems(self.lora) + reporting.problems(self.report_to)
