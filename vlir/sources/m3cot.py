"""M3CoT: multi-domain, multi-step multiple-choice questions (used for RL data).

Two official forms, found under the root or one folder below it:

- the Hugging Face release (``LightChen2333/M3CoT``): Parquet shards ``data/{train,validation,test}-*.parquet``
  (or the converter's ``default/<split>/*.parquet``), columns ``id``, ``category``, ``image_id``,
  ``question``, ``choices`` (list), ``context``, ``answer`` (a letter), ``rationale``, ``split``,
  ``image`` (``{bytes, path}``), ``domain``, ``topic``;
- JSON Lines with the same fields (``{split}.jsonl``, ``dev.jsonl``/``validation.jsonl`` for val;
  the repository's experiment dumps have no ``rationale``/``split``/``image``).

Images. A :class:`Sample` needs an image file under the root, so:
1. a record whose ``image`` is a relative path string uses it (checked: no escaping the root);
2. else ``images/<image_id>.png|.jpg|.jpeg`` under the root is used when it exists;
3. else, for Parquet rows with embedded bytes, the bytes are written once to
   ``images/<image_id>.<format>`` under the root (``stats["images_extracted"]``; turn off with
   ``extract_images=False``), because a Sample refers to images by path and never carries bytes.
   ``image_id`` must be a plain file name (letters, digits, ``._-``), else ``Invalid("unsafe_path")``.
Otherwise the record is ``Invalid("missing_image")``.

Records whose ``split`` field names another split are skipped (``stats["other_split"]``), so one
combined file can serve all splits; records without it belong to the split asked for. The question
lists the lettered choices, the answer is the letter; ``meta`` keeps the choices, the answer text,
context, rationale, domain, topic and category. M3CoT has no boxes: the evidence is empty.
"""

from __future__ import annotations

import logging
import os
import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from vlir.images import ImageError, image_format, safe_path
from vlir.records import Sample
from vlir.sources.base import (Reading, RecordError, Source, SourceError, find_dir, find_file,
                               relative_to_root)
from vlir.jsonstream import BadLine, iter_jsonl
from vlir.sources.support import ImageFiles

log = logging.getLogger(__name__)

LETTERS = string.ascii_uppercase
SPLIT_ALIASES = {"validation": "val", "dev": "val", "valid": "val"}
HF_SPLIT = {"train": "train", "val": "validation", "test": "test"}
IMAGE_EXTS = (".png", ".jpg", ".jpeg")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def format_question(question: str, choices: list[str], context: str = "") -> str:
    """The question as the model sees it: context (if any), question, then ``(A) ...`` options."""
    lines = [f"Context: {context}"] if context else []
    lines += [question, "Options:"]
    lines += [f"({LETTERS[i]}) {choice}" for i, choice in enumerate(choices)]
    return "\n".join(lines)


def parse_record(record: dict[str, Any]) -> dict[str, Any]:
    """Check one record; raises ValueError saying what is wrong."""
    out: dict[str, Any] = {}
    if not isinstance(record.get("question"), str) or not record["question"].strip():
        raise ValueError("missing or empty 'question'")
    out["question"] = record["question"].strip()
    choices = record.get("choices")
    if hasattr(choices, "tolist"):
        choices = choices.tolist()
    if not isinstance(choices, list) or not 2 <= len(choices) <= len(LETTERS) or \
            not all(isinstance(c, str) for c in choices):
        raise ValueError("'choices' must be a list of 2 to 26 strings")
    out["choices"] = [c.strip() for c in choices]
    answer = record.get("answer")
    if not isinstance(answer, str) or answer.strip().upper() not in LETTERS[:len(choices)]:
        raise ValueError(f"'answer' must be a letter A-{LETTERS[len(choices) - 1]}, got {answer!r}")
    out["answer"] = answer.strip().upper()
    for key in ("context", "rationale", "domain", "topic", "category", "split"):
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{key!r} is a {type(value).__name__}, not a string")
        out[key] = (value or "").strip()
    image_id = record.get("image_id")
    out["image_id"] = "" if image_id is None else str(image_id).strip()
    out["image"] = record.get("image")
    return out


def _iter_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
        index = 0
        for batch in handle.iter_batches(batch_size=64):
            for row in batch.to_pylist():
                yield index, row
                index += 1
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise SourceError(path, f"not a readable Parquet file ({exc})") from None


def _find_files(root: Path, split: str, explicit: Any) -> list[Path]:
    if explicit:
        paths = explicit if isinstance(explicit, (list, tuple)) else [explicit]
        return [find_file(root, [], explicit=p) for p in paths]
    if not Path(root).is_dir():
        raise SourceError(root, "source root is not a directory")
    hf = HF_SPLIT[split]
    for pattern in (f"{hf}-*.parquet", f"{hf}.parquet", f"{hf}/*.parquet"):
        found = sorted(set(Path(root).glob(pattern)) | set(Path(root).glob(f"*/{pattern}")))
        if found:
            return found
    names = [f"{split}.jsonl"] + ([f"{hf}.jsonl", "dev.jsonl"] if split == "val" else [])
    return [find_file(root, names)]


