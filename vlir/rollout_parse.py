"""Text-side rules of the rollout loop: when to stop, how to read the crop call, where the answer is.

The released VLM-R3 agent stops vLLM generation on the strings ``]}``, ``]\\n}``, ``] }`` and
``</answer>``, then reads the last ``{...}`` as JSON. vlir's engine keeps token ids (decode ->
re-encode is not the identity), so it watches the decoded text of each sampled token instead:
:class:`StopScanner` is fed text pieces as they are sampled and reports, at the first token where
it happens, that a ``{"bbox_2d": [x1, y1, x2, y2]}`` call has closed (the crop fires), that a call
is malformed (the trajectory ends with ``bad_box``), or that ``</answer>`` was written.

Pure Python on purpose: no torch, no tokenizer, so the rules are unit-tested on strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The opening of a crop call, tolerant of spacing: {"bbox_2d":
_OPEN = re.compile(r'\{\s*"bbox_2d"\s*:')
# The call ends at the first "}" after its opening: for a well-formed call that is the agent's stop
# strings "]}", "]\n}", "] }"; a "}" anywhere else means the call is malformed, not one to wait on.
_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_CALL = re.compile(r'\{\s*"bbox_2d"\s*:\s*\[' + ",".join([_NUM] * 4) + r"\]\s*\}")
_ANSWER_CLOSE = "</answer>"
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)

# A call that has not closed after this many characters is malformed (the model is rambling inside
# the JSON); without a cap a random policy could hold a row open until max_new_tokens.
MAX_CALL_CHARS = 160


@dataclass(frozen=True)
class Event:
    """What a fed piece of text triggered.

    ``kind`` is ``"bbox"`` (a well-formed call closed: ``bbox`` holds its 4 numbers, ``tail`` the
    text the same token carried after the closing brace), ``"bad_box"`` (``detail`` says why) or
    ``"answer"`` (``</answer>`` was written).
    """

    kind: str
    bbox: tuple[float, float, float, float] | None = None
    tail: str = ""
    detail: str = ""


def parse_call(text: str) -> tuple[float, float, float, float]:
    """Parse one complete crop call ``{"bbox_2d": [x1, y1, x2, y2]}`` (any spacing, ints or
    decimals). Raises ValueError for anything else: wrong arity, non-numbers, extra keys."""
    m = _CALL.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"malformed crop call {text!r}")
    return tuple(float(v) for v in m.groups())  # type: ignore[return-value]


def extract_answer(text: str) -> str | None:
    """The text inside the last ``<answer>...</answer>`` (an unclosed final ``<answer>`` counts, as
    in the released agent, which closes it for the model); None when there is no answer tag."""
    found = _ANSWER.findall(text)
    return found[-1].strip() if found else None


class StopScanner:
    """Incremental stop detection over one trajectory's sampled text.

    Feed each sampled token's decoded text with :meth:`feed`; it returns an :class:`Event` on the
    token that completes a crop call, breaks one, or writes ``</answer>``, else None. After a
    ``bbox`` event the engine inserts the crop and calls :meth:`reset` so the next segment is
    scanned on its own (the agent, too, parses only the text generated since the last image).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._buf = ""  # text since the last inserted image
        self._open: int | None = None  # index of the current call's "{" in _buf
        self._answer_from = 0  # where to look for "</answer>" next

    @property
    def text(self) -> str:
        """The text scanned since the last :meth:`reset`."""
        return self._buf

    def feed(self, piece: str) -> Event | None:
        if not piece:
            return None
        start = len(self._buf)
        self._buf += piece
        buf = self._buf
        if self._open is None:
            m = _OPEN.search(buf, max(0, start - 16))
            if m is not None:
                self._open = m.start()
        if self._open is not None:
            event = self._scan_call(buf, max(self._open + 1, start - 2))
            if event is not None:
                return event
        at = buf.find(_ANSWER_CLOSE, max(self._answer_from, start - len(_ANSWER_CLOSE)))
        if at >= 0:
            return Event("answer")
        self._answer_from = max(0, len(buf) - len(_ANSWER_CLOSE))
        return None

    def _scan_call(self, buf: str, search_from: int) -> Event | None:
        assert self._open is not None
        body_from = _OPEN.match(buf, self._open)
        assert body_from is not None
        close = buf.find("}", max(search_from, body_from.end()))
        if close < 0:
            if len(buf) - self._open > MAX_CALL_CHARS:
                return Event("bad_box", detail=f"crop call not closed within {MAX_CALL_CHARS} chars")
            return None
        call = buf[self._open:close + 1]
        try:
            bbox = parse_call(call)
        except ValueError as exc:
            return Event("bad_box", detail=str(exc))
        return Event("bbox", bbox=bbox, tail=buf[close + 1:])
