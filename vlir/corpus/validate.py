"""``vlir validate``: prove a VLIR output is what its manifest says it is.

Checks, in order: the manifest (present, JSON, schema-valid); every shard it lists (a shard path
inside OUT — a ``../`` or absolute path is reported, never opened —, present, byte size, sha256,
readable Parquet, row count); the per-task stats against the manifest (a shard re-hashed into the
manifest still disagrees with the stats its task wrote); every file on disk the layout does not
expect (:mod:`vlir.corpus.layout`: stray or unlisted shards, ``*.tmp``, anything else); every row (record
schema, the id rule of :func:`vlir.records.id_problem`, an ``image_path`` that stays under the source
root, boxes inside the image with positive area, one crop per look, status matching the file
kind, accepted ids unique across the output); per-split counts against the manifest. Problems are
collected, never raised, so one run reports everything that is wrong. A folder with build
bookkeeping but no manifest is an interrupted build, told apart from a foreign folder.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from vlir.corpus import layout
from vlir.corpus.shards import MANIFEST, iter_rows, sha256_file
from vlir.paths import path_problem
from vlir.records import id_problem

BOX_TOLERANCE = 1.0  # px: boxes may touch the border after float rounding


class NotVlirOutput(Exception):
    """The folder is not a vlir output at all, or an unfinished one (exit code 2)."""


@dataclass(frozen=True)
class Problem:
    file: str
    row: int | None
    field: str
    reason: str

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file} row {self.row}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


@dataclass
class Report:
    out: Path
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, file: str, row: int | None, fld: str, reason: str) -> None:
        self.problems.append(Problem(file, row, fld, reason))

    def summary_lines(self) -> list[str]:
        lines = [f"{'source/split':<32} {'accepted':>9} {'rejected':>9}"]
        for key in sorted(self.counts):
            c = self.counts[key]
            lines.append(f"{key:<32} {c['accepted']:>9} {c['rejected']:>9}")
        return lines


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    return json.loads(resources.files("vlir").joinpath("schemas", name).read_text())


@lru_cache(maxsize=None)
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _schema_errors(name: str, obj: Any) -> list[tuple[str, str]]:
    errors = sorted(_validator(name).iter_errors(obj), key=lambda e: list(e.absolute_path))
    return [("/".join(str(p) for p in e.absolute_path) or "(root)", e.message) for e in errors]


def _box_problem(box: list[float] | None, width: int, height: int) -> str | None:
    if box is None or len(box) != 4:
        return "box must have 4 numbers"
    x1, y1, x2, y2 = box
    if not (x1 < x2 and y1 < y2):
        return f"box {box} has no positive area"
    t = BOX_TOLERANCE
    if x1 < -t or y1 < -t or x2 > width + t or y2 > height + t:
        return f"box {box} lies outside the {width}x{height} image"
    return None


def _check_row(report: Report, rel: str, i: int, row: dict[str, Any], kind: str) -> None:
    for fld, msg in _schema_errors("vlir_record.schema.json", row):
        report.add(rel, i, fld, f"schema: {msg}")
    # the build's own rules (vlir.records.id_problem, vlir.paths.path_problem): a row breaking them
    # would make a reader join a path outside the source root, or name a record ambiguously
    if isinstance(row.get("id"), str) and (msg := id_problem(row["id"], row.get("source"), row.get("split"))):
        report.add(rel, i, "id", msg)
    image_path = row.get("image_path")
    if (image_path or kind == "accepted") and (msg := path_problem(image_path, "image_path")):
        report.add(rel, i, "image_path", msg)
    if row.get("status") != kind:
        report.add(rel, i, "status", f"{row.get('status')!r} row in a {kind} shard")
    if kind != "accepted":
        return
    w, h = row.get("width") or 0, row.get("height") or 0
    for j, ev in enumerate(row.get("evidence") or ()):
        if (msg := _box_problem(ev.get("box"), w, h)):
            report.add(rel, i, f"evidence/{j}/box", msg)
    looks = [s for s in row.get("steps") or () if s.get("type") == "look"]
    for j, step in enumerate(looks):
        if (msg := _box_problem(step.get("box"), w, h)):
            report.add(rel, i, f"look {j}/box", msg)
    crops = row.get("crops") or ()
    if len(crops) != len(looks) or len(row.get("crop_info") or ()) != len(looks):
        report.add(rel, i, "crops", f"{len(crops)} crops for {len(looks)} look steps")
    for j, c in enumerate(crops):
        data = (c or {}).get("bytes")
        if not data or not (data.startswith(b"\x89PNG\r\n\x1a\n") or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")):
            report.add(rel, i, f"crops/{j}", "crop is not PNG (or lossless WebP) bytes")


def _load_manifest(out: Path, report: Report) -> dict[str, Any] | None:
    if not out.is_dir():
        raise NotVlirOutput(f"{out} is not a directory")
    path = out / MANIFEST
    if not path.is_file():
        if (out / layout.BUILD_INFO).is_file() or layout.bookkeeping_dir(out).is_dir():
            raise NotVlirOutput(f"{out} is an incomplete build (rerun the build command to finish; "
                                "for a --num-shards build, `vlir merge` once every machine is done)")
        raise NotVlirOutput(f"{out} is not a vlir output: no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        report.add(MANIFEST, None, "", f"not valid JSON ({exc})")
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != "vlir":
        raise NotVlirOutput(f"{path} is not a vlir manifest (no \"format\": \"vlir\")")
    for fld, msg in _schema_errors("manifest.schema.json", manifest):
        report.add(MANIFEST, None, fld, f"schema: {msg}")
    return manifest


def _walk(out: Path) -> tuple[set[str], set[str]]:
    """Every file under ``out`` (relative POSIX paths) and the symbolic links (never followed)."""
    files, links = set(), set()
    for dirpath, dirnames, filenames in os.walk(out, followlinks=False):
        base = Path(dirpath)
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            rel = (base / name).relative_to(out).as_posix()
            (links if (base / name).is_symlink() else files).add(rel)
    return files, links


def _check_files(out: Path, report: Report, listed: dict[str, dict[str, Any]]) -> None:
    files, links = _walk(out)
    for rel in sorted(links):
        report.add(rel, None, "", "a symbolic link (a vlir build writes none); not followed")
    for rel in sorted(files - set(listed)):
        if layout.is_expected_extra(rel):
            continue
        if rel.endswith(".tmp"):
            report.add(rel, None, "", "a temporary file left by an interrupted write")
        elif layout.shard_path_problem(rel) is None:
            report.add(rel, None, "", "shard on disk is not listed in the manifest")
        else:
            report.add(rel, None, "", "unexpected file (a vlir build writes nothing here); "
                       "the split folders must hold only listed shards")


def _check_stats(out: Path, report: Report, listed: dict[str, dict[str, Any]]) -> None:
    """Each task's stats (what the task saw when it renamed its shards into place) must agree with
    the manifest: same shards, sizes, row counts and sha256."""
    named: set[str] = set()
    for path in sorted(layout.bookkeeping_dir(out).glob("**/stats/*.json")):
        rel = path.relative_to(out).as_posix()
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            report.add(rel, None, "", f"unreadable task stats ({exc})")
            continue
        from vlir.corpus.manifest import stats_problem

        if (msg := stats_problem(data)):
            report.add(rel, None, "", msg)
            continue
        if not layout.completion_marker(out, data["source"], data["split"], data["task"]).exists():
            report.add(rel, None, "", "task stats without a completion marker (an interrupted task)")
        for shard in data["shards"]:
            named.add(shard["path"])
            entry = listed.get(shard["path"])
            if entry is None:
                report.add(rel, None, "shards", f"{shard['path']} is not listed in the manifest")
                continue
            for key in ("sha256", "bytes", "rows"):
                if shard.get(key) != entry.get(key):
                    report.add(rel, None, f"shards/{shard['path']}/{key}",
                               f"task stats say {shard.get(key)!r}, manifest says {entry.get(key)!r} "
                               "(shard or manifest edited after the build)")
    for rel in sorted(set(listed) - named):
        report.add(rel, None, "", "listed in the manifest, but no task's stats name it")


def _split_key(rel: str) -> str:
    parent = Path(rel).parent.as_posix()
    prefix = layout.REJECTS_DIR + "/"
    return parent[len(prefix):] if parent.startswith(prefix) else parent


def validate_output(out: Path) -> Report:
    """Validate ``out``; raises :class:`NotVlirOutput` when it is not a vlir output at all."""
    out = Path(out)
    report = Report(out)
    manifest = _load_manifest(out, report)
    if manifest is None:
        return report
    listed: dict[str, dict[str, Any]] = {}
    for entry in manifest.get("shards") or ():
        rel = entry.get("path") if isinstance(entry, dict) else None
        if (msg := layout.shard_path_problem(rel)):
            report.add(MANIFEST, None, "shards", f"{msg}; not followed")
        elif not layout.inside(out, out / rel):
            report.add(rel, None, "", "resolves outside the output (a symbolic link); not followed")
        else:
            listed[rel] = entry
    _check_files(out, report, listed)
    _check_stats(out, report, listed)
    seen_ids: dict[str, str] = {}
    rows_per_split: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for rel in sorted(listed):
        entry = listed[rel]
        path = out / rel
        if not path.is_file():
            report.add(rel, None, "", "shard listed in the manifest is missing")
            continue
        size = path.stat().st_size
        if size != entry.get("bytes"):
            report.add(rel, None, "bytes", f"size {size} != manifest {entry.get('bytes')} (truncated or edited)")
        elif sha256_file(path) != entry.get("sha256"):
            report.add(rel, None, "sha256", "checksum differs from the manifest (edited)")
        kind = entry.get("kind", "accepted")
        n = 0
        try:
            for i, row in enumerate(iter_rows(path)):
                n += 1
                _check_row(report, rel, i, row, kind)
                rid = row.get("id")
                if kind == "accepted" and rid in seen_ids:
                    report.add(rel, i, "id", f"duplicate id {rid!r} (also in {seen_ids[rid]})")
                elif kind == "accepted":
                    seen_ids[rid] = rel
                key = _split_key(rel)
                report.counts[key][kind] += 1
                rows_per_split[key][kind] += 1
        except Exception as exc:  # pyarrow raises several types for corrupt files
            report.add(rel, None, "", f"unreadable Parquet ({type(exc).__name__}: {exc})")
            continue
        if n != entry.get("rows"):
            report.add(rel, None, "rows", f"{n} rows != manifest {entry.get('rows')}")
    for key, split in sorted((manifest.get("splits") or {}).items()):
        for kind in ("accepted", "rejected"):
            if split.get(kind) != rows_per_split[key][kind]:
                report.add(MANIFEST, None, f"splits/{key}/{kind}",
                           f"manifest says {split.get(kind)}, shards hold {rows_per_split[key][kind]}")
    return report
