"""The R-GRPO step figures: each computed from what the trainer gathered (no model needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from vlir.records import Box
from vlir.train.grpo_metrics import console_line, crop_hits, step_values, summary, summary_text

SUMS = {"loss": 0.5, "clip_low": 1.0, "clip_high": 3.0, "entropy": 20.0, "tokens": 40.0}


def traj(crops: int, boxes=(), sampled: int = 10, finish: str = "answer"):
    return SimpleNamespace(crops=[object()] * crops, boxes=list(boxes), num_sampled=sampled,
                           finish_reason=finish)


def test_crop_hits_count_boxes_covering_half_an_evidence_region():
    ev = [Box(10, 10, 20, 20)]
    assert crop_hits([Box(8, 8, 22, 22), Box(15, 10, 30, 20), Box(16, 10, 30, 20), Box(50, 50, 60, 60)], ev) == 2
    assert crop_hits([Box(0, 0, 5, 5)], []) == 0


def test_step_values_read_accuracy_from_the_reward_and_split_by_cropping():
    ev = [Box(10, 10, 20, 20)]
    trajs = [traj(1, [Box(10, 10, 20, 20)]), traj(2, [Box(10, 10, 20, 20), Box(50, 50, 60, 60)]),
             traj(0, sampled=64, finish="max_new_tokens"), traj(0, finish="bad_box")]
    raw = {"accuracy": [1.0, 1.0, 0.0, 1.0], "format": [1.0, None, 0.0, 0.0]}
    v = step_values(trajs, [ev] * 4, raw, [2.0, 2.0, 0.0, 1.0], [1.0, 1.0, -1.5, -0.5], 2, 64, SUMS)
    mean = {k: (n / d if d else None) for k, (n, d) in v.items()}
    assert mean["accuracy"] == mean["rewards/accuracy/mean"] == 0.75
    assert mean["accuracy/with_crop"] == 1.0 and mean["accuracy/no_crop"] == 0.5
    assert mean["rewards/format/mean"] == pytest.approx(1 / 3)  # None = does not apply
    assert mean["crops_per_trajectory"] == 0.75 and mean["crops/hit_rate"] == pytest.approx(2 / 3)
    assert mean["crops/bad_box_rate"] == 0.25 and mean["completions/clipped_ratio"] == 0.25
    assert mean["completions/max_length"] == 64 and mean["completions/mean_length"] == 23.5
    assert mean["reward"] == 1.25  # groups (2, 2) and (0, 1): unbiased stds 0 and 0.707
    assert mean["reward_std"] == pytest.approx(0.5 ** 0.5 / 2)
    assert mean["frac_reward_zero_std"] == 0.5
    assert mean["clip_ratio/low_mean"] == 1 / 40 and mean["clip_ratio/region_mean"] == 4 / 40
    assert mean["entropy"] == 0.5 and "kl" not in mean
    assert "kl" in step_values(trajs, [ev] * 4, raw, [0.0] * 4, [0.0] * 4, 2, 64, dict(SUMS, kl=4.0))


def test_no_crops_means_no_hit_rate_and_no_accuracy_without_the_reward():
    v = step_values([traj(0)] * 2, [[]] * 2, {"format": [1.0, 1.0]}, [1.0, 1.0], [0.0, 0.0], 2, 64, SUMS)
    assert v["crops/hit_rate"][1] == 0 and "accuracy" not in v


def test_summary_compares_first_and_last_quarter_and_prints_it():
    rows = [{"step": i, "reward": float(i), "accuracy": None} for i in range(1, 9)]
    s = summary(rows, keys=("reward", "accuracy"))
    assert s["reward"] == {"first": 1.5, "last": 7.5, "change": 6.0}
    assert s["accuracy"] == {"first": None, "last": None, "change": None}
    text = summary_text(s, len(rows))
    assert "first 2 vs last 2" in text and "1.500 -> 7.500  (+6.000)" in text
    line = console_line(dict(rows[0], reward_std=0.1, kl=0.01), 8)
    assert line.startswith("step 1/8 reward 1.000±0.100") and "kl 0.0100" in line and "acc -" in line
