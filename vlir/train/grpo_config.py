"""The R-GRPO configuration: one dataclass, loadable from a YAML recipe, overridable with ``key=value``.

Every field has a default (the paper's, where the paper states one) and a ``help`` string
(``GRPOConfig.help()`` prints them); ``__post_init__`` rejects bad combinations with a message that
says what to change. No torch here: ``vlir train grpo --help`` and the recipe tests stay light.
Loading (``load``/``from_dict``, dotted overrides, YAML scalar coercion) follows ``SFTConfig``.

Batch arithmetic. One optimizer step consumes ``prompts_per_step`` prompts (all ranks together),
each rolled out ``num_generations`` times; a prompt's group stays on one rank, so advantages need
no cross-rank gathering. Each rank back-propagates its ``prompts_per_step / world *
num_generations`` trajectories in micro-batches of ``per_device_batch_size``; the gradient
accumulation steps follow. The paper's "per-device batch 1, gradient accumulation 16, M = 5" is
16 groups of 5 per optimizer step: ``prompts_per_step: 16``, ``per_device_batch_size: 1``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from vlir.config import ConfigError
from vlir.rollout.config import RolloutConfig
from vlir.train.rewards import PAPER_REWARDS, RewardSpec
from vlir.train.recipe_config import TrainerConfig, _f

LR_SCHEDULERS = ("constant", "linear", "cosine")
LOSS_TYPES = ("grpo", "dapo")  # declared here (no torch import); vlir.train.grpo_loss reads it


@dataclass
class GRPOConfig(TrainerConfig):
    """Region-conditioned GRPO of a Qwen2.5-VL or Qwen3-VL on an RL set (VLM-R3 stage two).

    Model and data:
        model_path (the SFT output), build_model, data_dir (``vlir rl-data`` output), chat,
        min_pixels / max_pixels.
    Rollout:
        num_generations (M); ``rollout``: a :class:`vlir.rollout.RolloutConfig` section (``preset``,
        temperature, top_p, max_new_tokens, max_crops, mode, engine, base_url ...), nested as
        ``chat`` is (``rollout.temperature=0.7`` overrides one key).
    Objective:
        rewards (name/weight/kwargs list), scale_rewards, advantage_eps, epsilon_low/epsilon_high,
        loss_type, num_iterations, beta (KL to the reference; 0 = no reference model),
        log_reference_kl.
    Optimisation:
        max_steps, prompts_per_step, per_device_batch_size, learning_rate, lr_scheduler,
        warmup_steps, weight_decay, adam_*, max_grad_norm, seed.
    Engine:
        deepspeed, precision, gradient_checkpointing, freeze_vision_tower, freeze_merger.
        (min/max_pixels, chat, AdamW, seed, engine and checkpoint settings are
        :class:`~vlir.train.recipe_config.TrainerConfig`'s, shared with SFT.)
    Output:
        output_dir, save_steps, keep_checkpoints, resume, plot.
    """

    kind = "GRPO"  # names the config in error messages

    # --- model and data
    model_path: str = _f("out/train/sft", "Local Qwen2.5-VL or Qwen3-VL checkpoint to start from (the SFT output).")
    build_model: str = _f("", "Model to build at model_path first if it is absent ('tiny' or a model YAML) "
                              "(tests only; R-GRPO normally starts from SFT).")
    data_dir: str = _f("out/rl", "The RL set written by `vlir rl-data` (part-*.parquet).")
    # --- rollout
    num_generations: int = _f(5, "M: trajectories sampled per prompt (the group).", ge=1)
    rollout: dict = _f({}, "The rollout engine's settings (vlir.rollout.RolloutConfig fields, over the "
                           "'preset' key's: vlir by default): temperature (the paper: 1.0), top_p, "
                           "max_new_tokens, max_crops, mode, engine (local or served), base_url ...")
    weight_sync: str = _f("folder", "rollout.engine served: how the server(s) get the policy after each "
                                    "optimizer step: folder (save, then vLLM reloads it: any device) or nccl "
                                    "(broadcast into vLLM's workers: GPUs, vLLM in the trainer's environment).",
                          choices=("folder", "nccl"))
    weight_sync_master: str = _f("127.0.0.1:51216", "weight_sync nccl: this trainer's address:port for the "
                                                    "rendezvous (server i uses port + i).")
    weight_sync_workers: int = _f(1, "weight_sync nccl: vLLM workers per server (tensor x pipeline parallel).", ge=1)
    # --- objective
    rewards: list = _f([dataclasses.asdict(r) for r in PAPER_REWARDS],
                       "Reward functions in order: {name, weight, kwargs}; a name is registered in "
                       "vlir.train.rewards or an importable 'module:function'.")
    scale_rewards: bool = _f(True, "Divide centred rewards by the group std (False: Dr. GRPO).")
    advantage_eps: float = _f(1e-4, "The eps of (r - mean) / (std + eps) (the released code: 1e-4).", gt=0)
    epsilon_low: float = _f(0.2, "Lower clip of the policy ratio: 1 - epsilon_low.", ge=0, lt=1)
    epsilon_high: float = _f(0.28, "Upper clip of the policy ratio: 1 + epsilon_high (released: 0.28).", ge=0)
    loss_type: str = _f("grpo", "grpo: mean over each trajectory's action tokens, then over "
                                "trajectories (released code); dapo: mean over all action tokens.",
                        choices=LOSS_TYPES)
    num_iterations: int = _f(1, "Optimizer steps per rollout batch (mu). 1: the paper (ratio = 1).", ge=1)
    beta: float = _f(0.0, "KL coefficient to the reference (initial) policy; 0 loads no reference.", ge=0)
    log_reference_kl: bool = _f(False, "Load the reference model even with beta = 0, to log the KL.")
    # --- optimisation
    max_steps: int = _f(300, "Optimizer steps (rollout batches when num_iterations = 1).", ge=1)
    prompts_per_step: int = _f(16, "Prompts per optimizer step over all ranks (a multiple of the "
                                   "world size); each yields num_generations trajectories.", ge=1)
    per_device_batch_size: int = _f(1, "Trajectories per forward/backward micro-batch.", ge=1)
    learning_rate: float = _f(1e-6, "Peak learning rate.", gt=0)
    lr_scheduler: str = _f("linear", "constant, linear (decay to 0; TRL's default) or cosine.",
                           choices=LR_SCHEDULERS)
    warmup_steps: int = _f(0, "Linear warmup steps.", ge=0)
    # --- output (shared settings: vlir.train.recipe_config.TrainerConfig)
    output_dir: str = _f("out/train/grpo", "Model (save_pretrained), metrics.jsonl, rewards.png and "
                                           "DeepSpeed checkpoints go here.")
    plot: bool = _f(True, "Write rewards.png next to metrics.jsonl.")

    def validate(self) -> list[str]:
        """The cross-field rules (each field's range and choices are declared with it)."""
        problems = self.shared_problems()
        try:
            rollout = self.rollout_config()
        except (ConfigError, ValueError) as exc:
            problems.append(str(exc))
            rollout = None
        if rollout is not None and rollout.temperature <= 0:
            problems.append(f"rollout.temperature must be > 0 for GRPO sampling, got {rollout.temperature}")
        if self.num_generations == 1 and self.scale_rewards:
            problems.append("num_generations = 1 gives every trajectory a zero advantage: use M >= 2")
        try:
            specs = self.reward_specs()
            if not specs:
                problems.append("rewards is empty: list at least one reward")
        except (TypeError, ValueError, AttributeError) as exc:
            problems.append(f"rewards: {exc}")
        return problems

    def rollout_config(self) -> RolloutConfig:
        """The ``rollout`` section as a :class:`RolloutConfig` (its ``preset`` key, then its fields)."""
        if not isinstance(self.rollout, dict):
            raise ConfigError(f"rollout must be a mapping of RolloutConfig fields, got {self.rollout!r}")
        return RolloutConfig.from_mapping(self.rollout)

    def reward_specs(self) -> list[RewardSpec]:
        """The ``rewards`` list as :class:`RewardSpec` objects (names are resolved at setup)."""
        return [RewardSpec.parse(r) for r in self.rewards]

    def micro_batches(self, world_size: int) -> int:
        """Micro-batches per optimizer step on each rank (DeepSpeed's gradient accumulation)."""
        if self.prompts_per_step % world_size:
            raise ValueError(f"prompts_per_step={self.prompts_per_step} is not a multiple of the world "
                             f"size {world_size}: a prompt's group must stay on one rank")
        per_rank = self.prompts_per_step // world_size * self.num_generations
        if per_rank % self.per_device_batch_size:
            raise ValueError(f"{per_rank} trajectories per rank per step do not split into micro-batches "
                             f"of per_device_batch_size={self.per_device_batch_size}")
        return per_rank // self.per_device_batch_size
