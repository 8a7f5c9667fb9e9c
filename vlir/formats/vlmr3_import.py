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
  tag and a detail naming the file and the record.

The output is written by :class:`vlir.formats.output.OutputWriter` (vlir's own shard and manifest
writers, one build task per (source, split)), so ``vlir validate OUT`` checks an import like a build.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import vlir
from vlir import geometry, images
from vlir.crops import decode_png, encode_png, render_crop
from vlir.formats.output import OutputWriter
from vlir.formats.vlmr3 import AUTHORS_SFT_BUDGET, CROPS, IMAGE_PATH, INFO_FILE, QUESTION, RESPONSES
from vlir.geometry import CROP_PIXELS, PixelBudget
from vlir.records import Chain, CheckResult, Crop, Look, Provenance, Record, Sample, Think

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
class ImportConfig:
    """How the authors' records are read (recorded as the output's build config)."""

    #: the model's view the bbox numbers were written in (their SFT --min_pixels/--max_pixels)
    budget: PixelBudget = AUTHORS_SFT_BUDGET
    #: the crop budget of vlir's own crop, rendered for comparison (theirs: 4*28*28..1024*28*28)
    crop_budget: PixelBudget = CROP_PIXELS
    #: relative image and crop paths are resolved against this folder (None: SRC, or its folder)
    base: str | None = None
    #: the root the imported records reference their images under (None: the base)
    image_root: str | None = None
    #: source and split of records that do not name theirs (vlir's own exports do)
    source: str = "vlmr3"
    split: str = "train"
    embed_images: bool = False
    #: a crop matches vlir's when sizes agree and the mean absolute difference is at most this
    crop_tolerance: float = 2.0
    max_image_pixels: int = images.MAX_IMAGE_PIXELS

    def __post_init__(self) -> None:
        if not _SOURCE_RE.match(self.source):
            raise ValueError(f"source must be lowercase letters, digits or _, got {self.source!r}")
        if not _split_ok(self.split):
            raise ValueError(f"split must be plain folder names joined by /, got {self.split!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["budget"] = {"min_pixels": self.budget.min_pixels, "max_pixels": self.budget.max_pixels}
        d["crop_budget"] = {"min_pixels": self.crop_budget.min_pixels, "max_pixels": self.crop_budget.max_pixels}
        return {"importer": "vlmr3", **d}


class Rejected(Exception):
    """One record cannot be imported: ``reason`` is the rejects tag, the message says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Reading the files
# ---------------------------------------------------------------------------------------------

def data_files(src: Path) -> list[Path]:
    """The record files under ``src`` (or ``src`` itself), in a stable order."""
    if src.is_file():
        return [src]
    files = [p for p in src.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl") and p.name != INFO_FILE]
    return sorted(files, key=lambda p: p.relative_to(src).as_posix())


def raw_records(path: Path, name: str) -> Iterator[tuple[str, Any]]:
    """``(where, record or Rejected)`` for every record of one file; ``where`` is
    ``<file>#<index>`` (JSON list) or ``<file>:<line>`` (JSONL)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        yield name, Rejected("bad_json", f"{name}: cannot read ({exc})")
        return
    if path.suffix == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                yield f"{name}:{lineno}", json.loads(line)
            except json.JSONDecodeError as exc:
                yield f"{name}:{lineno}", Rejected("bad_json", f"{name} line {lineno}: not valid JSON ({exc})")
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        yield name, Rejected("bad_json", f"{name}: not valid JSON ({exc})")
        return
    if not isinstance(data, list):
        yield name, Rejected("bad_json", f"{name}: expected a JSON list of records (what data_qwen.py "
                                         f"loads), got {type(data).__name__}")
        return
    for i, obj in enumerate(data):
        yield f"{name}#{i}", obj


# ---------------------------------------------------------------------------------------------
# One record
# ---------------------------------------------------------------------------------------------

def _fields(obj: Any, where: str) -> tuple[str, str, list[str], list[str]]:
    if not isinstance(obj, dict):
        raise Rejected("malformed", f"{where}: a record must be a JSON object, got {type(obj).__name__}")
    for key in (IMAGE_PATH, QUESTION):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise Rejected("malformed", f"{where}: {key} must be a non-empty string")
    for key in (RESPONSES, CROPS):
        value = obj.get(key, [] if key == CROPS else None)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise Rejected("malformed", f"{where}: {key} must be a list of strings")
    if not obj[RESPONSES]:
        raise Rejected("malformed", f"{where}: {RESPONSES} is empty")
    return obj[IMAGE_PATH], obj[QUESTION], obj[RESPONSES], obj.get(CROPS, [])


def _think(text: str) -> str:
    """Reasoning text of a part without the think tags (vlir's chat config names them)."""
    from vlir.models.chat import ChatConfig

    cfg = ChatConfig()
    for tag in (cfg.think_open.strip(), cfg.think_close.strip()):
        text = text.replace(tag, " ")
    return text.strip()


def learned_text(parts: list[str]) -> str:
    """The assistant text their loader trains on: each part with a newline appended if it lacks one."""
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts)


def _text_before_call(part: str, where: str, i: int) -> str:
    """The text of ``part`` before its one crop call (the ``{...}`` the protocol reads)."""
    from vlir.protocol import CALL_CLOSE, parse_response

    calls = parse_response(part).all_calls
    if len(calls) != 1:
        raise Rejected("call_not_before_crop", f"{where}: {RESPONSES}[{i}] must end with the one crop "
                                               f"call that crop {i} answers, found {len(calls)} call(s)")
    round_text = part[: calls[0].start]
    return round_text[: (round_text + CALL_CLOSE).rfind(calls[0].json)]


