"""Answer matches without an official script in vlir's scope: VSR truth values, multiple-choice
option letters (M3CoT, ScienceQA) and ChartQA relaxed accuracy."""

from __future__ import annotations

import re

from vlir.metrics.textvqa import normalize_answer

_TRUE = frozenset({"true", "yes", "correct", "right", "1"})
_FALSE = frozenset({"false", "no", "incorrect", "wrong", "0"})


def truth_value(text: str | bool | int) -> bool | None:
    """``True``/``False`` for an answer that states one ("True.", "yes", "1", "The answer is
    false"), None otherwise (including answers that say both)."""
    if isinstance(text, bool):
        return text
    if isinstance(text, int):
        return bool(text) if text in (0, 1) else None
    words = set(re.findall(r"[a-z0-9]+", str(text).lower()))
    has_t, has_f = bool(words & _TRUE), bool(words & _FALSE)
    if has_t == has_f:
        return None
    return has_t


def vsr_match(pred: str, answer: str | bool | int) -> bool:
    """VSR: the prediction's truth value equals the label's ("true"/"false", 1/0, yes/no)."""
    p, g = truth_value(pred), truth_value(answer)
    return p is not None and p == g


_MC_PATTERNS = (
    re.compile(r"^\s*\(?([A-Z])\)?\s*[.:)]?\s*$", re.IGNORECASE),  # "B", "(b)", "B.", "B)"
    re.compile(r"answer\s*(?:is|:)?\s*(?:option\s*)?\(?([A-Z])\)?(?![A-Za-z])", re.IGNORECASE),
    re.compile(r"\(([A-Z])\)"),  # "... (B) ..."
    re.compile(r"^\s*([A-Z])\s*[.:)]\s"),  # "B. a sculpture"
    re.compile(r"(?:option|choice)\s*\(?([A-Z])\)?(?![A-Za-z])", re.IGNORECASE),
)


def mc_letter(text: str) -> str | None:
    """The option letter a multiple-choice answer names: ``"(B)"``, ``"B."``, ``"B) a sculpture"``,
    ``"The answer is B"``, ``"answer: (c)"``; None when none is named. A lone capital "A" inside
    a sentence ("A man ...") is not taken for an option."""
    if not text:
        return None
    for pattern in _MC_PATTERNS:
        m = pattern.search(text)
        if m:
            return m.group(1).upper()
    return None


def _to_float(text: str) -> float | None:
    text = text.strip().replace(",", "")
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100.0
        return float(text)
    except ValueError:
        return None


def relaxed_accuracy(pred: str, target: str, tol: float = 0.05) -> bool:
    """ChartQA relaxed accuracy: numbers within ``tol`` relative error of a non-zero target
    (``"12%"`` reads as 0.12; thousands separators are dropped, a small leniency over the
    reference), otherwise case-insensitive exact match."""
    p, t = _to_float(pred), _to_float(target)
    if p is not None and t:
        return abs(p - t) / abs(t) <= tol
    return pred.strip().lower() == target.strip().lower()


def mc_match(pred: str, answer: str) -> bool:
    """M3CoT: the option letters agree when both name one, else normalised exact match."""
    p, g = mc_letter(pred), mc_letter(answer)
    if p is not None and g is not None:
        return p == g
    return normalize_answer(pred) == normalize_answer(answer)
