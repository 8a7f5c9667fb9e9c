"""Quality checks on an annotated chain: each a small named function returning a CheckResult.

The build runs :func:`run_checks` on every (sample, chain) pair; every record stores all results
(name, passed, figure, detail) and a record's reject reasons are the names of the failed checks
(:func:`failed_names`). Thresholds live in :class:`CheckConfig`, part of the build config, so a
stricter corpus is a config change, not a code change.

Boxes are in original-image pixels (see :mod:`vlir.records`). The crop rule clips a box before
cutting, so a box a few pixels outside the image is harmless (``clip_tolerance``); the size checks
look at the clipped box, which is what the crop will show.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, ClassVar

from vlir import geometry, metrics, source_table
from vlir.config import Config, option
from vlir.records import Box, Chain, CheckResult, Look, Sample, Think

#: characters text may hold besides printable ones (a thought may have lines and tabs)
_ALLOWED_CONTROLS = {"\n", "\t"}


@lru_cache(maxsize=None)
def reserved_strings() -> tuple[str, ...]:
    """Strings a thought, label or answer must not hold, because the chat rendering or the rollout
    loop gives them a meaning: the protocol's stop strings, answer tag and call key
    (:mod:`vlir.protocol`), the chat's think/answer tags (:class:`vlir.models.chat.ChatConfig`) and
    every registered model family's special and added tokens (``<|im_end|>``, vision tokens,
    ``<tool_call>``...). Read from their owners, never listed here."""
    from vlir import protocol
    from vlir.models.chat import ChatConfig
    from vlir.models.registry import families
    from vlir.models.qwen3_vl import QWEN3_ADDED_TOKENS

    chat = ChatConfig()
    found = [*protocol.STOP_STRINGS, protocol.ANSWER_OPEN, protocol.CALL_KEY, chat.think_open.strip(),
             chat.think_close.strip(), chat.answer_open.strip(), chat.answer_close.strip(), *QWEN3_ADDED_TOKENS]
    for family in families():
        found.extend(family.special_tokens.values())
    return tuple(sorted({s for s in found if s}, key=lambda s: (-len(s), s)))


def _special_token(text: str) -> str | None:
    from vlir.protocol import SPECIAL_TOKEN

    m = SPECIAL_TOKEN.search(text)
    return m.group(0) if m else None


def control_characters(text: str) -> list[str]:
    """The control and format characters in ``text`` (NUL, ESC of ANSI sequences, CR, bidi
    overrides and isolates, zero-width marks...) as ``U+XXXX``; newlines and tabs are allowed."""
    return sorted({f"U+{ord(c):04X}" for c in text if c not in _ALLOWED_CONTROLS
                   and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")})


def reserved_in(text: str) -> str | None:
    """The first reserved string (:func:`reserved_strings`, or any ``<|...|>`` token) in ``text``."""
    for s in reserved_strings():
        if s in text:
            return s
    return _special_token(text)


@dataclass(frozen=True)
class CheckConfig(Config):
    """Thresholds of the checks (the ``checks`` section of a build config). The one home of these
    numbers: the grounded annotator reads them from here too, so its chains pass the checks."""

    kind: ClassVar[str] = "check"
    section: ClassVar[str] = "checks"

    min_side: float = option(28.0, "Smallest allowed side of a look box in pixels (one 28 px "
                                   "Qwen2.5-VL patch).", ge=0)
    max_area_ratio: float = option(0.9, "Largest allowed look-box area over image area; above it "
                                        "the look is no zoom.", ge=0, le=1)
    grounding_min: float = option(0.5, "Least overlap of each look with some evidence region: max "
                                       "of IoU and containment either way.", ge=0, le=1)
    vqa_min: float = option(source_table.ANSWER_THRESHOLDS["vqa_min"], "Least VQA accuracy of the chain's answer (TextVQA); 0.3 = one "
                                 "annotator agrees.", ge=0, le=1)
    anls_min: float = option(source_table.ANSWER_THRESHOLDS["anls_min"], "Least ANLS of the chain's answer (DocVQA, InfographicsVQA).", ge=0, le=1)
    redundant_iou: float = option(0.9, "A look whose IoU with an earlier look reaches this is "
                                       "redundant.", ge=0, le=1)
    max_looks: int = option(4, "Most look steps in one chain.", ge=1)
    clip_tolerance: float = option(2.0, "Pixels a look box may stick out of the image (it is "
                                        "clipped before cropping).", ge=0)
    require_look: bool = option(True, "A chain without any look step fails the schema check.")
    max_question_chars: int = option(4000, "Longest question (characters); a longer one fails "
                                           "text_length.", ge=1)
    max_thought_chars: int = option(4000, "Longest think step (characters); a runaway teacher "
                                          "thought fails text_length.", ge=1)
    max_answer_chars: int = option(1000, "Longest answer (characters).", ge=1)
    max_label_chars: int = option(200, "Longest look label (characters).", ge=1)


CheckFn = Callable[[Sample, Chain, CheckConfig], CheckResult]


def _looks(chain: Chain) -> list[Look]:
    return chain.looks


def _fmt(box: Box) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box.as_list()) + "]"


def schema(sample: Sample, chain: Chain | None, config: CheckConfig) -> CheckResult:
    """The chain is well formed: steps present, every thought non-empty, a non-empty answer, at
    least one look (unless ``require_look`` is off). What the text holds is :func:`text_safe`'s."""
    problems: list[str] = []
    if chain is None:
        return CheckResult("schema", False, 1.0, "no chain")
    if not chain.steps:
        problems.append("no steps")
    for i, step in enumerate(chain.steps):
        if isinstance(step, Think):
            if not isinstance(step.text, str) or not step.text.strip():
                problems.append(f"step {i}: empty thought")
        elif isinstance(step, Look):
            if not isinstance(step.box, Box):
                problems.append(f"step {i}: look without a box")
        else:
            problems.append(f"step {i}: unknown step type {type(step).__name__}")
    if not isinstance(chain.answer, str) or not chain.answer.strip():
        problems.append("empty answer")
    if config.require_look and not any(isinstance(s, Look) for s in chain.steps):
        problems.append("no look step")
    return CheckResult("schema", not problems, float(len(problems)), "; ".join(problems))


