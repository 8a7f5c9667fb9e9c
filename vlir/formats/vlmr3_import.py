"""``vlir import --format vlmr3``: the VLM-R3 authors' SFT records -> validated vlir shards.

Input: a folder (or one file) of ``*.json`` (a JSON list, what their ``data_qwen.py`` loads) and
``*.jsonl`` files of records in the shape :mod:`vlir.formats.vlmr3` describes. Each record becomes
a vlir :class:`~vlir.records.Record`:

* the crop calls are read from the response text with :func:`vlir.protocol.parse_response` (the
  authors' own rule) and mapped from model pixels of ``--min/max-pixels`` to original pixels
  (:func:`vlir.geometry.from_model`); the text before each call and before the answer becomes the
  think steps;
* the crops are the files of ``img_crop_list`` (stored as PNG), each compared with vlir's own crop
  of the same box (:func:`vlir.crops.render_crop`): whether the sizes match and the mean absolute
  pixel difference after resizing the file's crop to vlir's size. Each record carries the result
  as its ``crop_match`` check, and the manifest lists it per record under
  ``annotator_stats.vlmr3_import.crop_diff``. A difference is reported, not rejected;
* a record that cannot be read (bad JSON, missing fields, missing or corrupt image or crop file,
  calls that do not match the crops, no answer, a box outside the image) is a reject with a reason
  tag and a detail naming the file and the record;
* paths are data: ``image_path`` is confined to ``--image-root`` and every ``img_crop_list`` file to
  the base folder (:func:`vlir.paths.confine`; rejects ``image_outside_root``, ``crop_outside_base``);
* every record goes through the build's checks (:func:`vlir.checks.run_checks` with
  ``ImportConfig.checks``: look limit, bounded and protocol-safe text, box sizes), and an image the
  model cannot see is ``image_aspect``, a box far off the image ``box_out_of_range``.

The output is written by :class:`vlir.formats.output.OutputWriter` (vlir's own shard and manifest
writers, one build task per (source, split)), so ``vlir validate OUT`` checks an import like a build.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import vlir
from vlir import geometry, images
from vlir.checks import CheckConfig, failed_names, run_checks
from vlir.crops import encode_png, render_crop
from vlir.formats.output import OutputWriter
from vlir.config import Config, option
from vlir.formats.vlmr3 import AUTHORS_SFT_BUDGET, QUESTION
from vlir.formats.vlmr3_records import Rejected, chain_from_parts, compare_crop, data_files, raw_records, record_fields
from vlir.geometry import PixelBudget
from vlir.paths import ConfinementError, confine
from vlir.records import Chain, CheckResult, Crop, Provenance, Record, Sample, id_problem, safe_reject_id

log = logging.getLogger(__name__)

ANNOTATOR = "vlmr3_import"
_SOURCE_RE = re.compile(r"^[a-z0-9_]+$")  # the record schema's id prefix
_SPLIT_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # a plain folder name (splits may nest)


def _split_ok(split: object) -> bool:
    return isinstance(split, str) and bool(split) and all(_SPLIT_PART_RE.match(p) for p in split.split("/"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ImportInputError(Exception):
    """The import cannot run at all (SRC missing, OUT not empty...): a user error."""


@dataclass
class ImportConfig(Config):
    """How the authors' records are read (recorded as the output's build config; a
    :class:`vlir.config.Config`: YAML, ``help()``, checked fields)."""

    kind: ClassVar[str] = "import"

    budget: PixelBudget = option(AUTHORS_SFT_BUDGET, "The model's view {min_pixels, max_pixels} the bbox "
                                 "numbers were written in (their SFT --min_pixels/--max_pixels).")
    crop_budget: PixelBudget | None = option(None, "Budget {min_pixels, max_pixels} of vlir's own crop, "
                                             "rendered for comparison (null: the family's default, as "
                                             "theirs).")
    base: str | None = option(None, "Relative image and crop paths are resolved against this folder "
                              "(null: SRC, or its folder).")
    image_root: str | None = option(None, "The root the imported records reference their images under "
                                    "(null: the base).")
    source: str = option("vlmr3", "Source of records that do not name theirs (vlir's own exports do).")
    split: str = option("train", "Split of records that do not name theirs.")
    embed_images: bool = option(False, "Store the original image bytes in the shards.")
    crop_tolerance: float = option(2.0, "A crop matches vlir's when sizes agree and the mean absolute "
                                   "difference is at most this.", ge=0)
    max_image_pixels: int = option(images.MAX_IMAGE_PIXELS, "Larger images are rejects.", ge=1)
    checks: dict[str, Any] = option({}, "Thresholds of the build's checks every imported record goes "
                                    "through (vlir.checks.CheckConfig keys).")

    def validate(self) -> list[str]:
        from vlir.models.registry import default_family

        family = default_family()  # the authors' model
        self.budget, self.crop_budget = family.view(self.budget), family.crop(self.crop_budget)
        problems = []
        try:
            CheckConfig.from_dict(self.checks)  # a bad threshold is refused before anything is read
        except (ValueError, TypeError) as exc:
            problems.append(f"checks: {exc}")
        if not _SOURCE_RE.match(self.source):
            problems.append(f"source must be lowercase letters, digits or _, got {self.source!r}")
        if not _split_ok(self.split):
            problems.append(f"split must be plain folder names joined by /, got {self.split!r}")
        return problems

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["budget"], d["crop_budget"] = self.budget.knob(), self.crop_budget.knob()
        return {"importer": "vlmr3", **d}


class _Reader:
    """Turns raw records into vlir records; owns path resolution and the per-record crop report."""

    def __init__(self, cfg: ImportConfig, base: Path, image_root: Path):
        self.cfg, self.base, self.image_root = cfg, base, image_root
        self.provenance = Provenance(ANNOTATOR, vlir.__version__)
        #: (source, split) -> record id -> crop -> comparison with vlir's crop
        self.crop_report: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.seen: Counter = Counter()
        self.check_config = CheckConfig.from_dict(cfg.checks)

    def _under_root(self, path: str, where: str) -> tuple[Path, str]:
        """An ``image_path`` (relative to the base, which it may leave, or absolute) confined to the
        image root: ``(file, path under the root)``. The refusal names the path as the record wrote
        it, never a local absolute path, and reads the same whether or not the file exists."""
        joined = Path(path) if Path(path).is_absolute() else self.base / path
        rel = Path(os.path.relpath(joined, self.image_root)).as_posix()
        try:
            full = confine(self.image_root, rel, "image_path", "the image root (--image-root)")
        except ConfinementError as exc:
            raise Rejected("image_outside_root", f"{where}: {exc}") from None
        return full, full.relative_to(self.image_root).as_posix()

    def identity(self, obj: Any, where: str) -> tuple[str, str, str, str, bool]:
        """``(id, source, split, folder split, repeated)``: the record's own (vlir exports carry
        them) or made from where it was found; a repeated id gets a ``#n`` suffix so its reject
        row stays addressable."""
        own = obj if isinstance(obj, dict) else {}
        source, split, rid, folder = own.get("source"), own.get("split"), own.get("id"), own.get("corpus_split")
        if (isinstance(source, str) and isinstance(rid, str) and _SOURCE_RE.match(source)
                and _split_ok(split) and id_problem(rid, source, split) is None):
            folder = folder if _split_ok(folder) else split
        else:
            source, split = self.cfg.source, self.cfg.split
            folder = split
            rid = f"{source}/{split}/{where.replace('#', '/').replace(':', '/')}"
            if id_problem(rid, source, split) is not None:  # a file name with control characters...
                rid = safe_reject_id(source, split, rid)
        self.seen[rid] += 1
        if self.seen[rid] > 1:
            return f"{rid}#{self.seen[rid] - 1}", source, split, folder, True
        return rid, source, split, folder, False

    def record(self, where: str, obj: Any) -> tuple[Record, str]:
        """The vlir record (accepted or reject) and the split folder it belongs in."""
        rid, source, split, folder, repeated = self.identity(obj, where)
        question = obj.get(QUESTION) if isinstance(obj, dict) else None
        base_sample = Sample(id=rid, source=source, split=split, image="", width=0, height=0,
                             question=question if isinstance(question, str) else "", answers=(),
                             meta={"vlmr3": {"where": where}})
        if repeated:
            return self._reject(base_sample, "duplicate_id", f"{where}: id {rid.rsplit('#', 1)[0]!r} "
                                                             "appears more than once"), folder
        try:
            if isinstance(obj, Rejected):
                raise obj
            return self._convert(obj, where, base_sample, folder), folder
        except Rejected as exc:
            return self._reject(base_sample, exc.reason, str(exc)), folder

    def _reject(self, sample: Sample, reason: str, detail: str) -> Record:
        return Record(sample=sample, chain=None, provenance=self.provenance, reasons=(reason,),
                      reject_detail=detail)

    def _image(self, image_path: str, where: str):
        path, rel = self._under_root(image_path, where)
        try:
            data = images.read_image_bytes(path, rel)
            image = images.decode_image(data, rel, self.cfg.max_image_pixels)
        except images.ImageError as exc:
            raise Rejected(exc.reason, f"{where}: {exc}") from None
        return rel, image, data

    def _crop_file(self, crop_path: str, k: int, where: str):
        """A file of ``img_crop_list``: data, so confined to the base folder like any path from data."""
        try:
            path = confine(self.base, crop_path, f"crop {k} path", "the base folder (--base)")
            data = images.read_image_bytes(path, crop_path)
            image = images.decode_image(data, crop_path, self.cfg.max_image_pixels)
        except ConfinementError as exc:
            raise Rejected("crop_outside_base", f"{where}: {exc}") from None
        except images.ImageError as exc:
            reason = "missing_crop" if exc.reason == "missing_image" else "bad_crop"
            raise Rejected(reason, f"{where}: crop {k}: {exc}") from None
        return image, data if data.startswith(PNG_MAGIC) else encode_png(image)

    def _convert(self, obj: Any, where: str, sample: Sample, folder: str) -> Record:
        image_path, question, parts, crop_paths = record_fields(obj, where)
        if len(crop_paths) > self.check_config.max_looks:  # before reading 20,000 crop files
            raise Rejected("max_looks", f"{where}: {len(crop_paths)} crops > max_looks {self.check_config.max_looks}")
        rel, image, data = self._image(image_path, where)
        width, height = image.size
        if (problem := geometry.aspect_problem(width, height)) is not None:
            raise Rejected("image_aspect", f"{where}: {problem}")
        chain = chain_from_parts(parts, len(crop_paths), width, height, self.cfg.budget, where)
        crops, report, worst, all_same = [], {}, 0.0, True
        for k, (look, crop_path) in enumerate(zip(chain.looks, crop_paths)):
            file_image, png = self._crop_file(crop_path, k, where)
            mine = render_crop(image, look.box, self.cfg.crop_budget)
            same, mad = compare_crop(file_image, mine)
            all_same &= same
            worst = max(worst, mad)
            report[f"crop_{k}"] = {"same_size": int(same), "mean_abs_diff": round(mad, 4),
                                   "file_width": file_image.width, "file_height": file_image.height,
                                   "vlir_width": mine.width, "vlir_height": mine.height}
            crops.append(Crop(png=png, box=mine.box, scale=mine.scale, width=file_image.width,
                              height=file_image.height))
        self.crop_report.setdefault((sample.source, folder), {})[sample.id] = report
        passed = all_same and worst <= self.cfg.crop_tolerance
        detail = "; ".join(f"{k}: file {r['file_width']}x{r['file_height']}, vlir {r['vlir_width']}x"
                           f"{r['vlir_height']}, mean abs diff {r['mean_abs_diff']:.2f}" for k, r in report.items())
        answers = obj.get("answers")
        if not (isinstance(answers, list) and answers and all(isinstance(a, str) for a in answers)):
            answers = [chain.answer]
        sample = dataclasses.replace(sample, image=rel, width=width, height=height, question=question,
                                     answers=tuple(answers))
        checks = self._checks(sample, chain, own_answers=answers is obj.get("answers"))
        crop_match = CheckResult("crop_match", passed, worst, detail or "no crops")
        failed = failed_names(checks)
        return Record(sample=sample, chain=chain, provenance=self.provenance, crops=() if failed else tuple(crops),
                      checks=(*checks, crop_match), reasons=failed, image_sha256=images.sha256_hex(data),
                      image_bytes=data if self.cfg.embed_images and not failed else None)

    def _checks(self, sample: Sample, chain: Chain, own_answers: bool) -> tuple[CheckResult, ...]:
        """The build's checks (:func:`vlir.checks.run_checks`, thresholds from ``cfg.checks``: look
        limit, text bounds, protocol-safe text, box sizes...). ``answer_correct`` only where the
        record carries its own gold answers (a vlir export does; the authors' records do not)."""
        results = run_checks(sample, chain, self.check_config)
        return tuple(r for r in results if r.name != "answer_correct" or own_answers)


def import_records(src: Path, out: Path, cfg: ImportConfig | None = None,
                   progress: Callable[[bool], Any] | None = None) -> dict[str, Any]:
    """Read the authors' records under ``src`` into the vlir output ``out`` (empty or absent);
    returns the manifest. ``progress(accepted)`` is called once per record."""
    cfg = cfg or ImportConfig()
    src, out = Path(src), Path(out)
    if not src.exists():
        raise ImportInputError(f"{src} does not exist")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ImportInputError(f"{out} exists and is not an empty folder; choose a new OUT")
    base = Path(cfg.base) if cfg.base else (src if src.is_dir() else src.parent)
    image_root = Path(cfg.image_root) if cfg.image_root else base
    if not image_root.is_dir():
        raise ImportInputError(f"image root {image_root} is not a directory")
    files = data_files(src)
    if not files:
        raise ImportInputError(f"{src}: no *.json or *.jsonl record files")
    reader = _Reader(cfg, base.resolve(), image_root.resolve())
    top = src if src.is_dir() else src.parent
    with OutputWriter(out) as writer:
        for path in files:
            name = path.relative_to(top).as_posix()
            for where, obj in raw_records(path, name):
                record, folder = reader.record(where, obj)
                writer.write(record, folder)
                if progress is not None:
                    progress(record.accepted)
        manifest = writer.finish({**cfg.to_dict(), "src": str(src.resolve())}, str(image_root.resolve()),
                                 lambda key: {ANNOTATOR: {"crop_diff": reader.crop_report.get(key, {})}})
    log.info("imported %s into %s", ", ".join(f"{k}: {v['accepted']} accepted, {v['rejected']} rejected"
                                              for k, v in manifest["splits"].items()), out)
    return manifest
