"""Parquet shards: the on-disk form of VLIR records, readable by Hugging Face ``datasets``.

Layout (see :mod:`vlir.corpus.layout`, its one owner)::

    <out>/<source>/<split>/part-NNNNN.parquet            accepted records (one file per build task)
    <out>/rejects/<source>/<split>/rejects-NNNNN.parquet  rejected records, with their reasons
    <out>/manifest.json                                  counts, checksums, config (vlir.corpus.manifest)

Columns carry the ``datasets`` feature metadata, so ``load_dataset("parquet", data_dir=...)``
decodes ``crops`` (always embedded PNG bytes) and ``image`` (embedded with ``--embed-images``) to
PIL images. By default the original image is *referenced* (``image_path`` relative to the source
root + ``image_sha256``; the root is in the manifest) because one photo serves many questions and
a bare relative path in an ``Image()`` column would only open from one working directory;
:class:`Corpus` resolves it. Every file is written under a temporary name (in the build's ``.vlir/tmp``,
outside the split folders) and renamed, so a killed build never leaves a half-written shard under a
final name nor a stray file where ``datasets`` would read it.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from vlir.corpus import layout
from vlir.corpus.layout import MANIFEST, PART_PREFIX, REJECTS_PREFIX, shard_name  # noqa: F401 (re-exported)
from vlir.records import Record

ROW_GROUP_ROWS = 256


# One row's columns, in ``datasets.Features.to_dict()`` form: the one description both the Arrow
# schema (what the writer needs) and the ``datasets`` features (what readers decode with) come from.
# The writer builds its schema from it with pyarrow alone: importing ``datasets`` for it cost every
# build about 0.5 s of serial start-up and tear-down (a tenth of a 1,000-record build).
def _value(dtype: str) -> dict[str, Any]:
    return {"dtype": dtype, "_type": "Value"}


def _list(feature: dict[str, Any]) -> dict[str, Any]:
    return {"feature": feature, "_type": "List"}


_IMAGE = {"_type": "Image"}  # datasets' Image(): struct<bytes: binary, path: string>
_BOX = _list(_value("float64"))
ROW_FEATURES: dict[str, Any] = {
    "schema_version": _value("int32"),
    "id": _value("string"),
    "source": _value("string"),
    "split": _value("string"),
    "image_path": _value("string"),
    "image_sha256": _value("string"),
    "image": _IMAGE,
    "width": _value("int32"),
    "height": _value("int32"),
    "question": _value("string"),
    "answers": _list(_value("string")),
    "evidence": _list({"box": _BOX, "label": _value("string"), "kind": _value("string")}),
    "meta": _value("string"),
    "steps": _list({"type": _value("string"), "text": _value("string"), "box": _BOX,
                    "label": _value("string")}),
    "answer": _value("string"),
    "crops": _list(_IMAGE),
    "crop_info": _list({"box": _BOX, "scale": _value("float64"), "width": _value("int32"),
                        "height": _value("int32")}),
    "annotator": _value("string"),
    "teacher_model": _value("string"),
    "prompt_hash": _value("string"),
    "vlir_version": _value("string"),
    "checks": _list({"name": _value("string"), "passed": _value("bool"), "value": _value("float64"),
                     "detail": _value("string")}),
    "status": _value("string"),
    "reasons": _list(_value("string")),
    "reject_reason": _value("string"),  # reasons[0] of a reject (null when accepted)
    "reject_detail": _value("string"),  # its one-line why (null when accepted)
}


@lru_cache(maxsize=1)
def features():
    """The ``datasets.Features`` of a VLIR row (imported lazily: ``datasets`` is not light)."""
    from datasets import Features

    return Features.from_dict(json.loads(json.dumps(ROW_FEATURES)))  # a copy: never touch the original


def _arrow_type(feature: Any) -> pa.DataType:
    """The Arrow type ``datasets`` stores a feature as (the subset of feature types a row uses)."""
    if isinstance(feature, dict) and "_type" not in feature:  # a struct
        return pa.struct([pa.field(name, _arrow_type(sub)) for name, sub in feature.items()])
    kind = feature["_type"]
    if kind == "Value":
        return pa.type_for_alias(feature["dtype"])
    if kind == "Image":
        return pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
    if kind == "List":
        return pa.list_(_arrow_type(feature["feature"]))
    raise ValueError(f"no Arrow type for feature {feature!r}")


@lru_cache(maxsize=1)
def arrow_schema() -> pa.Schema:
    """The shards' schema: byte-equal (metadata included) to ``features().arrow_schema``, so
    ``datasets`` reads the columns as its features, without importing ``datasets``."""
    return pa.schema([pa.field(name, _arrow_type(f)) for name, f in ROW_FEATURES.items()],
                     metadata={"huggingface": json.dumps({"info": {"features": ROW_FEATURES}})})


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes, tmp_dir: Path | None = None) -> None:
    """Write ``data`` to ``path`` via a temp file (beside it, or in ``tmp_dir`` on the same
    filesystem: a build's ``.vlir/tmp``, cleared when a build starts or stops) + fsync + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tmp_dir is None:
        tmp = path.with_name(path.name + ".tmp")
    else:
        Path(tmp_dir).mkdir(parents=True, exist_ok=True)
        tmp = Path(tmp_dir) / f"{hashlib.sha1(str(path).encode()).hexdigest()[:12]}-{path.name}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any, tmp_dir: Path | None = None) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode(),
                       tmp_dir)


