"""The VLM-R3 authors' SFT record, and ``vlir export --format vlmr3``.

Their trainer (``qwen_vl_finetune/qwenvl/data/data_qwen.py`` in ``justgogorunrun/VLM-R3``) reads
``--dataset_use`` with one ``json.load``: a JSON **list** of records, each::

    {"image_path": "images/gqa/1.jpg",          # opened by qwen_vl_utils, relative to the cwd
     "question": "What color is the square?",    # the loader appends the crop-tool instruction
     "response_list": ["<think> ...\\n\\n{\\"bbox_2d\\": [..]}\\n", ..., "... <answer>red</answer>"],
     "img_crop_list": ["crops/gqa/val/000000_0.png", ...]}

and renders the assistant turn as ``response_list[0]``, crop 0, ``response_list[1]``, crop 1, ...,
appending a newline to any part that lacks one. Their agent (``src/model/r3_vllm.py``) produces
the same two lists at inference: one text part per generation round, each but the last ending
with the bbox JSON closed as ``]}\\n``, and one crop PNG per call.

The export writes exactly that: the text parts are vlir's own chat rendering of the record
(:func:`vlir.models.chat.assistant_segments`, boxes in model pixels of ``--min/max-pixels``), the
crops are the record's stored crop PNGs, and the original images are copied under ``DEST/images``
or referenced by a path relative to DEST. Extra keys (``id``, ``source``, ``split``, ``answers``, and
``corpus_split``: the corpus folder the record was in, which can differ from the record's split, as
VSR's ``train`` folder holds ``random/train`` records) ride along for the way back (:mod:`vlir.formats.vlmr3_import`); their loader ignores them.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator

import vlir
from vlir import images
from vlir.config import Config, option
from vlir.geometry import MODEL_PIXELS, PixelBudget
from vlir.paths import ConfinementError, confine
from vlir.records import Crop, Record

if TYPE_CHECKING:  # pragma: no cover
    from vlir.corpus.shards import Corpus

log = logging.getLogger(__name__)

#: the image budget of the authors' 7B SFT run (``qwen_vl_finetune/sft_7b.sh``), which is also their
#: agent's at inference (``r3_vllm.py``) and so the default family's view (:mod:`vlir.models.defaults`)
AUTHORS_SFT_BUDGET = MODEL_PIXELS

DATA_FILE = "vlmr3_sft.json"  # what to pass as their --dataset_use
INFO_FILE = "vlir_export.json"  # how the export was made (skipped by the import)
IMAGES_DIR = "images"
CROPS_DIR = "crops"
IMAGE_MODES = ("copy", "reference")

# the fields their loader reads, and the ones vlir adds for the way back
IMAGE_PATH, QUESTION, RESPONSES, CROPS = "image_path", "question", "response_list", "img_crop_list"
EXTRA_KEYS = ("id", "source", "split", "corpus_split", "answers")


class ExportError(Exception):
    """The export cannot run (bad DEST, corpus not found...): a user error."""


@dataclass
class ExportConfig(Config):
    """How a vlir corpus becomes the authors' SFT file (a :class:`vlir.config.Config`: YAML,
    ``help()``, checked fields; a bad value is a ``ValueError``)."""

    kind: ClassVar[str] = "export"

    budget: PixelBudget = option(AUTHORS_SFT_BUDGET, "The model's view {min_pixels, max_pixels} the bbox "
                                 "numbers are written in (their SFT --min_pixels/--max_pixels).")
    images: str = option("copy", "copy: the original images under DEST/images; reference: a path "
                         "relative to DEST.", choices=IMAGE_MODES)
    path_prefix: str = option("", "Prepended to every written path (their loader opens paths relative "
                              "to its working directory, e.g. dataset/vlir/ when DEST is "
                              "qwen_vl_finetune/dataset/vlir and training runs from qwen_vl_finetune).")
    splits: tuple[str, ...] = option((), "Only these splits (train, or gqa/train); empty: every split.")

    def validate(self) -> list[str]:
        from vlir.models.registry import default_family

        self.budget = default_family().view(self.budget)  # the authors' model: the default family
        self.splits = tuple(self.splits)
        return []


def response_parts(record: Record, budget: PixelBudget) -> tuple[list[str], list[Crop]]:
    """The record's assistant turn as the authors' ``response_list`` and the crops that follow
    each part: vlir's chat rendering, nothing re-written."""
    from vlir.models.chat import ChatConfig, assistant_segments

    segments = assistant_segments(record, ChatConfig.default(budget))
    texts = [s for s in segments if isinstance(s, str)]
    crops = [s for s in segments if isinstance(s, Crop)]
    return texts, crops


def _posix(prefix: str, rel: str) -> str:
    return str(PurePosixPath(prefix) / rel) if prefix else rel


def _selected(corpus: "Corpus", splits: tuple[str, ...]) -> list[tuple[str, str]]:
    available = corpus.splits()
    if not splits:
        return available
    chosen = [(src, sp) for src, sp in available if sp in splits or f"{src}/{sp}" in splits]
    unknown = [s for s in splits if not any(s in (sp, f"{src}/{sp}") for src, sp in available)]
    if unknown:
        have = ", ".join(f"{src}/{sp}" for src, sp in available) or "none"
        raise ExportError(f"--split {unknown[0]}: the corpus has no such split (it has: {have})")
    return chosen


