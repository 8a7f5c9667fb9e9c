"""DocVQA (single-page task, v1.0): questions about scanned documents, with Microsoft Read v2 OCR.

Official layouts (https://rrc.cvc.uab.es/?ch=17, "Single Document VQA")::

    2020 release, one folder per split          RRC "spdocvqa" archives
    train/train_v1.0.json                       spdocvqa_qas/{train,val}_v1.0_withQT.json, test_v1.0.json
    train/documents/<ucsf id>_<page>.png        spdocvqa_images/<ucsf id>_<page>.png
    train/ocr_results/<ucsf id>_<page>.json     spdocvqa_ocr/<ucsf id>_<page>.json

The question file is ``{"dataset_name", "dataset_version", "dataset_split", "data": [...]}``; a
record has questionId, question, image ("documents/x.png", relative to the question file's
folder), docId, ucsf_document_id, ucsf_document_page_no (a string), answers (absent in test),
data_split and, in the ``_withQT`` files, question_types.
"""

from __future__ import annotations

import logging
import posixpath
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlir.images import ImageError
from vlir.records import Region
from vlir.sources.base import SourceError, find_dir, find_file
from vlir.sources.ocr import OCRFormatError, read_v2_page, read_v2_regions, read_v2_size
from vlir.sources.qa_common import (Malformed, QuestionReading, QuestionSource, Seen, dir_in_root,
                                    display_path, image_relpath, join, load_ocr_json, optional,
                                    string_list, text)

log = logging.getLogger(__name__)

OPTIONS = ("questions", "ocr", "images")
IMAGE_DIRS = ("documents", "spdocvqa_images", "images")
OCR_DIRS = ("ocr_results", "spdocvqa_ocr", "ocr")


class DocVQA(QuestionSource):
    """DocVQA single-page reader.

    Options: ``questions=`` path of the split's question file (default: ``<split>_v1.0_withQT.json``
    or ``<split>_v1.0.json`` under the root or one folder below); ``ocr=`` the folder of Read v2
    files (default: ``ocr_results/`` beside the question file, else ``ocr_results/`` or
    ``spdocvqa_ocr/`` under the root); ``images=`` the image folder inside the root (default: the
    record's ``image`` path beside the question file, else under the root, else the file name in
    ``spdocvqa_images/``). Width and height come from the OCR page, else the image header; a
    sample whose image file is absent is ``Invalid("missing_image")``.
    """

    name = "docvqa"
    options = OPTIONS
    id_key = "questionId"
    title = "DocVQA (single page) v1.0"
    splits = ("train", "val", "test")
    expected_files = (
        "{split}_v1.0.json or {split}_v1.0_withQT.json (test: test_v1.0.json)",
        "documents/<ucsf_document_id>_<page>.png (or spdocvqa_images/)",
        "ocr_results/<ucsf_document_id>_<page>.json (Microsoft Read v2; or spdocvqa_ocr/)",
    )
    homepage = "https://rrc.cvc.uab.es/?ch=17"
    license = "research use (RRC terms; documents from the UCSF Industry Documents Library)"

    def open(self, root: Path, split: str, stats: Counter, options: dict[str, Any]) -> "_Reading":
        qpath = find_file(root, [f"{split}_v1.0_withQT.json", f"{split}_v1.0.json"],
                          options.get("questions"))
        return _Reading.find(root, split, stats, qpath, options)

    def read_image(self, reading: "_Reading", record: Any) -> Seen:
        return reading.read_image(record)


