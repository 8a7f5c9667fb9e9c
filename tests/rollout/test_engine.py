"""The rollout engine on the tiny random Qwen2.5-VL: KV reuse against re-prefill and against one
plain forward of the finished trajectory, batching, stop reasons, suppression, the R-GRPO contract."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from PIL import Image, ImageDraw  # noqa: E402

from vlir import geometry  # noqa: E402
from vlir.crops import render_crop  # noqa: E402
from vlir.rollout import Rollout, RolloutConfig  # noqa: E402
from vlir.testing.scripted import ScriptedLogits  # noqa: E402
from vlir.models import model_budget, special_ids, vision_token_ids  # noqa: E402

from tests.rollout_helpers import tiny, trajectory_logits, worst_logit_gap  # noqa: E402

CALL_A = '<think> I look at the left part.\n\n{"bbox_2d": [10, 20, 120, 130]}\n'
CALL_B = 'Now the right side: {"bbox_2d": [150, 40, 300, 200]}'  # closes on "]}": engine adds "\n"
ANSWER = " So it is red. </think>\n<answer>red</answer>"


def picture(width: int, height: int, seed: int = 0) -> Image.Image:
    img = Image.new("RGB", (width, height), (30 + 40 * seed, 200, 120))
    draw = ImageDraw.Draw(img)
    draw.rectangle((width // 5, height // 4, width // 2, height // 2), fill=(200, 30, 30))
    draw.ellipse((width // 2, height // 3, width - 5, height - 5), fill=(20, 40, 220))
    return img


PROMPTS = [("What color is the square?", picture(300, 220)), ("Where is the ball?", picture(180, 260, 1)),
           ("Is it big?", picture(240, 240, 2))]
SCRIPTS = {  # different crop times and counts per prompt: rows insert while others decode
    "square": [CALL_A, CALL_B, ANSWER],
    "ball": ["<think> Hm, let me think a while before I look. " + CALL_B, ANSWER],
    "big": ["<think> No need to look." + ANSWER],
}


def engine(mode="kv", **overrides) -> Rollout:
    model, processor = tiny()
    settings = dict(temperature=0.0, max_new_tokens=120, mode=mode, keep_scores=True,
                    logits_processor=ScriptedLogits(processor, by_question=SCRIPTS))
    settings.update(overrides)
    return Rollout(model, processor, RolloutConfig(**settings))


@pytest.fixture(scope="module")
def kv_and_reprefill():
    kv, ref = engine("kv"), engine("reprefill")
    return kv, kv.generate(PROMPTS, num_samples=2), ref, ref.generate(PROMPTS, num_samples=2)


def test_kv_and_reprefill_agree_on_logits_and_tokens(kv_and_reprefill):
    kv, a, ref, b = kv_and_reprefill
    assert [len(t.crops) for t in a] == [2, 2, 1, 1, 0, 0]
    for x, y in zip(a, b):
        assert x.token_ids == y.token_ids and x.action_mask == y.action_mask
        assert len(x.scores) == len(y.scores) == x.num_sampled
        for s, r in zip(x.scores, y.scores):
            torch.testing.assert_close(s, r, atol=2e-5, rtol=1e-5)
    # the point of KV reuse: each token goes through the model once
    assert kv.stats["forwarded_tokens"] < ref.stats["forwarded_tokens"]


def test_kv_greedy_output_equals_reprefill_without_script():
    """Free greedy decoding (no hook) after scripted crops: the model's own choices agree too."""
    model, processor = tiny()
    script = ScriptedLogits(processor, [CALL_A, CALL_B])
    runs = [Rollout(model, processor, RolloutConfig(temperature=0.0, max_new_tokens=90, mode=m,
                                                    logits_processor=script)).generate(PROMPTS[:2])
            for m in ("kv", "reprefill")]
    for x, y in zip(*runs):
        assert x.token_ids == y.token_ids and len(x.crops) == 2 and x.finish_reason == "max_new_tokens"


def test_engine_logits_equal_a_plain_forward_of_the_trajectory(kv_and_reprefill):
    """Train/inference consistency: the cached, batched, mid-padded decode gives, at every sampled
    position, the logits that a single no-cache forward of the finished trajectory gives."""
    _, trajs, _, _ = kv_and_reprefill
    for traj in trajs[::2]:
        logits = trajectory_logits(traj)
        sampled = [i for i, m in enumerate(traj.action_mask) if m]
        for score, pos in zip(traj.scores, sampled):
            torch.testing.assert_close(score, logits[pos - 1], atol=2e-5, rtol=1e-5)


