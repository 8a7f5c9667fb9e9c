"""Runs build tasks: in this process or a pool of forked workers, skipping finished ones, with a
progress bar fed by shared counters; writes the manifest once every task of the build is done.

A task (:class:`vlir.build.Task`) does not know how it runs: the executor hands it nothing but its
partition, as datatrove's executors do.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from vlir.build import BuildConfig, Job, SamplesWaiting, Task
from vlir.manifest import task_done, write_build_info, write_manifest

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------

_COUNTERS: tuple[Any, Any] | None = None


def _init_worker(counters) -> None:
    global _COUNTERS
    _COUNTERS = counters
    logging.getLogger().setLevel(logging.WARNING)


def _bump(accepted: bool) -> None:
    if _COUNTERS is not None:
        c = _COUNTERS[0 if accepted else 1]
        with c.get_lock():
            c.value += 1


def _run_task(cfg: BuildConfig, job: Job, task: int, out: str) -> int:
    return Task(cfg, job, task, Path(out)).run(progress=_bump)  # samples waiting on the teacher


def plan(cfg: BuildConfig, jobs: list[Job], out: Path, num_shards: int = 1,
         shard_index: int = 0) -> list[tuple[Job, int]]:
    """The (job, task) pairs this machine owns that are not finished yet."""
    if not (0 <= shard_index < num_shards):
        raise ValueError(f"--shard-index must be in [0, {num_shards}), got {shard_index}")
    return [(job, t) for job in jobs for t in range(cfg.tasks)
            if t % num_shards == shard_index and not task_done(out, job.source, job.split, t)]


def run_build(cfg: BuildConfig, jobs: list[Job], out: Path, workers: int = 1, num_shards: int = 1,
              shard_index: int = 0, show_progress: bool = True) -> dict[str, Any] | None:
    """Run every unfinished task; write the manifest when the whole build is complete
    (always for a single machine; for ``--num-shards`` > 1, ``vlir merge`` writes it)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_build_info(out, cfg.to_dict(), {job.source: str(Path(job.root).resolve()) for job in jobs})
    todo = plan(cfg, jobs, out, num_shards, shard_index)
    log.info("build: %d task(s) to run (%d already complete)",
             len(todo), len(jobs) * len([t for t in range(cfg.tasks) if t % num_shards == shard_index]) - len(todo))
    ctx = mp.get_context("fork")
    _warm_imports(cfg)  # once in the parent, inherited by the forked workers
    counters = (ctx.Value("q", 0), ctx.Value("q", 0))
    bar = _progress_bar(show_progress)
    start = time.monotonic()

    def refresh() -> None:
        a, r = counters[0].value, counters[1].value
        if bar is not None:
            bar.n = a + r
            bar.set_postfix(accepted=a, rejected=r, refresh=False)
            bar.refresh()

    waiting = 0
    if workers <= 1:
        _init_worker(counters)
        for job, task in todo:
            waiting += Task(cfg, job, task, out).run(progress=lambda ok: (_bump(ok), refresh()))
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(counters,)) as pool:
            pending = {pool.submit(_run_task, cfg, job, task, str(out)) for job, task in todo}
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for f in done:
                    waiting += f.result()  # re-raises a worker's exception
                refresh()
    refresh()
    if bar is not None:
        bar.close()
    elapsed = time.monotonic() - start
    log.info("build: %d records in %.1fs", counters[0].value + counters[1].value, elapsed)
    if waiting:
        raise SamplesWaiting(waiting)
    if all(task_done(out, job.source, job.split, t) for job in jobs for t in range(cfg.tasks)):
        return write_manifest(out)
    return None


def _warm_imports(cfg: BuildConfig) -> None:
    """Import what every task needs (``datasets`` for the shard schema is the slow one) before
    forking, so workers share it instead of each paying the import."""
    import vlir.checks  # noqa: F401
    from vlir.shards import arrow_schema

    arrow_schema()
    if cfg.annotator == "grounded":
        import vlir.annotate.grounded  # noqa: F401


def _progress_bar(enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, CI)
    return tqdm(unit="rec", desc="build", dynamic_ncols=True, mininterval=0.5, disable=None)
