"""R-GRPO rewards: plain functions, composed by name, each logged on its own.

Why plain functions: a reward is the part of GRPO people change most, so it must be testable alone
and addable without touching the trainer. The contract follows TRL's custom-reward contract: a
function takes ``completions`` (one string per trajectory: the assistant text the policy wrote, crop
images removed) plus keyword columns, and returns one float, or None ("does not apply"), per
completion. The trainer passes these columns, one entry per trajectory:

- ``answers``: the gold answer strings; ``source``: the sample's source name (picks the metric);
- ``question``; ``boxes``: the boxes the rollout engine actually cropped (original pixels);
- ``rewards``: the raw values of the rewards computed *before* this one in the recipe's list (so a
  reward can be gated on another, as ``region`` is on ``accuracy``).

Two sets live here. vlir's own (``accuracy``, ``format``, ``region``, ``length``) return values in
[0, 1]; the recipe's weights give the paper's magnitudes (accuracy 1.0, format 0.5, region 0.5 paid
only with a correct answer, length 0.1 x ``min(1, shortest segment / 10 chars)``). They follow the
paper but are *not* the released code: accuracy uses each source's official metric instead of the
authors' exact match + LLM judge, and ``format`` is stricter (it wants ``<think>…</think>`` and
every bbox call good, which the released model, never closing ``</think>``, fails). The authors' own
functions, reproduced exactly, are ``vlmr3/accuracy``, ``vlmr3/format``, ``vlmr3/repeat`` and
``vlmr3/length`` (:mod:`vlir.train.rewards_vlmr3`); ``recipes/grpo_qwen2_5_vl_7b.yaml`` uses them.

How answers and crop calls are read is :mod:`vlir.protocol`'s alone (the rollout engine and
``vlir eval`` read them the same way): :func:`extract_answer` and :func:`parse_boxes` delegate.

Sources and configs add their own rewards with :func:`register`, or name any importable function
by dotted path (``my_pkg.rewards:brevity``) in the recipe.
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from vlir import protocol

log = logging.getLogger(__name__)

RewardFn = Callable[..., list]

_REGISTRY: dict[str, RewardFn] = {}

# The bbox JSON as the paper's length reward splits on it (balanced or not, up to the closing ]}).
BBOX_SPLIT_RE = re.compile(r"\{\s*\"bbox_2d\"\s*:\s*\[[^\]]*\]\s*\}")
FORMAT_RE = re.compile(r"\s*<think>(?:(?!<think>|<answer>).)*</think>\s*<answer>((?!<answer>).)*</answer>\s*",
                       re.DOTALL)


def register(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator: make ``fn`` available to recipes under ``name`` (later registration wins)."""

    def deco(fn: RewardFn) -> RewardFn:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            log.info("reward %r re-registered by %s.%s", name, fn.__module__, fn.__qualname__)
        _REGISTRY[name] = fn
        return fn

    return deco


def reward_names() -> list[str]:
    return sorted(_REGISTRY)


