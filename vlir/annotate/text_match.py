"""Find where an answer is written: match it against the OCR words and lines of a sample.

Used by the grounded annotator for TextVQA, DocVQA and InfographicsVQA. Matching is tolerant in the
way ANLS is: both sides are case-folded and stripped of punctuation at word edges, and a span of
consecutive, spatially adjacent words matches when its normalised Levenshtein similarity to the
answer (with or without spaces, since OCR splits and joins words differently than people) reaches
a threshold. When only line boxes exist, the answer's place inside a line is estimated from its
character offsets. Among equally good matches the one nearest to a word of the question wins
("total" for "what is the total?"), and that word is taken into the look as context.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from vlir import geometry
from vlir.records import Box, Region

WORD_KINDS = ("ocr_word",)
LINE_KINDS = ("ocr_line",)
_EDGE_PUNCT = re.compile(r"^[^\w]+|[^\w]+$", re.UNICODE)
_STOPWORDS = frozenset(
    "the a an of on in at to is are was were what which who whom whose when where why how does do "
    "did this that these those there it its for from by with and or as be been being name written "
    "say says said shown show see can you word words text number".split())


def norm_token(text: str) -> str:
    """Case-folded, NFKC, punctuation stripped at both ends ("$5.99," -> "5.99")."""
    return _EDGE_PUNCT.sub("", unicodedata.normalize("NFKC", text).casefold())


def norm_text(text: str) -> str:
    return " ".join(t for t in (norm_token(w) for w in text.split()) if t)


def _capped_levenshtein(a: str, b: str, cap: int) -> int:
    """Levenshtein distance, or ``cap + 1`` as soon as it must exceed ``cap`` (row minimum)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        if min(cur) > cap:
            return cap + 1
        prev = cur
    return prev[-1]


def _common(bag: dict[str, int], text: str) -> int:
    """Size of the multiset intersection of ``bag`` and the characters of ``text``."""
    left = dict(bag)
    n = 0
    for ch in text:
        c = left.get(ch)
        if c:
            left[ch] = c - 1
            n += 1
    return n


class _Scorer:
    """Similarity of candidate texts to one answer, pruned by cheap upper bounds (length ratio,
    shared characters) and a capped edit distance, since a page has thousands of spans."""

    def __init__(self, answer: str, floor: float):
        self.floor = floor
        self.spaced = (answer, len(answer), dict(Counter(answer)))
        bare = answer.replace(" ", "")
        self.bare = (bare, len(bare), dict(Counter(bare)))

    def __call__(self, candidate: str) -> float:
        """Spaced answer vs spaced candidate, unspaced vs unspaced: the better one."""
        best = self._one(self.spaced, candidate, 0.0)
        if " " in candidate or " " in self.spaced[0]:
            best = self._one(self.bare, candidate.replace(" ", ""), best)
        return best

    def _one(self, variant: tuple[str, int, dict[str, int]], cand: str, best: float) -> float:
        ans, la, bag = variant
        lc = len(cand)
        longest = max(la, lc)
        if not la or not lc or min(la, lc) < self.floor * longest:
            return best
        common = _common(bag, cand)  # distance >= longest - common
        if common < self.floor * longest or common / longest <= best:
            return best
        cap = int((1.0 - max(self.floor, best)) * longest + 1e-9)
        dist = _capped_levenshtein(ans, cand, cap)
        return max(best, 1.0 - dist / longest) if dist <= cap else best


def text_similarity(answer: str, candidate: str, floor: float = 0.0) -> float:
    """ANLS-style similarity of two normalised strings, the better of spaced and unspaced; values
    below ``floor`` may be reported as 0.0 (they are not computed)."""
    if not answer or not candidate:
        return 0.0
    return _Scorer(answer, floor)(candidate)


@dataclass(frozen=True)
class TextMatch:
    """Where an answer was found: the box of the matched text, how well it matched, the text
    seen there (normalised), and an optional nearby context word with its box."""

    box: Box
    score: float
    text: str
    approximate: bool = False  # box estimated inside a line
    context: str = ""
    context_box: Box | None = None


def _adjacent(a: Box, b: Box) -> bool:
    """Whether word ``b`` can continue a phrase ending with word ``a``: on the same line and close,
    or at the start of the next line."""
    h = max(1.0, min(a.height, b.height))
    v_overlap = min(a.y2, b.y2) - max(a.y1, b.y1)
    if v_overlap >= 0.5 * h:
        return -0.5 * h <= b.x1 - a.x2 <= 2.5 * h
    return 0 <= b.y1 - a.y2 <= 1.2 * h or (0 <= b.y1 - a.y1 <= 2.2 * h and b.x1 <= a.x2)


