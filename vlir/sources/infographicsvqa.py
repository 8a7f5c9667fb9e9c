"""InfographicsVQA v1.0: questions about infographics, with Amazon Textract OCR.

Official layouts (https://rrc.cvc.uab.es/?ch=17, "Infographics VQA"); both namings are in use::

    RRC archives                                      first release, per split
    infographicsvqa_qas/infographicsVQA_train_v1.0.json   infographicVQA_train_v1.0.json
    infographicsvqa_qas/infographicsVQA_val_v1.0_withQT.json  infographicVQA_val_v1.0.json
    infographicsvqa_images/<image_local_name>         infographicVQA_{split}_v1.0_images/
    infographicsvqa_ocr/<ocr_output_file>             infographicVQA_{split}_v1.0_ocr_outputs/

The question file is ``{"dataset_name", "dataset_version", "dataset_split", "data": [...]}``; a
record has questionId, question, image_local_name, image_url, ocr_output_file, answers (absent in
test), data_split, answer_type, evidence and operation/reasoning (lists of strings). The OCR file
holds top-level ``PAGE``/``LINE``/``WORD`` lists of Textract blocks with coordinates in 0-1, so the
image size comes from the image header.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlir.images import ImageError
from vlir.records import Region
from vlir.sources.base import SourceError, find_dir, find_file
from vlir.sources.ocr import OCRFormatError, textract_regions
from vlir.sources.qa_common import (Malformed, QuestionReading, QuestionSource, Seen, dir_in_root,
                                    display_path, image_relpath, join, load_ocr_json, optional,
                                    string_list, text)

log = logging.getLogger(__name__)

OPTIONS = ("questions", "ocr", "images")
LIST_META = ("answer_type", "evidence", "operation/reasoning", "question_types")
TEXT_META = ("image_local_name", "image_url", "ocr_output_file", "data_split")


class InfographicsVQA(QuestionSource):
    """InfographicsVQA reader.

    Options: ``questions=`` path of the split's question file (default: the official names above,
    under the root or one folder below); ``ocr=`` the folder of Textract files (default:
    ``infographicsvqa_ocr/``, ``infographicVQA_<split>_v1.0_ocr_outputs/``, ``ocr_results/`` or
    ``ocr/``); ``images=`` the image folder inside the root (default: ``infographicsvqa_images/``,
    ``infographicVQA_<split>_v1.0_images/`` or ``images/``). Folders beside the question file are
    preferred. Width and height come from the image header (Textract boxes are fractions).
    """

    name = "infographicsvqa"
    options = OPTIONS
    id_key = "questionId"
    title = "InfographicsVQA v1.0"
    splits = ("train", "val", "test")
    expected_files = (
        "infographicsVQA_{split}_v1.0.json (val: infographicsVQA_val_v1.0_withQT.json; "
        "first release: infographicVQA_{split}_v1.0.json)",
        "infographicsvqa_images/<image_local_name> (or infographicVQA_{split}_v1.0_images/)",
        "infographicsvqa_ocr/<ocr_output_file> (Amazon Textract; or "
        "infographicVQA_{split}_v1.0_ocr_outputs/)",
    )
    homepage = "https://rrc.cvc.uab.es/?ch=17"
    license = "research use (RRC terms; infographics collected from the web)"

    def open(self, root: Path, split: str, stats: Counter, options: dict[str, Any]) -> "_Reading":
        qpath = find_file(root, [f"infographicsVQA_{split}_v1.0_withQT.json",
                                 f"infographicsVQA_{split}_v1.0.json",
                                 f"infographicVQA_{split}_v1.0_withQT.json",
                                 f"infographicVQA_{split}_v1.0.json"], options.get("questions"))
        images = self._images_dir(root, qpath, split, options)
        ocr_dir = self._ocr_dir(root, qpath, split, options)
        if ocr_dir is None:
            log.warning("infographicsvqa %s: no OCR folder under %s: evidence will be empty", split, root)
        return _Reading(root, split, stats, [qpath], images, ocr_dir=ocr_dir)

    @staticmethod
    def _images_dir(root: Path, qpath: Path, split: str, options: dict[str, Any]) -> str:
        if options.get("images"):
            return dir_in_root(root, options["images"], "images")
        names = ["infographicsvqa_images", f"infographicVQA_{split}_v1.0_images", "images"]
        found = find_dir(qpath.parent, names, required=False) if _inside(root, qpath.parent) else None
        found = found or find_dir(root, names, required=False)
        return dir_in_root(root, found.resolve(), "images") if found else names[0]

    @staticmethod
    def _ocr_dir(root: Path, qpath: Path, split: str, options: dict[str, Any]) -> Path | None:
        if options.get("ocr"):
            path = Path(options["ocr"])
            if not path.is_dir():
                raise SourceError(path, "ocr= folder not found")
            return path
        names = ["infographicsvqa_ocr", f"infographicVQA_{split}_v1.0_ocr_outputs", "ocr_results", "ocr"]
        return find_dir(qpath.parent, names, required=False) or find_dir(root, names, required=False)

    def read_image(self, reading: "_Reading", record: Any) -> Seen:
        root, stats, ocr_dir = reading.root, reading.stats, reading.ocr_dir
        local_name = text(record, "image_local_name")
        ocr_name = optional(record, "ocr_output_file", str) or Path(local_name).stem + ".json"
        meta: dict[str, Any] = {}
        for name in TEXT_META:
            value = optional(record, name, str)
            if value is not None:
                meta[name] = value
        for name in LIST_META:
            value = string_list(record, name)
            if value is not None:
                meta[name] = value
        image = image_relpath(root, join(reading.images, local_name))
        width, height = reading.image_files.size(image)
        evidence: tuple[Region, ...] = ()
        if ocr_dir is None:
            stats["missing_ocr"] += 1
        else:
            ocr_path = _ocr_path(ocr_dir, ocr_name)
            if not ocr_path.is_file():
                stats["missing_ocr"] += 1
            else:
                result = reading.cache.get((ocr_path, width, height),
                                           lambda: _parse(root, ocr_path, width, height, stats))
                if isinstance(result, Malformed):
                    raise result
                evidence = result
        return Seen(image, width, height, evidence, meta)


@dataclass
class _Reading(QuestionReading):
    ocr_dir: Path | None = None


def _ocr_path(ocr_dir: Path, name: str) -> Path:
    """``ocr_output_file`` comes from the annotation file: it must stay inside the OCR folder."""
    from vlir.paths import ConfinementError, confine

    try:
        path = confine(ocr_dir, name, "ocr_output_file", "the OCR folder")
    except ConfinementError as exc:
        raise ImageError("unsafe_path", str(exc)) from None
    if path == ocr_dir.resolve():
        raise ImageError("unsafe_path", f"ocr_output_file {name!r} names the OCR folder itself")
    return path


def _parse(root: Path, path: Path, width: int, height: int,
           stats: Counter) -> tuple[Region, ...] | Malformed:
    """Regions of one Textract file (once per image: questions share it), or why it is unusable."""
    name = display_path(root, path)
    doc = load_ocr_json(path)
    if isinstance(doc, SourceError):
        return Malformed(f"OCR file {name} is not valid JSON")
    try:
        return textract_regions(doc, width, height, stats)
    except OCRFormatError as exc:
        return Malformed(f"OCR file {name} is not in the Textract layout: {exc}")


def _inside(root: Path, path: Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
        return True
    except ValueError:
        return False
