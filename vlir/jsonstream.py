"""Streaming readers for big official JSON files (GQA questions and scene graphs, COCO instances)
and JSON Lines files (VSR, M3CoT).

The GQA train questions file is ~1.4 GB and COCO's train instances ~0.45 GB: ``json.load`` would hold
several GB of Python objects. ijson (C backend) parses incrementally and builds one item at a time,
so memory stays flat whatever the file size. A file that does not parse, or whose top level is not
what the format says, raises :class:`InputFileError` naming the file, possibly after
some items were already yielded (the CLI turns it into exit code 2 either way).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import ijson



class InputFileError(Exception):
    """A whole input file is unusable (missing, empty, not the JSON it should be): the one error
    type of every reader of official files, sources and benchmarks alike (sources call it
    ``SourceError``). Its message names the file."""

    def __init__(self, path: Path | str | None, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = str(path) if path else None
        self.message = message

    def __reduce__(self):  # picklable, so a worker process can hand it to the CLI
        return (type(self), (self.path, self.message))


SourceError = InputFileError  # the name the source adapters use

_OPENERS = {"{": "an object", "[": "an array"}


def _check_top_level(fh, path: Path, expected: str) -> None:
    """Peek at the first non-blank byte: ijson yields nothing (no error) for a wrong top-level
    type, which would silently read an empty split. Leaves ``fh`` after any UTF-8 BOM."""
    head = fh.read(4096)
    bom = head.startswith(b"\xef\xbb\xbf")  # some editors write one; the parser rejects it
    fh.seek(3 if bom else 0)
    text = head[3 if bom else 0:].lstrip(b" \t\r\n")
    if not text:
        raise SourceError(path, "file is empty")
    first = chr(text[0])
    if first != expected:
        got = _OPENERS.get(first, "not JSON")
        raise SourceError(path, f"expected a JSON {'object' if expected == '{' else 'array'} at the "
                                f"top level, found {got}")


# A NaN / Infinity / -Infinity literal in value position (after ``:`` ``[`` ``,``, before ``,`` ``]``
# ``}``). Python's json writes these for float('nan'); yajl rejects them, which failed whole splits.
# A chunk handed on ends just before a delimiter, so "end of chunk" counts as one.
_NONFINITE = re.compile(rb"([:\[,]\s*)(?:-?Infinity|NaN)(?=\s*(?:[,\]}]|\Z))")
_CARRY_MAX = 1 << 20


class NonFiniteAsNull:
    """A binary file wrapper that reads NaN/Infinity literals as ``null``, so the record (OCR word,
    scene-graph object) holding one is refused by its own checks like any missing number, instead
    of the parser failing the whole file. Chunks are cut just before the last delimiter so a literal
    is never split; a delimiter-plus-literal inside a JSON string would be rewritten too (not seen
    in any official file)."""

    def __init__(self, fh):
        self._fh = fh
        self._carry = b""

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        while True:
            chunk = self._fh.read(size if size and size > 0 else -1)
            data = self._carry + chunk
            if not chunk:
                self._carry = b""
                return self._fix(data)
            cut = max(data.rfind(b","), data.rfind(b"["), data.rfind(b":"))
            if cut <= 0 and len(data) < _CARRY_MAX:
                self._carry = data
                continue
            if cut <= 0:
                cut = len(data)
            head, self._carry = data[:cut], data[cut:]
            return self._fix(head)

    @staticmethod
    def _fix(data: bytes) -> bytes:
        if b"NaN" not in data and b"Infinity" not in data:
            return data
        return _NONFINITE.sub(rb"\1null", data)


def iter_object_items(path: Path, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Stream ``(key, value)`` pairs of the JSON object at ``prefix`` (``""`` = the top level, as in
    GQA's dict keyed by question id). Each value is built whole; nothing else is kept."""
    return _streamed(path, lambda fh: ijson.kvitems(fh, prefix, use_float=True), prefix == "")


def iter_array_items(path: Path, prefix: str) -> Iterator[Any]:
    """Stream the items of the JSON array at ``prefix`` (e.g. COCO's ``annotations``; ijson's
    ``annotations.item``). The top level must be an object."""
    return _streamed(path, lambda fh: ijson.items(fh, f"{prefix}.item" if prefix else "item", use_float=True))


def _streamed(path: Path, items: Callable[[Any], Iterator[Any]], check_top: bool = True) -> Iterator[Any]:
    """``items(file)`` over ``path`` opened with NaN/Infinity read as null (after checking the top
    level is an object), a parse or read error becoming a SourceError naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if check_top:
                _check_top_level(fh, path, "{")
            yield from items(NonFiniteAsNull(fh))
    except ijson.JSONError as exc:
        raise SourceError(path, f"not valid JSON ({_one_line(exc)})") from None
    except UnicodeDecodeError as exc:
        raise SourceError(path, f"not valid UTF-8 JSON ({exc})") from None
    except OSError as exc:
        raise SourceError(path, f"cannot read ({exc})") from None


def _one_line(exc: Exception) -> str:
    """yajl's messages span several lines (with a caret picture); the CLI prints one line."""
    return " ".join(str(exc).split())


class BadLine(ValueError):
    """One JSON Lines record that does not parse (the caller makes it an Invalid sample)."""


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadLine]]:
    """Yield ``(line_index, record)`` for each non-blank line (0-based index of the line in the
    file, which is also VSR's stable record id). A line that is not a JSON object yields a
    :class:`BadLine` instead, so one bad record never ends the read."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            for index, raw in enumerate(fh):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    yield index, BadLine(f"line {index + 1} is not valid JSON ({exc})")
                    continue
                if not isinstance(record, dict):
                    yield index, BadLine(f"line {index + 1} is a JSON {type(record).__name__}, "
                                         f"not an object")
                    continue
                yield index, record
    except OSError as exc:
        raise SourceError(path, f"cannot read ({exc})") from None
