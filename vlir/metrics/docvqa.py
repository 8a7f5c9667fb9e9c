"""ANLS (Average Normalized Levenshtein Similarity) of DocVQA and InfographicVQA, per question.

Official reference: the Robust Reading Competition's InfographicVQA evaluation script,
``infographicsvqa_eval.py`` (downloadable from https://rrc.cvc.uab.es/?ch=17 and docvqa.org;
copied verbatim into QwenLM/Qwen-VL ``eval_mm/infographicsvqa_eval.py`` and as ``anls`` in
EvolvingLMMs-Lab/lmms-eval ``lmms_eval/api/metrics.py``, which scores DocVQA with it too). For one
question and each ground-truth answer it computes::

    gt  = " ".join(answer.strip().lower().split())
    det = " ".join(prediction.strip().lower().split())
    NL  = levenshtein(gt, det) / max(len(answer.upper()), len(prediction.upper()))   # 0 if both empty
    score = 1 - min(NL over answers);  score = 0 if score < threshold (0.5)

:func:`anls` reproduces that to the last digit. Its quirks, kept on purpose:

* **A distance of exactly 0.5 scores 0.5**, not 0: the test is ``score < threshold``.
* **The divisor is the raw strings' length**, not the cleaned ones': padding and repeated spaces
  count ("ab   " vs "ac" is 1 - 1/5 = 0.8), and so does ``str.upper()``'s case expansion
  ("ß" -> "SS" counts two; "İ" counts one although ``lower()`` makes it two characters).
* Whitespace is anything ``str.split()`` splits on (so NO-BREAK SPACE, not ZERO WIDTH SPACE).
* Both strings empty is a distance of 0 (score 1); an empty prediction otherwise scores 0.
* The normalised distance can exceed 1 when ``lower()`` lengthens the text ("İ" vs "x": 2 / 1);
  the score is then negative before the threshold, so 0.

:func:`anls_lenient` is vlir's earlier ANLS, kept for rewards and filtering: the divisor is the
longer *cleaned* string and a distance of 0.5 scores 0 (``NL < tau``).
"""

from __future__ import annotations

from typing import Sequence

ANLS_THRESHOLD = 0.5


def levenshtein(a: str, b: str) -> int:
    """Edit distance over code points (insert, delete, substitute; cost 1 each)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def similarity(a: str, b: str) -> float:
    """``1 - NL``: normalised Levenshtein similarity of two strings as given (1.0 when both empty)."""
    length = max(len(a), len(b))
    return 1.0 if length == 0 else 1.0 - levenshtein(a, b) / length


def anls_clean(text: str) -> str:
    """The script's cleaning of both sides: strip, ``str.lower()``, whitespace runs -> one space."""
    return " ".join(text.strip().lower().split())


def _check_answers(answers: Sequence[str]) -> None:
    if isinstance(answers, str):
        raise TypeError("answers must be a list of strings, not one string")


def anls(pred: str, answers: Sequence[str], tau: float = ANLS_THRESHOLD) -> float:
    """Per-question ANLS exactly as the RRC InfographicVQA/DocVQA evaluation script
    ``infographicsvqa_eval.py`` (``evaluate_method``) computes it; quirks in the module docstring.
    ``tau`` is the script's ``--anls_threshold``. The dataset score is the mean over questions.

    Raises ValueError for no reference answers (the script's ``min`` of an empty list).
    """
    _check_answers(answers)
    if not answers:
        raise ValueError("ANLS needs at least one reference answer (the RRC script fails on none)")
    det = anls_clean(pred)
    values = []
    for answer in answers:
        dist = levenshtein(anls_clean(answer), det)
        length = max(len(answer.upper()), len(pred.upper()))
        values.append(0.0 if length == 0 else float(dist) / float(length))
    result = 1 - min(values)
    return 0.0 if result < tau else result


def anls_lenient(pred: str, answers: Sequence[str], tau: float = ANLS_THRESHOLD) -> float:
    """vlir's ANLS for rewards and filtering: both sides cleaned as the script does, ``1 - NL``
    when ``NL < tau`` (so exactly 0.5 scores 0), NL over the longer *cleaned* string (padding and
    case expansion do not count); the max over the references, 0.0 for none."""
    _check_answers(answers)
    p = anls_clean(pred)
    best = 0.0
    for a in answers:
        g = anls_clean(a)
        length = max(len(p), len(g))
        nl = 0.0 if length == 0 else levenshtein(p, g) / length
        best = max(best, 1.0 - nl if nl < tau else 0.0)
    return best
