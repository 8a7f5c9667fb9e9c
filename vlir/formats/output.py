"""Writing imported records as a vlir output: what ``vlir build`` leaves, made by vlir's own writers.

An import is written as one build task (task 0 of 1) per (source, split): the accepted and rejects
shards (:class:`vlir.shards.ShardWriter`), the task's stats and completion marker, the build info
and the manifest (:mod:`vlir.manifest`). So ``vlir validate``, ``vlir card``, ``Corpus`` and SFT
read an import exactly like a build. Where the files go is decided by those modules' path
functions (``shard_name``, ``stats_path``, ``completion_marker``), never spelled out here beyond
the split folder ``vlir build`` writes its shards into.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Callable

from vlir.manifest import completion_marker, stats_path, write_build_info, write_manifest
from vlir.records import Record
from vlir.shards import PART_PREFIX, REJECTS_PREFIX, ShardWriter, atomic_write_json, shard_name


class _SplitTask:
    """The accepted and rejects shards of one (source, split), written as build task 0 of 1."""

    def __init__(self, out: Path, source: str, split: str):
        self.out, self.source, self.split = out, source, split
        split_dir = out / source / split  # as vlir.build.Task.split_dir
        self.accepted = ShardWriter(split_dir / shard_name(PART_PREFIX, 0))
        self.rejected = ShardWriter(split_dir / shard_name(REJECTS_PREFIX, 0))
        self.reasons: Counter = Counter()
        self.stats: Counter = Counter()

    def write(self, record: Record) -> None:
        if record.accepted:
            self.accepted.write(record)
            self.stats["crops"] += len(record.crops)
            self.stats.update(f"failed_{c.name}" for c in record.checks if not c.passed)
        else:
            self.rejected.write(record)
            self.reasons.update(record.reasons)

    def abort(self) -> None:
        self.accepted.abort()
        self.rejected.abort()

    def close(self, annotator_stats: dict[str, Any]) -> None:
        shards = []
        for writer, kind in ((self.accepted, "accepted"), (self.rejected, "rejected")):
            info = writer.close()
            shards.append({"path": writer.path.relative_to(self.out).as_posix(), "kind": kind, **info})
        atomic_write_json(stats_path(self.out, self.source, self.split, 0), {
            "source": self.source, "split": self.split, "task": 0, "tasks": 1,
            "accepted": self.accepted.rows, "rejected": self.rejected.rows,
            "rejected_by_reason": dict(sorted(self.reasons.items())),
            "stats": dict(sorted(self.stats.items())),
            "annotator_stats": annotator_stats, "shards": shards,
        })
        marker = completion_marker(self.out, self.source, self.split, 0)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()


class OutputWriter:
    """Streams records (accepted or rejects) into ``out``, one task per (source, split) they name;
    :meth:`finish` closes the shards and writes the manifest. Used as a context manager, an error
    leaves no half-written shard under a final name."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.tasks: dict[tuple[str, str], _SplitTask] = {}

    def write(self, record: Record, split: str | None = None) -> None:
        """Add ``record`` to the split folder ``split`` of its source (default: its own split;
        ``vlir build`` files records under the split asked for, e.g. VSR's ``random/train``
        records under ``train``)."""
        key = (record.sample.source, split or record.sample.split)
        if key not in self.tasks:
            self.tasks[key] = _SplitTask(self.out, *key)
        self.tasks[key].write(record)

    def finish(self, config: dict[str, Any], root: str,
               annotator_stats: Callable[[tuple[str, str]], dict[str, Any]] = lambda key: {}) -> dict[str, Any]:
        """Close every task (``annotator_stats(key)`` goes into its stats, summed into the
        manifest), record ``config`` and ``root`` (the image root of every source) as the build
        info, and write the manifest, which is returned."""
        roots = {source: root for source, _ in self.tasks}
        for key, task in sorted(self.tasks.items()):
            task.close(annotator_stats(key))
        self.tasks = {}
        write_build_info(self.out, config, roots)
        return write_manifest(self.out)

    def __enter__(self) -> "OutputWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            for task in self.tasks.values():
                task.abort()
