"""File plumbing the benchmark readers and sample writers share: streaming TSV/parquet readers,
base64/struct image cells, option formatting, vlir's lenient letter reader, small synthetic images.

HR-Bench, TreeBench and the MME-RealWorld TSV are multi-GB files whose rows carry a base64 image:
they are read row by row (``csv`` with a field limit large enough for one image, pyarrow record
batches for parquet), never loaded whole.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import random
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from vlir.eval.benchmarks.base import BenchmarkLayoutError

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # one base64 image per cell (tens of MB)

LETTERS = "ABCDEFGHIJ"


# --------------------------------------------------------------------------------------------
# Finding files
# --------------------------------------------------------------------------------------------

def find_first(root: Path, names: Sequence[str], what: str) -> Path:
    """The first of ``names`` under ``root`` (or ``root`` itself when it is one of them), else a
    :class:`BenchmarkLayoutError` naming what was expected."""
    root = Path(root)
    if root.is_file() and root.name in names:
        return root
    if not root.is_dir():
        raise BenchmarkLayoutError(f"{root}: not a folder (expected the {what} download holding "
                                   f"{' or '.join(names)})")
    for name in names:
        if (root / name).is_file():
            return root / name
    raise BenchmarkLayoutError(f"{root}: no {' or '.join(names)} here; is this the {what} download?")


# --------------------------------------------------------------------------------------------
# Streaming readers
# --------------------------------------------------------------------------------------------

def iter_tsv(path: Path, required: Sequence[str] = ()) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of a tab-separated file with a header, one row at a time."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise BenchmarkLayoutError(f"{path}: header lacks column(s) {', '.join(missing)} "
                                       f"(has {', '.join(reader.fieldnames or []) or 'nothing'})")
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as exc:
            raise BenchmarkLayoutError(f"{path}, line {reader.line_num}: {exc}") from None


def iter_parquet(path: Path, required: Sequence[str] = (), batch_rows: int = 16) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row number, row)`` of a parquet file, read in small record batches."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise BenchmarkLayoutError(f"{path}: not a readable parquet file ({exc})") from None
    names = pf.schema_arrow.names
    missing = [c for c in required if c not in names]
    if missing:
        raise BenchmarkLayoutError(f"{path}: lacks column(s) {', '.join(missing)} (has {', '.join(names)})")
    n = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            yield n, row
            n += 1


def image_cell(value: Any, where: str) -> bytes:
    """Image bytes from a base64 string (TSV), a ``{"bytes": ...}`` struct (HF parquet) or bytes."""
    if isinstance(value, dict):
        value = value.get("bytes")
    if isinstance(value, (bytes, bytearray)) and value:
        return bytes(value)
    if isinstance(value, str) and value.strip():
        try:
            return base64.b64decode(value, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise BenchmarkLayoutError(f"{where}: image cell is not base64 ({exc})") from None
    raise BenchmarkLayoutError(f"{where}: empty image cell")


def cell(row: Mapping[str, Any], key: str) -> str:
    """A text cell as a stripped string ('' for missing/NaN/None)."""
    value = row.get(key)
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()


# --------------------------------------------------------------------------------------------
# Writers (sample trees)
# --------------------------------------------------------------------------------------------

def write_tsv(path: Path, header: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(header), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in header})


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sample_picture(seed: int, size: tuple[int, int] = (224, 168), n_boxes: int = 1
                   ) -> tuple[bytes, list[tuple[int, int, int, int]]]:
    """A JPEG with ``n_boxes`` coloured rectangles on a gradient, and the rectangles as x1,y1,x2,y2."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    w, h = size
    img = Image.new("RGB", size, (rng.randint(150, 230), rng.randint(150, 230), rng.randint(150, 230)))
    draw = ImageDraw.Draw(img)
    boxes = []
    for _ in range(n_boxes):
        bw, bh = rng.randint(w // 10, w // 4), rng.randint(h // 10, h // 4)
        x, y = rng.randint(0, w - bw - 1), rng.randint(0, h - bh - 1)
        draw.rectangle([x, y, x + bw, y + bh], fill=(rng.randint(0, 255), rng.randint(0, 120), rng.randint(0, 255)))
        boxes.append((x, y, x + bw, y + bh))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue(), boxes


# --------------------------------------------------------------------------------------------
# Options and a letter rule
# --------------------------------------------------------------------------------------------

def lettered(options: Sequence[str], style: str = "({L}) {T}") -> list[str]:
    return [style.format(L=LETTERS[i], T=t) for i, t in enumerate(options)]


_PUNCT = re.compile(r"[.()\[\],:;!*#{}<>\"'`]")


def lenient_option(text: str, options: Mapping[str, str]) -> str:
    """vlir's friendlier reader (an *alternative* score, labelled ``lenient_letter``; the headline
    is :func:`vlir.eval.benchmarks._can_infer.can_infer`): quotes, angle brackets and backticks are
    stripped too (``'C'`` and ``"B"`` read as letters), no reject phrases; exactly one standalone
    option letter, else exactly one non-empty option text (case-insensitive), else ''."""
    words = _PUNCT.sub(" ", text).split()
    found = [L for L in options if L in words]
    if len(found) == 1:
        return found[0]
    low = text.lower()
    hits = [L for L, t in options.items() if t and t.lower() in low]
    return hits[0] if len(hits) == 1 else ""


def deepeyes_rule(pred: str, letter: str, gold_text: str) -> float:
    """DeepEyes' rule-based check (``eval/judge_result.py``, ``judge_result_hrbench.py``) with
    its LLM judge off: a ``\\boxed{}`` is unwrapped; a one-character answer must be the letter; a
    two-character answer holding "." must contain it; otherwise the gold text must occur in the
    answer (V*: ``"B. <option>"``, HR-Bench: the option text), else it would go to their LLM (0 here).
    """
    if "\\boxed{" in pred:
        pred = pred.split("\\boxed{")[1].split("}")[0]
    if len(pred) == 1:
        return float(pred == letter)
    if len(pred) == 2 and "." in pred:
        return float(letter in pred)
    return float(gold_text in pred)
