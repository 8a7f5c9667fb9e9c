"""What R-GRPO logs per step, and the run summary: the figures RL engineers read, under TRL's names
where TRL has one (``reward``, ``reward_std``, ``rewards/<name>/mean``, ``frac_reward_zero_std``,
``kl``, ``entropy``, ``clip_ratio/low_mean``, ``completions/mean_length``, ``grad_norm``,
``learning_rate``) and verl's otherwise (``timing_s/<phase>``, ``response_length/clip_ratio``-style
keys under ``completions/``).

Why a module of its own: the trainer only gathers raw pieces (trajectories, reward columns, loss
sums, phase timings); turning them into means is plain arithmetic that is testable without a model,
and the same summary (first vs last quarter) is printed by ``make train``, drawn into ``rewards.png``
and asserted on by the learning test.

Every per-step value is a ``(numerator, denominator)`` pair so the trainer can all-reduce one tensor
across ranks and divide after; a key with denominator 0 is logged as None (no crop made: no hit rate).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Sequence

from vlir import geometry

HIT_COVERAGE = 0.5  # a crop "hits" when it covers at least half of an evidence region of the prompt
SUMMARY_KEYS = ("reward", "accuracy", "crops_per_trajectory", "crops/hit_rate")
PLOT_KEYS = ("reward", "rewards/accuracy/mean", "rewards/format/mean", "rewards/region/mean",
             "rewards/length/mean", "accuracy", "crops_per_trajectory", "crops/hit_rate", "entropy",
             "completions/mean_length")


def crop_hits(boxes: Sequence[Any], evidence: Sequence[Any]) -> int:
    """How many of a trajectory's crop boxes cover at least :data:`HIT_COVERAGE` of one of the
    prompt's evidence boxes (all in original pixels)."""
    return sum(any(geometry.containment(ev, box) >= HIT_COVERAGE for ev in evidence) for box in boxes)


