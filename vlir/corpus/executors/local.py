"""Runs build tasks: in this process, a pool of forked workers, or as Ray tasks
(:mod:`vlir.corpus.executors.ray_cluster`, imported only for ``--executor ray``), skipping finished ones, each
(source, split)'s tasks once its one read is done (:mod:`vlir.corpus.build_plan`), with a
progress bar and an INFO line per finished task; writes the manifest once every task of the build
is done. The lock, signals, temp files, plan and manifest are :func:`run_build`'s, whichever
executor runs the tasks, so every executor writes the same bytes.

A task (:class:`vlir.corpus.build.Task`) does not know how it runs: the executor hands it nothing but its
partition, as datatrove's executors do.

Stopping: the build holds ``OUT/.vlir/lock`` (:mod:`vlir.corpus.lock`). Workers ignore SIGINT, so Ctrl-C
reaches only this process, which terminates the workers at once (the pool would otherwise hand
each queued task to a worker and run them all), drops the temp files of the tasks cut short and
raises :class:`BuildInterrupted`; SIGTERM does the same. Unfinished tasks have no completion
marker, so the same command resumes them and ends byte-identical to an uninterrupted build. A full
disk is a :class:`DiskFull` naming OUT and the space needed, after the same clean-up.
"""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing as mp
import shutil
import signal
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from vlir.corpus import layout
from vlir.corpus.build import BuildConfig, Job, SamplesWaiting, Task
from vlir.corpus.build_plan import SourceRead, read_source, remove_spools, source_reads
from vlir.corpus.executors.common import Progress, worker_logging
from vlir.corpus.lock import OutputLock
from vlir.corpus.manifest import task_done, write_build_info, write_manifest
from vlir.testing.hold import hold_point

log = logging.getLogger(__name__)

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class BuildInterrupted(Exception):
    """SIGINT or SIGTERM stopped the build; rerunning the same command resumes it."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


class DiskFull(Exception):
    """The output's filesystem ran out of space (or the file size limit was hit)."""


def _raise_interrupt(signum, frame) -> None:
    raise BuildInterrupted(signum)


# ---------------------------------------------------------------------------------------------

_COUNTERS: tuple[Any, Any] | None = None


def _init_worker(counters, level: int = logging.INFO) -> None:
    """In each forked worker: Ctrl-C is the parent's to handle, SIGTERM kills (the parent cleans
    up), and logging runs at the parent's level."""
    global _COUNTERS
    _COUNTERS = counters
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    worker_logging(level)


def _bump(accepted: bool) -> None:
    if _COUNTERS is not None:
        c = _COUNTERS[0 if accepted else 1]
        with c.get_lock():
            c.value += 1


def _run_task(cfg: BuildConfig, job: Job, task: int, out: str, share: str) -> tuple[str, int, int]:
    """Run one task in a worker: ``(job key, task, samples left waiting on the teacher)``."""
    hold_point(job.source, job.split, task)
    waiting = Task(cfg, job, task, Path(out), share).run(progress=_bump)
    return job.key, task, waiting


def plan(cfg: BuildConfig, jobs: list[Job], out: Path, num_shards: int = 1,
         shard_index: int = 0) -> list[tuple[Job, int]]:
    """The (job, task) pairs this machine owns that are not finished yet."""
    if not (0 <= shard_index < num_shards):
        raise ValueError(f"--shard-index must be in [0, {num_shards}), got {shard_index}")
    return [(job, t) for job in jobs for t in range(cfg.tasks)
            if t % num_shards == shard_index and not task_done(out, job.source, job.split, t)]


