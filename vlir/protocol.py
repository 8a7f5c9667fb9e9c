"""The assistant-text protocol: the one place that reads and writes what the policy says.

Everything that looks at assistant text goes through here: the rollout engine's incremental stop
scanner (:class:`StopScanner`), ``vlir infer``, ``vlir eval``, the R-GRPO rewards and the chat
renderer (:func:`render_call`). Pure Python on purpose (no torch, no tokenizer), so every rule is
unit-tested on strings.

The rules are the released VLM-R³ agent's (``src/model/r3_vllm.py`` of justgogorunrun/VLM-R3), so
its checkpoint behaves here as it did in the authors' loop:

- **Rounds.** Generation runs in rounds that stop at the first of :data:`STOP_STRINGS`
  (``]}``, ``]\\n}``, ``] }``, ``</answer>``; vLLM drops the stop string from the text).
- **Answer rounds end the episode.** A round whose text holds ``<answer>`` (closed by the loop when
  the model did not close it) or that ended at ``</answer>`` ends the episode.
- **Crop calls.** Otherwise, when the round's text mentions ``bbox_2d``, the loop appends ``]}\\n``
  and reads the *last* ``{...}`` (the non-greedy ``\\{.*?\\}`` over the whole round) with
  ``json.loads`` - so ``{"bbox_2d": [a], "bbox_2d": [b]}`` (13 of the 191 logged V* responses)
  is box ``b``: JSON keeps the last duplicate key. Anything ``json.loads`` refuses, a missing
  ``bbox_2d`` key, or a value that is not four finite numbers with x1 < x2 and y1 < y2 (model
  pixels) is a *bad call* (:attr:`Call.error` says why). What the engine does with a bad call is
  :attr:`vlir.rollout.RolloutConfig.bad_box`'s business, not this module's.
- **Rounds without a call or an answer** (a stop string outside a call, a per-round token limit)
  just continue.
- **The answer** (:func:`extract_answer`) is what the authors' evaluator (``acc_verifier`` in
  ``src/eval/test_vstar_r3.py``, and the same lines in ``rgrpo.py``) scores of the loop's full
  response: the last ``<answer>(.*?)</answer>`` (DOTALL), stripped; an answer the model left
  unclosed is closed by the loop; with no answer tag at all, the last line of the stripped text.
  Special tokens (``<|im_end|>``, ``<|endoftext|>``, image blocks) are removed first: vLLM's text
  never holds them, vlir's decoded token ids do.

Where a finished text cannot show what the live loop saw (a round that hit the per-round token
limit leaves no mark in the text), :func:`parse_response` treats the end of text as the model's
end-of-sequence; the engine, which does see round limits, calls :meth:`StopScanner.end_round`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Sequence

from vlir.models.registry import families

CALL_STOPS = ("]}", "]\n}", "] }")
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
# The released agent's vLLM stop strings, in its order.
STOP_STRINGS = CALL_STOPS + (ANSWER_CLOSE,)
# What the released loop appends to a round that mentions bbox_2d (whichever call stop ended it).
CALL_CLOSE = "]}\n"
# ... and to a round that opened <answer> without closing it.
ANSWER_CLOSE_APPENDED = "</answer>\n"
CALL_KEY = "bbox_2d"

_MAX_STOP = max(len(s) for s in STOP_STRINGS)
_JSON_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)  # the released loop's `_extract_fields` pattern
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
SPECIAL_TOKEN = re.compile(r"<\|[a-z_]+\|>")

Box4 = tuple[float, float, float, float]


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def render_call(box: Sequence[float]) -> str:
    """A crop call exactly as the released model writes it, ``{"bbox_2d": [x1, y1, x2, y2]}``
    (integral values as integers, spacing as the model's).

    >>> render_call([12, 34.0, 560, 78])
    '{"bbox_2d": [12, 34, 560, 78]}'
    """
    if len(box) != 4:
        raise ValueError(f"a crop call needs 4 numbers, got {list(box)}")
    return '{"%s": [%s]}' % (CALL_KEY, ", ".join(_number(v) for v in box))


def _number(value: float) -> str:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"a crop call needs finite numbers, got {value}")
    return str(int(value)) if value.is_integer() else json.dumps(value)


# an inserted image in decoded text, as every registered model family writes one (its tokens)
_IMAGE_BLOCK = re.compile(r"\n?(?:" + "|".join(sorted({f.image_block_pattern() for f in families()})) + ")")


def split_at_images(text: str) -> list[str]:
    """The assistant text cut at its inserted images (one more piece than images), for display;
    the newline before each image goes with it.

    >>> split_at_images('look {"bbox_2d": [1, 2, 3, 4]}\\n<|vision_start|><|image_pad|><|vision_end|>red')
    ['look {"bbox_2d": [1, 2, 3, 4]}', 'red']
    """
    return _IMAGE_BLOCK.split(text)


def strip_special(text: str) -> str:
    """``text`` without special tokens (``<|im_end|>``, ``<|vision_start|>``, ``<|image_pad|>``...),
    as vLLM's ``skip_special_tokens`` text and the authors' trainer's ``batch_decode`` show it."""
    return SPECIAL_TOKEN.sub("", text)


# --------------------------------------------------------------------------------------------
# Reading one call
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Call:
    """A crop call the loop acts on: ``box`` (4 floats, model pixels) when it is good, else
    ``error`` (why it is a bad call). ``json`` is the ``{...}`` text read; ``start``/``end`` locate
    the round's stop string in the text given to :func:`parse_response` (-1 when unknown)."""

    box: Box4 | None
    error: str | None = None
    json: str = ""
    start: int = -1
    end: int = -1

    @property
    def ok(self) -> bool:
        return self.error is None


def read_call(round_text: str) -> Call:
    """The crop call of one round the loop treats as a call (its text, stop string excluded,
    mentions ``bbox_2d``): append ``]}\\n``, take the last ``{...}``, ``json.loads`` it, read
    ``bbox_2d`` as 4 finite numbers with x1 < x2 and y1 < y2.

    >>> read_call('look {"bbox_2d": [1, 2, 30, 40], "bbox_2d": [5, 6, 70, 80').box
    (5.0, 6.0, 70.0, 80.0)
    >>> read_call('look {"bbox_2d": [1, 2, 3').error
    'bbox_2d needs 4 numbers, got [1, 2, 3]'
    """
    found = _JSON_OBJECT.findall(round_text + CALL_CLOSE)
    if not found:
        return Call(None, "no {...} in the round")
    blob = found[-1]
    try:
        op = json.loads(blob)
    except json.JSONDecodeError as exc:
        return Call(None, f"not JSON ({exc.msg})", blob)
    if not isinstance(op, dict) or CALL_KEY not in op:
        return Call(None, f"no {CALL_KEY!r} key", blob)
    return _check_box(op[CALL_KEY], blob)


def _check_box(value, blob: str) -> Call:
    if not isinstance(value, list) or len(value) != 4:
        return Call(None, f"{CALL_KEY} needs 4 numbers, got {json.dumps(value)}", blob)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return Call(None, f"{CALL_KEY} needs finite numbers, got {json.dumps(value)}", blob)
    x1, y1, x2, y2 = (float(v) for v in value)
    if not (x1 < x2 and y1 < y2):
        return Call(None, f"{CALL_KEY} {json.dumps(value)} is empty (needs x1 < x2 and y1 < y2)", blob)
    return Call((x1, y1, x2, y2), None, blob)


# --------------------------------------------------------------------------------------------
# Rounds
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RoundEnd:
    """How one generation round ends under the released loop's rules.

    ``kind``: ``"answer"`` (an answer round: the episode ends), ``"end"`` (end of sequence without
    an answer: the episode ends), ``"call"`` (``call`` holds the crop call, good or bad) or
    ``"continue"`` (no answer, no call: generation goes on). ``text`` is the round's text as the
    loop keeps it (stop string dropped; ``]}\\n`` / ``</answer>\\n`` appended as it does);
    ``closed_answer`` is True when the loop closed an ``<answer>`` the model left open.
    """

    kind: str
    text: str
    call: Call | None = None
    closed_answer: bool = False


def end_round(round_text: str, stop: str | None, eos: bool = False) -> RoundEnd:
    """Classify a round: ``round_text`` is what it generated without its stop string, ``stop``
    the stop string that ended it (None: EOS or the per-round token limit; ``eos`` tells which).

    >>> end_round('<answer>B', "</answer>").kind, end_round('x {"bbox_2d": [1, 2, 3, 4', "]}").call.box
    ('answer', (1.0, 2.0, 3.0, 4.0))
    """
    text = round_text
    if ANSWER_OPEN in text and ANSWER_CLOSE not in text:
        text += ANSWER_CLOSE_APPENDED
    if ANSWER_CLOSE in text:
        return RoundEnd("answer", text, closed_answer=stop != ANSWER_CLOSE)
    if eos:
        return RoundEnd("end", text)
    if CALL_KEY in text:
        call = read_call(round_text)
        return RoundEnd("call", text + CALL_CLOSE, call)
    return RoundEnd("continue", text)


def find_stop(text: str, start: int = 0) -> tuple[int, str | None]:
    """The first stop string to complete in ``text[start:]`` (smallest end, as a streaming
    generator meets them): ``(index, stop)``, or ``(-1, None)``."""
    best, best_stop, best_end = -1, None, math.inf
    for stop in STOP_STRINGS:
        at = text.find(stop, start)
        if at >= 0 and at + len(stop) < best_end:
            best, best_stop, best_end = at, stop, at + len(stop)
    return best, best_stop


# --------------------------------------------------------------------------------------------
# A finished response
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Response:
    """One finished response read by the released loop's rules (:func:`parse_response`).

    ``calls``: the boxes the loop crops, in order (4 floats, model pixels); ``bad_calls``: the
    calls it refuses, as :class:`Call` with ``error``; ``answer``: what the authors' evaluator
    scores (None only for an empty response); ``answer_from``: ``"tag"``, ``"unclosed"`` (the
    loop closed the model's ``<answer>``), ``"last_line"`` (no answer tag: the evaluator's
    fallback) or None; ``rounds``: each round's :class:`RoundEnd`; ``loop_text``: the loop's
    ``full_response`` rebuilt from the rounds (what the authors' rewards and evaluator read).
    """

    calls: list[Box4]
    answer: str | None
    answer_from: str | None
    bad_calls: list[Call] = field(default_factory=list)
    all_calls: list[Call] = field(default_factory=list)
    rounds: list[RoundEnd] = field(default_factory=list)
    loop_text: str = ""

    @property
    def tagged_answer(self) -> str | None:
        """The answer only when the model opened an ``<answer>`` tag (closed or not)."""
        return self.answer if self.answer_from in ("tag", "unclosed") else None


def parse_response(text: str, max_rounds: int | None = None) -> Response:
    """Read one finished assistant response (vLLM text, a logged ``full_response``, or vlir's
    decoded trajectory with special tokens and image blocks) by the released loop's rules.

    >>> r = parse_response('<think> look\\n\\n{"bbox_2d": [1, 2, 30, 40], "bbox_2d": [5, 6, 70, 80]}\\n'
    ...                    '<answer>B</answer>\\n')
    >>> r.calls, r.answer
    ([(5.0, 6.0, 70.0, 80.0)], 'B')
    """
    clean = strip_special(text)
    rounds: list[RoundEnd] = []
    calls: list[Call] = []
    pos = 0
    cut = False
    while not (cut := max_rounds is not None and len(rounds) >= max_rounds):
        at, stop = find_stop(clean, pos)
        if stop is None:
            if clean[pos:].strip() or not rounds:
                rounds.append(end_round(clean[pos:], None, eos=True))
            break
        end = end_round(clean[pos:at], stop)
        rounds.append(end)
        if end.call is not None:
            calls.append(Call(end.call.box, end.call.error, end.call.json, at, at + len(stop)))
        if end.kind in ("answer", "end"):
            break
        pos = at + len(stop)
    loop_text = "".join(r.text for r in rounds)
    # acc_verifier reads the last tag of the text it is given (up to where max_rounds cut it)
    tagged = _ANSWER.findall(clean[:pos] if cut else clean)
    if tagged:
        answer, source = tagged[-1].strip(), "tag"
    else:
        answer, source = _scored_answer(loop_text, bool(rounds) and rounds[-1].closed_answer)
    return Response(calls=[c.box for c in calls if c.ok], answer=answer, answer_from=source,  # type: ignore[misc]
                    bad_calls=[c for c in calls if not c.ok], all_calls=calls, rounds=rounds,
                    loop_text=loop_text)


def _scored_answer(loop_text: str, closed_by_loop: bool) -> tuple[str | None, str | None]:
    """acc_verifier's reading of the loop's full response when the text has no closed tag (only
    the last round can hold an ``<answer>``: a round with one ends the episode)."""
    found = _ANSWER.findall(loop_text)
    if found:
        return found[-1].strip(), "unclosed" if closed_by_loop else "tag"
    stripped = loop_text.strip()
    if not stripped:
        return None, None
    return stripped.split("\n")[-1], "last_line"


def extract_answer(text: str) -> str | None:
    """What the authors' evaluator scores in ``text``: the last ``<answer>…</answer>`` (an
    unclosed final ``<answer>`` is closed as the loop closes it), else the last line; special
    tokens removed first. None only for an empty response.

    >>> extract_answer("<think>it says OPEN</think><answer> open </answer><|im_end|>")
    'open'
    >>> extract_answer("<answer>red<|im_end|>"), extract_answer("I think\\nred")
    ('red', 'red')
    """
    return parse_response(text).answer


# --------------------------------------------------------------------------------------------
# Incremental: the engine's stop scanner
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    """What a fed piece of text triggered: ``kind`` is ``"answer"`` (the episode ends),
    ``"bbox"`` (a good call: ``bbox`` holds its 4 numbers), ``"bad_box"`` (a bad call: ``detail``
    says why) or ``"round"`` (a stop string ended a round with neither: generation goes on).
    ``tail`` is the text the same token carried after the stop string."""

    kind: str
    bbox: Box4 | None = None
    tail: str = ""
    detail: str = ""


class StopScanner:
    """Incremental :func:`end_round` over one trajectory's sampled text.

    Feed each sampled token's decoded text with :meth:`feed`; it returns an :class:`Event` on the
    token that completes a stop string, else None. A ``"round"`` event restarts the round by
    itself; after ``"bbox"``/``"bad_box"`` the engine calls :meth:`reset` (it inserts an image or
    decides to go on). :meth:`end_round` closes a round the engine cut at its per-round token
    limit.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._buf = ""  # the current round's text
        self._from = 0  # where a stop string may complete next

    @property
    def text(self) -> str:
        """The current round's text."""
        return self._buf

    def feed(self, piece: str) -> Event | None:
        if not piece:
            return None
        self._buf += strip_special(piece)
        at, stop = find_stop(self._buf, self._from)
        if stop is None:
            self._from = max(0, len(self._buf) - _MAX_STOP + 1)
            return None
        tail = self._buf[at + len(stop):]
        event = self._event(end_round(self._buf[:at], stop), tail)
        if event.kind == "round":
            self._buf, self._from = tail, 0
        return event

    def end_round(self, eos: bool = False) -> Event:
        """The round ends without a stop string (EOS, or the per-round token limit)."""
        event = self._event(end_round(self._buf, None, eos=eos), "")
        if event.kind == "round":
            self.reset()
        return event

    @staticmethod
    def _event(end: RoundEnd, tail: str) -> Event:
        if end.kind in ("answer", "end"):
            return Event("answer", tail=tail)
        if end.kind == "call":
            assert end.call is not None
            if end.call.ok:
                return Event("bbox", bbox=end.call.box, tail=tail)
            return Event("bad_box", tail=tail, detail=end.call.error or "")
        return Event("round", tail=tail)
