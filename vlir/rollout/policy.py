"""The round policy both backends run, and the one trajectory type they return.

A backend (local: :mod:`vlir.rollout.engine`; served: :mod:`vlir.rollout.served`) samples text
until :mod:`vlir.protocol` says a round ended, then asks :class:`RoundPolicy` what the round means:
an answer ends the trajectory; a round that reaches ``max_rounds`` ends it; a good call beyond
``max_crops`` ends it; a good call is mapped to the original image (:func:`vlir.geometry.call_box`)
and rendered (:func:`vlir.crops.render_crop`, through the backend's ``render`` so the local one can
memoise the processor inputs); a bad call is skipped or ends the trajectory (``bad_box``). The
backend then inserts the crop in its own currency (token ids and tensors, or a chat message part)
with :data:`JSON_IMAGE_SEPARATOR` after a call whose ``]}`` the stop string swallowed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from vlir import geometry
from vlir.records import Box, Crop

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

    from vlir.geometry import PixelBudget
    from vlir.rollout.config import RolloutConfig

log = logging.getLogger(__name__)

# Written between a crop call's "]}" and the crop image when the policy's text stopped at "}"
# (the released agent appends "]}\n"; the SFT rendering ends each look segment with "\n").
JSON_IMAGE_SEPARATOR = "\n"


@dataclass
class Trajectory:
    """One rollout, from either backend. ``token_ids``, ``action_mask`` (1 = sampled) and
    ``logprobs`` are aligned per position; the local backend fills all three and the images'
    ``pixel_values``/``image_grid_thw``; the served one fills the ids and mask from the server's
    ``return_token_ids`` (empty when it returns none) and says whether they are exactly the ids
    the server conditioned on and sampled (``token_exact``)."""

    prompt_index: int
    text: str
    answer: str | None
    finish_reason: str
    crops: list[Crop] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    bad_calls: list[str] = field(default_factory=list)  # why each skipped bad call was bad
    token_ids: list[int] = field(default_factory=list)
    action_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    prompt_length: int = 0  # tokens of the prompt (the first action-mask-0 run)
    completion_tokens: int = 0  # tokens sampled, over all rounds
    pixel_values: "torch.Tensor | None" = field(default=None, repr=False)
    image_grid_thw: "torch.Tensor | None" = field(default=None, repr=False)
    token_exact: bool = True  # served: every round's prompt = previous prompt + sampled + inserted ids
    requests: int = 0  # served: chat completion requests
    prompt_tokens: int = 0  # served: summed over the rounds' usage (what the server billed)
    policy_version: int = 0  # the weights' version that sampled it (R-GRPO with a served engine)
    scores: list["torch.Tensor"] | None = field(default=None, repr=False)  # keep_scores only

    @property
    def num_sampled(self) -> int:
        return self.completion_tokens


@dataclass(kw_only=True)
class RoundState:
    """What the policy reads and writes on one trajectory in flight (each backend's row extends it)."""

    image: "Image.Image"
    crops: list[Crop] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    bad_calls: list[str] = field(default_factory=list)
    rounds: int = 0  # generation rounds ended so far
    finish: str | None = None


class RoundPolicy:
    """The loop's decisions, written once: what a round's end does to a trajectory."""

    def __init__(self, config: "RolloutConfig", model_budget: "PixelBudget"):
        self.config = config
        self.model_budget = model_budget

    def answered(self, state: RoundState) -> None:
        state.finish = "answer"

    def round_ended(self, state: RoundState, box: Any = None, error: str | None = None,
                    render: Callable[["Image.Image", Box], tuple] | None = None) -> tuple | None:
        """A round ended without an answer: with a call (``box`` in model space, or ``error`` for
        a call :mod:`vlir.protocol` refused) or with plain text (neither). Returns ``render``'s
        result for a crop to insert (its first item the :class:`Crop`), else None."""
        state.rounds += 1
        if self.config.max_rounds is not None and state.rounds >= self.config.max_rounds:
            state.finish = "max_rounds"  # the released loop stops after its last round, crop or not
            return None
        if error is not None:
            self.bad_call(state, error)
            return None
        if box is None:
            return None
        if len(state.crops) >= self.config.max_crops:
            state.finish = "max_crops"
            return None
        width, height = state.image.size
        try:
            clipped = geometry.call_box(box, width, height, self.model_budget)
            rendered = render(state.image, clipped)
        except ValueError as exc:
            self.bad_call(state, f"box {list(box or ())}: {exc}")
            return None
        state.crops.append(rendered[0])
        state.boxes.append(clipped)
        return rendered

    def bad_call(self, state: RoundState, why: str) -> bool:
        """Record a bad call; True when generation goes on (``bad_box: skip``)."""
        log.debug("bad call: %s", why)
        state.bad_calls.append(why)
        if self.config.bad_box == "end":
            state.finish = "bad_box"
            return False
        return True

    def over_budget(self, state: RoundState, sampled: int) -> None:
        """End a trajectory that sampled its ``max_new_tokens``."""
        if state.finish is None and sampled >= self.config.max_new_tokens:
            state.finish = "max_new_tokens"

    def round_limit(self, sampled: int) -> int:
        """Tokens the next round may sample."""
        budget = self.config.max_new_tokens - sampled
        if self.config.tokens_per_round is not None:
            budget = min(budget, self.config.tokens_per_round)
        return budget
