"""The crop-and-zoom loop: one round policy, two backends, one factory, one preset system; R-GRPO's
rollouts, evaluation and ``vlir infer`` all run it. :mod:`vlir.protocol` owns the text rules.

* :mod:`vlir.rollout.config` — :class:`RolloutConfig` (every setting and budget) and the presets
  (``vlir``, the released ``vlmr3`` agent, its evaluation ``vlmr3_eval``).
* :mod:`vlir.rollout.policy` — :class:`RoundPolicy` (what a round's end does: answer, max_rounds,
  max_crops, bad calls, the token budget) and :class:`Trajectory`, the one result type.
* :mod:`vlir.rollout.engine` — :class:`Rollout`: the transformers backend (KV reuse, oracle replay);
  :mod:`vlir.rollout.batching` its tensors, :mod:`vlir.rollout.row` one row's state.
* :mod:`vlir.rollout.served` — :class:`~vlir.rollout.served.ServedRollout`: the OpenAI-compatible
  (vLLM) backend over chat completions, token ids tracked.
* :mod:`vlir.rollout.factory` — :func:`build_engine`, the one way an engine is made.
* :mod:`vlir.rollout.trained` — what a checkpoint was trained with (chat, budgets, preset).

Test policies that make a random model write chosen text live in :mod:`vlir.testing.scripted`.
"""

from vlir.rollout.config import MAX_CROPS, MODES, PRESETS, VLMR3_MODEL_PIXELS, RolloutConfig
from vlir.rollout.factory import build_engine, rollout_config
from vlir.rollout.engine import ReplayMismatch, Rollout
from vlir.rollout.policy import JSON_IMAGE_SEPARATOR, RoundPolicy, Trajectory

__all__ = ["JSON_IMAGE_SEPARATOR", "MAX_CROPS", "MODES", "PRESETS", "VLMR3_MODEL_PIXELS", "ReplayMismatch",
           "Rollout", "RolloutConfig", "RoundPolicy", "Trajectory", "build_engine", "rollout_config"]