class ShardWriter:
    """Streams records into one Parquet file in row groups of ``row_group_rows``.

    Rows are buffered only up to one row group, so memory stays bounded whatever the shard size.
    The file appears under its final name only on :meth:`close` (temp name + rename); a writer that
    saw no rows writes no file at all (``close`` returns ``rows: 0`` and the task's stats list no
    shard): an empty Parquet file would make ``load_dataset`` report a split "with no data" and a
    Hub config glob match files that hold nothing.
    """

    def __init__(self, path: Path, row_group_rows: int = ROW_GROUP_ROWS, tmp_dir: Path | None = None):
        self.path = Path(path)
        if tmp_dir is None:
            self.tmp = self.path.with_name(self.path.name + ".tmp")
        else:  # unique per final path, so tasks sharing one temp folder never collide
            tag = hashlib.sha1(str(self.path).encode()).hexdigest()[:12]
            self.tmp = Path(tmp_dir) / f"{tag}-{self.path.name}.tmp"
        self.row_group_rows = row_group_rows
        self.rows = 0
        self._buffer: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None  # opened with the first row: no row, no file

    def write(self, record: Record) -> None:
        self._buffer.append(record.to_row())
        self.rows += 1
        if len(self._buffer) >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            if self._writer is None:
                self.tmp.parent.mkdir(parents=True, exist_ok=True)
                self._writer = pq.ParquetWriter(self.tmp, arrow_schema(), compression="zstd")
            self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=arrow_schema()))
            self._buffer = []

    def close(self) -> dict[str, Any]:
        """Finish the file, rename it into place; returns ``{rows, sha256, bytes}`` (``sha256`` None
        and no file when no row was written; a stale file under the final name is removed)."""
        if self.rows == 0:
            self.abort()
            self.path.unlink(missing_ok=True)
            return {"rows": 0, "sha256": None, "bytes": 0}
        try:
            self._flush()
            self._writer.close()
        except BaseException:
            self.abort()
            raise
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp, self.path)
        return {"rows": self.rows, "sha256": sha256_file(self.path), "bytes": self.path.stat().st_size}

    def abort(self) -> None:
        """Drop the temp file. Closing may fail again (disk full): the writer is then marked closed
        so pyarrow's ``__del__`` does not retry and print "Exception ignored"."""
        self._buffer = []
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError:
                pass
            finally:
                self._writer.is_open = False
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def iter_rows(path: Path, columns: list[str] | None = None, batch_rows: int = 64) -> Iterator[dict[str, Any]]:
    """Stream rows of one Parquet file as dicts, one batch in memory at a time."""
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
        yield from batch.to_pylist()


def shard_files(split_dir: Path, prefix: str = PART_PREFIX) -> list[Path]:
    return sorted(Path(split_dir).glob(f"{prefix}-*.parquet"))


def read_records(path: Path, prefix: str = PART_PREFIX) -> Iterator[Record]:
    """Records from a Parquet file, or from every ``part-*.parquet`` in a split folder."""
    path = Path(path)
    files = [path] if path.is_file() else shard_files(path, prefix)
    for f in files:
        for row in iter_rows(f):
            yield Record.from_row(row)


class Corpus:
    """A built VLIR output folder: its manifest, records and original images."""

    def __init__(self, out: Path):
        self.out = Path(out)
        manifest_path = self.out / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{self.out} is not a vlir output (no {MANIFEST})")
        self.manifest = json.loads(manifest_path.read_text())

    def splits(self) -> list[tuple[str, str]]:
        return sorted((v["source"], v["split"]) for v in self.manifest.get("splits", {}).values())

    def split_dir(self, source: str, split: str, *, rejects: bool = False) -> Path:
        """The folder of a split the manifest names: manifest data, so confined to OUT
        (:func:`vlir.paths.confine`)."""
        from vlir.paths import confine

        return confine(self.out, layout.split_rel(source, split, rejects), "manifest split", "the output folder")

    def records(self, source: str, split: str, rejects: bool = False) -> Iterator[Record]:
        return read_records(self.split_dir(source, split, rejects=rejects), REJECTS_PREFIX if rejects else PART_PREFIX)

    def root(self, source: str) -> Path | None:
        root = self.manifest.get("roots", {}).get(source)
        return Path(root) if root else None

    def image(self, record: Record):
        """The record's original image as RGB PIL: embedded bytes, else resolved under the source
        root recorded in the manifest (and checked against the stored sha256)."""
        from vlir import images

        if record.image_bytes is not None:
            return images.decode_image(record.image_bytes, record.sample.id)
        root = self.root(record.sample.source)
        if root is None:
            raise FileNotFoundError(f"no source root for {record.sample.source} in {self.out / MANIFEST}")
        name = record.sample.image  # errors name the path under the source root, never a local one
        path = images.safe_path(root, name)
        data = images.read_image_bytes(path, name)
        if record.image_sha256 and images.sha256_hex(data) != record.image_sha256:
            raise ValueError(f"{name}: image bytes differ from the sha256 recorded for {record.sample.id}")
        return images.decode_image(data, name)


def write_records(path: Path, records: Iterable[Record]) -> dict[str, Any]:
    """Write a whole iterable of records to one shard (tests and small tools)."""
    writer = ShardWriter(path)
    try:
        for r in records:
            writer.write(r)
    except BaseException:
        writer.abort()
        raise
    return writer.close()
