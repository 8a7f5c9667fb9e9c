"""The crop-and-zoom rollout engine (HF transformers): one loop for R-GRPO rollouts, evaluation and
``vlir infer``; :mod:`vlir.protocol` owns the text rules it follows.

* :mod:`vlir.rollout.engine` — :class:`Rollout`, :class:`Trajectory`: the per-row loop rules
  (sample, stop, parse a call, crop, insert the image, replay).
* :mod:`vlir.rollout.batching` — :class:`~vlir.rollout.batching.Batch`: the rows' tensors, KV cache
  and 3-D rope positions.
* :mod:`vlir.rollout.config` — :class:`RolloutConfig` and the presets (``vlir``, the released
  ``vlmr3`` agent).
* :mod:`vlir.rollout.row` — one row's state, shared by the two.

Test policies that make a random model write chosen text live in :mod:`vlir.testing.scripted`.
"""

from vlir.rollout.config import MODES, PRESETS, VLMR3_MODEL_PIXELS, RolloutConfig
from vlir.rollout.engine import ReplayMismatch, Rollout, Trajectory

__all__ = ["MODES", "PRESETS", "VLMR3_MODEL_PIXELS", "ReplayMismatch", "Rollout", "RolloutConfig", "Trajectory"]