@dataclass
class _Reading(QuestionReading):
    """Resolves images and OCR for one question file (folders are found once, OCR pages cached)."""

    qdir: str = ""
    fallback_images: str | None = None
    ocr_dir: Path | None = None

    @classmethod
    def find(cls, root: Path, split: str, stats: Counter, qpath: Path, options: dict[str, Any]) -> "_Reading":
        qdir = Path(qpath).parent
        try:
            rel = qdir.resolve().relative_to(root.resolve()).as_posix()
            rel = "" if rel == "." else rel
        except ValueError:  # an explicit question file outside the root: paths are root-relative
            rel = ""
        images = dir_in_root(root, options["images"], "images") if options.get("images") else None
        found = None if images else find_dir(root, ["spdocvqa_images"], required=False)
        fallback = dir_in_root(root, found.resolve(), "images") if found else None
        if options.get("ocr"):
            ocr_dir: Path | None = Path(options["ocr"])
            if not ocr_dir.is_dir():
                raise SourceError(ocr_dir, "ocr= folder not found")
        elif (qdir / "ocr_results").is_dir():
            ocr_dir = qdir / "ocr_results"
        else:
            ocr_dir = find_dir(root, OCR_DIRS, required=False)
        if ocr_dir is None:
            log.warning("docvqa: no OCR folder (%s) under %s: evidence will be empty",
                        " or ".join(OCR_DIRS), root)
        return cls(root, split, stats, [qpath], images, qdir=rel, fallback_images=fallback, ocr_dir=ocr_dir)

    def read_image(self, record: Any) -> Seen:
        image = self._image(text(record, "image"))
        meta: dict[str, Any] = {}
        for key in ("docId", "ucsf_document_id", "ucsf_document_page_no", "data_split"):
            value = optional(record, key, (int, str))
            if value is not None:
                meta[key] = value
        question_types = string_list(record, "question_types")
        if question_types is not None:
            meta["question_types"] = question_types
        width, height, evidence = self._evidence(image)
        return Seen(image, width, height, evidence, meta)

    def _image(self, name: str) -> str:
        """The record's image path as a root-relative path: checked for escapes first, then the
        first candidate location that exists (or the first candidate when none does)."""
        base = posixpath.basename(name)
        if self.images is not None:
            return image_relpath(self.root, join(self.images, base))
        candidates = [image_relpath(self.root, join(self.qdir, name))]
        if self.qdir:
            candidates.append(image_relpath(self.root, name))
        for folder in IMAGE_DIRS:
            candidates.append(image_relpath(self.root, join(folder, base)))
        if self.fallback_images is not None:
            candidates.append(image_relpath(self.root, join(self.fallback_images, base)))
        for candidate in candidates:
            if (self.root / candidate).is_file():
                return candidate
        return candidates[0]

    def _evidence(self, image: str) -> tuple[int, int, tuple[Region, ...]]:
        if self.ocr_dir is None:
            self.stats["missing_ocr"] += 1
            width, height = self.image_files.size(image)
            return width, height, ()
        ocr_path = self.ocr_dir / (Path(image).stem + ".json")
        result = self.cache.get(ocr_path, lambda: self._parse(ocr_path, image))
        if isinstance(result, Exception):
            raise result
        width, height, evidence = result
        self.image_files.check(image)  # the size came from the OCR: the image must still be there
        if not evidence and not ocr_path.is_file():
            self.stats["missing_ocr"] += 1
        return width, height, evidence

    def _parse(self, ocr_path: Path, image: str) -> tuple[int, int, tuple[Region, ...]] | Exception:
        """Size and regions of one page, or the exception that spoils its questions. Computed once
        per image (questions share pages), so ``degenerate_box`` counts each box once."""
        if not ocr_path.is_file():
            try:
                width, height = self.image_files.size(image)
            except ImageError as exc:
                return exc
            return width, height, ()
        name = display_path(self.root, ocr_path)
        doc = load_ocr_json(ocr_path)
        if isinstance(doc, SourceError):
            return Malformed(f"OCR file {name} is not valid JSON")
        try:
            page = read_v2_page(doc)
        except OCRFormatError as exc:
            return Malformed(f"OCR file {name} is not in the Read v2 layout: {exc}")
        page_size = read_v2_size(page)
        if page_size is not None and str(page.get("unit", "pixel")) == "pixel":
            width, height = round(page_size[0]), round(page_size[1])
            scale = (1.0, 1.0)
        else:  # no size, or inches (Read's unit for PDFs): the image header gives pixels
            try:
                width, height = self.image_files.size(image)
            except ImageError as exc:
                return exc
            scale = (width / page_size[0], height / page_size[1]) if page_size else (1.0, 1.0)
        return width, height, read_v2_regions(page, width, height, self.stats, scale)
