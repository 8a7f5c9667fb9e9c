"""Reading a predictions file given with ``vlir eval --benchmark NAME --predictions P.jsonl``:
every row checked before any is scored, so a hand-made or foreign file gets one line naming the
line that is wrong, never a traceback and never an inflated score.

The rules (a row is what :mod:`vlir.eval.benchmarks.runner` writes):

* each line is a JSON object with a non-empty string ``id``, a string ``response`` and an
  ``item`` object whose ``answer`` is a string (the ground truth the score needs); ``sample``,
  when present, is an integer >= 0 and ``boxes`` a list of four numbers each;
* **duplicates are refused**: two rows for the same ``(id, sample)`` would count one item twice
  (three copies of a right answer and one wrong one scored 0.75 over "4 items"); the error names
  the id and both lines. Refusing, rather than keeping one copy, is deliberate: which copy is the
  real prediction is not ours to guess;
* **unknown ids** (when the benchmark's items are known, ``--root`` given) are counted, warned
  about in one line and left out of the scores (``scores.json``: ``unknown_ids``).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def row_problem(row: Any) -> str | None:
    """Why ``row`` is not a prediction vlir can score, or None."""
    if not isinstance(row, dict):
        return f"a JSON {type(row).__name__}, not an object"
    if not isinstance(row.get("id"), str) or not row["id"]:
        return "no string id"
    if "item" not in row or "response" not in row:
        return f"row {row['id']!r} lacks the item/response fields vlir writes"
    if not isinstance(row["response"], str):
        return f"row {row['id']!r}: response is a {type(row['response']).__name__}, not a string"
    item = row["item"]
    if not isinstance(item, dict) or not isinstance(item.get("answer"), str):
        return f"row {row['id']!r}: item.answer must be a string"
    for key, kind in (("category", str), ("options", list), ("target_boxes", list), ("meta", dict)):
        if key in item and not isinstance(item[key], kind):
            return f"row {row['id']!r}: item.{key} must be a {kind.__name__}"
    if "target_boxes" in item and any(_box_problem(b) for b in item["target_boxes"]):
        return f"row {row['id']!r}: item.target_boxes holds something that is not [x1, y1, x2, y2]"
    sample = row.get("sample", 0)
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 0:
        return f"row {row['id']!r}: sample must be an integer >= 0"
    boxes = row.get("boxes", [])
    if not isinstance(boxes, list) or any(_box_problem(b) for b in boxes):
        return f"row {row['id']!r}: boxes must be a list of [x1, y1, x2, y2]"
    return None


def _box_problem(box: Any) -> bool:
    return not (isinstance(box, list) and len(box) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box))


def load(path: Path) -> list[dict[str, Any]]:
    """The rows of ``path``, each checked (:func:`row_problem`), duplicates refused; raises
    ``ValueError`` with one line naming the file and line."""
    rows: list[dict[str, Any]] = []
    first_line: dict[tuple[str, int], int] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path}, line {n}: not JSON") from None
            if (problem := row_problem(row)):
                raise ValueError(f"{path}, line {n}: {problem}")
            key = (row["id"], row.get("sample", 0))
            if key in first_line:
                raise ValueError(f"{path}, line {n}: a second prediction for id {row['id']!r} sample {key[1]} "
                                 f"(first on line {first_line[key]}); keep one row per item and sample")
            first_line[key] = n
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no predictions")
    return rows


def drop_unknown(rows: list[dict[str, Any]], known: set[str] | None, path: Path) -> tuple[list[dict[str, Any]], int]:
    """``rows`` without those whose id is not in ``known`` (None: not known, keep all), and how
    many were dropped (warned about in one line)."""
    if known is None:
        return rows, 0
    kept = [r for r in rows if r["id"] in known]
    unknown = len(rows) - len(kept)
    if unknown:
        example = next(r["id"] for r in rows if r["id"] not in known)
        log.warning("%s: %d row(s) name ids the benchmark does not have (e.g. %r); left out of the scores",
                    path, unknown, example)
    if not kept:
        raise ValueError(f"{path}: none of its {len(rows)} row(s) names an item of the benchmark")
    return kept, unknown
