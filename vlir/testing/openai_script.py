"""What the loopback OpenAI server answers: the scripted actions, the default responder, and how a
request is identified and matched. :mod:`vlir.testing.openai_server` does the HTTP side and
re-exports the actions, so tests import everything from there.

* :class:`Reply` (a 200 with this content), :class:`Status` (an error status, 429 with Retry-After,
  500...), :class:`Default` (what the responder would say), plus the faults of
  :mod:`vlir.testing.openai_faults`;
* :func:`echo_chain_responder` — a well-behaved teacher that builds a valid chain from the prompt;
* :class:`Rule` — one ``script(match, *actions)`` entry: the actions in turn, the last repeating.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Union

from vlir.testing.openai_faults import Drop, Fault, Hang

__all__ = ["Action", "Default", "Reply", "Responder", "Rule", "Status", "echo_chain_responder",
           "request_key", "request_text"]


@dataclass(frozen=True)
class Reply:
    """A 200 answer with this message content."""

    content: str
    prompt_tokens: int = 100
    completion_tokens: int = 50


@dataclass(frozen=True)
class Status:
    """An error status (``retry_after`` sets the Retry-After header, in seconds)."""

    code: int
    retry_after: float | None = None
    message: str = "scripted error"


@dataclass(frozen=True)
class Default:
    """Answer as the responder would (ends a script: ``Status(500), Default()``)."""


Action = Union[Reply, Status, Hang, Drop, Default, Fault]
Responder = Callable[[dict[str, Any]], Union[Action, str]]


def request_text(body: dict[str, Any]) -> str:
    """All text of a request's messages, joined (what scripts match against)."""
    parts: list[str] = []
    for m in body.get("messages") or ():
        content = m.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict))
    return "\n".join(parts)


def request_key(body: dict[str, Any]) -> str:
    """Identity of a request: sha256 of its messages (image bytes included)."""
    return hashlib.sha256(json.dumps(body.get("messages"), sort_keys=True).encode()).hexdigest()


_SIZE = re.compile(r"The image is (\d+) x (\d+) pixels")
_ANSWER = re.compile(r"Correct answer: (.*)")
_HINT = re.compile(r"^- (\[[^\]]*\]) (.*)$", re.MULTILINE)


def echo_chain_responder(body: dict[str, Any]) -> Action | str:
    """A well-behaved teacher: looks at the first hint box (the prompt ranks the most relevant
    first), widened to at least 56 px, and answers the gold answer. Judge requests get a yes."""
    text = request_text(body)
    if "Does this crop show it?" in text:
        return json.dumps({"shows": True, "reason": "the crop shows it"})
    size, answer = _SIZE.search(text), _ANSWER.search(text)
    if not size or not answer:
        return Status(400, message="not a vlir teacher request")
    w, h = int(size.group(1)), int(size.group(2))
    hint = _HINT.search(text)
    if hint:
        x1, y1, x2, y2 = json.loads(hint.group(1))
        label = hint.group(2).strip()
    else:
        x1, y1, x2, y2, label = w // 4, h // 4, 3 * w // 4, 3 * h // 4, "the middle of the image"
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w, half_h = max((x2 - x1) / 2, 28), max((y2 - y1) / 2, 28)
    box = [max(0, round(cx - half_w)), max(0, round(cy - half_h)),
           min(w, round(cx + half_w)), min(h, round(cy + half_h))]
    gold = answer.group(1).strip()
    return json.dumps({"steps": [
        {"think": "I need to find the part of the image that answers the question."},
        {"look": {"bbox_2d": box, "label": label}},
        {"think": f"The region shows {label}, which gives {gold}."},
    ], "answer": gold})


@dataclass
class Rule:
    """One scripted entry: requests whose text contains ``match`` get ``actions`` in turn."""

    match: str
    actions: list[Action]
    used: int = 0

    def next(self) -> Action:
        action = self.actions[min(self.used, len(self.actions) - 1)]
        self.used += 1
        return action
