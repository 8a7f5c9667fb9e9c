"""The SFT configuration: one dataclass, loadable from a YAML recipe, overridable with ``key=value``.

Every field has a default and a ``help`` string (``SFTConfig.help()`` prints them), and
``__post_init__`` rejects bad combinations with a message that says what to change, so a typo in a
recipe fails before a cluster job spends minutes loading a 7B model. This module imports no torch:
``vlir train sft --help`` and the recipe tests stay light.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlir.train.recipe_config import TrainerConfig, _f

@dataclass
class SFTConfig(TrainerConfig):
    """Supervised fine-tuning of Qwen2.5-VL or Qwen3-VL on VLIR shards (stage one of VLM-R3).

    Model and data:
        model_path: local checkpoint (``save_pretrained`` layout) to fine-tune.
        build_model: ``tiny`` or a model YAML, used to build a tiny model at ``model_path`` when it is absent.
        min_pixels / max_pixels: the image processor's budget (the bbox numbers' space).
        data_dir: a built VLIR corpus (``make vlir``); splits: which ``source/split`` to train on.
        chat: overrides for ``vlir.models.chat.ChatConfig`` (pixel budgets, instruction, ...).
        max_length: drop samples whose estimated token count exceeds it (0: keep all).
    Optimisation:
        epochs / max_steps, per_device_batch_size, gradient_accumulation_steps, learning_rate,
        weight_decay, adam_*, max_grad_norm, warmup_ratio / warmup_steps, min_lr_ratio (cosine).
    Engine:
        deepspeed (JSON path), precision, gradient_checkpointing, freeze_*, vision_guard.
        (min/max_pixels, chat, AdamW, seed, engine and checkpoint settings are
        :class:`~vlir.train.recipe_config.TrainerConfig`'s, shared with R-GRPO.)
    Output:
        output_dir, save_steps, keep_checkpoints, resume, plot.
    """

    kind = "SFT"  # names the config in error messages

    # --- model and data
    model_path: str = _f("out/models/tiny", "Local Qwen2.5-VL or Qwen3-VL checkpoint to fine-tune.")
    build_model: str = _f("", "Model to build at model_path first if it does not exist: 'tiny' (the packaged "
                              "vlir/models/qwen2_5_vl/tiny.yaml) or a model YAML path. "
                              "Empty: model_path must exist.")
    data_dir: str = _f("out/vlir", "A built VLIR corpus folder (with manifest.json).")
    splits: list[str] = _f([], "'source/split' names or patterns ('*/train') to train on; empty: every "
                          "split in the corpus.")
    max_length: int = _f(0, "Drop samples whose estimated length exceeds this many tokens (0: none).", ge=0)
    # --- optimisation
    epochs: float = _f(3.0, "Passes over the data (ignored when max_steps > 0).")
    max_steps: int = _f(-1, "Optimizer steps to run; > 0 overrides epochs.")
    per_device_batch_size: int = _f(2, "Samples per micro-batch per device.", ge=1)
    gradient_accumulation_steps: int = _f(8, "Micro-batches per optimizer step.", ge=1)
    learning_rate: float = _f(2e-7, "Peak learning rate (after warmup).", gt=0)
    warmup_ratio: float = _f(0.03, "Fraction of steps spent warming up linearly from 0.", ge=0, lt=1)
    warmup_steps: int = _f(0, "Warmup steps; > 0 overrides warmup_ratio.", ge=0)
    min_lr_ratio: float = _f(0.0, "The cosine decays to learning_rate * min_lr_ratio.", ge=0, le=1)
    # --- batching
    group_by_length: bool = _f(True, "Batch samples of similar length together (less padding).")
    length_group_size: int = _f(64, "Mega-batch size, in global batches, within which samples are "
                                    "sorted by length; larger: less padding, less randomness.", ge=1)
    num_workers: int = _f(0, "DataLoader worker processes (image decoding and tokenisation).", ge=0)
    # --- engine (the shared settings: vlir.train.recipe_config.TrainerConfig)
    freeze_language_model: bool = _f(False, "Freeze the language model and LM head.")
    vision_guard: bool = _f(True, "On a micro-batch without images, run a zero-weighted dummy "
                                  "vision forward so ZeRO-3 ranks gather the same parameters "
                                  "(else ranks with and without images deadlock).")
    # --- output
    output_dir: str = _f("out/train/sft", "Model (save_pretrained), metrics.jsonl, loss.png and "
                                          "DeepSpeed checkpoints go here.")
    plot: bool = _f(True, "Write loss.png next to metrics.jsonl.")

    def validate(self) -> list[str]:
        """The cross-field rules (each field's range is declared with it)."""
        problems = self.shared_problems()
        if self.max_steps <= 0 and not self.epochs > 0:
            problems.append("set epochs > 0 or max_steps > 0")
        if self.freeze_vision_tower and self.freeze_merger and self.freeze_language_model:
            problems.append("everything is frozen: unset one of freeze_vision_tower, freeze_merger, "
                            "freeze_language_model")
        if not all(s.count("/") == 1 for s in self.splits):
            problems.append(f"splits must be a list of 'source/split' strings, got {self.splits!r}")
        return problems
