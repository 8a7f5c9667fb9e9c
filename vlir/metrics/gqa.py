"""GQA accuracy: how published GQA numbers are produced, and vlir's lenient match.

Published GQA testdev-balanced numbers (LLaVA-1.5 and most VLM papers since) come from a
three-step pipeline, reproduced by :func:`gqa_accuracy`:

1. haotian-liu/LLaVA ``llava/eval/model_vqa_loader.py`` writes the decoded answer ``.strip()``-ed;
2. haotian-liu/LLaVA ``scripts/convert_gqa_for_eval.py`` turns it into the prediction with
   ``text.rstrip('.').lower()`` (every trailing period, then ``str.lower()``; nothing else);
3. the official GQA ``eval.py`` (Hudson & Manning, https://cs.stanford.edu/people/dorarad/gqa/
   evaluate.html, run by LLaVA's ``scripts/v1_5/eval/gqa.sh``) scores ``predicted == gold``:
   exact string equality with the question's ``answer``, which it does not normalise.

Quirks, kept: articles, inner punctuation and spacing count ("the cat", "cat!", "black  and
white" are wrong); a space before the final period keeps it ("yes ." -> "yes " is wrong);
``lower()`` is not ``casefold()`` ("STRASSE" is not "straße", "İ" becomes "i" + combining dot);
number words are not digits.

:func:`exact_match` is vlir's lenient GQA match for rewards and filtering: both sides through the
EvalAI normaliser (case, final period, articles, number words).
"""

from __future__ import annotations

from vlir.metrics.textvqa import normalize_answer


def gqa_prediction(text: str) -> str:
    """The prediction string GQA's ``eval.py`` receives for a model's answer ``text``: LLaVA's
    ``strip()`` (answers file) then ``rstrip('.').lower()`` (``convert_gqa_for_eval.py``)."""
    return text.strip().rstrip(".").lower()


def gqa_accuracy(pred: str, answer: str) -> float:
    """1.0 when the official GQA ``eval.py`` scores ``pred`` correct for the gold ``answer``, as
    fed by haotian-liu/LLaVA ``scripts/convert_gqa_for_eval.py`` (see the module docstring):
    ``gqa_prediction(pred) == answer``, else 0.0.

    >>> gqa_accuracy("Yes.", "yes"), gqa_accuracy("The cat", "cat")
    (1.0, 0.0)
    """
    if not isinstance(answer, str):
        raise TypeError(f"GQA has one gold answer string per question, got {type(answer).__name__}")
    return float(gqa_prediction(pred) == answer)


def exact_match(pred: str, answer: str) -> bool:
    """vlir's lenient GQA match (rewards, filtering): models add capitals, a final period or an
    article ("Yes.", "a cat"), so both sides go through
    :func:`~vlir.metrics.textvqa.normalize_answer` before comparing."""
    return normalize_answer(pred) == normalize_answer(answer)