def box_in_image(sample: Sample, chain: Chain, config: CheckConfig) -> CheckResult:
    """Every look box lies inside the image, give or take ``clip_tolerance`` pixels. Figure: the
    largest overshoot in pixels."""
    if sample.width <= 0 or sample.height <= 0:
        return CheckResult("box_in_image", False, None, "image size unknown")
    worst, where = 0.0, ""
    for i, look in enumerate(_looks(chain)):
        b = look.box
        over = max(0.0, -b.x1, -b.y1, b.x2 - sample.width, b.y2 - sample.height)
        if geometry.clip(b, sample.width, sample.height) is None:
            over = max(over, float("inf"))
        if over > worst:
            worst, where = over, f"look {i} {_fmt(b)} vs image {sample.width}x{sample.height}"
    passed = worst <= config.clip_tolerance
    value = worst if worst != float("inf") else None
    detail = "" if passed else (where + (" lies outside" if value is None else f" overshoots {worst:.1f}px"))
    return CheckResult("box_in_image", passed, value, detail)


def box_min_side(sample: Sample, chain: Chain, config: CheckConfig) -> CheckResult:
    """Every clipped look box is at least ``min_side`` pixels on each side (or as large as the
    image where the image itself is smaller). Figure: the smallest side seen."""
    smallest, where, passed = None, "", True
    for i, look in enumerate(_looks(chain)):
        clipped = geometry.clip(look.box, sample.width, sample.height)
        side = 0.0 if clipped is None else min(clipped.width, clipped.height)
        need_w = min(config.min_side, float(sample.width))
        need_h = min(config.min_side, float(sample.height))
        ok = clipped is not None and clipped.width >= need_w - 1e-6 and clipped.height >= need_h - 1e-6
        if smallest is None or side < smallest:
            smallest = side
        if not ok and passed:
            passed, where = False, f"look {i} {_fmt(look.box)} has a side of {side:.1f}px < {config.min_side:g}"
    return CheckResult("box_min_side", passed, smallest, where)


def box_not_whole_image(sample: Sample, chain: Chain, config: CheckConfig) -> CheckResult:
    """No look covers more than ``max_area_ratio`` of the image (such a look zooms into nothing).
    Figure: the largest area ratio."""
    largest, where = 0.0, ""
    if sample.width <= 0 or sample.height <= 0:
        return CheckResult("box_not_whole_image", False, None, "image size unknown")
    for i, look in enumerate(_looks(chain)):
        clipped = geometry.clip(look.box, sample.width, sample.height)
        ratio = 0.0 if clipped is None else geometry.area_ratio(clipped, sample.width, sample.height)
        if ratio > largest:
            largest, where = ratio, f"look {i} covers {ratio:.2f} of the image"
    passed = largest <= config.max_area_ratio
    return CheckResult("box_not_whole_image", passed, largest, "" if passed else where)


def grounding_score(box: Box, evidence_boxes: list[Box]) -> float:
    """How well one look is backed by evidence: the best over regions of IoU, the share of the
    region inside the look (a look widened around a word) and the share of the look inside the
    region (a look at part of a large object)."""
    best = 0.0
    for e in evidence_boxes:
        best = max(best, geometry.iou(box, e), geometry.containment(e, box), geometry.containment(box, e))
    return best


def grounding(sample: Sample, chain: Chain, config: CheckConfig) -> CheckResult:
    """Each look overlaps some evidence region by at least ``grounding_min`` (see
    :func:`grounding_score`). Samples without evidence pass with a detail saying it was skipped.
    Figure: the weakest look's score."""
    if not sample.evidence:
        return CheckResult("grounding", True, None, "skipped: sample has no evidence regions")
    looks = _looks(chain)
    if not looks:
        return CheckResult("grounding", True, None, "skipped: chain has no look")
    boxes = [r.box for r in sample.evidence]
    scores = [grounding_score(look.box, boxes) for look in looks]
    weakest = min(scores)
    i = scores.index(weakest)
    passed = weakest >= config.grounding_min
    detail = "" if passed else f"look {i} {_fmt(looks[i].box)} overlaps evidence by {weakest:.2f}"
    return CheckResult("grounding", passed, weakest, detail)


