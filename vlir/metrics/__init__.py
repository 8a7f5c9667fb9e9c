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

from vlir import source_table
from vlir.metrics.docvqa import ANLS_THRESHOLD, anls, anls_clean, anls_lenient, levenshtein, similarity
from vlir.metrics.gqa import exact_match, gqa_accuracy, gqa_prediction
from vlir.metrics.match import mc_letter, mc_match, relaxed_accuracy, truth_value, vsr_match
from vlir.metrics.textvqa import (ARTICLES, CONTRACTIONS, N_HUMAN_ANSWERS, NUMBER_MAP, PUNCTUATIONS,
                                  majority_answer, normalize_answer, vqa_accuracy, vqa_accuracy_lenient)

__all__ = [
    "ANLS_THRESHOLD", "ARTICLES", "CONTRACTIONS", "NUMBER_MAP", "OFFICIAL_SCRIPTS",
    "PUNCTUATIONS", "anls", "anls_clean", "anls_lenient", "exact_match",
    "gqa_accuracy", "gqa_prediction", "is_correct", "levenshtein", "majority_answer", "mc_letter",
    "mc_match", "normalize_answer", "relaxed_accuracy", "score", "similarity", "truth_value",
    "vqa_accuracy", "vqa_accuracy_lenient", "vsr_match",
]

#: official metrics defined only for a fixed number of references (the TextVQA evaluator: the ten
#: human answers); ``score(..., official=True, strict=False)`` scores other counts leniently
OFFICIAL_ANSWER_COUNT = {"vqa_accuracy": N_HUMAN_ANSWERS}

# The script each source's official score reproduces (for reports); sources not listed have no
# official script in vlir and score the same with or without ``official``.
OFFICIAL_SCRIPTS = {
    "textvqa": "facebookresearch/mmf mmf/utils/m4c_evaluators.py (TextVQAAccuracyEvaluator)",
    "docvqa": "RRC infographicsvqa_eval.py (ANLS, threshold 0.5)",
    "infographicsvqa": "RRC infographicsvqa_eval.py (ANLS, threshold 0.5)",
    "gqa": "GQA eval.py fed by haotian-liu/LLaVA scripts/convert_gqa_for_eval.py",
}


def score(source: str, pred: str, answers: Sequence[str], official: bool = False,
          strict: bool = True) -> float:
    """The source's metric for one prediction.

    Lenient (default; checks, annotators, rewards): :func:`vqa_accuracy_lenient` (textvqa),
    :func:`anls_lenient` (docvqa, infographicsvqa), else 1.0/0.0 for a match with any reference
    (gqa :func:`exact_match`, vsr truth value, m3cot option letter, chartqa relaxed accuracy).

    ``official=True`` (evaluation, numbers comparable with published tables): :func:`vqa_accuracy`
    (needs the ten human answers), :func:`anls`, :func:`gqa_accuracy` against any reference;
    vsr, m3cot and chartqa as above. An official metric defined only for a number of references
    (:data:`OFFICIAL_ANSWER_COUNT`) refuses other counts; with ``strict=False`` (``vlir eval`` on a
    re-annotated or converted set) such a record is scored by the lenient rule instead.
    """
    row = source_table.rule(source)
    if row is None:
        raise ValueError(f"no metric for source {source!r}; known: {', '.join(source_table.TABLE)}")
    name = row.metric if official else row.lenient
    if not strict and OFFICIAL_ANSWER_COUNT.get(name, len(answers)) != len(answers):
        name = row.lenient
    fn = mc_match if name == "mc_letter" else globals()[name]
    if row.threshold is not None:  # graded metrics take every reference at once
        return fn(pred, answers)
    return float(max((fn(pred, a) for a in answers), default=0.0))


def is_correct(source: str, pred: str, answers: Sequence[str],
               vqa_min: float = source_table.ANSWER_THRESHOLDS["vqa_min"],
               anls_min: float = source_table.ANSWER_THRESHOLDS["anls_min"]) -> bool:
    """Whether a prediction counts as correct by the lenient :func:`score`: at least the source's
    threshold from :mod:`vlir.source_table` (VQA accuracy >= ``vqa_min`` for textvqa, ANLS >=
    ``anls_min`` for docvqa/infographicsvqa; defaults: the table's, as the checks'), a match
    otherwise."""
    value = score(source, pred, answers)
    threshold = source_table.answer_threshold(source)
    return value >= {"vqa_min": vqa_min, "anls_min": anls_min, None: 1.0}[threshold]