def _std(values: Sequence[float]) -> float:
    """The unbiased std (``torch.std``'s, as TRL and the advantages use); 0.0 for one value."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def step_values(trajs: Sequence[Any], evidence: Sequence[Sequence[Any]], raw: dict[str, list],
                total: Sequence[float], advantages: Sequence[float], group_size: int,
                max_new_tokens: int, sums: dict[str, float]) -> dict[str, tuple[float, float]]:
    """The per-step ``(numerator, denominator)`` pairs of this rank.

    ``evidence[i]`` is trajectory ``i``'s prompt's evidence boxes; ``raw`` the reward columns the
    trainer computed (``accuracy`` is read from there, never recomputed); ``sums`` the loss pass's
    token-weighted sums (``loss``, ``clip_low``, ``clip_high``, ``kl``, ``entropy``, ``tokens``).
    The std figures are this rank's (exact on one process; a mean over ranks otherwise).
    """
    n = len(trajs)
    groups = [list(total[i:i + group_size]) for i in range(0, n, group_size)]
    lengths = [t.num_sampled for t in trajs]
    crops = [len(t.crops) for t in trajs]
    hits = [crop_hits(t.boxes, ev) for t, ev in zip(trajs, evidence)]
    v: dict[str, tuple[float, float]] = {
        "loss": (sums["loss"], 1.0),
        "reward": (float(sum(total)), n),
        "reward_std": (sum(_std(g) for g in groups), len(groups)),
        "frac_reward_zero_std": (float(sum(_std(g) == 0.0 for g in groups)), len(groups)),
        "advantages/std": (_std(list(advantages)), 1.0),
        "advantages/max_abs": (max((abs(a) for a in advantages), default=0.0), 1.0),
        "entropy": (sums["entropy"], sums["tokens"]),
        "clip_ratio/low_mean": (sums["clip_low"], sums["tokens"]),
        "clip_ratio/high_mean": (sums["clip_high"], sums["tokens"]),
        "clip_ratio/region_mean": (sums["clip_low"] + sums["clip_high"], sums["tokens"]),
        "completions/mean_length": (float(sum(lengths)), n),
        "completions/max_length": (float(max(lengths, default=0)), 1.0),
        "completions/clipped_ratio": (float(sum(t.finish_reason == "max_new_tokens" for t in trajs)), n),
        "crops_per_trajectory": (float(sum(crops)), n),
        "crops/hit_rate": (float(sum(hits)), float(sum(crops))),
        "crops/bad_box_rate": (float(sum(t.finish_reason == "bad_box" for t in trajs)), n),
    }
    if "kl" in sums:
        v["kl"] = (sums["kl"], sums["tokens"])
    for name, vals in raw.items():
        present = [float(x) for x in vals if x is not None]
        v[f"rewards/{name}/mean"] = (sum(present), len(present))
        v[f"rewards/{name}/std"] = (_std(present), 1.0 if present else 0.0)
    if "accuracy" in raw:  # the accuracy reward as computed for the advantages
        acc = [float(x or 0.0) for x in raw["accuracy"]]
        v["accuracy"] = (sum(acc), n)
        v["accuracy/with_crop"] = (sum(a for a, c in zip(acc, crops) if c), float(sum(bool(c) for c in crops)))
        v["accuracy/no_crop"] = (sum(a for a, c in zip(acc, crops) if not c), float(sum(not c for c in crops)))
    for reason in ("answer", "eos", "max_new_tokens", "max_crops", "bad_box"):
        v[f"finish/{reason}"] = (float(sum(t.finish_reason == reason for t in trajs)), n)
    return v


def console_line(row: dict[str, Any], max_steps: int) -> str:
    """The one line a person watches: reward and its parts, what the policy does, how the update
    went, where the time goes."""
    def f(key: str, fmt: str = ".3f") -> str:
        value = row.get(key)
        return "-" if value is None else format(value, fmt)

    parts = [f"step {row['step']}/{max_steps}", f"reward {f('reward')}±{f('reward_std')}",
             f"acc {f('accuracy')}", f"crops {f('crops_per_trajectory', '.2f')}", f"hit {f('crops/hit_rate', '.2f')}",
             f"len {f('completions/mean_length', '.1f')}", f"adv_std {f('advantages/std', '.2f')}",
             f"entropy {f('entropy')}", f"clip {f('clip_ratio/region_mean', '.3f')}",
             f"grad_norm {f('grad_norm')}"]
    if row.get("kl") is not None:
        parts.append(f"kl {f('kl', '.4f')}")
    parts.append(f"time roll/ref/fb/opt {f('timing_s/rollout', '.1f')}/{f('timing_s/ref', '.1f')}/"
                 f"{f('timing_s/forward_backward', '.1f')}/{f('timing_s/optimizer', '.1f')}s")
    return " ".join(parts)


def summary(rows: Sequence[dict[str, Any]], keys: Sequence[str] = SUMMARY_KEYS) -> dict[str, dict[str, float | None]]:
    """First-quarter vs last-quarter means of ``keys`` over the logged steps (at least one step per
    quarter): ``{key: {"first": .., "last": .., "change": ..}}``; None where a quarter has no value."""
    if not rows:
        return {}
    q = max(1, len(rows) // 4)
    out: dict[str, dict[str, float | None]] = {}
    for key in keys:
        def mean(part):
            vals = [r[key] for r in part if isinstance(r.get(key), (int, float))]
            return sum(vals) / len(vals) if vals else None
        first, last = mean(rows[:q]), mean(rows[-q:])
        out[key] = {"first": first, "last": last,
                    "change": None if first is None or last is None else last - first}
    return out


def summary_text(figures: dict[str, dict[str, float | None]], steps: int) -> str:
    """The summary as lines: ``key  first -> last  (+change)``."""
    def f(x):
        return "-" if x is None else f"{x:.3f}"

    q = max(1, steps // 4)
    lines = [f"R-GRPO over {steps} steps: first {q} vs last {q} steps (means)"]
    for key, v in figures.items():
        change = "" if v["change"] is None else f"  ({v['change']:+.3f})"
        lines.append(f"  {key:<22} {f(v['first'])} -> {f(v['last'])}{change}")
    return "\n".join(lines)


def write_summary(metrics_path: str | Path, out_path: str | Path) -> tuple[dict, str]:
    """Summarise a ``metrics.jsonl`` into ``out_path`` (``{"steps", "figures"}``); returns the
    figures and their text."""
    from vlir.train.plots import read_metrics

    rows = read_metrics(metrics_path)
    figures = summary(rows)
    Path(out_path).write_text(json.dumps({"steps": len(rows), "figures": figures}, indent=2) + "\n")
    return figures, summary_text(figures, len(rows))
