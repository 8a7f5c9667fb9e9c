"""Reading the VLM-R3 authors' SFT records (the shape :mod:`vlir.formats.vlmr3` describes): the files,
one record's fields, its ``response_list`` as a vlir :class:`~vlir.records.Chain`, and the comparison
of a crop file with vlir's own crop. :mod:`vlir.formats.vlmr3_import` turns them into vlir records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from vlir import geometry
from vlir.crops import decode_png
from vlir.formats.vlmr3 import CROPS, IMAGE_PATH, INFO_FILE, QUESTION, RESPONSES
from vlir.geometry import PixelBudget
from vlir.records import Chain, Crop, Look, Think


class Rejected(Exception):
    """One record cannot be imported: ``reason`` is the rejects tag, the message says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Reading the files
# ---------------------------------------------------------------------------------------------

def data_files(src: Path) -> list[Path]:
    """The record files under ``src`` (or ``src`` itself), in a stable order."""
    if src.is_file():
        return [src]
    files = [p for p in src.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl") and p.name != INFO_FILE]
    return sorted(files, key=lambda p: p.relative_to(src).as_posix())


def raw_records(path: Path, name: str) -> Iterator[tuple[str, Any]]:
    """``(where, record or Rejected)`` for every record of one file; ``where`` is
    ``<file>#<index>`` (JSON list) or ``<file>:<line>`` (JSONL)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        yield name, Rejected("bad_json", f"{name}: cannot read ({exc})")
        return
    if path.suffix == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                yield f"{name}:{lineno}", json.loads(line)
            except json.JSONDecodeError as exc:
                yield f"{name}:{lineno}", Rejected("bad_json", f"{name} line {lineno}: not valid JSON ({exc})")
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        yield name, Rejected("bad_json", f"{name}: not valid JSON ({exc})")
        return
    if not isinstance(data, list):
        yield name, Rejected("bad_json", f"{name}: expected a JSON list of records (what data_qwen.py "
                                         f"loads), got {type(data).__name__}")
        return
    for i, obj in enumerate(data):
        yield f"{name}#{i}", obj


# ---------------------------------------------------------------------------------------------
# One record
# ---------------------------------------------------------------------------------------------

def record_fields(obj: Any, where: str) -> tuple[str, str, list[str], list[str]]:
    if not isinstance(obj, dict):
        raise Rejected("malformed", f"{where}: a record must be a JSON object, got {type(obj).__name__}")
    for key in (IMAGE_PATH, QUESTION):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise Rejected("malformed", f"{where}: {key} must be a non-empty string")
    for key in (RESPONSES, CROPS):
        value = obj.get(key, [] if key == CROPS else None)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise Rejected("malformed", f"{where}: {key} must be a list of strings")
    if not obj[RESPONSES]:
        raise Rejected("malformed", f"{where}: {RESPONSES} is empty")
    return obj[IMAGE_PATH], obj[QUESTION], obj[RESPONSES], obj.get(CROPS, [])


def _think(text: str) -> str:
    """Reasoning text of a part without the think tags (vlir's chat config names them)."""
    from vlir.models.chat import ChatConfig

    cfg = ChatConfig.default()
    for tag in (cfg.think_open.strip(), cfg.think_close.strip()):
        text = text.replace(tag, " ")
    return text.strip()


def learned_text(parts: list[str]) -> str:
    """The assistant text their loader trains on: each part with a newline appended if it lacks one."""
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts)


def _text_before_call(part: str, where: str, i: int) -> str:
    """The text of ``part`` before its one crop call (the ``{...}`` the protocol reads)."""
    from vlir.protocol import CALL_CLOSE, parse_response

    calls = parse_response(part).all_calls
    if len(calls) != 1:
        raise Rejected("call_not_before_crop", f"{where}: {RESPONSES}[{i}] must end with the one crop "
                                               f"call that crop {i} answers, found {len(calls)} call(s)")
    round_text = part[: calls[0].start]
    return round_text[: (round_text + CALL_CLOSE).rfind(calls[0].json)]


def chain_from_parts(parts: list[str], n_crops: int, width: int, height: int, budget: PixelBudget,
                     where: str) -> Chain:
    """Steps and answer of a record's ``response_list`` (``n_crops`` crops follow its first parts).

    The boxes are :func:`vlir.protocol.parse_response`'s calls over the text their loader trains
    on, mapped to original pixels; the think steps are the text around them, tags removed."""
    from vlir.protocol import ANSWER_OPEN, parse_response, strip_special

    parts = [strip_special(p) for p in parts]
    response = parse_response(learned_text(parts))
    if response.bad_calls:
        bad = response.bad_calls[0]
        raise Rejected("bad_call", f"{where}: crop call {bad.json!r} is one the authors' loop refuses "
                                   f"({bad.error})")
    calls = list(response.calls)
    if len(calls) != n_crops:
        raise Rejected("calls_crops_mismatch", f"{where}: the response makes {len(calls)} crop call(s) "
                                               f"but {CROPS} has {n_crops} crop(s)")
    if len(parts) != n_crops + 1:
        raise Rejected("parts_crops_mismatch", f"{where}: {RESPONSES} has {len(parts)} part(s) for "
                                               f"{n_crops} crop(s); crop i follows part i, so a record "
                                               "needs one part more than crops")
    if response.tagged_answer is None:
        raise Rejected("no_answer", f"{where}: the response has no <answer> tag")
    steps: list[Think | Look] = []
    for i, call in enumerate(calls):
        think = _think(_text_before_call(parts[i], where, i))
        try:
            box = geometry.from_model(call, width, height, budget)
        except ValueError as exc:
            raise Rejected("bad_box", f"{where}: call {i} {list(call)}: {exc}") from None
        if (problem := geometry.box_range_problem(box, width, height)) is not None:
            raise Rejected("box_out_of_range", f"{where}: call {i}: {problem}")
        box = geometry.clip(box, width, height)
        if box is None:
            raise Rejected("bad_box", f"{where}: call {i} {list(call)} lies outside the image "
                                      f"({width}x{height} original)")
        if think:
            steps.append(Think(think))
        steps.append(Look(box))
    last = parts[-1]
    think = _think(last[: last.rfind(ANSWER_OPEN)] if ANSWER_OPEN in last else last)
    if think:
        steps.append(Think(think))
    return Chain(steps, response.tagged_answer)


def compare_crop(file_image, vlir_crop: Crop) -> tuple[bool, float]:
    """``(same size, mean absolute pixel difference)`` of a crop file and vlir's crop of the same
    box; the file's crop is resized (bilinear) to vlir's size first when the sizes differ."""
    import numpy as np
    from PIL import Image

    mine = decode_png(vlir_crop.png)
    same = file_image.size == mine.size
    theirs = file_image if same else file_image.resize(mine.size, Image.Resampling.BILINEAR)
    diff = np.abs(np.asarray(theirs, dtype=np.int16) - np.asarray(mine, dtype=np.int16))
    return same, float(diff.mean())