class M3CoTSource(Source):
    name = "m3cot"
    title = "M3CoT multiple-choice questions (for RL)"
    splits = ("train", "val", "test")
    expected_files = (
        "data/{train,validation,test}-*.parquet (Hugging Face LightChen2333/M3CoT), or {split}.jsonl",
        "images/<image_id>.png|jpg (extracted there from the Parquet image bytes on first read)",
    )
    homepage = "https://github.com/LightChen233/M3CoT"
    license = "CC BY-SA 4.0"

    def open(self, root: Path, split: str, stats: Counter, options: dict[str, Any]) -> "_Reading":
        """Options: ``files`` (a .jsonl or .parquet path, or a list), ``extract_images``
        (default True: write embedded Parquet image bytes to ``images/``)."""
        images_dir = find_dir(root, ["images"], required=False)
        images_rel = relative_to_root(root, images_dir) if images_dir else "images"
        image_files = ImageFiles(root)
        extract = options.get("extract_images", True)
        return _Reading(root, split, stats, _find_files(root, split, options.get("files")), images_rel,
                        image_files, extract)

    def records(self, reading: Reading, path: Path) -> Iterator[tuple[int, dict[str, Any] | BadLine]]:
        return _iter_parquet(path) if path.suffix == ".parquet" else iter_jsonl(path)

    def parse(self, reading: "_Reading", path: Path, index: int,
              record: dict[str, Any] | BadLine) -> Sample | None:
        native = f"record-{index}"
        if isinstance(record, BadLine):
            raise RecordError(str(record), native=native, shown=index)
        rid = record.get("id")
        if isinstance(rid, (str, int)) and not isinstance(rid, bool) and str(rid).strip():
            native = str(rid).strip()
        else:
            raise RecordError("missing or invalid 'id'", native=native, shown=index)
        try:
            rec = parse_record(record)
        except ValueError as exc:
            raise RecordError(str(exc), native=native) from None
        if rec["split"] and SPLIT_ALIASES.get(rec["split"], rec["split"]) != reading.split:
            reading.stats["other_split"] += 1
            return None
        try:
            image = self._image(reading.root, rec, native, reading.images_rel, reading.image_files,
                                reading.extract, reading.stats)
            width, height = reading.image_files.size(image)
        except ImageError as exc:
            raise RecordError(str(exc), exc.reason, native=native) from None
        choices = rec["choices"]
        meta = {"m3cot_id": native, "image_id": rec["image_id"], "choices": choices,
                "answer_text": choices[LETTERS.index(rec["answer"])]}
        meta.update({k: rec[k] for k in ("context", "rationale", "domain", "topic", "category")})
        split = reading.split
        return Sample(id=f"{self.name}/{split}/{native}", source=self.name, split=split, image=image,
                      width=int(width), height=int(height),
                      question=format_question(rec["question"], choices, rec["context"]),
                      answers=(rec["answer"],), evidence=(), meta=meta)

    @staticmethod
    def _image(root: Path, rec: dict[str, Any], native: str, images_rel: str, image_files: ImageFiles,
               extract: bool, stats: Counter) -> str:
        """The record's image path relative to the root (see the module docstring for the order)."""
        field = rec["image"]
        if isinstance(field, str) and field.strip():
            safe_path(root, field.strip())
            return field.strip()
        stem = rec["image_id"] or native
        if not _PLAIN_NAME.match(stem):
            raise ImageError("unsafe_path", f"image_id {stem!r} is not a plain file name")
        for ext in IMAGE_EXTS:
            candidate = f"{images_rel}/{stem}{ext}"
            try:
                image_files.check(candidate)
                return candidate
            except ImageError:
                continue
        data = field.get("bytes") if isinstance(field, dict) else None
        if not data or not extract:
            raise ImageError("missing_image", f"image file not found: {images_rel}/{stem}.png (or .jpg)")
        fmt = image_format(data, f"embedded in record {native}")
        ext = ".jpg" if fmt == "JPEG" else f".{(fmt or 'png').lower()}"
        relative = f"{images_rel}/{stem}{ext}"
        target = safe_path(root, relative)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except OSError as exc:
            raise ImageError("missing_image", f"cannot write embedded image to {relative}: {exc}") from None
        image_files.forget(relative)
        stats["images_extracted"] += 1
        return relative

    def write_sample_tree(self, out: Path, per_split: int, seed: int) -> None:
        from vlir.sources.samples.m3cot import write_m3cot_tree

        write_m3cot_tree(Path(out), per_split, seed)


@dataclass
class _Reading(Reading):
    images_rel: str
    image_files: ImageFiles
    extract: bool
