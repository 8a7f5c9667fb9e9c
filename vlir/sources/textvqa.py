"""TextVQA 0.5.1: questions about text in photos, with Rosetta OCR words as evidence.

Official layout (https://textvqa.org/dataset)::

    TextVQA_0.5.1_{train,val,test}.json          {"dataset_type", "dataset_name", "dataset_version",
                                                  "data": [question records]}
    TextVQA_Rosetta_OCR_v0.2_{train,val,test}.json {"data": [{"image_id", "ocr_tokens", "ocr_info"}]}
    train_images/<image_id>.jpg                   train AND val images (train_val_images.zip)
    test_images/<image_id>.jpg

A record has question, question_id (int), image_id, image_width, image_height, answers (10 strings;
absent in test), image_classes, set_name, flickr urls and question_tokens.
"""

from __future__ import annotations

import logging
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlir.sources.base import find_dir, find_file
from vlir.sources.ocr import rosetta_compact, rosetta_regions
from vlir.sources.qa_common import (Malformed, QuestionReading, QuestionSource, Seen, dir_in_root,
                                    image_relpath, iter_data_records, join, optional, string_list,
                                    text)

log = logging.getLogger(__name__)

OPTIONS = ("questions", "ocr", "images")
META_FIELDS = ("image_id", "image_classes", "set_name", "flickr_original_url", "flickr_300k_url")


class TextVQA(QuestionSource):
    """TextVQA 0.5.1 reader.

    Options: ``questions=`` path of ``TextVQA_0.5.1_<split>.json``; ``ocr=`` path of
    ``TextVQA_Rosetta_OCR_v0.2_<split>.json`` (optional: without it every sample has empty
    evidence and counts as ``missing_ocr``); ``images=`` the image folder, inside the root
    (default: ``train_images/`` for train and val, ``test_images/`` for test).
    Width and height come from the record (``image_width``/``image_height``), else the image header.
    A sample whose image file is absent is ``Invalid("missing_image")``, as in every adapter.
    """

    name = "textvqa"
    options = OPTIONS
    id_key = "question_id"
    title = "TextVQA 0.5.1"
    splits = ("train", "val", "test")
    expected_files = (
        "TextVQA_0.5.1_{split}.json",
        "TextVQA_Rosetta_OCR_v0.2_{split}.json",
        "train_images/<image_id>.jpg (train and val, from train_val_images.zip)",
        "test_images/<image_id>.jpg (test, from test_images.zip)",
    )
    homepage = "https://textvqa.org/dataset"
    license = "CC BY 4.0 (images: OpenImages, CC BY 2.0)"

    def record_files(self, root: Path, split: str, **options: Any) -> list[Path]:
        self.check_split(split)  # the questions only: the OCR index is not loaded
        return [find_file(Path(root), [f"TextVQA_0.5.1_{split}.json"], options.get("questions"))]

    def open(self, root: Path, split: str, stats: Counter, options: dict[str, Any]) -> "_Reading":
        qpath = find_file(root, [f"TextVQA_0.5.1_{split}.json"], options.get("questions"))
        opath = find_file(root, [f"TextVQA_Rosetta_OCR_v0.2_{split}.json"], options.get("ocr"),
                          required=False)
        folder = "test_images" if split == "test" else "train_images"
        if options.get("images"):
            images = dir_in_root(root, options["images"], "images")
        else:
            found = find_dir(root, [folder], required=False)
            images = dir_in_root(root, found.resolve(), "images") if found else folder
        if opath is None:
            log.warning("textvqa %s: no Rosetta OCR file under %s: evidence will be empty", split, root)
        ocr = _rosetta_index(opath, stats) if opath else {}
        return _Reading(root, split, stats, [qpath], images, ocr=ocr, have_ocr=opath is not None)

    def read_image(self, reading: "_Reading", record: Any) -> Seen:
        stats, files = reading.stats, reading.image_files
        image_id = text(record, "image_id")
        meta: dict[str, Any] = {}
        for name in META_FIELDS:
            value = string_list(record, name) if name == "image_classes" else optional(record, name, str)
            if value is not None:
                meta[name] = value
        image = image_relpath(reading.root, join(reading.images, f"{image_id}.jpg"))
        width, height = optional(record, "image_width", int), optional(record, "image_height", int)
        if width is None or height is None:
            width, height = files.size(image)
        elif width <= 0 or height <= 0:
            raise Malformed(f"image size {width}x{height} is not positive")
        else:
            files.check(image)
        entry = reading.ocr.get(image_id)
        if entry is None:
            stats["missing_ocr"] += 1
            if reading.have_ocr:
                log.debug("textvqa: no OCR entry for image %s", image_id)
            evidence: tuple = ()
        else:  # questions about one image come together: build its regions once
            evidence = reading.cache.get((image_id, width, height),
                                         lambda: rosetta_regions(entry[0], entry[1], width, height, stats))
        return Seen(image, width, height, evidence, meta)


@dataclass
class _Reading(QuestionReading):
    ocr: dict[str, tuple[tuple[str, ...], array]] = field(default_factory=dict)
    have_ocr: bool = False


def _rosetta_index(path: Path, stats: Counter) -> dict[str, tuple[tuple[str, ...], array]]:
    """image_id -> compact OCR words, streamed from the Rosetta file (one pass, bounded per word)."""
    index: dict[str, tuple[tuple[str, ...], array]] = {}
    for _, entry in iter_data_records(path):
        image_id = entry.get("image_id") if isinstance(entry, dict) else None
        if not isinstance(image_id, str):
            stats["bad_ocr_entries"] += 1
            continue
        index[image_id] = rosetta_compact(entry.get("ocr_info"))
    return index
