"""A build reads each (source, split) once: one read hands every task its share.

Tasks partition a split by a stable hash of the sample id (:func:`vlir.corpus.build.task_of`). Finding a
task's partition used to mean every task streaming the whole source and dropping the ids that were
not its own: with N tasks, N parses of the question file, N scene-graph or OCR indexes, N image
probes per question (measured: 4.1x the parse work with 4 tasks on GQA). Now one *read* per
(source, split) streams the adapter once (its first ``limit`` items, as before), hashes each item's
id and appends the item to the spool of its task; a task then reads only its spool. Items reach a
task in stream order, exactly the ones the filter handed it, so shards, stats and the manifest are
byte-identical to the filtering build, and all copies of an id still meet in one task.

Spools are bookkeeping of one run, like the shards' temp files: they live in the build's temp
folder (``.vlir/tmp/plan-I-of-N/<source>/<split>/``, one folder per ``--shard-index``), are
written under a temporary name and renamed into place once complete (so a read cut short is never
taken for a whole one), and go when the build ends. A resumed build reads a source again, once, for
its tasks still unfinished. A spool holds pickled :class:`~vlir.records.Sample` /
:class:`~vlir.records.Invalid` objects, in chunks: written and read once, by the same code, on the
output's filesystem (which Ray workers share).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from vlir.corpus import layout
from vlir.records import Invalid, Sample

if TYPE_CHECKING:
    from vlir.corpus.build import BuildConfig, Job

log = logging.getLogger(__name__)

STATS = "source_stats.json"
COUNTS = "counts.json"  # items per task of the read, for the progress total
FLUSH_ITEMS = 4096  # items held in memory before they are appended to their spools


@dataclass(frozen=True)
class SourceRead:
    """One read: ``job``'s source, streamed once into the spools of ``tasks`` under ``folder``."""

    job: Job
    tasks: tuple[int, ...]
    folder: str


def plan_root(out: Path, num_shards: int = 1, shard_index: int = 0) -> Path:
    """This machine's spools (removed with the temp folder, or by :func:`remove_spools`)."""
    return layout.temp_dir(out) / f"plan-{shard_index}-of-{num_shards}"


def source_reads(todo: list[tuple[Job, int]], out: Path, num_shards: int = 1,
                 shard_index: int = 0) -> list[SourceRead]:
    """One read per job that has unfinished tasks here, for those tasks (in the plan's order)."""
    tasks: dict[Job, list[int]] = {}
    for job, task in todo:
        tasks.setdefault(job, []).append(task)
    root = plan_root(out, num_shards, shard_index)
    return [SourceRead(job, tuple(ts), str(root / job.source / job.split)) for job, ts in tasks.items()]


def remove_spools(out: Path, num_shards: int = 1, shard_index: int = 0) -> None:
    shutil.rmtree(plan_root(out, num_shards, shard_index), ignore_errors=True)


def read_source(cfg: BuildConfig, read: SourceRead) -> int:
    """Stream the job's source once into its tasks' spools; the adapter's counters go beside them.
    Returns the items read (0 when an earlier attempt of this run already finished the read)."""
    from vlir.corpus.build import task_of
    from vlir.sources.registry import get_source

    folder, job = Path(read.folder), read.job
    if (folder / STATS).is_file():
        return 0
    start = time.monotonic()
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    buffers: dict[int, list[Sample | Invalid]] = {task: [] for task in read.tasks}
    for task in read.tasks:
        _spool(partial, task).touch()
    stats: Counter = Counter()
    stream = get_source(job.source).iter_samples(Path(job.root), job.split, stats=stats,
                                                 **cfg.source_options.get(job.source, {}))
    if cfg.limit is not None:
        stream = islice(stream, cfg.limit)
    read_items = held = 0
    per_task: Counter = Counter()
    for item in stream:
        read_items += 1
        task = task_of(item.id, cfg.tasks)
        share = buffers.get(task)
        if share is not None:
            share.append(item)
            per_task[task] += 1
            held += 1
            if held >= FLUSH_ITEMS:
                _flush(partial, buffers)
                held = 0
    _flush(partial, buffers)
    (partial / COUNTS).write_text(json.dumps({str(t): per_task[t] for t in read.tasks}))
    (partial / STATS).write_text(json.dumps(dict(stats)))
    try:
        os.replace(partial, folder)
    except OSError:  # another attempt finished first (the same bytes): keep its folder
        shutil.rmtree(partial, ignore_errors=True)
        if not (folder / STATS).is_file():
            raise
    log.info("build: read %s once: %d item(s) for %d task(s) in %.1fs", job.key, read_items,
             len(read.tasks), time.monotonic() - start)
    return read_items


def _spool(folder: Path, task: int) -> Path:
    return folder / f"{layout.task_name(task)}.pkl"


def _flush(folder: Path, buffers: dict[int, list[Sample | Invalid]]) -> None:
    for task, items in buffers.items():
        if items:
            with open(_spool(folder, task), "ab") as fh:
                pickle.dump(items, fh, protocol=pickle.HIGHEST_PROTOCOL)
            items.clear()


def task_counts(folder: str | Path) -> dict[int, int]:
    """Items per task of a finished read (what the progress bar's total and ETA are made of)."""
    path = Path(folder) / COUNTS
    return {int(t): n for t, n in json.loads(path.read_text()).items()} if path.is_file() else {}


def task_items(folder: str | Path, task: int) -> Iterator[Sample | Invalid]:
    """A task's share, in stream order."""
    path = _spool(Path(folder), task)
    if not (Path(folder) / STATS).is_file():
        raise FileNotFoundError(f"{path}: the source was not read for this task (no complete read "
                                f"in {folder})")
    with open(path, "rb") as fh:
        while True:
            try:
                chunk = pickle.load(fh)
            except EOFError:
                return
            yield from chunk


def source_stats(folder: str | Path) -> Counter:
    """The adapter's counters of the read (task 0 carries them into the manifest)."""
    return Counter(json.loads((Path(folder) / STATS).read_text()))
