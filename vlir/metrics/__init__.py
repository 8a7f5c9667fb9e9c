"""Answer metrics, one definition each, shared by the build checks, the R-GRPO rewards and ``vlir eval``.

Every function is pure Python (no numpy, no torch) so the data verbs can import it cheaply.

Official metrics, equal to the scripts behind published tables to the last digit, quirks
included (each module says which script and which quirks):

- :func:`vqa_accuracy` (TextVQA; mmf ``m4c_evaluators.py``) with :func:`normalize_answer`,
  in :mod:`vlir.metrics.textvqa`;
- :func:`anls` (DocVQA, InfographicVQA; the RRC ``infographicsvqa_eval.py``), in
  :mod:`vlir.metrics.docvqa`;
- :func:`gqa_accuracy` (GQA ``eval.py`` fed by LLaVA's ``convert_gqa_for_eval.py``), in
  :mod:`vlir.metrics.gqa`.

Lenient variants, for rewards and filtering, where the official rule is harsh or undefined:
:func:`vqa_accuracy_lenient` (any number of answers), :func:`anls_lenient` (no padding or
case-expansion effect, 0.5 scores 0), :func:`exact_match` (GQA after EvalAI normalisation).
:func:`vsr_match`, :func:`mc_letter` / :func:`mc_match` and :func:`relaxed_accuracy` (in
:mod:`vlir.metrics.match`) complete the set.

:func:`score` / :func:`is_correct` apply the rule of a named source: lenient by default (build
checks, grounded annotator, rewards), official with ``score(..., official=True)`` (``vlir eval``).
"""

from __future__ import annotations

from typing import Sequence

from vlir.metrics.docvqa import ANLS_THRESHOLD, anls, anls_clean, anls_lenient, levenshtein, similarity
from vlir.metrics.gqa import exact_match, gqa_accuracy, gqa_prediction
from vlir.metrics.match import mc_letter, mc_match, relaxed_accuracy, truth_value, vsr_match
from vlir.metrics.textvqa import (ARTICLES, CONTRACTIONS, NUMBER_MAP, PUNCTUATIONS, majority_answer,
                                  normalize_answer, vqa_accuracy, vqa_accuracy_lenient)

__all__ = [
    "ANLS_MIN", "ANLS_THRESHOLD", "ARTICLES", "CONTRACTIONS", "NUMBER_MAP", "OFFICIAL_SCRIPTS",
    "PUNCTUATIONS", "SOURCES", "VQA_MIN", "anls", "anls_clean", "anls_lenient", "exact_match",
    "gqa_accuracy", "gqa_prediction", "is_correct", "levenshtein", "majority_answer", "mc_letter",
    "mc_match", "normalize_answer", "relaxed_accuracy", "score", "similarity", "truth_value",
    "vqa_accuracy", "vqa_accuracy_lenient", "vsr_match",
]

VQA_MIN = 0.3
ANLS_MIN = 0.5
SOURCES = ("textvqa", "docvqa", "infographicsvqa", "gqa", "vsr", "m3cot", "chartqa")

# The script each source's official score reproduces (for reports); sources not listed have no
# official script in vlir and score the same with or without ``official``.
OFFICIAL_SCRIPTS = {
    "textvqa": "facebookresearch/mmf mmf/utils/m4c_evaluators.py (TextVQAAccuracyEvaluator)",
    "docvqa": "RRC infographicsvqa_eval.py (ANLS, threshold 0.5)",
    "infographicsvqa": "RRC infographicsvqa_eval.py (ANLS, threshold 0.5)",
    "gqa": "GQA eval.py fed by haotian-liu/LLaVA scripts/convert_gqa_for_eval.py",
}


def score(source: str, pred: str, answers: Sequence[str], official: bool = False) -> float:
    """The source's metric for one prediction.

    Lenient (default; checks, annotators, rewards): :func:`vqa_accuracy_lenient` (textvqa),
    :func:`anls_lenient` (docvqa, infographicsvqa), else 1.0/0.0 for a match with any reference
    (gqa :func:`exact_match`, vsr truth value, m3cot option letter, chartqa relaxed accuracy).

    ``official=True`` (evaluation, numbers comparable with published tables): :func:`vqa_accuracy`
    (needs the ten human answers), :func:`anls`, :func:`gqa_accuracy` against any reference;
    vsr, m3cot and chartqa as above.
    """
    from vlir import source_table

    row = source_table.rule(source)
    if row is None:
        raise ValueError(f"no metric for source {source!r}; known: {', '.join(SOURCES)}")
    name = row.metric if official else row.lenient
    fn = mc_match if name == "mc_letter" else globals()[name]
    if row.threshold is not None:  # graded metrics take every reference at once
        return fn(pred, answers)
    return float(max((fn(pred, a) for a in answers), default=0.0))


def is_correct(source: str, pred: str, answers: Sequence[str], vqa_min: float = VQA_MIN,
               anls_min: float = ANLS_MIN) -> bool:
    """Whether a prediction counts as correct by the lenient :func:`score`: at least the source's
    threshold from :mod:`vlir.source_table` (VQA accuracy >= ``vqa_min`` for textvqa, ANLS >=
    ``anls_min`` for docvqa/infographicsvqa), a match otherwise."""
    from vlir import source_table

    value = score(source, pred, answers)
    threshold = source_table.answer_threshold(source)
    return value >= {"vqa_min": vqa_min, "anls_min": anls_min, None: 1.0}[threshold]