def _word_spans(answer: str, words: Sequence[tuple[str, Box]], floor: float) -> list[TextMatch]:
    """Spans of consecutive adjacent words scoring at least ``floor`` against ``answer``. A span
    stops growing once its letters alone outnumber what any match could have."""
    n_tokens = max(1, len(answer.split()))
    max_len = n_tokens + 2
    max_chars = len(answer.replace(" ", "")) / max(floor, 1e-6)
    scorer = _Scorer(answer, floor)
    out: list[TextMatch] = []
    for i in range(len(words)):
        tokens: list[str] = []
        boxes: list[Box] = []
        chars = 0
        for j in range(i, min(len(words), i + max_len)):
            if j > i and not _adjacent(words[j - 1][1], words[j][1]):
                break
            if words[j][0]:
                tokens.append(words[j][0])
                chars += len(words[j][0])
            boxes.append(words[j][1])
            if chars > max_chars:
                break
            if not tokens:
                continue
            text = " ".join(tokens)
            score = scorer(text)
            if score >= floor and score > 0:
                out.append(TextMatch(geometry.union(boxes), score, text))  # only for hits: Box() costs
    return out


def _line_words(lines: Sequence[tuple[str, Box]]) -> list[tuple[str, Box]]:
    """Split lines into pseudo-words whose boxes are estimated from character offsets (for
    samples that only have line boxes)."""
    out: list[tuple[str, Box]] = []
    for text, box in lines:
        tokens = text.split()
        total = max(1, len(text))
        pos = 0
        for tok in tokens:
            start = text.index(tok, pos)
            pos = start + len(tok)
            x1 = box.x1 + box.width * start / total
            x2 = max(x1 + 1e-3, min(box.x2, box.x1 + box.width * pos / total))
            out.append((tok, Box(x1, box.y1, x2, box.y2)))
    return out


def _regions(evidence: Sequence[Region], kinds: tuple[str, ...]) -> list[tuple[str, Box]]:
    return [(norm_text(r.label), r.box) for r in evidence if r.kind in kinds]


def keywords(question: str) -> set[str]:
    """Content words of a question (for picking among repeated matches)."""
    return {t for t in (norm_token(w) for w in question.split()) if len(t) >= 3 and t not in _STOPWORDS}


def find_text(answer: str, evidence: Sequence[Region], question: str = "",
              min_score: float = 0.8) -> TextMatch | None:
    """The best place where ``answer`` is written, or None when nothing reaches ``min_score``.

    Word spans are tried first; lines only when the sample has no word boxes. Ties (within 0.01)
    go to the span nearest a question keyword, then to the shorter box, then to reading order.
    """
    target = norm_text(answer)
    if not target:
        return None
    words = _regions(evidence, WORD_KINDS)
    approximate = not words
    if approximate:
        words = _line_words(_regions(evidence, LINE_KINDS))
    candidates = _word_spans(target, words, min_score)
    if approximate:
        candidates = [TextMatch(c.box, c.score, c.text, approximate=True) for c in candidates]
    context_pool = words
    if not candidates:
        return None
    best_score = max(c.score for c in candidates)
    tied = [c for c in candidates if c.score >= best_score - 0.01]
    keys = keywords(question) - set(target.split())
    # (question keyword, box of the word or line holding it): the keyword itself is what a
    # sentence may quote, since OCR text around it can be misread.
    anchors = [(sorted(set(t.split()) & keys)[0], b) for t, b in context_pool if set(t.split()) & keys]

    def rank(c: TextMatch) -> tuple[float, float, float]:
        dist = min((_gap(c.box, b) for _, b in anchors), default=0.0)
        return (dist, -c.score, c.box.area)

    best = min(tied, key=rank)  # min() keeps the first of equals: reading order
    if anchors:
        text, box = min(anchors, key=lambda tb: _gap(best.box, tb[1]))
        if _gap(best.box, box) <= 3.0 * max(best.box.height, 1.0) and not _inside(box, best.box):
            return TextMatch(best.box, best.score, best.text, best.approximate, text, box)
    return best


def _gap(a: Box, b: Box) -> float:
    dx = max(0.0, b.x1 - a.x2, a.x1 - b.x2)
    dy = max(0.0, b.y1 - a.y2, a.y1 - b.y2)
    return (dx * dx + dy * dy) ** 0.5


def _inside(inner: Box, outer: Box) -> bool:
    return geometry.containment(inner, outer) >= 0.99


def look_box(match: TextMatch, width: int, height: int, min_side: float = 28.0,
             max_area_ratio: float = 0.9) -> Box:
    """The region to zoom into for a match: the text (and its context word), padded by a share of
    the text height (differently when the box was estimated inside a line), at least ``min_side`` on each
    side, inside the image; padding is dropped again if it would cover more than
    ``max_area_ratio`` of the image."""
    core = match.box if match.context_box is None else geometry.union([match.box, match.context_box])
    core = geometry.clip(core, width, height) or core
    text_h = max(1.0, match.box.height)
    # A box estimated inside a line is already a full line high but may be off sideways.
    pad_x = (1.0 if match.approximate else 0.6) * text_h
    pad_y = (0.2 if match.approximate else 0.4) * text_h
    grown = geometry.expand(core, pad_x, pad_y, width, height)
    if geometry.area_ratio(grown, width, height) > max_area_ratio:
        grown = core
    return geometry.ensure_min_side(grown, min_side, width, height)
