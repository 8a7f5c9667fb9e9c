"""Answer metrics, one definition each, shared by the build checks, the R-GRPO rewards and ``vlir eval``.

Every function is pure Python (no numpy, no torch) so the data verbs can import it cheaply.

- :func:`normalize_answer` is the EvalAI answer processor that the official TextVQA evaluator
  (``m4c_evaluator.EvalAIAnswerProcessor``) applies to predictions and human answers, quirks
  included, so our numbers are comparable with published ones.
- :func:`vqa_accuracy` is the TextVQA/VQA soft accuracy: ``min(#matches / 3, 1)`` averaged over the
  leave-one-out subsets of the human answers.
- :func:`anls` is DocVQA/InfographicsVQA's Average Normalized Levenshtein Similarity (per question).
- :func:`exact_match` (GQA), :func:`vsr_match` (VSR true/false), :func:`mc_letter` (M3CoT /
  ScienceQA letters) and :func:`relaxed_accuracy` (ChartQA) complete the set.
- :func:`score` / :func:`is_correct` apply the rule of a named source.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Iterable, Sequence

# ---------------------------------------------------------------------------------------------
# EvalAI / TextVQA answer normalisation
# ---------------------------------------------------------------------------------------------

# The evaluator's contraction table (apostrophe-less spelling -> canonical). Keys with capitals
# ("Im", "Ive"...) never match because the text is lower-cased first; kept for fidelity.
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
PUNCTUATIONS = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<",
                "@", "`", ",", "?", "!")
# The evaluator's regex reads "(?!<=\d)": a typo for a look-behind that is in fact a (vacuous)
# look-ahead, so a period followed by a non-digit is removed even after a digit ("5." -> "5").
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")
# The evaluator calls ``PERIOD_STRIP.sub("", text, re.UNICODE)``: the flag lands in the *count*
# argument, so at most re.UNICODE == 32 periods are removed. Reproduced on purpose.
_PERIOD_STRIP_COUNT = int(re.UNICODE)


def _process_punctuation(text: str) -> str:
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
    """The official EvalAI/TextVQA answer processor (memoised: the same answers and OCR words
    are normalised again and again by checks, the grounded annotator and rewards).

    >>> normalize_answer("Two dogs!")
    '2 dogs'
    >>> normalize_answer("The Coca-Cola")
    'coca cola'
    """
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _process_digit_article(_process_punctuation(text))


# ---------------------------------------------------------------------------------------------
# TextVQA / VQA accuracy
# ---------------------------------------------------------------------------------------------

def vqa_accuracy(pred: str, answers: Sequence[str]) -> float:
    """VQA soft accuracy: for each human answer left out, ``min(#other answers equal to pred / 3,
    1)``; the mean over the leave-one-out subsets. Both sides go through :func:`normalize_answer`.

    With exactly one reference the leave-one-out set is empty (score always 0), so a single
    reference is scored by normalised exact match instead.
    """
    if not answers:
        return 0.0
    p = normalize_answer(pred)
    gts = [normalize_answer(a) for a in answers]
    if len(gts) == 1:
        return float(p == gts[0])
    n_match = sum(1 for g in gts if g == p)
    # Leaving out a matching answer leaves n_match - 1 matches; leaving out another leaves n_match.
    total = 0.0
    for g in gts:
        others = n_match - 1 if g == p else n_match
        total += min(1.0, others / 3.0)
    return total / len(gts)


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


# ---------------------------------------------------------------------------------------------
# ANLS (DocVQA, InfographicsVQA)
# ---------------------------------------------------------------------------------------------

def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert, delete, substitute; cost 1 each)."""
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


def _anls_clean(text: str) -> str:
    return " ".join(text.strip().lower().split())


def similarity(a: str, b: str) -> float:
    """``1 - NL``: normalised Levenshtein similarity of two strings as given (1.0 when both empty)."""
    length = max(len(a), len(b))
    return 1.0 if length == 0 else 1.0 - levenshtein(a, b) / length


def anls(pred: str, answers: Sequence[str], tau: float = 0.5) -> float:
    """Per-question ANLS (Biten et al., ST-VQA; DocVQA): case-folded, whitespace-collapsed strings,
    ``s = 1 - NL`` when the normalised Levenshtein distance ``NL < tau``, else 0; the max over the
    reference answers. The dataset score is the mean over questions."""
    p = _anls_clean(pred)
    best = 0.0
    for a in answers:
        g = _anls_clean(a)
        length = max(len(p), len(g))
        nl = 0.0 if length == 0 else levenshtein(p, g) / length
        best = max(best, 1.0 - nl if nl < tau else 0.0)
    return best


# ---------------------------------------------------------------------------------------------
# GQA, VSR, multiple choice, ChartQA
# ---------------------------------------------------------------------------------------------

def exact_match(pred: str, answer: str) -> bool:
    """GQA accuracy: the official evaluator compares strings as given; models add capitals, a final
    period or an article ("Yes.", "a cat"), so both sides go through :func:`normalize_answer` first."""
    return normalize_answer(pred) == normalize_answer(answer)


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


# ---------------------------------------------------------------------------------------------
# Per-source rule
# ---------------------------------------------------------------------------------------------

VQA_MIN = 0.3
ANLS_MIN = 0.5
SOURCES = ("textvqa", "docvqa", "infographicsvqa", "gqa", "vsr", "m3cot", "chartqa", "zoom")


def _mc_match(pred: str, answer: str) -> bool:
    p, g = mc_letter(pred), mc_letter(answer)
    if p is not None and g is not None:
        return p == g
    return normalize_answer(pred) == normalize_answer(answer)


def score(source: str, pred: str, answers: Sequence[str]) -> float:
    """The source's metric for one prediction: VQA accuracy (textvqa), ANLS (docvqa,
    infographicsvqa), else 1.0/0.0 for a match with any reference (gqa exact match, vsr truth
    value, m3cot option letter, chartqa relaxed accuracy)."""
    if source == "textvqa":
        return vqa_accuracy(pred, answers)
    if source in ("docvqa", "infographicsvqa"):
        return anls(pred, answers)
    if source in ("gqa", "zoom"):  # zoom: the synthetic task of vlir.sources.zoom
        match = exact_match
    elif source == "vsr":
        match = vsr_match
    elif source == "m3cot":
        match = _mc_match
    elif source == "chartqa":
        match = relaxed_accuracy
    else:
        raise ValueError(f"no metric for source {source!r}; known: {', '.join(SOURCES)}")
    return float(any(match(pred, a) for a in answers))


def is_correct(source: str, pred: str, answers: Sequence[str], vqa_min: float = VQA_MIN,
               anls_min: float = ANLS_MIN) -> bool:
    """Whether a prediction counts as correct: VQA accuracy >= ``vqa_min`` (textvqa), ANLS >=
    ``anls_min`` (docvqa, infographicsvqa), a match otherwise."""
    value = score(source, pred, answers)
    if source == "textvqa":
        return value >= vqa_min
    if source in ("docvqa", "infographicsvqa"):
        return value >= anls_min
    return value >= 1.0
