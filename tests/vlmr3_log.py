"""The authors' V* evaluation log of the released VLM-R³ checkpoint (``../shared/vlmr3``), read into
items: the conformance tests of the protocol, the rewards and the engine run over every response.

The log is written by ``src/eval/test_vstar_r3.py``: per item ``Iteration i:``, the image path,
the question (several lines: options), ``Category:``, ``Full Response:`` then the loop's
``full_response`` followed by one ``"\\n"``, ``Reward: r``, ``Ground Truth:`` and
``<answer>X</answer>``, then 60 dashes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOG = REPO.parent / "shared" / "vlmr3" / "evaluation_vstar_log_20250808_134358.txt"

_ITEM = re.compile(
    r"\nIteration (?P<i>\d+):\nImage Path: (?P<image>[^\n]*)\nQuestion: (?P<question>.*?)\n"
    r"Category: (?P<category>[^\n]*)\nFull Response:\n(?P<response>.*?)\nReward: (?P<reward>[0-9.]+)\n"
    r"Ground Truth:\n(?P<truth>[^\n]*)\n-{60}\n", re.DOTALL)


@dataclass(frozen=True)
class LoggedItem:
    index: int
    question: str
    category: str
    response: str  # the loop's full_response, exactly
    reward: float
    truth: str  # "<answer>X</answer>"


def read_log(path: Path = LOG) -> list[LoggedItem]:
    text = path.read_text(encoding="utf-8")
    items = [LoggedItem(int(m["i"]), m["question"], m["category"], m["response"], float(m["reward"]),
                        m["truth"]) for m in _ITEM.finditer(text)]
    if len(items) != text.count("\nIteration "):
        raise ValueError(f"{path}: read {len(items)} items of {text.count(chr(10) + 'Iteration ')}")
    return items