def test_consistency_check_catches_1d_positions_for_a_crop(monkeypatch):
    """Negative control: give the inserted crop plain 1-D positions (the silent failure mode of a
    forgotten ``position_ids``) and the comparison above fails."""
    from vlir.rollout import batching as rollout_batch

    real_rope = rollout_batch.Batch._rope
    calls = []

    def one_d(self):
        positions = real_rope(self)
        calls.append(1)
        if len(calls) > 1:  # leave the prefill alone, break the crop insertions
            flat = (self.attn.cumsum(-1) - 1).clamp(min=0)
            positions = (flat + self.delta * 0).unsqueeze(0).expand(3, -1, -1).clone()
        return positions

    monkeypatch.setattr(rollout_batch.Batch, "_rope", one_d)
    [traj] = engine().generate(PROMPTS[:1])
    assert worst_logit_gap(traj) > 1e-3


def test_batched_rows_equal_rows_run_alone(kv_and_reprefill):
    _, batched, _, _ = kv_and_reprefill
    for i, prompt in enumerate(PROMPTS):
        [alone] = engine().generate([prompt])
        row = batched[2 * i]
        assert alone.token_ids == row.token_ids
        for s, r in zip(alone.scores, row.scores):
            torch.testing.assert_close(s, r, atol=2e-5, rtol=1e-5)


def test_trajectory_contract(kv_and_reprefill):
    """What R-GRPO consumes: aligned lists, masks, log-probs, images in order, crops by the rule."""
    _, processor = tiny()
    ids = special_ids(processor)
    _, trajs, _, _ = kv_and_reprefill
    assert [t.prompt_index for t in trajs] == [0, 0, 1, 1, 2, 2]
    for t in trajs:
        image = PROMPTS[t.prompt_index][1]
        assert len(t.token_ids) == len(t.action_mask) == len(t.logprobs)
        assert t.action_mask[:t.prompt_length] == [0] * t.prompt_length
        assert all(lp == 0.0 for lp, m in zip(t.logprobs, t.action_mask) if not m)
        assert all(lp <= 0.0 for lp, m in zip(t.logprobs, t.action_mask) if m)
        sampled = [tok for tok, m in zip(t.token_ids, t.action_mask) if m]
        assert not set(sampled) & set(vision_token_ids(processor))
        assert t.image_grid_thw.shape == (1 + len(t.crops), 3)
        assert t.pixel_values.shape[0] == int(t.image_grid_thw.prod(-1).sum())
        assert t.token_ids.count(ids["image_pad"]) == int(t.image_grid_thw.prod(-1).sum()) // 4
        assert t.token_ids.count(ids["vision_start"]) == 1 + len(t.crops)
        for crop, box in zip(t.crops, t.boxes):
            assert crop.png == render_crop(image, box).png
        assert t.finish_reason == "answer" and t.answer == "red"
        assert t.text.endswith("<answer>red</answer>")
    first = trajs[0]
    w, h = PROMPTS[0][1].size
    budget = model_budget(processor)
    assert first.boxes[0] == geometry.clip(geometry.from_model([10, 20, 120, 130], w, h, budget), w, h)
    # CALL_B closes on "]}": the engine wrote the newline itself (action mask 0) before the crop
    assert '{"bbox_2d": [150, 40, 300, 200]}\n<|vision_start|>' in first.text


BAD_CALLS = ['<think> {"bbox_2d": [10, 20, 30]}',  # wrong arity
             '<think> {"bbox_2d": [5000, 5000, 6000, 6000]}',  # outside the image
             '<think> {"bbox_2d": [40, 40, 40, 90]}',  # degenerate
             '<think> {"bbox_2d": [1, 2, x, 4]}']  # json.loads refuses it


@pytest.mark.parametrize("call", BAD_CALLS)
def test_bad_box_end_policy_ends_the_trajectory_without_a_crash(call):
    [t] = engine(bad_box="end", logits_processor=ScriptedLogits(tiny()[1], [call])).generate(PROMPTS[:1])
    assert t.finish_reason == "bad_box" and t.crops == [] and len(t.bad_calls) == 1


@pytest.mark.parametrize("call", BAD_CALLS)
def test_bad_box_skip_policy_goes_on_like_the_released_agent(call):
    script = ScriptedLogits(tiny()[1], [call + " again " + CALL_B, ANSWER])
    [t] = engine(logits_processor=script).generate(PROMPTS[:1])
    assert RolloutConfig().bad_box == "skip"
    assert len(t.bad_calls) == 1 and len(t.crops) == 1 and t.finish_reason == "answer" and t.answer == "red"
    w, h = PROMPTS[0][1].size
    assert t.boxes[0] == geometry.clip(geometry.from_model([150, 40, 300, 200], w, h, model_budget(tiny()[1])), w, h)


