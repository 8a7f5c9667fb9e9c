"""VLMEvalKit's rule-based option reader, ``can_infer``, as one pinned version reproduces it.

Version reproduced: the copy of VLMEvalKit that HR-Bench ships with its evaluation code,
``DreamMr/HR-Bench@b17b1998fa2c1b71a737c126155826a94149ed13`` ``hrbench/vlmeval/utils/matching_util.py``
(``can_infer`` = ``can_infer_option``, else ``can_infer_text``). It is the version of the
toolkit the HR-Bench authors ran; upstream VLMEvalKit has since changed it further
(``open-compass/VLMEvalKit@e8e78f05f3080fe28154f2130321f17951c3be94``: the letter must be among
the last five words, an "answer is X" regex for A-D, and ``can_infer_text`` gives up on answers
longer than twice the options' text), and those changes are **not** reproduced here.

The rule, quirks included:

1. ``"Failed to obtain answer via API"`` in the answer: no option from the letter step (the text
   step still runs).
2. A reject phrase in the answer (``"Sorry, I can't help with images of people yet."``,
   ``"I can't process this file."``, ``"I'm sorry, but without the image provided"``,
   ``"Cannot determine the answer"``): ``"Z"`` (wrong against any option), whatever else it says.
3. The characters ``.()[],:;!*#{}`` become spaces and the answer is split on whitespace. Quotes,
   backticks and angle brackets are *not* removed, so ``"B"``, ``'C'`` and ```D``` are no letters.
   Exactly one option letter standing alone as a word: that letter (a lone article "A" counts as
   the letter A: the check for it only runs with the environment variable ``VERBOSE`` set, and
   vlir reproduces the toolkit with it unset). Two or more: no letter. None, but a standalone
   ``Z``: ``"Z"``.
4. Else exactly one option text occurring (lower-cased) in the lower-cased answer: that option
   (an empty option text occurs in every answer); else nothing.

``can_infer`` returns ``""`` where the toolkit returns ``False``.
"""

from __future__ import annotations

from typing import Mapping

#: can_infer_option's reject phrases: an answer holding one reads as "Z".
REJECT_PHRASES = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
API_FAILURE = "Failed to obtain answer via API"
_SEPARATORS = str.maketrans({c: " " for c in ".()[],:;!*#{}"})


def can_infer_option(answer: str, choices: Mapping[str, str]) -> str:
    """The letter step (see the module docstring, steps 1-3): a letter, ``"Z"``, or ``""``."""
    if API_FAILURE in answer:
        return ""
    if any(phrase in answer for phrase in REJECT_PHRASES):
        return "Z"
    words = answer.translate(_SEPARATORS).split()
    named = [letter for letter in choices if letter in words]
    if len(named) == 1:
        return named[0]
    if not named and "Z" in words:
        return "Z"
    return ""


def can_infer_text(answer: str, choices: Mapping[str, str]) -> str:
    """The text step: the one option whose lower-cased text occurs in the lower-cased answer."""
    low = answer.lower()
    hits = [letter for letter, text in choices.items() if str(text).lower() in low]
    return hits[0] if len(hits) == 1 else ""


def can_infer(answer: object, choices: Mapping[str, str]) -> str:
    """VLMEvalKit's ``can_infer`` (HR-Bench@b17b199): the letter step, else the text step."""
    answer = str(answer)
    return can_infer_option(answer, choices) or can_infer_text(answer, choices)