def run_build(cfg: BuildConfig, jobs: list[Job], out: Path, workers: int | None = None,
              num_shards: int = 1, shard_index: int = 0, show_progress: bool = True,
              executor: str = "local", ray_address: str | None = None,
              ray_max_retries: int = 3, missing: list[dict[str, str]] | None = None) -> dict[str, Any] | None:
    """Run every unfinished task; write the manifest when the whole build is complete
    (always for a single machine; for ``--num-shards`` > 1, ``vlir merge`` writes it).

    ``executor``: ``local`` (this process, or ``workers`` forked processes) or ``ray`` (Ray tasks
    on the cluster at ``ray_address``, or a local instance; :mod:`vlir.corpus.executors.ray_cluster`, imported only
    then). Everything around the running (lock, signals, temp files, build info, the plan, the
    manifest) is this function's, whichever runs the tasks. ``missing``: the sources/splits asked
    for but absent (``vlir build --source all``), recorded in the build info and the manifest.
    Raises :class:`vlir.corpus.lock.OutputLocked`, :class:`BuildInterrupted`, :class:`DiskFull`."""
    if executor == "local":
        runner = _LocalRunner(workers or 1)
    elif executor == "ray":
        from vlir.corpus.executors.ray_cluster import RayRunner

        runner = RayRunner(address=ray_address, max_in_flight=workers, max_retries=ray_max_retries)
    else:
        raise ValueError(f"executor must be local or ray, got {executor!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if main_thread else None
    try:
        with OutputLock(out, num_shards, shard_index):
            _clear_temp(out, num_shards, shard_index)  # left by a build killed (-9) before its clean-up
            try:
                return _run_locked(cfg, jobs, out, runner, num_shards, shard_index, show_progress, missing or [])
            except KeyboardInterrupt:
                raise BuildInterrupted(signal.SIGINT) from None
            except OSError as exc:
                if exc.errno in DISK_FULL_ERRNOS:
                    raise DiskFull(_disk_full_message(cfg, jobs, out, exc)) from None
                raise
            finally:
                _clear_temp(out, num_shards, shard_index)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _clear_temp(out: Path, num_shards: int = 1, shard_index: int = 0) -> None:
    """Remove this build's temp files: all of them, or for one machine of a ``--num-shards`` build
    sharing the folder, its spools and the temp files of its own tasks (``task % N == I``)."""
    tmp = layout.temp_dir(out)
    if num_shards == 1:
        shutil.rmtree(tmp, ignore_errors=True)
        return
    remove_spools(out, num_shards, shard_index)
    for path in tmp.glob("*.tmp") if tmp.is_dir() else ():
        task = layout.temp_task(path.name)
        if task is not None and task % num_shards == shard_index:
            path.unlink(missing_ok=True)


def _disk_full_message(cfg: BuildConfig, jobs: list[Job], out: Path, exc: OSError) -> str:
    """One line: OUT, the free space, and an estimate of what the unfinished tasks need (the mean
    shard bytes of the finished tasks times the unfinished ones)."""
    free = shutil.disk_usage(out).free
    done_bytes, done, left = 0, 0, 0
    for job in jobs:
        for t in range(cfg.tasks):
            path = layout.stats_path(out, job.source, job.split, t)
            if task_done(out, job.source, job.split, t):
                try:
                    done_bytes += sum(s["bytes"] for s in json.loads(path.read_text())["shards"])
                    done += 1
                except (OSError, ValueError, KeyError, TypeError):
                    pass
            else:
                left += 1
    need = (f"the {left} unfinished task(s) need about {_mb(done_bytes / done * left)}" if done
            else "no task finished yet to estimate what the build needs")
    what = "file size limit reached" if exc.errno == errno.EFBIG else "disk full"
    return (f"{out}: {what} ({exc.strerror}); {_mb(free)} free, {need}; free space and rerun the same "
            "command to resume")


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def _run_locked(cfg: BuildConfig, jobs: list[Job], out: Path, runner, num_shards: int,
                shard_index: int, show_progress: bool, missing: list[dict[str, str]]) -> dict[str, Any] | None:
    """Plan, hand the source reads and the tasks to ``runner`` (``runner(cfg, reads, todo, out,
    progress)``: a job's tasks run once its read is done), then finish: :class:`SamplesWaiting` if
    samples wait on the teacher, the manifest if every task is done."""
    write_build_info(out, cfg.to_dict(), {job.source: str(Path(job.root).resolve()) for job in jobs},
                     missing=missing)
    todo = plan(cfg, jobs, out, num_shards, shard_index)
    log.info("build: %d task(s) to run (%d already complete)",
             len(todo), len(jobs) * len([t for t in range(cfg.tasks) if t % num_shards == shard_index]) - len(todo))
    progress = Progress(len(todo), show_progress)
    runner(cfg, source_reads(todo, out, num_shards, shard_index), todo, out, progress)
    progress.close()
    if progress.waiting:
        raise SamplesWaiting(progress.waiting)
    if all(task_done(out, job.source, job.split, t) for job in jobs for t in range(cfg.tasks)):
        return write_manifest(out)
    return None


class _LocalRunner:
    """Runs tasks in this process (``workers`` 1) or a pool of forked workers."""

    def __init__(self, workers: int):
        self.workers = workers

    def __call__(self, cfg: BuildConfig, reads: list[SourceRead], todo: list[tuple[Job, int]], out: Path,
                 progress: Progress) -> None:
        global _COUNTERS
        _warm_imports(cfg)  # once in the parent, inherited by the forked workers
        if self.workers <= 1:
            _COUNTERS = progress.counters
            for read in reads:
                read_source(cfg, read)
                progress.expect(read)
                for task in read.tasks:
                    hold_point(read.job.source, read.job.split, task)
                    left = Task(cfg, read.job, task, out, read.folder).run(
                        progress=lambda ok: (_bump(ok), progress.refresh()))
                    progress.task_finished(read.job.key, task, left)
            return
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("fork"),
                                   initializer=_init_worker,
                                   initargs=(progress.counters, logging.getLogger().getEffectiveLevel()))
        try:
            pending = {pool.submit(read_source, cfg, read): read for read in reads}
            while pending:
                done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for f in done:
                    read = pending.pop(f)
                    if isinstance(read, SourceRead):  # its tasks can start now
                        f.result()  # re-raises a worker's exception
                        progress.expect(read)
                        pending.update({pool.submit(_run_task, cfg, read.job, task, str(out), read.folder): None
                                        for task in read.tasks})
                    else:
                        progress.task_finished(*f.result())
                progress.refresh()
        except BaseException:
            _stop_pool(pool)
            raise
        pool.shutdown(wait=True)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop now: cancel queued tasks and terminate running workers (their tasks stay incomplete;
    the caller removes their temp files)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
            p.join()
    # let the pool's manager thread see the dead workers and finish, or its exit hook writes to a
    # closed wake-up pipe at interpreter exit (a traceback after the one-line message)
    pool.shutdown(wait=True)


