"""A build reads each (source, split) once: one read hands every task its share.

Tasks partition a split by a stable hash of the sample id (:func:`task_of`). Finding a
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
its tasks still unfinished.

What a spool holds. For an adapter that locates its records (:attr:`vlir.sources.base.Source.spans`:
GQA, whose train questions are ~1.4 GB), a task's spool is the *places* of its records (file index,
byte offset, byte length; delta-coded, ~8 bytes an item), and the read leaves the adapter's opened
state (:meth:`~vlir.sources.base.Reading.for_tasks`: the scene-graph index, ~30 bytes an object) beside the
spools once; the task reads each record back at its place and parses it again, with the same code,
into the same Sample. Temp disk is then ~8 bytes a question (a delta-coded offset and a length)
plus the index (bench/full_size_gqa.py measures it against the question file; copies of the
samples were ~97 % of it).
Other adapters' spools hold pickled :class:`~vlir.records.Sample` / :class:`~vlir.records.Invalid`
objects, in chunks (their splits are tens of MB). Either way written and read once, by the same
code, on the output's filesystem (which Ray workers share).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import time
from array import array
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
READING = "reading.pkl"  # (source name, the adapter's opened state) for spools of record places
FLUSH_ITEMS = 4096  # items held in memory before they are appended to their spools
ESCAPE = 0xFFFFFFFF  # in a places spool: a new file or a long jump (see _PlaceSpool)


@dataclass(frozen=True)
class SourceRead:
    """One read: ``job``'s source, streamed once into the spools of ``tasks`` under ``folder``."""

    job: Job
    tasks: tuple[int, ...]
    folder: str


def task_of(sample_id: str, tasks: int) -> int:
    """Stable partition of a sample id (independent of order, machine and Python's hash seed): the
    task a sample belongs to, which the plan hands it to."""
    return int.from_bytes(hashlib.sha1(sample_id.encode()).digest()[:8], "big") % tasks


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
    from vlir.sources.registry import get_source

    folder, job = Path(read.folder), read.job
    if (folder / STATS).is_file():
        return 0
    start = time.monotonic()
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    stats: Counter = Counter()
    source, options = get_source(job.source), cfg.source_options.get(job.source, {})
    reading = source.open_split(Path(job.root), job.split, stats, options) if source.spans else None
    spool = _PlaceSpool(partial, read.tasks) if source.spans else _SampleSpool(partial, read.tasks)
    stream = (_located(source, reading) if reading is not None else
              ((item, None) for item in source.iter_samples(Path(job.root), job.split, stats=stats, **options)))
    if cfg.limit is not None:
        stream = islice(stream, cfg.limit)
    read_items = 0
    per_task: Counter = Counter()
    for item, place in stream:
        read_items += 1
        task = task_of(item.id, cfg.tasks)
        per_task[task] += 1
        spool.add(task, item, place)  # a task not of this read is ignored
    spool.flush()
    (partial / COUNTS).write_text(json.dumps({str(t): per_task[t] for t in read.tasks}))
    if reading is not None:
        with open(partial / READING, "wb") as fh:
            pickle.dump((job.source, reading.for_tasks()), fh, protocol=pickle.HIGHEST_PROTOCOL)
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


def _located(source, reading) -> Iterator[tuple[Sample | Invalid, tuple[int, int, int]]]:
    """The split's items, as :meth:`~vlir.sources.base.Source.iter_samples` streams them, each with
    its place: (file index, byte offset, byte length)."""
    for index, path in enumerate(reading.files):
        for key, record, (offset, length) in source.record_spans(reading, path):
            item = source.read_record(reading, path, key, record)
            if item is not None:
                yield item, (index, offset, length)


class _SampleSpool:
    """Per task, its items pickled in chunks of up to ``FLUSH_ITEMS`` (``<task>.pkl``)."""

    suffix = "pkl"

    def __init__(self, folder: Path, tasks: tuple[int, ...]):
        self.folder, self.held = folder, 0
        self.buffers: dict[int, list] = {task: [] for task in tasks}
        for task in tasks:
            _spool(folder, task, self.suffix).touch()

    def add(self, task: int, item: Sample | Invalid, place: tuple[int, int, int] | None) -> None:
        share = self.buffers.get(task)
        if share is not None:
            share.append(self.entry(item, place))
            self.held += 1
            if self.held >= FLUSH_ITEMS:
                self.flush()

    def entry(self, item, place):
        return item

    def flush(self) -> None:
        for task, items in self.buffers.items():
            if items:
                with open(_spool(self.folder, task, self.suffix), "ab") as fh:
                    self.write(fh, items)
                items.clear()
        self.held = 0

    def write(self, fh, items: list) -> None:
        pickle.dump(items, fh, protocol=pickle.HIGHEST_PROTOCOL)