def get_reward(name: str) -> RewardFn:
    """A registered reward, or an importable function named ``package.module:function`` (or
    ``package.module.function``). Raises ValueError naming the choices."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    module_name, sep, attr = name.partition(":") if ":" in name else name.rpartition(".")
    if sep and module_name:
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"reward {name!r}: cannot import it ({exc})") from None
        if callable(fn):
            return fn
    raise ValueError(f"unknown reward {name!r}; registered: {', '.join(reward_names())}, "
                     "or give an importable 'module:function'")


# ---------------------------------------------------------------------------------------------
# Parsing helpers (shared with the trainer's metrics)
# ---------------------------------------------------------------------------------------------

def clean(text: str) -> str:
    """Drop special tokens (``<|vision_start|>``, ``<|im_end|>``...) a decoder may have left in."""
    return protocol.strip_special(text)


def extract_answer(text: str) -> str | None:
    """The answer :mod:`vlir.protocol` reads (the one ``vlir eval`` scores): the last
    ``<answer>…</answer>``, an unclosed final one, else the last line; None for empty text.

    >>> extract_answer("<think>it says OPEN</think><answer> open </answer>")
    'open'
    >>> extract_answer("") is None
    True
    """
    return protocol.extract_answer(text)


def parse_boxes(text: str) -> tuple[list[list[float]], bool]:
    """The crop calls the rollout loop acts on (:func:`vlir.protocol.parse_response`, model
    pixels), and whether the text is free of bad calls *and* of ``bbox_2d`` mentions no call
    stop closed (an unclosed or stray call).

    >>> parse_boxes('look {"bbox_2d": [1, 2, 30, 40]} then {"bbox_2d": [5, 5]}')
    ([[1.0, 2.0, 30.0, 40.0]], False)
    """
    r = protocol.parse_response(text)
    stray = any(end.call is None and protocol.CALL_KEY in end.text for end in r.rounds)
    return [list(b) for b in r.calls], not r.bad_calls and not stray


def reasoning_segments(text: str) -> list[str]:
    """The thinking text split at each bbox JSON (whitespace collapsed): the paper's segments.
    Empty inner segments (two crops back to back) are dropped; the first and last are kept even
    when empty, so a trajectory that opens with a crop scores zero length.

    >>> reasoning_segments('<think>the sign {"bbox_2d": [0, 0, 9, 9]} reads open</think><answer>open</answer>')
    ['the sign', 'reads open']
    """
    thinking = clean(text).split("<answer>")[0].replace("<think>", "").replace("</think>", "")
    thinking = re.sub(r"\s+", " ", thinking).strip()
    parts = [p.strip() for p in BBOX_SPLIT_RE.split(thinking)]
    last = len(parts) - 1
    return [p for i, p in enumerate(parts) if p or i in (0, last)]


# ---------------------------------------------------------------------------------------------
# The paper's rewards
# ---------------------------------------------------------------------------------------------

@register("accuracy")
def accuracy_reward(completions: Sequence[str], answers: Sequence[Sequence[str]], source: Sequence[str],
             **kwargs: Any) -> list[float]:
    """1.0 when the answer (:func:`extract_answer`, the one ``vlir eval`` scores) is right by the
    source's metric (``vlir.metrics.is_correct``: EvalAI match for TextVQA, ANLS >= 0.5 for
    DocVQA/InfoVQA, exact match for GQA, true/false for VSR, the letter for M3CoT), else 0.0.
    Without an ``<answer>`` tag the last line is the answer, as the released evaluator reads it.

    >>> accuracy_reward(["<think>..</think><answer>Open</answer>", "<answer>closed</answer>", "so\\nopen", "x"],
    ...                 answers=[["open"]] * 4, source=["textvqa"] * 4)
    [1.0, 0.0, 1.0, 0.0]
    """
    from vlir import metrics

    out = []
    for text, gold, src in zip(completions, answers, source, strict=True):
        pred = extract_answer(text)
        out.append(1.0 if pred is not None and metrics.is_correct(src, pred, list(gold)) else 0.0)
    return out


@register("format")
def format_reward(completions: Sequence[str], **kwargs: Any) -> list[float]:
    """1.0 for the ``<think>…</think><answer>…</answer>`` shape (one answer, at the end, crops and
    text inside the think block) with every bbox JSON parseable, else 0.0.

    >>> format_reward(['<think>see {"bbox_2d": [0, 0, 5, 5]} ok</think><answer>a</answer>',
    ...                '<think>see {"bbox_2d": [0, 0, 5]} ok</think><answer>a</answer>',
    ...                '<answer>a</answer>'])
    [1.0, 0.0, 0.0]
    """
    out = []
    for text in completions:
        shaped = FORMAT_RE.fullmatch(clean(text)) is not None
        out.append(1.0 if shaped and parse_boxes(text)[1] else 0.0)
    return out


@register("region")
def region_reward(completions: Sequence[str], rewards: dict[str, list] | None = None,
           boxes: Sequence[Sequence[Any]] | None = None, **kwargs: Any) -> list[float]:
    """1.0 when at least one valid box was used and every bbox JSON parsed — paid only when the
    answer is correct (``rewards["accuracy"] == 1.0``; computed here when the recipe lists
    ``region`` without ``accuracy`` before it). ``boxes`` (the crops the engine actually made)
    overrides the count of parsed boxes when given.

    >>> texts = ['<think>{"bbox_2d": [0, 0, 5, 5]}</think><answer>a</answer>',
    ...          '<think>no look</think><answer>a</answer>',
    ...          '<think>{"bbox_2d": [0, 0, 5, 5]}</think><answer>b</answer>']
    >>> region_reward(texts, rewards={"accuracy": [1.0, 1.0, 0.0]})
    [1.0, 0.0, 0.0]
    """
    rewards = rewards or {}
    correct = rewards.get("accuracy")
    if correct is None:
        correct = accuracy_reward(completions, **kwargs)
    out = []
    for i, text in enumerate(completions):
        parsed, all_ok = parse_boxes(text)
        used = len(boxes[i]) if boxes is not None else len(parsed)
        out.append(1.0 if correct[i] == 1.0 and all_ok and used >= 1 else 0.0)
    return out


@register("length")
def length_reward(completions: Sequence[str], saturation_chars: int = 10, **kwargs: Any) -> list[float]:
    """A capped bonus for non-trivial reasoning between crops: ``min(1, shortest segment /
    saturation_chars)`` in characters (weight 0.1 gives the paper's ``min(0.10, 0.01 * chars)``).

    >>> length_reward(['<think>the sign {"bbox_2d": [0, 0, 9, 9]} ok</think><answer>a</answer>',
    ...                '<think>{"bbox_2d": [0, 0, 9, 9]} it reads open</think><answer>a</answer>'])
    [0.2, 0.0]
    """
    out = []
    for text in completions:
        segments = reasoning_segments(text)
        shortest = min((len(s) for s in segments), default=0)
        out.append(min(1.0, shortest / saturation_chars))
    return out


# ---------------------------------------------------------------------------------------------
# Composition
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RewardSpec:
    """One entry of a recipe's ``rewards`` list: a registered name or dotted path, its weight in
    the total, and keyword arguments bound to the function (``length``'s ``saturation_chars``)."""

    name: str
    weight: float = 1.0
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, entry: "str | dict[str, Any] | RewardSpec") -> "RewardSpec":
        if isinstance(entry, RewardSpec):
            return entry
        if isinstance(entry, str):
            return cls(entry)
        unknown = set(entry) - {"name", "weight", "kwargs"}
        if unknown or "name" not in entry:
            raise ValueError(f"a reward entry needs 'name' (and optional 'weight', 'kwargs'); got {entry}")
        return cls(str(entry["name"]), float(entry.get("weight", 1.0)), dict(entry.get("kwargs") or {}))


PAPER_REWARDS = (RewardSpec("accuracy", 1.0), RewardSpec("format", 0.5), RewardSpec("region", 0.5),
                 RewardSpec("length", 0.1))


def compute_rewards(specs: Sequence[RewardSpec], completions: Sequence[str],
                    **columns: Any) -> tuple[dict[str, list[float | None]], list[float]]:
    """Run each reward in order; returns the raw values by name and the weighted total per
    completion (a None value adds nothing to the total). Each function sees the raw values of the
    rewards before it as ``rewards=``.

    >>> texts = ['<think>the sign says {"bbox_2d": [0, 0, 4, 4]} it reads open</think><answer>open</answer>',
    ...          '<think>the sign says {"bbox_2d": [0, 0, 4, 4]} it reads shut</think><answer>shut</answer>',
    ...          'shut']
    >>> raw, total = compute_rewards(PAPER_REWARDS, texts, answers=[["open"]] * 3, source=["textvqa"] * 3)
    >>> raw["accuracy"], raw["region"], total
    ([1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.1, 0.6, 0.04])
    """
    raw: dict[str, list[float | None]] = {}
    total = [0.0] * len(completions)
    for spec in specs:
        fn = get_reward(spec.name)
        values = list(fn(completions, rewards=dict(raw), **{**columns, **spec.kwargs}))
        if len(values) != len(completions):
            raise ValueError(f"reward {spec.name!r} returned {len(values)} values for {len(completions)} completions")
        raw[spec.name] = values
        for i, v in enumerate(values):
            if v is not None:
                total[i] += spec.weight * float(v)
    return raw, [round(t, 10) for t in total]


from vlir.train import rewards_vlmr3  # noqa: E402,F401  (registers vlmr3/*: it imports register from here)
