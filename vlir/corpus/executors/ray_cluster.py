"""``vlir build --executor ray``: the build's tasks as Ray tasks, on a cluster or a local instance.

Why Ray: it is what the data world already runs for this fan-out (Ray Data LLM, verl, OpenRLHF),
it schedules across machines, and it re-runs a task whose worker process or node died. vlir adds
no scheduler of its own: :func:`vlir.corpus.executors.local.run_build` keeps everything around the running (the
output lock, signals, temp files, the plan of unfinished tasks, :class:`~vlir.corpus.build.SamplesWaiting`,
the manifest) and hands the plan to :class:`RayRunner`, which only runs it. A Ray task is one
source read (:func:`vlir.corpus.build_plan.read_source`, once per (source, split), before its tasks) or one
:class:`vlir.corpus.build.Task`, built and run on the worker, so the image reading and the teacher calls
happen there, and its shards, stats and completion marker are the very files the local executor
writes: the same inputs and config give the same bytes.

Failures:

* a worker process (or node) that dies mid-task: Ray runs the task again, up to ``max_retries``
  times (the task rewrites its temp files from the start; nothing of the dead attempt is kept);
  past that, :class:`WorkerLost` — rerunning the same command resumes the unfinished tasks;
* an exception in the task (a refused teacher key, a full disk, a broken source file) is the
  build's own error: not retried (``retry_exceptions=False``) and re-raised here as itself, so
  the CLI reports it as it does for a local build;
* Ctrl-C, SIGTERM or any error: the tasks still running are cancelled (``force``: their workers
  are killed) and ``run_build`` clears their temp files.

The output folder and the source roots must be reachable at the same paths from every node (a
shared filesystem), and ``vlir`` importable there; paths are sent resolved. Ray itself is the
``[ray]`` extra: this module is imported only for ``--executor ray``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections import deque
from pathlib import Path
from typing import Any

try:
    import ray
    import ray.exceptions
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
    raise ModuleNotFoundError("--executor ray needs Ray: pip install 'vlir[ray]' (ray==2.60.0)",
                              name="ray") from exc

from vlir.corpus.build import BuildConfig, Job, Task
from vlir.corpus.build_plan import SourceRead, read_source
from vlir.corpus.executors.common import Progress, log_format, worker_logging
from vlir.testing.hold import hold_point

log = logging.getLogger(__name__)


class WorkerLost(RuntimeError):
    """A task's Ray worker (or its node) died more often than ``max_retries``; rerunning the same
    command resumes the unfinished tasks."""


def vlir_build_task(cfg: BuildConfig, job: Job, task: int, out: str, share: str, level: int,
                    fmt: str | None) -> tuple[str, int, int, int, int]:
    """The Ray task: run one build task on this worker; ``(job key, task, samples waiting on the
    teacher, accepted, rejected)``."""
    worker_logging(level, fmt)
    hold_point(job.source, job.split, task)
    runner = Task(cfg, job, task, Path(out), share)
    waiting = runner.run()
    return job.key, task, waiting, runner.stats["accepted"], runner.stats["rejected"]


def vlir_read_source(cfg: BuildConfig, read: SourceRead, level: int, fmt: str | None) -> int:
    """The Ray task that reads a job's source once into its tasks' spools (on the shared output)."""
    worker_logging(level, fmt)
    return read_source(cfg, read)


class RayRunner:
    """Runs a build's planned tasks as Ray tasks (see the module docstring).

    ``address``: the cluster to join (``auto``, ``ray://host:10001``, ``host:6379``); None joins
    ``$RAY_ADDRESS`` if set, else starts a local instance for this build (``max_in_flight`` CPUs,
    or all) and stops it afterwards. A Ray session already started in this process (``ray.init``
    by the caller) is used as it is. ``max_in_flight`` also caps the tasks submitted at once."""

    def __init__(self, address: str | None = None, max_in_flight: int | None = None, max_retries: int = 3):
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.address, self.max_in_flight, self.max_retries = address, max_in_flight, max_retries

    def __call__(self, cfg: BuildConfig, reads: list[SourceRead], todo: list[tuple[Job, int]], out: Path,
                 progress: Progress) -> None:
        if not todo:
            return
        started = self._connect()
        try:
            self._run(cfg, reads, todo, Path(out).resolve(), progress)
        finally:
            if started:
                ray.shutdown()

    def _connect(self) -> bool:
        """Join or start Ray; True if this call started a session (and must shut it down)."""
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
        if self.address is None and not os.environ.get("RAY_ADDRESS"):
            kwargs.update(include_dashboard=False, num_cpus=self.max_in_flight)
        # ray.init installs its own SIGTERM handler (log and exit); the build's own stops it the
        # way a local build stops (cancel, clean up, BuildInterrupted): put it back
        handlers = _signal_handlers()
        ray.init(address=self.address, **kwargs)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        log.info("ray: %d CPU(s) in the cluster", ray.cluster_resources().get("CPU", 0))
        return True

    def _run(self, cfg: BuildConfig, reads: list[SourceRead], todo: list[tuple[Job, int]], out: Path,
             progress: Progress) -> None:
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        if cfg.annotator == "teacher" and nodes > 1:
            log.warning("ray: %d nodes share the teacher's SQLite cache in %s/cache, whose WAL mode needs "
                        "one host; a multi-node teacher build is not supported yet (use one node, or "
                        "--num-shards with a folder per machine)", nodes, out)
        run_task, run_read = ray.remote(vlir_build_task), ray.remote(vlir_read_source)
        level, fmt = logging.getLogger().getEffectiveLevel(), log_format()
        cfg_ref = ray.put(cfg)
        # workers may run elsewhere: paths are sent resolved
        reads = [SourceRead(_resolved(read.job), read.tasks, str(Path(read.folder).resolve())) for read in reads]
        # first the reads, then each job's tasks once its read is done, in the plan's order
        queue: deque[SourceRead | tuple[Job, int, str]] = deque(reads)
        cap = self.max_in_flight or max(len(todo), 1)
        pending: dict[Any, SourceRead | tuple[Job, int, str]] = {}
        try:
            while queue or pending:
                while queue and len(pending) < cap:
                    item = queue.popleft()
                    options = dict(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)
                    if isinstance(item, SourceRead):
                        ref = run_read.options(name=f"vlir {item.job.key} read", **options).remote(
                            cfg_ref, item, level, fmt)
                    else:
                        job, task, share = item
                        ref = run_task.options(name=f"vlir {job.key} task {task}", **options).remote(
                            cfg_ref, job, task, str(out), share, level, fmt)
                    pending[ref] = item
                for ref in _wait(list(pending)):
                    item = pending.pop(ref)
                    if isinstance(item, SourceRead):
                        self._result(ref, f"{item.job.key} read")
                        progress.expect(item)  # the bar's total (ETA), as the local runner does
                        queue.extend((item.job, task, item.folder) for task in item.tasks)
                        continue
                    key, task, waiting, accepted, rejected = self._result(ref, f"{item[0].key} task {item[1]}")
                    progress.add(accepted, rejected)
                    progress.task_finished(key, task, waiting)
                progress.refresh()
        except BaseException:
            _cancel(list(pending))
            raise

    def _result(self, ref: Any, what: str) -> Any:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the task's own exception: the build's error
            raise exc.cause from None
        except ray.exceptions.RayError as exc:  # the worker or node died past the retries
            raise WorkerLost(f"{what}: its Ray worker was lost {self.max_retries + 1} "
                             f"time(s) ({type(exc).__name__}); rerun the same command to resume "
                             "the unfinished tasks") from None


def _resolved(job: Job) -> Job:
    return Job(job.source, job.split, str(Path(job.root).resolve()))


def _wait(refs: list[Any]) -> list[Any]:
    """The refs of ``refs`` that are done, waiting up to half a second for one. A Python signal
    handler that raises (SIGTERM: :class:`~vlir.corpus.executors.local.BuildInterrupted`) while Ray's C++ wait
    runs comes out as a ``SystemError`` caused by it: raise the cause itself."""
    try:
        return ray.wait(refs, num_returns=1, timeout=0.5)[0]
    except SystemError as exc:
        if exc.__cause__ is not None and not isinstance(exc.__cause__, SystemError):
            raise exc.__cause__ from None
        raise


def _signal_handlers() -> dict[int, Any]:
    """SIGINT's and SIGTERM's Python handlers, where this thread may set them (the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)
            if signal.getsignal(signum) is not None}


def _cancel(refs: list[Any]) -> None:
    """Stop the given tasks now (their workers are killed) and wait briefly for them to end, so
    none writes a temp file after the caller cleared them."""
    for ref in refs:
        ray.cancel(ref, force=True)
    if refs:
        ray.wait(refs, num_returns=len(refs), timeout=10)
