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


_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder(parse_constant=lambda _: None)  # NaN/Infinity read as null, as above
_SPAN_CHUNK = 1 << 22
_SPAN_MAX = 1 << 26  # one item larger than this is taken for a broken file


class _NeedMore(Exception):
    """The buffer ends inside the item being parsed."""


def iter_object_spans(path: Path) -> Iterator[tuple[str, Any, tuple[int, int]]]:
    """Like :func:`iter_object_items` at the top level, with each item's place in the file:
    ``(key, value, (byte offset, byte length))`` of the ``"key": value`` text, which
    :func:`read_object_span` reads back alone. Why: a build's plan hands each task its items as
    these spans (bytes per item) instead of copies of the items (:mod:`vlir.corpus.build_plan`).
    Parsed with the standard library's C scanner, value for value as ijson reads them (NaN and
    Infinity as null)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            _check_top_level(fh, path, "{")
            yield from _object_spans(fh, path)
    except UnicodeDecodeError as exc:
        raise SourceError(path, f"not valid UTF-8 JSON ({exc})") from None
    except OSError as exc:
        raise SourceError(path, f"cannot read ({exc})") from None


def _object_spans(fh, path: Path) -> Iterator[tuple[str, Any, tuple[int, int]]]:
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    text, eof = "", False
    # `done` is where the next item (its "," included) starts in `text`; `done_at` its byte offset
    done, done_at = 0, fh.tell()

    def more() -> None:
        nonlocal text, eof, done
        chunk = fh.read(_SPAN_CHUNK)
        eof = not chunk
        text = text[done:] + decoder.decode(chunk, final=eof)
        done = 0

    def nbytes(a: int, b: int) -> int:
        return b - a if text.isascii() else len(text[a:b].encode("utf-8"))

    more()
    done = _SPACE.match(text).end() + 1  # past the "{" _check_top_level saw
    done_at += done if text.isascii() else len(text[:done].encode("utf-8"))
    first = True
    while True:
        try:
            pos = _SPACE.match(text, done).end()
            if pos >= len(text):
                raise _NeedMore
            if text[pos] == "}":
                return
            if not first:
                if text[pos] != ",":
                    raise ValueError(f"expected ',' or '}}' at byte {done_at + nbytes(done, pos)}")
                pos = _SPACE.match(text, pos + 1).end()
            start = pos
            key, pos = _DECODER.raw_decode(text, pos)
            if not isinstance(key, str):
                raise ValueError(f"expected an object key at byte {done_at + nbytes(done, start)}")
            pos = _SPACE.match(text, pos).end()
            if pos >= len(text):
                raise _NeedMore
            if text[pos] != ":":
                raise ValueError(f"expected ':' at byte {done_at + nbytes(done, pos)}")
            value, end = _DECODER.raw_decode(text, _SPACE.match(text, pos + 1).end())
            if end >= len(text) and not eof:  # a number may go on in the next chunk
                raise _NeedMore
        except (_NeedMore, json.JSONDecodeError, IndexError) as exc:
            if eof:
                detail = "the file ends inside an item" if isinstance(exc, _NeedMore) else _one_line(exc)
                raise SourceError(path, f"not valid JSON ({detail})") from None
            if len(text) - done > _SPAN_MAX:
                raise SourceError(path, f"not valid JSON (no item ends within {_SPAN_MAX} bytes of byte "
                                        f"{done_at})") from None
            more()  # read on, from the start of the item being read
            continue
        except ValueError as exc:
            raise SourceError(path, f"not valid JSON ({exc})") from None
        offset = done_at + nbytes(done, start)
        length = nbytes(start, end)
        yield key, value, (offset, length)
        first, done, done_at = False, end, offset + length


def read_object_span(fh, span: tuple[int, int]) -> tuple[str, Any]:
    """The ``(key, value)`` at ``span`` (from :func:`iter_object_spans`) of the open binary file."""
    fh.seek(span[0])
    data = fh.read(span[1]).decode("utf-8")
    key, pos = _DECODER.raw_decode(data)
    return key, _DECODER.raw_decode(data, _SPACE.match(data, _SPACE.match(data, pos).end() + 1).end())[0]