def chain_from_parts(parts: list[str], n_crops: int, width: int, height: int, budget: PixelBudget,
                     where: str) -> Chain:
    """Steps and answer of a record's ``response_list`` (``n_crops`` crops follow its first parts).

    The boxes are :func:`vlir.protocol.parse_response`'s calls over the text their loader trains
    on, mapped to original pixels; the think steps are the text around them, tags removed."""
    from vlir.protocol import ANSWER_OPEN, parse_response, strip_special

    parts = [strip_special(p) for p in parts]
    response = parse_response(learned_text(parts))
    if response.bad_calls:
        bad = response.bad_calls[0]
        raise Rejected("bad_call", f"{where}: crop call {bad.json!r} is one the authors' loop refuses "
                                   f"({bad.error})")
    calls = list(response.calls)
    if len(calls) != n_crops:
        raise Rejected("calls_crops_mismatch", f"{where}: the response makes {len(calls)} crop call(s) "
                                               f"but {CROPS} has {n_crops} crop(s)")
    if len(parts) != n_crops + 1:
        raise Rejected("parts_crops_mismatch", f"{where}: {RESPONSES} has {len(parts)} part(s) for "
                                               f"{n_crops} crop(s); crop i follows part i, so a record "
                                               "needs one part more than crops")
    if response.tagged_answer is None:
        raise Rejected("no_answer", f"{where}: the response has no <answer> tag")
    steps: list[Think | Look] = []
    for i, call in enumerate(calls):
        think = _think(_text_before_call(parts[i], where, i))
        try:
            box = geometry.clip(geometry.from_model(call, width, height, budget), width, height)
        except ValueError as exc:
            raise Rejected("bad_box", f"{where}: call {i} {list(call)}: {exc}") from None
        if box is None:
            raise Rejected("bad_box", f"{where}: call {i} {list(call)} lies outside the image "
                                      f"({width}x{height} original)")
        if think:
            steps.append(Think(think))
        steps.append(Look(box))
    last = parts[-1]
    think = _think(last[: last.rfind(ANSWER_OPEN)] if ANSWER_OPEN in last else last)
    if think:
        steps.append(Think(think))
    return Chain(steps, response.tagged_answer)


def compare_crop(file_image, vlir_crop: Crop) -> tuple[bool, float]:
    """``(same size, mean absolute pixel difference)`` of a crop file and vlir's crop of the same
    box; the file's crop is resized (bilinear) to vlir's size first when the sizes differ."""
    import numpy as np
    from PIL import Image

    mine = decode_png(vlir_crop.png)
    same = file_image.size == mine.size
    theirs = file_image if same else file_image.resize(mine.size, Image.Resampling.BILINEAR)
    diff = np.abs(np.asarray(theirs, dtype=np.int16) - np.asarray(mine, dtype=np.int16))
    return same, float(diff.mean())


class _Reader:
    """Turns raw records into vlir records; owns path resolution and the per-record crop report."""

    def __init__(self, cfg: ImportConfig, base: Path, image_root: Path):
        self.cfg, self.base, self.image_root = cfg, base, image_root
        self.provenance = Provenance(ANNOTATOR, vlir.__version__)
        #: (source, split) -> record id -> crop -> comparison with vlir's crop
        self.crop_report: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.seen: Counter = Counter()

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return (p if p.is_absolute() else self.base / p).resolve()

    def identity(self, obj: Any, where: str) -> tuple[str, str, str, str, bool]:
        """``(id, source, split, folder split, repeated)``: the record's own (vlir exports carry
        them) or made from where it was found; a repeated id gets a ``#n`` suffix so its reject
        row stays addressable."""
        own = obj if isinstance(obj, dict) else {}
        source, split, rid, folder = own.get("source"), own.get("split"), own.get("id"), own.get("corpus_split")
        if (isinstance(source, str) and isinstance(rid, str) and _SOURCE_RE.match(source)
                and _split_ok(split) and rid.startswith(f"{source}/{split}/")
                and len(rid) > len(source) + len(split) + 2):
            folder = folder if _split_ok(folder) else split
        else:
            source, split = self.cfg.source, self.cfg.split
            folder = split
            rid = f"{source}/{split}/{where.replace('#', '/').replace(':', '/')}"
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
        path = self.resolve(image_path)
        try:
            rel = path.relative_to(self.image_root)
        except ValueError:
            raise Rejected("image_outside_root", f"{where}: image {path} is not under the image root "
                                                 f"{self.image_root} (pass --image-root)") from None
        try:
            image, data = images.load_image(path, self.cfg.max_image_pixels)
        except images.ImageError as exc:
            raise Rejected(exc.reason, f"{where}: {exc}") from None
        return rel.as_posix(), image, data

    def _crop_file(self, crop_path: str, k: int, where: str):
        path = self.resolve(crop_path)
        try:
            image, data = images.load_image(path, self.cfg.max_image_pixels)
        except images.ImageError as exc:
            reason = "missing_crop" if exc.reason == "missing_image" else "bad_crop"
            raise Rejected(reason, f"{where}: crop {k}: {exc}") from None
        return image, data if data.startswith(PNG_MAGIC) else encode_png(image)

    def _convert(self, obj: Any, where: str, sample: Sample, folder: str) -> Record:
        image_path, question, parts, crop_paths = _fields(obj, where)
        rel, image, data = self._image(image_path, where)
        width, height = image.size
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
        return Record(sample=sample, chain=chain, provenance=self.provenance, crops=tuple(crops),
                      checks=(CheckResult("crop_match", passed, worst, detail or "no crops"),),
                      image_sha256=images.sha256_hex(data),
                      image_bytes=data if self.cfg.embed_images else None)


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