class _PlaceSpool(_SampleSpool):
    """Per task, the places of its items (``<task>.places``), 8 bytes an item: uint32 pairs
    (offset - the previous item's offset, length). A pair ``(ESCAPE, file index)`` followed by
    ``(offset >> 32, offset & 0xffffffff)`` starts a file or a jump too long for 32 bits."""

    suffix = "places"

    def __init__(self, folder: Path, tasks: tuple[int, ...]):
        super().__init__(folder, tasks)
        self.last: dict[int, tuple[int, int]] = {}  # task -> (file index, offset) of its last item

    def add(self, task, item, place) -> None:
        share = self.buffers.get(task)
        if share is None:
            return
        index, offset, length = place
        last_index, last_offset = self.last.get(task, (-1, 0))
        delta = offset - last_offset
        if index != last_index or not 0 <= delta < ESCAPE:
            share.extend((ESCAPE, index, offset >> 32, offset & 0xFFFFFFFF))
            delta = 0
        share.extend((delta, length))
        self.last[task] = (index, offset)
        self.held += 1
        if self.held >= FLUSH_ITEMS:
            self.flush()

    def write(self, fh, items: list) -> None:
        array("I", items).tofile(fh)


def _places(fh) -> Iterator[tuple[int, int, int]]:
    """Decode a places spool: ``(file index, offset, length)`` per item."""
    index = offset = 0
    rest = array("I")
    while True:
        chunk = array("I", rest)
        chunk.frombytes(fh.read(2 * 4 * FLUSH_ITEMS))
        if len(chunk) == len(rest):
            return
        i, n = 0, len(chunk)
        while i + 1 < n:
            a, b = chunk[i], chunk[i + 1]
            if a == ESCAPE:
                if i + 3 >= n:
                    break  # the escape's second pair is in the next chunk
                index, offset = b, (chunk[i + 2] << 32) | chunk[i + 3]
                i += 4
                continue
            offset += a
            yield index, offset, b
            i += 2
        rest = chunk[i:]


def _spool(folder: Path, task: int, suffix: str) -> Path:
    return folder / f"{layout.task_name(task)}.{suffix}"


def task_counts(folder: str | Path) -> dict[int, int]:
    """Items per task of a finished read (what the progress bar's total and ETA are made of)."""
    path = Path(folder) / COUNTS
    return {int(t): n for t, n in json.loads(path.read_text()).items()} if path.is_file() else {}


def task_items(folder: str | Path, task: int) -> Iterator[Sample | Invalid]:
    """A task's share, in stream order."""
    folder = Path(folder)
    if not (folder / STATS).is_file():
        raise FileNotFoundError(f"{_spool(folder, task, 'pkl')}: the source was not read for this task "
                                f"(no complete read in {folder})")
    if (folder / READING).is_file():
        yield from _reread(folder, task)
        return
    with open(_spool(folder, task, _SampleSpool.suffix), "rb") as fh:
        while True:
            try:
                chunk = pickle.load(fh)
            except EOFError:
                return
            yield from chunk


def _reread(folder: Path, task: int) -> Iterator[Sample | Invalid]:
    """Read back each record at its place and parse it as the read did (same code, same state)."""
    from vlir.sources.registry import get_source

    with open(folder / READING, "rb") as fh:
        name, reading = pickle.load(fh)
    source, files = get_source(name), {}
    try:
        with open(_spool(folder, task, _PlaceSpool.suffix), "rb") as places:
            for index, offset, length in _places(places):
                path = reading.files[index]
                if index not in files:
                    files[index] = open(path, "rb")
                key, record = source.reread(reading, files[index], (offset, length))
                item = source.read_record(reading, path, key, record)
                if item is None:
                    raise RuntimeError(f"{path}: the record at byte {offset} changed since the read")
                yield item
    finally:
        for fh in files.values():
            fh.close()


def source_stats(folder: str | Path) -> Counter:
    """The adapter's counters of the read (task 0 carries them into the manifest)."""
    return Counter(json.loads((Path(folder) / STATS).read_text()))
