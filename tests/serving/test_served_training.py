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


class TwoRounds:
    """A crop call, then an answer; the second prompt re-tokenizes the first round's last id
    (``retokenize``) or extends it; every sampled id comes with its log-prob (``logprobs``)."""

    def __init__(self, retokenize: bool, logprobs: bool = True):
        self.retokenize, self.logprobs, self.requests = retokenize, logprobs, []
        self.chat = self.completions = self

    def create(self, **kwargs):
        self.requests.append(kwargs)
        first = len(self.requests) == 1
        sampled = [11, 12] if first else [13]
        prompt = [1, 2, 3] if first else [1, 2, 3, 11, 99 if self.retokenize else 12, 50, 51]
        choice = {"message": {"content": '<think> {"bbox_2d": [1, 1, 40, 40' if first else "<answer>red"},
                  "finish_reason": "stop", "stop_reason": "]}" if first else "</answer>", "token_ids": sampled}
        if self.logprobs and kwargs.get("logprobs"):
            choice["logprobs"] = {"content": [{"token": str(i), "logprob": -0.5 - i / 100} for i in sampled]}
        data = {"choices": [choice], "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(sampled)},
                "prompt_token_ids": prompt}
        return type("R", (), {"model_dump": lambda self_: data})()


@pytest.mark.parametrize("retokenize", [False, True])
def test_a_trainers_engine_keeps_the_servers_logprobs_aligned_with_its_ids(retokenize):
    from vlir.rollout.served import _State, ServedRollout

    state = _State(image=make_image(), index=0, messages=[], seed=None, logprobs=[])
    ServedRollout._track_ids(state, [1, 2, 3], [11, 12], [-0.61, -0.62])
    ServedRollout._track_ids(state, [1, 2, 3, 11, 99 if retokenize else 12, 50], [13], [-0.63])
    assert len(state.logprobs) == len(state.ids) == len(state.mask)
    if retokenize:  # the part that changed is no longer sampled: mask and log-prob drop together
        assert state.ids == [1, 2, 3, 11, 99, 50, 13] and state.mask == [0, 0, 0, 1, 0, 0, 1]
        assert state.logprobs == [0.0, 0.0, 0.0, -0.61, 0.0, 0.0, -0.63]
    else:
        assert state.mask == [0, 0, 0, 1, 1, 0, 1] and state.logprobs == [0.0, 0.0, 0.0, -0.61, -0.62, 0.0, -0.63]
    ServedRollout._track_ids(state, state.ids, [14], None)  # a round without log-probs drops them all
    assert state.logprobs is None


def test_log_probs_are_asked_only_by_a_trainers_engine_at_temperature_one():
    from vlir.models import model_budget
    from vlir.rollout import RolloutConfig
    from vlir.rollout.served import ServedRollout

    _, processor = tiny()
    budget = model_budget(processor)
    for config, with_processor, asked in ((RolloutConfig(temperature=1.0), True, True),
                                          (RolloutConfig(temperature=0.7), True, False),
                                          (RolloutConfig(temperature=1.0, top_p=0.9), True, False),
                                          (RolloutConfig(temperature=1.0), False, False)):
        server = TwoRounds(retokenize=False)
        engine = ServedRollout("http://x/v1", "m", config, model_budget=budget, client=server,
                               processor=processor if with_processor else None)
        [t] = engine.generate([("What color?", make_image())])
        assert all(bool(r.get("logprobs")) is asked for r in server.requests)
        assert len(t.logprobs) == (len(t.token_ids) if asked else 0)
        if asked:
            assert [lp for lp, m in zip(t.logprobs, t.action_mask) if m] == [-0.61, -0.62, -0.63]
