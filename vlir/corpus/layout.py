"""Where every file of a vlir output lives (the one owner of the layout)::

    <out>/<source>/<split>/part-NNNNN.parquet            accepted records only (one file per task)
    <out>/rejects/<source>/<split>/rejects-NNNNN.parquet  rejected records, with their reasons
    <out>/manifest.json                                  counts, checksums, config (vlir.corpus.manifest)
    <out>/build.json                                     the build config and source roots
    <out>/README.md, <out>/card/*.png                    the dataset card (vlir card)
    <out>/cache/teacher.sqlite                           the teacher's answer cache
    <out>/.vlir/<source>/<split>/stats/NNNNN.json        per-task counts and shard checksums
    <out>/.vlir/<source>/<split>/completions/NNNNN       per-task empty marker, written last
    <out>/.vlir/lock                                     the running build (pid, host)
    <out>/.vlir/tmp/                                     shards being written (renamed into place)

Why: ``load_dataset("parquet", data_dir=<out>/<source>/<split>)`` reads every file under the
folder (recursively), so a split folder holds nothing but accepted shards; rejects are a split of
their own (a ``<source>_rejects`` config in the card) and bookkeeping sits in a hidden folder that
the ``datasets`` file resolver skips. Paths read back from files (stats, manifests) go through
:func:`shard_path_problem`, so a crafted ``../victim`` is refused, never followed.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

PART_PREFIX = "part"
REJECTS_PREFIX = "rejects"
REJECTS_DIR = "rejects"
MANIFEST = "manifest.json"
BUILD_INFO = "build.json"
BOOKKEEPING = ".vlir"
LOCK = "lock"
TMP = "tmp"

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def task_name(task: int) -> str:
    return f"{task:05d}"


def shard_name(prefix: str, task: int) -> str:
    return f"{prefix}-{task_name(task)}.parquet"


def split_rel(source: str, split: str, rejects: bool = False) -> str:
    """``<source>/<split>`` (accepted) or ``rejects/<source>/<split>``, relative to the output."""
    return f"{REJECTS_DIR}/{source}/{split}" if rejects else f"{source}/{split}"


def split_dir(out: Path, source: str, split: str, rejects: bool = False) -> Path:
    return Path(out) / split_rel(source, split, rejects)


def shard_rel(source: str, split: str, task: int, rejects: bool = False) -> str:
    return f"{split_rel(source, split, rejects)}/{shard_name(REJECTS_PREFIX if rejects else PART_PREFIX, task)}"


def bookkeeping_dir(out: Path) -> Path:
    return Path(out) / BOOKKEEPING


def temp_dir(out: Path) -> Path:
    return bookkeeping_dir(out) / TMP


def lock_path(out: Path, num_shards: int = 1, shard_index: int = 0) -> Path:
    """``.vlir/lock``; machines of one ``--num-shards`` build sharing a folder each hold their own
    (``.vlir/lock-I-of-N``): they write disjoint tasks."""
    name = LOCK if num_shards == 1 else f"{LOCK}-{shard_index}-of-{num_shards}"
    return bookkeeping_dir(out) / name


_TEMP_TASK = re.compile(r"-(?:(?:part|rejects)-(\d{5})\.parquet|(\d{5})\.json)\.tmp$")


def temp_task(name: str) -> int | None:
    """The task number a temp file of :func:`temp_dir` belongs to (None if not a task's)."""
    m = _TEMP_TASK.search(name)
    return None if m is None else int(m.group(1) or m.group(2))


def stats_path(out: Path, source: str, split: str, task: int) -> Path:
    return bookkeeping_dir(out) / source / split / "stats" / f"{task_name(task)}.json"


def completion_marker(out: Path, source: str, split: str, task: int) -> Path:
    return bookkeeping_dir(out) / source / split / "completions" / task_name(task)


def name_problem(source: object, split: object) -> str | None:
    """Why a (source, split) read from a file cannot name folders under an output (or None).
    Splits may nest (``random/test``); no part may be empty, ``.``, ``..`` or odd characters."""
    if not isinstance(source, str) or not _NAME.match(source) or source in (REJECTS_DIR, BOOKKEEPING):
        return f"source {source!r} is not a plain folder name"
    if not isinstance(split, str) or not split:
        return f"split {split!r} is not a plain folder name"
    for part in split.split("/"):
        if not _NAME.match(part) or part in (".", ".."):
            return f"split {split!r} is not a plain folder name"
    return None


def shard_path_problem(rel: object) -> str | None:
    """Why ``rel`` (read from a stats file or manifest) is not a shard path inside an output: not
    relative, holds ``..``, or is not ``<source>/<split>/part-N.parquet`` /
    ``rejects/<source>/<split>/rejects-N.parquet``."""
    if not isinstance(rel, str) or not rel:
        return f"shard path {rel!r} is not a relative path"
    if "\\" in rel or "\x00" in rel or rel.startswith("/") or PurePosixPath(rel).is_absolute():
        return f"shard path {rel!r} is absolute or malformed; refused"
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return f"shard path {rel!r} leaves its folder ('..' or empty parts); refused"
    rejects = parts[0] == REJECTS_DIR
    body = parts[1:] if rejects else parts
    if len(body) < 3:
        return f"shard path {rel!r} is not <source>/<split>/<shard>.parquet"
    prefix = REJECTS_PREFIX if rejects else PART_PREFIX
    if not re.fullmatch(rf"{prefix}-\d{{5}}\.parquet", body[-1]):
        return f"shard path {rel!r}: file name must be {prefix}-NNNNN.parquet"
    return name_problem(body[0], "/".join(body[1:-1]))


def expected_shard_rel(source: str, split: str, task: int, kind: str) -> str:
    return shard_rel(source, split, task, rejects=(kind != "accepted"))


def inside(out: Path, path: Path) -> bool:
    """``path`` resolves (symlinks followed) to a place under ``out`` (:func:`vlir.paths.is_inside`)."""
    from vlir.paths import is_inside

    return is_inside(out, path)


BOOKKEEPING_FILE = re.compile(r"^\.vlir/(.+)/(stats/\d{5}\.json|completions/\d{5})$")
CARD_FILE = re.compile(r"^card/[A-Za-z0-9_.-]+\.png$")
CACHE_FILE = re.compile(r"^cache/teacher\.sqlite(-wal|-shm|-journal)?$")
LOCK_FILE = re.compile(rf"^\{BOOKKEEPING}/{LOCK}(-\d+-of-\d+)?$")
TOP_FILES = {MANIFEST, BUILD_INFO, "README.md"}


def is_expected_extra(rel: str) -> bool:
    """Non-shard files a build, ``vlir card`` or the teacher writes (shards are checked against
    the manifest instead). Anything else in an output is a stranger."""
    return rel in TOP_FILES or bool(BOOKKEEPING_FILE.match(rel) or CARD_FILE.match(rel)
                                    or CACHE_FILE.match(rel) or LOCK_FILE.match(rel))