class _Exporter:
    """Writes crops and images for one export and remembers which images were written."""

    def __init__(self, corpus: "Corpus", dest: Path, cfg: ExportConfig):
        self.corpus, self.dest, self.cfg = corpus, dest, cfg
        self.written_images: dict[str, str] = {}  # target rel path -> sha256
        self.stats: Counter = Counter()

    def _source_file(self, record: Record) -> Path:
        """The original image under the corpus's source root (as :class:`Corpus` resolves it)."""
        root = self.corpus.root(record.sample.source)
        if root is None:
            raise ExportError(f"{self.corpus.out}: the manifest records no root for {record.sample.source}")
        return images.safe_path(root, record.sample.image, f"record {record.sample.id}: image_path")

    def image_path(self, record: Record) -> str:
        """Where the original image is, relative to DEST (copied or written there when needed)."""
        s = record.sample
        if record.image_bytes is None and self.cfg.images == "reference":
            return Path(os.path.relpath(self._source_file(record), self.dest)).as_posix()
        # the row's source and image_path are data: confined under DEST/images/<source> before
        # anything is written, and the path written into the JSON is the confined one
        folder = confine(self.dest / IMAGES_DIR, s.source, f"record {s.id}: source", f"DEST/{IMAGES_DIR}")
        target = confine(folder, s.image, f"record {s.id}: image_path", f"DEST/{IMAGES_DIR}/{s.source}")
        rel = target.relative_to(self.dest.resolve()).as_posix()
        if rel not in self.written_images:
            data = record.image_bytes if record.image_bytes is not None else \
                images.read_image_bytes(self._source_file(record), s.image)
            self.written_images[rel] = images.sha256_hex(data)
            if record.image_sha256 and self.written_images[rel] != record.image_sha256:
                raise ExportError(f"{s.id}: {s.image} differs from the sha256 recorded in the corpus")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            self.stats["images_written"] += 1
        elif record.image_sha256 and self.written_images[rel] != record.image_sha256:
            raise ExportError(f"{s.id}: {s.image} differs from the image already exported under that name")
        return rel

    def crop_paths(self, record: Record, index: int, crops: list[Crop]) -> list[str]:
        s = record.sample
        paths = []
        for k, crop in enumerate(crops):
            rel = PurePosixPath(CROPS_DIR, s.source, s.split, f"{index:06d}_{k}.png").as_posix()
            target = confine(self.dest, rel, f"record {s.id}: crop {k} (source/split)", "DEST")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_as_png(crop.png))
            paths.append(rel)
        self.stats["crops_written"] += len(paths)
        return paths

    def record(self, record: Record, index: int, corpus_split: str) -> dict[str, Any]:
        texts, crops = response_parts(record, self.cfg.budget)
        prefix = self.cfg.path_prefix
        s = record.sample
        return {
            IMAGE_PATH: _posix(prefix, self.image_path(record)),
            QUESTION: s.question,
            RESPONSES: texts,
            CROPS: [_posix(prefix, p) for p in self.crop_paths(record, index, crops)],
            "id": s.id, "source": s.source, "split": s.split, "corpus_split": corpus_split,
            "answers": list(s.answers),
        }


def _records(corpus: "Corpus", splits: list[tuple[str, str]]) -> Iterator[tuple[str, Record]]:
    for source, split in splits:
        for record in corpus.records(source, split):
            yield split, record


def export_corpus(out: Path, dest: Path, cfg: ExportConfig | None = None,
                  progress: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Write the accepted records of the vlir output ``out`` as the authors' SFT file
    ``dest/vlmr3_sft.json`` (+ crops, + images); returns the summary also written to
    ``dest/vlir_export.json``. ``dest`` must be empty or absent; ``progress()`` is called once
    per record written."""
    from vlir.corpus.shards import Corpus, atomic_write_json  # pyarrow: not at CLI start-up

    cfg = cfg or ExportConfig()
    out, dest = Path(out), Path(dest)
    try:
        corpus = Corpus(out)
    except FileNotFoundError as exc:
        raise ExportError(str(exc)) from None
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ExportError(f"{dest} exists and is not an empty folder; choose a new DEST")
    splits = _selected(corpus, cfg.splits)
    dest.mkdir(parents=True, exist_ok=True)
    exporter = _Exporter(corpus, dest, cfg)
    data_path = dest / DATA_FILE

    def rows() -> Iterator[dict[str, Any]]:
        for count, (split, record) in enumerate(_records(corpus, splits)):
            try:
                yield exporter.record(record, count, split)
            except (images.ImageError, ConfinementError, ValueError) as exc:
                raise ExportError(f"{out}: record {record.sample.id}: {exc}") from None

    count = write_json_list(data_path, rows(), progress)
    summary = {
        "format": "vlmr3", "vlir_version": vlir.__version__, "corpus": str(out.resolve()),
        "data_file": DATA_FILE, "records": count, "splits": [f"{a}/{b}" for a, b in splits],
        "min_pixels": cfg.budget.min_pixels, "max_pixels": cfg.budget.max_pixels,
        "images": cfg.images, "path_prefix": cfg.path_prefix, **dict(sorted(exporter.stats.items())),
    }
    atomic_write_json(dest / INFO_FILE, summary)
    log.info("exported %d records to %s", count, data_path)
    return summary


def _as_png(data: bytes) -> bytes:
    """The crop as PNG (VLM-R3's files are .png; a ``crop_format: webp`` build stores lossless WebP)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    from vlir.crops import decode_png, encode_png

    return encode_png(decode_png(data))


def write_json_list(path: Path, rows: Iterable[dict[str, Any]], progress: Callable[[], None] | None = None) -> int:
    """Write ``rows`` as one JSON list, streamed (one row a line, so memory stays flat), to a temp
    name renamed into place: no data file at all rather than a half-written one, whatever ``rows``
    raises. ``progress()`` is called once per row written; returns the number of rows."""
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write("[")
            for row in rows:
                fh.write(("\n" if count == 0 else ",\n") + json.dumps(row, ensure_ascii=False))
                count += 1
                if progress is not None:
                    progress()
            fh.write("\n]\n")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return count
