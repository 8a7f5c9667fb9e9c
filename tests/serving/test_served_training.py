"""What R-GRPO needs from the served backend (no vLLM): given the trainer's processor, each
trajectory carries the tensors of its images exactly as sent, and one whose server ids hold another
number of image tokens than those images make is marked not token-exact (never trained on)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from tests.conftest import make_image  # noqa: E402
from tests.rollout_helpers import tiny  # noqa: E402


class OneRound:
    """A server that answers at once, its prompt ids holding ``pads`` image tokens."""

    def __init__(self, pad: int, pads: int):
        self.pad, self.pads = pad, pads
        self.chat = self.completions = self

    def create(self, **kwargs):
        data = {"choices": [{"message": {"content": "<answer>red"}, "finish_reason": "stop",
                             "stop_reason": "</answer>", "token_ids": [11, 12, 13]}],
                "usage": {"prompt_tokens": 8 + self.pads, "completion_tokens": 3},
                "prompt_token_ids": [1] * 5 + [self.pad] * self.pads + [2] * 3}
        return type("R", (), {"model_dump": lambda self_: data})()


def test_served_trajectories_carry_their_images_and_a_miscount_is_not_exact():
    from vlir.models import chat, model_budget
    from vlir.rollout import RolloutConfig
    from vlir.rollout.served import ServedRollout

    _, processor = tiny()
    budget = model_budget(processor)
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    image = make_image()
    probe = ServedRollout("http://x/v1", "m", model_budget=budget, client=OneRound(pad, 0))
    want = chat.image_inputs([probe._as_sent(image)], processor)
    pads = int(want["image_grid_thw"].prod()) // 4
    for count, exact in ((pads, True), (pads - 1, False)):
        engine = ServedRollout("http://x/v1", "m", RolloutConfig(temperature=0.0), model_budget=budget,
                               client=OneRound(pad, count), processor=processor)
        [t] = engine.generate([("What color?", image)])
        assert t.answer == "red" and t.token_exact is exact
        assert t.token_ids[-3:] == [11, 12, 13] and t.action_mask == [0] * (8 + count) + [1, 1, 1]
        assert t.image_grid_thw.tolist() == want["image_grid_thw"].reshape(-1, 3).tolist()
        assert t.pixel_values.shape == want["pixel_values"].shape
