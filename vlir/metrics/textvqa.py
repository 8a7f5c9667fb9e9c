"""TextVQA / VQA soft accuracy and the EvalAI answer normalisation it uses.

Official reference: facebookresearch/mmf ``mmf/utils/m4c_evaluators.py``, classes
``EvalAIAnswerProcessor`` (the normaliser, itself a copy of the EvalAI VQA evaluation) and
``TextVQAAccuracyEvaluator`` (the score). Published TextVQA numbers (M4C, LLaVA, Qwen-VL,
lmms-eval) come from these two classes, so :func:`normalize_answer` and :func:`vqa_accuracy`
reproduce them to the last digit, quirks included (each quirk is noted where it is reproduced).

:func:`vqa_accuracy_lenient` is vlir's own variant for rewards and filtering: the same formula
for any number of reference answers (one reference: exact match after normalisation).
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Iterable, Sequence

# The processor's contraction table (apostrophe-less spelling -> canonical). Keys with capitals
# ("Im", "Ive", "Id've", "I'dve") never match because the text is lower-cased first; kept for
# fidelity (the official processor has the same dead entries).
_CONTRACTION_PAIRS = """
aint ain't|arent aren't|cant can't|couldve could've|couldnt couldn't|couldn'tve couldn't've|
couldnt've couldn't've|didnt didn't|doesnt doesn't|dont don't|hadnt hadn't|hadnt've hadn't've|
hadn'tve hadn't've|hasnt hasn't|havent haven't|hed he'd|hed've he'd've|he'dve he'd've|hes he's|
howd how'd|howll how'll|hows how's|Id've I'd've|I'dve I'd've|Im I'm|Ive I've|isnt isn't|itd it'd|
itd've it'd've|it'dve it'd've|itll it'll|let's let's|maam ma'am|mightnt mightn't|
mightnt've mightn't've|mightn'tve mightn't've|mightve might've|mustnt mustn't|mustve must've|
neednt needn't|notve not've|oclock o'clock|oughtnt oughtn't|ow's'at 'ow's'at|'ows'at 'ow's'at|
'ow'sat 'ow's'at|shant shan't|shed've she'd've|she'dve she'd've|she's she's|shouldve should've|
shouldnt shouldn't|shouldnt've shouldn't've|shouldn'tve shouldn't've|somebody'd somebodyd|
somebodyd've somebody'd've|somebody'dve somebody'd've|somebodyll somebody'll|somebodys somebody's|
someoned someone'd|someoned've someone'd've|someone'dve someone'd've|someonell someone'll|
someones someone's|somethingd something'd|somethingd've something'd've|
something'dve something'd've|somethingll something'll|thats that's|thered there'd|
thered've there'd've|there'dve there'd've|therere there're|theres there's|theyd they'd|
theyd've they'd've|they'dve they'd've|theyll they'll|theyre they're|theyve they've|twas 'twas|
wasnt wasn't|wed've we'd've|we'dve we'd've|weve we've|werent weren't|whatll what'll|
whatre what're|whats what's|whatve what've|whens when's|whered where'd|wheres where's|
whereve where've|whod who'd|whod've who'd've|who'dve who'd've|wholl who'll|whos who's|
whove who've|whyll why'll|whyre why're|whys why's|wont won't|wouldve would've|wouldnt wouldn't|
wouldnt've wouldn't've|wouldn'tve wouldn't've|yall y'all|yall'll y'all'll|y'allll y'all'll|
yall'd've y'all'd've|y'alld've y'all'd've|y'all'dve y'all'd've|youd you'd|youd've you'd've|
you'dve you'd've|youll you'll|youre you're|youve you've
"""
CONTRACTIONS: dict[str, str] = dict(
    pair.split() for pair in _CONTRACTION_PAIRS.replace("\n", "").split("|")
)
NUMBER_MAP = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
              "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = frozenset({"a", "an", "the"})
# Not in the list, so kept as they are: ':' '\'' '%' '$' '&' '*' '#' '.' (periods have their own rule).
PUNCTUATIONS = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<",
                "@", "`", ",", "?", "!")
# The processor's regex reads "(?!<=\d)": a typo for a look-behind that is in fact a (vacuous)
# look-ahead, so a period followed by a non-digit is removed even after a digit ("5." -> "5").
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")
# The processor calls ``PERIOD_STRIP.sub("", text, re.UNICODE)``: the flag lands in the *count*
# argument, so at most re.UNICODE == 32 periods are removed. Reproduced on purpose.
_PERIOD_STRIP_COUNT = int(re.UNICODE)
# TextVQAAccuracyEvaluator asserts that every question has exactly ten human answers.
N_HUMAN_ANSWERS = 10


def _process_punctuation(text: str) -> str:
    # A punctuation mark is deleted when it touches a space anywhere in the text (or the text has
    # a digit-comma-digit, which cannot happen here: commas are already gone), else it becomes a
    # space. The test looks at the input text, not at the text being rewritten.
    out = text
    has_number_comma = _COMMA_STRIP.search(text) is not None
    for p in PUNCTUATIONS:
        if (p + " " in text or " " + p in text) or has_number_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=_PERIOD_STRIP_COUNT)


def _process_digit_article(text: str) -> str:
    words = [NUMBER_MAP.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


@lru_cache(maxsize=1 << 16)
def normalize_answer(text: str) -> str:
    """``EvalAIAnswerProcessor.__call__`` of facebookresearch/mmf ``mmf/utils/m4c_evaluators.py``
    (memoised: the same answers and OCR words are normalised again and again by checks, the
    grounded annotator and rewards).

    Steps, in the processor's order: ``str.lower()`` (no casefold: "ß" stays, "İ" becomes "i" +
    combining dot); drop "," and "?"; "'s" -> " 's"; strip; newlines/tabs -> spaces; punctuation
    (see :data:`PUNCTUATIONS`) deleted or turned into a space; periods not followed by a digit
    deleted (at most 32); whitespace split; number words "none".."ten" -> digits; articles
    dropped; contractions restored ("dont" -> "don't").

    >>> normalize_answer("Two dogs!")
    '2 dogs'
    >>> normalize_answer("The Coca-Cola")
    'coca cola'
    """
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _process_digit_article(_process_punctuation(text))


def _leave_one_out(p: str, gts: Sequence[str]) -> float:
    """Mean over the answers left out of ``min(1, #remaining answers equal to p / 3)``, summed in
    the answers' order as the evaluator does (so the float is the same to the last bit)."""
    n_match = sum(1 for g in gts if g == p)
    accs = [min(1, (n_match - 1 if g == p else n_match) / 3) for g in gts]
    return sum(accs) / len(accs)


def vqa_accuracy(pred: str, answers: Sequence[str]) -> float:
    """The official TextVQA accuracy of one prediction: facebookresearch/mmf
    ``mmf/utils/m4c_evaluators.py`` ``TextVQAAccuracyEvaluator`` (with ``EvalAIAnswerProcessor``,
    here :func:`normalize_answer`, on the prediction and on each human answer).

    For each of the ten human answers left out, ``min(1, #other answers equal to pred / 3)``; the
    mean of the ten. So 0 matching annotators -> 0.0, 1 -> 0.3, 2 -> 0.6, 3 -> 0.9, 4+ -> 1.0.

    Raises ValueError unless there are exactly ten answers: the evaluator asserts ten, and gives
    no number otherwise (use :func:`vqa_accuracy_lenient` for other counts).
    """
    if len(answers) != N_HUMAN_ANSWERS:
        raise ValueError(f"the TextVQA evaluator scores questions with exactly {N_HUMAN_ANSWERS} human "
                         f"answers, got {len(answers)}; use vqa_accuracy_lenient for other counts")
    return _leave_one_out(normalize_answer(pred), [normalize_answer(a) for a in answers])


def vqa_accuracy_lenient(pred: str, answers: Sequence[str]) -> float:
    """vlir's VQA soft accuracy for rewards and filtering: the official leave-one-out formula of
    :func:`vqa_accuracy` for any number of answers (equal to it for ten), 0.0 for none, and, since
    a single reference leaves an empty set out, normalised exact match for one."""
    if not answers:
        return 0.0
    p = normalize_answer(pred)
    gts = [normalize_answer(a) for a in answers]
    if len(gts) == 1:
        return float(p == gts[0])
    return _leave_one_out(p, gts)


def majority_answer(answers: Iterable[str]) -> str:
    """The most common answer (counted after normalisation), returned in the spelling that the
    first annotator who gave it used; ties go to the answer given first. The natural form of a
    TextVQA answer for a chain."""
    answers = [a for a in answers if a and a.strip()]
    if not answers:
        return ""
    norms = [normalize_answer(a) for a in answers]
    counts = Counter(norms)
    best = max(counts.values())
    for a, n in zip(answers, norms):
        if counts[n] == best:
            return a.strip()
    raise AssertionError("unreachable")
