"""Writing imported records as a vlir output: what ``vlir build`` leaves, made by vlir's own writers.

An import is written as one build task (task 0 of 1) per (source, split): the accepted and rejects
shards (:class:`vlir.corpus.shards.ShardWriter`), the task's stats and completion marker, the build info
and the manifest (:mod:`vlir.corpus.manifest`). So ``vlir validate``, ``vlir card``, ``Corpus`` and SFT
read an import exactly like a build. Where the files go is decided by those modules' path
functions (``shard_name``, ``stats_path``, ``completion_marker``), never spelled out here beyond
the split folder ``vlir build`` writes its shards into.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Callable

from vlir.corpus.manifest import finish_task, write_build_info, write_manifest
from vlir.records import Record
from vlir.corpus import layout
from vlir.corpus.shards import ShardWriter


class _SplitTask:
    """The accepted and rejects shards of one (source, split), written as build task 0 of 1."""

    def __init__(self, out: Path, source: str, split: str):
        self.out, self.source, self.split = out, source, split
        tmp = layout.temp_dir(out)  # the paths are vlir.corpus.layout's, as vlir.corpus.build.Task writes them
        self.accepted = ShardWriter(out / layout.shard_rel(source, split, 0), tmp_dir=tmp)
        self.rejected = ShardWriter(out / layout.shard_rel(source, split, 0, rejects=True), tmp_dir=tmp)
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
        finish_task(self.out, self.source, self.split, 0, 1, self.accepted, self.rejected, self.reasons,
                    self.stats, annotator_stats)


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