def _warm_imports(cfg: BuildConfig) -> None:
    """Import what every task needs (pyarrow for the shard schema is the slow one) before
    forking, so workers share it instead of each paying the import."""
    import pyarrow as pa

    import vlir.checks  # noqa: F401
    from vlir.corpus.shards import arrow_schema

    arrow_schema()
    _first_conversion_without_pandas(pa)
    if cfg.annotator == "grounded":
        import vlir.annotate.grounded  # noqa: F401


def _first_conversion_without_pandas(pa: Any) -> None:
    """pyarrow asks once per process, at its first conversion of a Python list, whether pandas is
    importable, and imports it to find out (~0.2-0.3 s of serial start-up, ~5 % of a 1000-record
    build) although a build never hands it a pandas object. Here that one question finds pandas
    absent; pyarrow's shim remembers only the answer to its array-like test (a list is not a pandas
    object either way). Every real pandas call (``to_pandas``, ``from_pandas``) imports pandas again
    (pyarrow retries the import whenever pandas is required), so pandas keeps working later in this
    process. Only in the vlir program itself (:mod:`vlir.process`): called as a library, pyarrow keeps
    its probe, and nothing to do when pandas is loaded already."""
    from vlir.process import is_program

    if "pandas" in sys.modules or not is_program():
        pa.array([0])
        return
    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(blocker)


class _NoPandas:
    """A meta-path finder under which ``import pandas`` raises ImportError (a ``None`` in
    sys.modules would not do: Cython's import hands the None back as the module)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError(f"{name} is not looked for during a build's first arrow conversion")
        return None
