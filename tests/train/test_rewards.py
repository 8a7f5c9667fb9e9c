"""The R-GRPO rewards: the paper's values, gating, parsing edge cases, the registry."""

from __future__ import annotations

import doctest

import pytest

from vlir.train import rewards
from vlir.train.rewards import (PAPER_REWARDS, RewardSpec, accuracy_reward, compute_rewards, format_reward,
                                get_reward, length_reward, parse_boxes, reasoning_segments, region_reward,
                                register)

GOOD = ('<think>The sign is small. {"bbox_2d": [10, 20, 110, 60]}\n<|vision_start|><|image_pad|>'
        '<|vision_end|>The crop reads OPEN clearly.</think><answer>open</answer>')


def test_docstring_examples_hold():
    result = doctest.testmod(rewards)
    assert result.attempted >= 8 and result.failed == 0


def test_rollout_text_with_inserted_image_tokens_scores_full_marks():
    raw, total = compute_rewards(PAPER_REWARDS, [GOOD], answers=[["open", "open"]], source=["textvqa"])
    assert raw == {"accuracy": [1.0], "format": [1.0], "region": [1.0], "length": [1.0]}
    assert total == [2.1]  # the paper's maximum: 1.0 + 0.5 + 0.5 + 0.1


@pytest.mark.parametrize("source,gold,pred,expect", [
    ("textvqa", ["Coca Cola"] * 10, "coca cola", 1.0),
    ("docvqa", ["$1,250.00"], "$1,250.0", 1.0),  # ANLS >= 0.5
    ("docvqa", ["invoice"], "receipt", 0.0),
    ("gqa", ["left"], "right", 0.0),
    ("gqa", ["left"], "left", 1.0),
    ("vsr", ["True"], "yes", 1.0),
    ("m3cot", ["B"], "(B) the dog", 1.0),
    ("m3cot", ["B"], "C", 0.0),
])
def test_accuracy_uses_the_sources_metric(source, gold, pred, expect):
    text = f"<think>reasoning</think><answer>{pred}</answer>"
    assert accuracy_reward([text], answers=[gold], source=[source]) == [expect]


def test_accuracy_reads_the_last_answer_else_the_last_line_as_eval_does():
    two = "<answer>wrong</answer> then <answer>left</answer>"
    texts = [two, "so\nleft", "left\nso", "<answer>left<|im_end|>"]
    assert accuracy_reward(texts, answers=[["left"]] * 4, source=["gqa"] * 4) == [1.0, 1.0, 0.0, 1.0]


@pytest.mark.parametrize("text,expect", [
    ("<think>a</think><answer>b</answer>", 1.0),
    ("  <think>a\nb</think>\n<answer>b</answer>\n<|im_end|>", 1.0),
    ("<think>a</think>", 0.0),  # no answer
    ("<answer>b</answer>", 0.0),  # no think
    ("<think>a</think><answer>b</answer> trailing text", 0.0),
    ("<think>a</think><answer>b</answer><answer>c</answer>", 0.0),  # two answers
    ('<think>{"bbox_2d": [1, 2, 3]}</think><answer>b</answer>', 0.0),  # 3 numbers
    ('<think>{"bbox_2d": [5, 5, 1, 1]}</think><answer>b</answer>', 0.0),  # inverted
    ('<think>{"bbox_2d": [1, 2, 3, 4}</think><answer>b</answer>', 0.0),  # unbalanced JSON
    ('<think>{"bbox_2d": [1, 2, 30, 40]}</think><answer>b</answer>', 1.0),
])
def test_format(text, expect):
    assert format_reward([text]) == [expect]


def test_parse_boxes_ignores_non_bbox_json_and_flags_bad_ones():
    assert parse_boxes('{"note": 1} {"bbox_2d": [0, 0, 2, 2]}') == ([[0.0, 0.0, 2.0, 2.0]], True)
    assert parse_boxes('{"bbox_2d": "0, 0, 2, 2"}') == ([], False)
    assert parse_boxes('{"bbox_2d": [0, 0, NaN, 2]}') == ([], False)
    assert parse_boxes("no boxes") == ([], True)


def test_region_is_gated_by_accuracy_and_needs_every_box_parsed():
    ok = '<think>{"bbox_2d": [0, 0, 5, 5]}</think><answer>left</answer>'
    bad = '<think>{"bbox_2d": [0, 0, 5, 5]} {"bbox_2d": [1]}</think><answer>left</answer>'
    none = "<think>no crop</think><answer>left</answer>"
    wrong = '<think>{"bbox_2d": [0, 0, 5, 5]}</think><answer>right</answer>'
    cols = dict(answers=[["left"]] * 4, source=["gqa"] * 4)
    assert region_reward([ok, bad, none, wrong], **cols) == [1.0, 0.0, 0.0, 0.0]
    # the accuracy computed earlier in the recipe is what gates (not recomputed)
    assert region_reward([ok], rewards={"accuracy": [0.0]}, **{k: v[:1] for k, v in cols.items()}) == [0.0]
    # the boxes the engine actually cropped override the parsed count
    assert region_reward([ok], rewards={"accuracy": [1.0]}, boxes=[[]]) == [0.0]


def test_length_is_the_papers_shortest_segment_rule():
    assert reasoning_segments('<think>{"bbox_2d": [0, 0, 1, 1]}{"bbox_2d": [0, 0, 2, 2]} long enough text'
                              "</think><answer>x</answer>") == ["", "long enough text"]
    three = ('<think>first part here {"bbox_2d": [0, 0, 1, 1]} mid {"bbox_2d": [0, 0, 2, 2]} '
             "and the last part</think><answer>x</answer>")
    assert length_reward([three]) == [0.3]  # "mid": 3 chars
    assert length_reward([three], saturation_chars=2) == [1.0]
    weighted = compute_rewards([RewardSpec("length", 0.1)], [three])[1]
    assert weighted == [0.03]  # min(0.10, 0.01 * 3)


def test_registry_custom_rewards_and_dotted_paths():
    @register("test_brevity")
    def brevity(completions, **kwargs):
        return [1.0 if len(c) < 10 else None for c in completions]

    raw, total = compute_rewards([RewardSpec("test_brevity", 2.0)], ["short", "a much longer text"])
    assert raw["test_brevity"] == [1.0, None] and total == [2.0, 0.0]
    assert get_reward("vlir.train.rewards:length_reward") is length_reward
    assert get_reward("vlir.train.rewards.format_reward") is format_reward
    with pytest.raises(ValueError, match="unknown reward"):
        get_reward("nope")
    with pytest.raises(ValueError, match="cannot import"):
        get_reward("no_such_module:fn")


def test_reward_spec_parsing_and_bad_lengths():
    assert RewardSpec.parse("format") == RewardSpec("format", 1.0)
    assert RewardSpec.parse({"name": "length", "weight": 0.1, "kwargs": {"saturation_chars": 5}}) == \
        RewardSpec("length", 0.1, {"saturation_chars": 5})
    with pytest.raises(ValueError, match="needs 'name'"):
        RewardSpec.parse({"weight": 1})

    @register("test_short")
    def short(completions, **kwargs):
        return [1.0]

    with pytest.raises(ValueError, match="returned 1 values for 2"):
        compute_rewards([RewardSpec("test_short")], ["a", "b"])