def test_a_repeated_key_crops_the_last_box():
    script = ScriptedLogits(tiny()[1], ['<think> {"bbox_2d": [0, 0, 50, 50], "bbox_2d": [150, 40, 300, 200]}', ANSWER])
    [t] = engine(logits_processor=script).generate(PROMPTS[:1])
    w, h = PROMPTS[0][1].size
    assert t.boxes == [geometry.clip(geometry.from_model([150, 40, 300, 200], w, h, model_budget(tiny()[1])), w, h)]
    assert t.finish_reason == "answer" and t.bad_calls == []


def test_vlmr3_preset_rounds_round_tokens_and_image_newline():
    _, processor = tiny()
    cfg = RolloutConfig.preset("vlmr3", temperature=0.0)
    assert (cfg.max_rounds, cfg.tokens_per_round, cfg.image_newline, cfg.bad_box, cfg.temperature) == \
        (8, 2048, True, "skip", 0.0)
    script = ScriptedLogits(processor, [CALL_A, CALL_B, ANSWER], image_newline=True)
    [t] = engine(image_newline=True, logits_processor=script).generate(PROMPTS[:1])
    assert t.finish_reason == "answer" and len(t.crops) == 2 and t.answer == "red"
    assert "<|vision_end|>\nNow the right side" in t.text
    # the round limit: two call rounds of max_rounds=2 end the episode, the second crop not inserted
    [t] = engine(max_rounds=2, logits_processor=ScriptedLogits(processor, [CALL_A, CALL_B, ANSWER])).generate(PROMPTS[:1])
    assert t.finish_reason == "max_rounds" and len(t.crops) == 1
    # a round cut at its token limit is read like the loop reads it: its call is acted on
    [t] = engine(tokens_per_round=len(processor.tokenizer.encode(CALL_B[:-2])),
                 logits_processor=ScriptedLogits(processor, [CALL_B[:-2], ANSWER])).generate(PROMPTS[:1])
    assert len(t.crops) == 1 and t.finish_reason == "answer"


def test_stops_at_max_crops_and_max_new_tokens():
    _, processor = tiny()
    script = ScriptedLogits(processor, [CALL_A, CALL_B, ANSWER])
    [t] = engine(max_crops=1, logits_processor=script).generate(PROMPTS[:1])
    assert t.finish_reason == "max_crops" and len(t.crops) == 1
    [t] = engine(max_new_tokens=7, logits_processor=script).generate(PROMPTS[:1])
    assert t.finish_reason == "max_new_tokens" and t.num_sampled == 7


def test_eos_ends_a_trajectory():
    _, processor = tiny()
    [t] = engine(logits_processor=ScriptedLogits(processor, ["<think> done<|im_end|>"])).generate(PROMPTS[:1])
    assert t.finish_reason == "eos" and t.token_ids[-1] == special_ids(processor)["im_end"]


def test_vision_tokens_are_never_sampled_even_when_forced():
    _, processor = tiny()
    pad = special_ids(processor)["image_pad"]

    def push_vision(ids, scores):
        scores[:, pad] = 1e4
        return scores

    def only_vision(ids, scores):
        scores[:] = float("-inf")
        scores[:, pad] = 0.0
        return scores

    for hook in (push_vision, only_vision):
        for temperature in (0.0, 1.0):
            [t] = engine(temperature=temperature, max_new_tokens=30, logits_processor=hook).generate(PROMPTS[:1])
            assert pad not in t.token_ids[t.prompt_length:] and t.num_sampled == 30


def test_sampling_is_seeded_and_samples_differ():
    def run(seed):
        e = engine(temperature=1.0, top_p=0.9, max_new_tokens=25, seed=seed, logits_processor=None)
        return [t.token_ids for t in e.generate(PROMPTS[:1], num_samples=3)]

    first = run(7)
    assert first == run(7)
    assert len({tuple(x) for x in first}) == 3


def test_config_rejects_bad_values():
    for bad in ({"mode": "fast"}, {"temperature": -1}, {"top_p": 0}, {"max_new_tokens": 0}, {"bad_box": "ignore"},
                {"max_rounds": 0}, {"tokens_per_round": 0}):
        with pytest.raises(ValueError):
            RolloutConfig(**bad)
