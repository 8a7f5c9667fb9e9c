"""``vlir build``: source samples -> annotated, checked chains with crops -> Parquet shards.

The work of one (source, split) is cut into ``tasks`` partitions by a stable hash of the sample id.
The source is read once and each task handed its share (:mod:`vlir.corpus.build_plan`); for each of its
samples a task opens the image safely, asks the annotator for a chain (in small batches, so a network teacher keeps requests in flight), runs the
checks, renders the crops and writes the record to its accepted or rejects shard. Nothing is
dropped: every sample ends in one of the two, with its reasons — except a sample the annotator
could not be asked about (teacher unreachable: :class:`~vlir.annotate.base.AnnotatorUnavailable`),
which gets no verdict: its task stays unfinished and the build ends with :class:`SamplesWaiting`.

Like datatrove's executors, a task is finished only once its ``completions/<task>`` marker exists (in
the output's ``.vlir/`` bookkeeping folder, see :mod:`vlir.corpus.layout`), written after
its shards were renamed into place and its stats saved; a rerun (after kill -9, say) runs only the
unfinished tasks and, because a task's output depends only on the inputs and the config, ends
byte-identical to an uninterrupted build. ``--num-shards N --shard-index I`` runs the tasks with
``task % N == I``, so N machines build disjoint parts; ``vlir merge`` (:mod:`vlir.corpus.manifest`) writes
the one manifest over them. How tasks are scheduled (processes, progress) is :mod:`vlir.corpus.executors.local`'s.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter, deque
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any, ClassVar, Iterator

from vlir import geometry, images, source_table
from vlir.corpus import layout
from vlir.annotate.base import AnnotateInput, AnnotationError, Annotator, AnnotatorUnavailable
from vlir.corpus.build_plan import source_stats, task_items
from vlir.config import Config, option
from vlir.crops import render_crop
from vlir.geometry import PixelBudget
from vlir.models.defaults import DEFAULT_FAMILY
from vlir.corpus.manifest import finish_task
from vlir.corpus.sample_frame import clean_evidence, oriented_sample
from vlir.paths import path_problem
from vlir.records import BAD_ID, Chain, CheckResult, Invalid, Look, Record, Sample, id_problem, safe_reject_id
from vlir.corpus.shards import ShardWriter

log = logging.getLogger(__name__)

ALL_SOURCES = source_table.build_all_sources()


@dataclass
class BuildConfig(Config):
    """What determines a build's output (and so lands in the manifest). Loadable from YAML;
    CLI flags override. Every section is validated here, in the parent, before anything is written
    to OUT (a bad value used to surface as a traceback in a worker, after build.json was saved)."""

    kind: ClassVar[str] = "build"

    annotator: str = option("grounded", "Who writes the chains: grounded (offline) or teacher.",
                            choices=("grounded", "teacher"))
    grounded: dict[str, Any] = option({}, "Settings of the grounded annotator "
                                          "(vlir.annotate.grounded.GroundedConfig fields).")
    teacher: dict[str, Any] = option({}, "Settings of the teacher annotator "
                                         "(vlir.annotate.teacher_config.TeacherConfig fields).")
    checks: dict[str, Any] = option({}, "Thresholds of the checks (vlir.checks.CheckConfig fields).")
    crop_format: str = option("png", "Crop bytes: png (default; what replay renders byte for byte) or webp "
                              "(lossless, same pixels: ~0.55x the encode CPU, ~8 % smaller; see docs/corpus.md).",
                              choices=("png", "webp"))
    model_family: str = option(DEFAULT_FAMILY, "The model family the looks are snapped for "
                               "(vlir.models: qwen2_5_vl snaps to pixels of the smart_resized view, "
                               "qwen3_vl to its 0-1000 grid); crops are rendered on its pixel grid.")
    model_budget: PixelBudget | None = option(None, "The model's view {min_pixels, max_pixels} look boxes "
                                              "are snapped to, so replaying a chain through a model with "
                                              "this budget reproduces the stored boxes and crops (null: "
                                              "the family's default); read back on the family's grid.")
    crop_budget: PixelBudget | None = option(None, "A rendered crop's {min_pixels, max_pixels} (null: the "
                                             "family's default); read back on the family's grid.")
    tasks: int = option(4, "Partitions per (source, split); fixed so outputs do not depend on --workers.",
                        ge=1)
    batch_size: int | None = option(None, "Samples in flight in the annotator (null: the annotator's "
                                          "choice, e.g. 4 x concurrency); output order never depends on it.",
                                    ge=1)
    row_group_rows: int = option(256, "Rows per Parquet row group.", ge=1)
    embed_images: bool = option(False, "Store the original image bytes in the shards.")
    limit: int | None = option(None, "First K samples of each (source, split) stream, before "
                                     "partitioning (null: all).", ge=0)
    max_image_pixels: int = option(images.MAX_IMAGE_PIXELS, "Larger images are rejects "
                                                             "(image_too_large).", ge=1)
    source_options: dict[str, Any] = option({}, "source -> options for its adapter (explicit file "
                                                "paths...).")

    #: the knob's old shape (two ints per budget), read as the one shape with a deprecation warning
    OLD_BUDGET_KEYS: ClassVar[dict[str, tuple[str, str]]] = {
        "model_budget": ("model_min_pixels", "model_max_pixels"),
        "crop_budget": ("crop_min_pixels", "crop_max_pixels")}

    def validate(self) -> list[str]:
        problems = []
        try:
            family = self.family
        except ValueError as exc:
            return [f"model_family: {exc}"]
        # the knobs on the family's grid and box convention: what snapping and cropping read
        self.model_budget = family.view(self.model_budget)
        self.crop_budget = family.crop(self.crop_budget)
        known_sources = set(source_table.TABLE)
        for source, options in self.source_options.items():
            if source not in known_sources:
                problems.append(f"unknown source source_options.{source}; known: "
                                f"{', '.join(sorted(known_sources))}")
            elif not isinstance(options, dict):
                problems.append(f"source_options.{source} must be a mapping, got {options!r}")
        # the sections are checked now, in the parent, not in a worker mid-build
        from vlir.annotate.grounded import GroundedConfig
        from vlir.annotate.teacher_config import TeacherConfig
        from vlir.checks import CheckConfig

        for section in (CheckConfig, GroundedConfig, TeacherConfig):
            try:
                section.from_dict(getattr(self, section.section))
            except ValueError as exc:
                problems.append(str(exc).removeprefix(f"invalid {section.kind} config: "))
        return problems

    @classmethod
    def old_budget_default(cls, key: str, values: dict[str, Any]) -> PixelBudget | None:
        """An old key's missing half comes from the family's default budget."""
        from vlir.models.registry import family_for

        try:
            family = family_for(str(values.get("model_family") or DEFAULT_FAMILY))
        except ValueError:
            return None  # from_dict reports the family
        return family.view() if key == "model_budget" else family.crop()

    @classmethod
    def from_yaml(cls, path: Path | None, **overrides: Any) -> "BuildConfig":
        """The YAML at ``path`` (or the defaults), then the CLI's flags (None: not given; a dict
        updates its section)."""
        data: dict[str, Any] = cls.new_budget_keys(cls.read_yaml(path), path) if path else {}
        cls.check_keys(data, f"{path}: " if path else "")
        for key, value in overrides.items():
            if value is None:
                continue
            if isinstance(value, dict) and isinstance(data.get(key, {}), dict):
                data[key] = {**data.get(key, {}), **value}
            else:
                data[key] = value
        return cls.from_dict(data, where=path)

    @property
    def family(self):
        """The :class:`vlir.models.family.ModelFamily` named by ``model_family``."""
        from vlir.models.registry import family_for

        return family_for(self.model_family)



class SamplesWaiting(RuntimeError):
    """Some samples got no verdict because the annotator could not be reached (teacher down,
    timing out, 5xx/429 past the retries). Their tasks stay unfinished, so rerunning the same
    command asks for exactly those again (answers already given come from the cache)."""

    def __init__(self, waiting: int):
        super().__init__(f"{waiting} sample(s) waiting on the teacher (unreachable or failing); "
                         "rerun the same command to continue")
        self.waiting = waiting


@dataclass(frozen=True)
class Job:
    """One (source, split) to build from ``root``."""

    source: str
    split: str
    root: str

    @property
    def key(self) -> str:
        return f"{self.source}/{self.split}"


def make_annotator(cfg: BuildConfig, out: Path) -> Annotator:
    from vlir.annotate import get_annotator

    if cfg.annotator == "grounded":
        return get_annotator("grounded", model_budget=cfg.model_budget, checks=cfg.checks, **cfg.grounded)
    return get_annotator("teacher", **{"cache_path": str(out / "cache" / "teacher.sqlite"), **cfg.teacher})


class Task:
    """Runs one task: owns its annotator, writers and counters."""

    def __init__(self, cfg: BuildConfig, job: Job, task: int, out: Path, share: str | Path):
        """``share``: the folder of the job's read (:func:`vlir.corpus.build_plan.read_source`), which
        holds this task's samples."""
        from vlir.checks import CheckConfig

        self.cfg, self.job, self.task, self.out, self.share = cfg, job, task, Path(out), share
        self.check_config = CheckConfig.from_dict(cfg.checks)
        self.annotator = make_annotator(cfg, self.out)
        self.provenance = self.annotator.provenance()
        self.stats: Counter = Counter()
        self.reasons: Counter = Counter()
        self.waiting = 0  # samples the annotator could not be asked about (AnnotatorUnavailable)
        self.waiting_why = ""

    def samples(self) -> Iterator[Sample | Invalid]:
        """This task's samples, in source order: its share of the one read of the source."""
        return task_items(self.share, self.task)

    def _prepare(self, sample: Sample) -> AnnotateInput | Record:
        try:
            return self._open(sample)
        except Exception as exc:  # noqa: BLE001 - one record's failure stays that record's
            return self._failed(sample, exc)

    def _open(self, sample: Sample) -> AnnotateInput | Record:
        """Open and verify the image (a failure becomes a reject), upright as ``datasets`` decodes it;
        the sample follows it (:func:`vlir.corpus.sample_frame.oriented_sample`)."""
        try:
            # messages name the path under the source root: no local absolute path in the rejects
            path = images.safe_path(Path(self.job.root), sample.image)
            data = images.read_image_bytes(path, sample.image)
            image, orientation = images.decode_oriented(data, sample.image, self.cfg.max_image_pixels)
        except images.ImageError as exc:
            return self._reject(sample, (exc.reason,), detail=str(exc))
        sample = oriented_sample(sample, image.size, orientation, self.stats)
        if image.size != (sample.width, sample.height):
            return self._reject(sample, ("image_size_mismatch",),
                                detail=f"record says {sample.width}x{sample.height}, image is {image.size[0]}x{image.size[1]}")
        if (problem := geometry.aspect_problem(*image.size)) is not None:
            return self._reject(sample, ("image_aspect",), detail=f"{sample.id}: {problem}")
        sample = clean_evidence(sample, self.stats)
        self._image_bytes[sample.id] = data
        return AnnotateInput(sample, image, images.sha256_hex(data))

    def _reject(self, sample: Sample, reasons: tuple[str, ...], detail: str = "", chain=None,
                checks: tuple[CheckResult, ...] = (), sha: str | None = None) -> Record:
        return Record(sample=sample, chain=chain, provenance=self.provenance, checks=checks,
                      reasons=reasons, image_sha256=sha, reject_detail=detail)

    def _bad_id(self, item: Sample | Invalid, problem: str) -> Record:
        """A native id breaking :func:`vlir.records.id_problem`: a reject under a safe id."""
        sample = Sample(id=safe_reject_id(item.source, item.split, item.id), source=item.source,
                        split=item.split, image="", width=0, height=0, question="", answers=())
        return self._reject(sample, (BAD_ID,), detail=problem)

    def _duplicate(self, item: Sample | Invalid) -> Record:
        detail = f"id {item.id} appeared earlier in this split; the first record keeps it"
        if isinstance(item, Invalid):
            return Record.from_invalid(dataclasses.replace(item, reason="duplicate_id", detail=detail),
                                       self.provenance)
        return self._reject(item, ("duplicate_id",), detail=detail)

    def _finish(self, item: AnnotateInput, result) -> Record:
        """The verdict on one annotated sample; whatever goes wrong inside it is its reject, never its
        task's end (nothing of it is cached: a rerun judges the same answer the same way)."""
        sample, sha = item.sample, item.image_sha256
        if isinstance(result, AnnotationError):
            return self._reject(sample, (result.reason,), detail=result.detail, sha=sha)
        try:
            return self._judge(item, result)
        except Exception as exc:  # noqa: BLE001
            return self._failed(sample, exc, sha)

    def _failed(self, sample: Sample, exc: Exception, sha: str | None = None) -> Record:
        log.warning("%s: %s inside the record; stored as a record_failed reject", sample.id, type(exc).__name__)
        return self._reject(sample, ("record_failed",), sha=sha, detail=f"{sample.id}: {type(exc).__name__}: {exc}")

    def _judge(self, item: AnnotateInput, result: Chain) -> Record:
        from vlir.checks import run_checks

        sample, sha = item.sample, item.image_sha256
        for i, look in enumerate(result.looks):
            if (problem := geometry.box_range_problem(look.box, sample.width, sample.height)) is not None:
                return self._reject(sample, ("box_out_of_range",), detail=f"{sample.id}: look {i}: {problem}", sha=sha)
        result = self._snap(result, sample)
        checks = tuple(run_checks(sample, result, self.check_config))
        failed = tuple(c.name for c in checks if not c.passed)
        if failed:
            return self._reject(sample, failed, chain=result, checks=checks, sha=sha)
        try:
            crops = tuple(render_crop(item.image, look.box, self.cfg.crop_budget, self.cfg.crop_format)
                          for look in result.looks)
        except ValueError as exc:
            return self._reject(sample, ("crop_failed",), detail=str(exc), chain=result, checks=checks, sha=sha)
        embedded = self._image_bytes.get(sample.id) if self.cfg.embed_images else None
        return Record(sample=sample, chain=result, provenance=self.provenance, crops=crops,
                      checks=checks, image_sha256=sha, image_bytes=embedded)

    def _snap(self, chain: Chain, sample: Sample) -> Chain:
        """Snap look boxes to the grid the family's model writes boxes on (see
        :func:`vlir.geometry.snap_to_model`): pixels of its view, or Qwen3-VL's 0-1000 grid."""
        budget = self.cfg.model_budget
        steps = tuple(Look(geometry.snap_to_model(s.box, sample.width, sample.height, budget), s.label)
                      if isinstance(s, Look) else s for s in chain.steps)
        return Chain(steps, chain.answer)

    def run(self, progress=None) -> int:
        """Annotate, check and write the task's samples; returns how many are waiting on an
        unreachable annotator (then the task is left unfinished: nothing is written)."""
        log.debug("task %s %d: start (pid %d)", self.job.key, self.task, os.getpid())
        src, split, tmp = self.job.source, self.job.split, layout.temp_dir(self.out)
        accepted = ShardWriter(self.out / layout.shard_rel(src, split, self.task), self.cfg.row_group_rows, tmp)
        rejected = ShardWriter(self.out / layout.shard_rel(src, split, self.task, rejects=True),
                               self.cfg.row_group_rows, tmp)
        self._image_bytes: dict[str, bytes] = {}
        # Duplicate native ids: the first keeps the id, later ones become `duplicate_id` rejects.
        # Tasks partition by the id's hash, so all copies of an id meet in one task, in stream order:
        # the choice is deterministic and matches `vlir validate` (accepted ids unique per output).
        seen_ids: set[str] = set()
        # Records leave in input order whatever the annotator's timing: `order` holds finished
        # records and placeholders (ints) for items still being annotated.
        order: deque[Record | int] = deque()
        done: dict[int, Record] = {}
        seq_of: dict[int, int] = {}  # id(AnnotateInput) -> its place in `order`
        counter = count()

        def drain() -> None:
            while order:
                head = order[0]
                if isinstance(head, int):
                    if head not in done:
                        return
                    head = done.pop(head)
                order.popleft()
                if head is not None:  # None: waiting on the annotator, no verdict to write
                    self._write(head, accepted, rejected, progress)

        def inputs() -> Iterator[AnnotateInput]:
            for item in self.samples():
                if (problem := id_problem(item.id, item.source, item.split, native_slash=False)):
                    prepared = self._bad_id(item, problem)
                elif item.id in seen_ids:
                    prepared = self._duplicate(item)
                else:
                    seen_ids.add(item.id)
                    prepared = (Record.from_invalid(item, self.provenance) if isinstance(item, Invalid)
                                else self._prepare(item))
                if isinstance(prepared, Record):
                    order.append(prepared)
                    drain()
                    continue
                seq_of[id(prepared)] = seq = next(counter)
                order.append(seq)
                yield prepared

        try:
            for item, result in self.annotator.annotate_stream(inputs(), self.cfg.batch_size):
                if isinstance(result, AnnotatorUnavailable):
                    self.waiting, self.waiting_why = self.waiting + 1, result.detail
                    done[seq_of.pop(id(item))] = None
                else:
                    done[seq_of.pop(id(item))] = self._finish(item, result)
                self._image_bytes.pop(item.sample.id, None)
                drain()
            drain()
            assert not order, "every sample must reach a shard"
        except BaseException:
            accepted.abort()
            rejected.abort()
            raise
        finally:
            self.annotator.close()
        if self.waiting:  # not finished: no shards, stats or marker; the rerun does it all again
            accepted.abort()
            rejected.abort()
            log.warning("%s task %d: %d sample(s) waiting on the teacher, task left unfinished (last: %s)",
                        self.job.key, self.task, self.waiting, self.waiting_why)
            return self.waiting
        # the adapter's counters are the read's, over the whole source: task 0 carries them (it
        # always exists), or the manifest's sums would count them once per task
        source_counts = source_stats(self.share) if self.task == 0 else Counter()
        finish_task(self.out, self.job.source, self.job.split, self.task, self.cfg.tasks, accepted, rejected,
                    self.reasons, self.stats + source_counts, self.annotator.stats())
        return 0

    def _write(self, record: Record, accepted: ShardWriter, rejected: ShardWriter, progress) -> None:
        if record.accepted:
            accepted.write(record)
            self.stats["accepted"] += 1
        else:  # an image path that leaves the root is quoted in the detail, never stored
            if record.sample.image and path_problem(record.sample.image) is not None:
                record = dataclasses.replace(record, sample=dataclasses.replace(record.sample, image=""))
            rejected.write(record)
            self.stats["rejected"] += 1
            self.reasons.update(record.reasons)
        if progress is not None:
            progress(record.accepted)