def answer_correct(sample: Sample, chain: Chain, config: CheckConfig) -> CheckResult:
    """The chain's answer is right by the source's metric (:func:`vlir.metrics.is_correct` with
    this config's thresholds). Figure: the metric's value."""
    if not sample.answers:
        return CheckResult("answer_correct", False, None, "sample has no reference answer")
    try:
        value = metrics.score(sample.source, chain.answer, sample.answers)
        ok = metrics.is_correct(sample.source, chain.answer, sample.answers,
                                vqa_min=config.vqa_min, anls_min=config.anls_min)
    except ValueError as exc:
        return CheckResult("answer_correct", False, None, str(exc))
    detail = "" if ok else f"answer {chain.answer!r} scores {value:.2f} against {list(sample.answers)[:5]!r}"
    return CheckResult("answer_correct", ok, value, detail)


def no_redundant_look(sample: Sample, chain: Chain, config: CheckConfig) -> CheckResult:
    """No look repeats an earlier one (IoU < ``redundant_iou``). Figure: the largest IoU between a
    look and an earlier look."""
    looks = _looks(chain)
    worst, where = 0.0, ""
    for j in range(1, len(looks)):
        for i in range(j):
            overlap = geometry.iou(looks[i].box, looks[j].box)
            if overlap > worst:
                worst, where = overlap, f"look {j} repeats look {i} (IoU {overlap:.2f})"
    passed = worst < config.redundant_iou
    return CheckResult("no_redundant_look", passed, worst, "" if passed else where)


def max_looks(sample: Sample, chain: Chain, config: CheckConfig) -> CheckResult:
    """At most ``max_looks`` look steps. Figure: the number of looks."""
    n = len(_looks(chain))
    passed = n <= config.max_looks
    return CheckResult("max_looks", passed, float(n), "" if passed else f"{n} looks > {config.max_looks}")


def _texts(sample: Sample, chain: Chain) -> list[tuple[str, str, str]]:
    """``(where, kind, text)`` of every text a record carries into a chat."""
    out = [("question", "question", sample.question)]
    for i, step in enumerate(chain.steps):
        if isinstance(step, Think) and isinstance(step.text, str):
            out.append((f"step {i}", "thought", step.text))
        elif isinstance(step, Look) and isinstance(step.label, str):
            out.append((f"step {i} label", "label", step.label))
    if isinstance(chain.answer, str):
        out.append(("answer", "answer", chain.answer))
    return out


def text_length(sample: Sample, chain: Chain, config: CheckConfig) -> CheckResult:
    """Question, thoughts, labels and answer within their ``max_*_chars`` (a 3 MB thought or a 1 MB
    question is no training text). Figure: the longest text's length over its limit."""
    limits = {"question": config.max_question_chars, "thought": config.max_thought_chars,
              "label": config.max_label_chars, "answer": config.max_answer_chars}
    worst, where = 0.0, ""
    for name, kind, text in _texts(sample, chain):
        ratio = len(text) / limits[kind]
        if ratio > worst:
            worst, where = ratio, f"{name}: {len(text)} characters > {limits[kind]} ({kind})"
    passed = worst <= 1.0
    return CheckResult("text_length", passed, worst, "" if passed else where)


def text_safe(sample: Sample, chain: Chain, config: CheckConfig) -> CheckResult:
    """No control or format characters (NUL, ANSI escapes, CR, bidi overrides) in any text, no
    protocol string or special token (:func:`reserved_strings`) in a thought, label or answer, and
    no special token in the question: text that would end a round, open an answer, fake a crop call
    or a chat turn when rendered. Figure: the number of problems."""
    problems = []
    for name, kind, text in _texts(sample, chain):
        if bad := control_characters(text):
            problems.append(f"{name}: control characters {', '.join(bad[:5])}")
        found = _special_token(text) if kind == "question" else reserved_in(text)
        if found:
            problems.append(f"{name}: holds {found!r}, which the chat protocol reserves")
    return CheckResult("text_safe", not problems, float(len(problems)), "; ".join(problems[:3]))


#: All checks, in the order they run and are stored.
CHECKS: tuple[CheckFn, ...] = (schema, text_length, text_safe, box_in_image, box_min_side, box_not_whole_image,
                               grounding, answer_correct, no_redundant_look, max_looks)


def run_checks(sample: Sample, chain: Chain | None,
               config: CheckConfig | None = None) -> tuple[CheckResult, ...]:
    """Run every check; a missing chain gives only the failed ``schema`` result."""
    config = config or CheckConfig()
    if chain is None:
        return (schema(sample, None, config),)
    return tuple(check(sample, chain, config) for check in CHECKS)


def failed_names(results: tuple[CheckResult, ...] | list[CheckResult]) -> tuple[str, ...]:
    """A record's reject reasons: the names of its failed checks, in check order."""
    return tuple(r.name for r in results if not r.passed)
