"""KV-cache reuse across inserted crops on the tiny random Qwen3-VL: the engine's logits equal a
re-prefill and one plain forward of the finished trajectory, with 0, 1 and 3 inserted crops.

Qwen3-VL adds two ways to get this wrong silently: its interleaved 3-D rope (positions of an
inserted image must come from ``get_rope_index`` over the whole trajectory) and deepstack (vision
features added to the first decoder layers at the image positions of the *current* forward, so an
inserted crop's forward must carry that crop's, and only that crop's, pixels). Negative controls
show the comparison catches both."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from vlir.models import qwen3_vl  # noqa: E402
from vlir.rollout import Rollout, RolloutConfig  # noqa: E402
from vlir.testing.scripted import ScriptedLogits  # noqa: E402

from tests.rollout.test_engine import picture  # noqa: E402
from tests.rollout_helpers import tiny, worst_logit_gap  # noqa: E402

QWEN3 = "qwen3_vl_tiny"
LOOK = '{{"bbox_2d": [{}, {}, {}, {}]}}\n'
ANSWER = " So it is red. </think>\n<answer>red</answer>"


PROMPTS = [("How many crops? none", picture(300, 220)), ("How many crops? one", picture(180, 260, 1)),
           ("How many crops? three", picture(330, 250, 2))]
SCRIPTS = {  # 0, 1 and 3 inserted crops, at different steps: rows insert while others decode
    "none": ["<think> No need to look." + ANSWER],
    "one": ["<think> Let me think a while before I look. " + LOOK.format(100, 150, 600, 700), ANSWER],
    "three": ["<think> The left part. " + LOOK.format(10, 20, 400, 500),
              "Now the right. " + LOOK.format(500, 100, 990, 900),
              "And the middle. " + LOOK.format(300, 300, 700, 700), ANSWER],
}
EXPECTED_CROPS = [0, 0, 1, 1, 3, 3]


def engine(mode: str = "kv") -> Rollout:
    model, processor = tiny(QWEN3)
    return Rollout(model, processor, RolloutConfig(
        temperature=0.0, max_new_tokens=120, mode=mode, keep_scores=True,
        logits_processor=ScriptedLogits(processor, by_question=SCRIPTS)))


@pytest.fixture(scope="module")
def runs():
    kv, ref = engine("kv"), engine("reprefill")
    return kv, kv.generate(PROMPTS, num_samples=2), ref, ref.generate(PROMPTS, num_samples=2)


def worst_gap(traj) -> float:
    """Engine scores against one plain forward of the whole trajectory (the model's own positions
    and deepstack over all images): what training sees."""
    return worst_logit_gap(traj, QWEN3)


def test_the_tiny_model_is_a_qwen3_vl_with_deepstack():
    model, processor = tiny(QWEN3)
    assert model.config.model_type == qwen3_vl.MODEL_TYPE
    assert list(model.config.vision_config.deepstack_visual_indexes) == [0, 1]
    assert processor.image_processor.patch_size * processor.image_processor.merge_size == qwen3_vl.FACTOR


def test_kv_reuse_equals_reprefill(runs):
    kv, a, ref, b = runs
    assert [len(t.crops) for t in a] == EXPECTED_CROPS
    for x, y in zip(a, b):
        assert x.token_ids == y.token_ids and x.action_mask == y.action_mask
        for s, r in zip(x.scores, y.scores):
            torch.testing.assert_close(s, r, atol=2e-5, rtol=1e-5)
    assert kv.stats["forwarded_tokens"] < ref.stats["forwarded_tokens"]


@pytest.mark.parametrize("row", [0, 2, 4], ids=["0-crops", "1-crop", "3-crops"])
def test_engine_logits_equal_one_plain_forward_of_the_trajectory(runs, row):
    """Batched, cached, mid-padded decoding with 0, 1 and 3 inserted crops gives, at every sampled
    position, the logits of a single forward of the finished trajectory."""
    _, trajs, _, _ = runs
    traj = trajs[row]
    assert len(traj.crops) == EXPECTED_CROPS[row] and traj.finish_reason == "answer"
    assert traj.image_grid_thw.shape[0] == 1 + EXPECTED_CROPS[row]
    assert worst_gap(traj) < 2e-5


def test_negative_control_deepstack_left_out_of_a_crop_forward(monkeypatch):
    """Drop the deepstack injection from the forwards that insert a crop: the comparison fails, so
    the test above does check that an inserted crop gets its own deepstack features."""
    model, _ = tiny(QWEN3)
    text_model = model.model.language_model
    real = type(text_model)._deepstack_process
    forwards = []

    def skip_after_prefill(self, hidden, masks, embeds):
        forwards.append(1)
        # the prefill injects once per deepstack layer; later injections come from crop forwards
        if len(forwards) > len(model.config.vision_config.deepstack_visual_indexes):
            return hidden
        return real(self, hidden, masks, embeds)

    monkeypatch.setattr(type(text_model), "_deepstack_process", skip_after_prefill)
    [traj] = engine().generate(PROMPTS[1:2])
    monkeypatch.setattr(type(text_model), "_deepstack_process", real)
    assert len(traj.crops) == 1
    assert worst_gap(traj) > 1e-4


def test_negative_control_crop_positions_read_as_text(monkeypatch):
    """Let ``get_rope_index`` see the inserted crops as text (a forgotten ``mm_token_type_ids``):
    the crop's 3-D positions are wrong and the comparison fails."""
    model, _ = tiny(QWEN3)
    real = type(model.model).get_rope_index
    seen = []

    def crops_as_text(self, input_ids, mm_token_type_ids, **kwargs):
        seen.append(1)
        if len(seen) > 1:  # the prefill keeps its image; every later call loses the crops'
            first_end = (input_ids == self.config.vision_end_token_id).int().cumsum(-1) >= 1
            mm_token_type_ids = mm_token_type_ids * ~first_end
        return real(self, input_ids, mm_token_type_ids, **kwargs)

    monkeypatch.setattr(type(model.model), "get_rope_index", crops_as_text)
    [traj] = engine().generate(PROMPTS[1:2])
    monkeypatch.setattr(type(model.model), "get_rope_index", real)
    assert len(traj.crops) == 1
    assert worst_gap(traj) > 1e-4
