"""Helpers shared by the TextVQA, DocVQA and InfographicsVQA adapters.

The three releases share a shape: a question file ``{"dataset_...": ..., "data": [records]}``, one
record per question, images referenced by a path or id, and OCR on the side. What is common about
reading them lives here, so the adapters hold only what is specific to each layout:

- :func:`iter_data_records` streams ``data[]`` with ijson (the TextVQA train OCR file is ~66 MB
  and the question files tens of MB: never hold them whole) and turns a broken file into a
  :class:`~vlir.sources.base.SourceError` naming it;
- :class:`Malformed` and the field getters turn a bad record into a readable ``Invalid`` detail;
- :class:`LRU` caches per-image OCR documents, which many questions share.

Image checks (exists, size from the header) and counted rejects are shared with the scene sources:
:class:`vlir.sources.support.ImageFiles` and :func:`vlir.sources.support.reject`.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, Callable, ClassVar, Generic, Hashable, Iterator, NamedTuple, TypeVar

import ijson
from cachetools import LRUCache

from vlir.images import safe_path
from vlir.records import Region, Sample
from vlir.sources.base import Reading, RecordError, Source, SourceError, load_json
from vlir.jsonstream import iter_array_items
from vlir.sources.support import ImageFiles

log = logging.getLogger(__name__)

V = TypeVar("V")


class Malformed(RecordError):
    """A record lacks a field or has one of the wrong type; the message says which (the base
    class files it as a ``malformed`` reject naming the file and record)."""

    def __init__(self, message: str):
        super().__init__(message)


def display_path(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` when it is inside it (short, stable details), else as given."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


def iter_data_records(path: Path, key: str = "data") -> Iterator[tuple[int, Any]]:
    """Stream ``(index, record)`` for each item of the top-level ``key`` list of ``path``
    (:func:`vlir.jsonstream.iter_array_items` does the parsing and names the file on a
    parse error). A file without that list raises SourceError too: it is checked by a second,
    cheap pass only when the first yielded nothing, so well-formed files are read once."""
    count = 0
    for count, record in enumerate(iter_array_items(path, key), start=1):
        yield count - 1, record
    if count == 0 and not _has_list_at(path, key):
        raise SourceError(path, f"no top-level {key!r} list")


def question_records(path: Path, id_key: str) -> Iterator[tuple[str, Any]]:
    """``(name, record)`` for each question of ``path``'s ``data`` list: the name is the record's
    own id when readable, else ``#<index>`` (:func:`peek_id`), what a reject's detail calls it."""
    for index, record in iter_data_records(path):
        yield peek_id(record, id_key, index), record


@dataclass
class QuestionReading(Reading):
    """A split of one of the three releases: its question file, the image folder (under the
    root), an image cache and a per-image cache (OCR pages, regions); rejects name the question
    file by its path under the root."""

    images: str | None = ""
    image_files: ImageFiles = field(default=None)  # type: ignore[assignment]
    cache: LRU[Any] = field(default_factory=lambda: LRU(64))

    def __post_init__(self) -> None:
        if self.image_files is None:
            self.image_files = ImageFiles(self.root)

    def label(self, path: Path) -> str:
        return display_path(self.root, path)


class Seen(NamedTuple):
    """What an adapter reads about a question's image: path, size, OCR evidence, its meta."""

    image: str
    width: int
    height: int
    evidence: tuple[Region, ...]
    meta: dict[str, Any]


class QuestionSource(Source):
    """What the three releases share: each question file's ``data`` records, named by ``id_key``;
    a record's id, question and answers (checked in that order); the sample tree written by
    ``vlir.sources.samples.<name>.write_tree``. The image, OCR and meta are each adapter's
    :meth:`read_image`."""

    id_key: ClassVar[str]

    def records(self, reading: Reading, path: Path) -> Iterator[tuple[str, Any]]:
        return question_records(path, self.id_key)

    def parse(self, reading: Reading, path: Path, key: str, record: Any) -> Sample:
        qid = native_id(record, self.id_key)
        question = text(record, "question")
        golds = answers(record, "answers", required=reading.split != "test")
        seen = self.read_image(reading, record)
        return Sample(id=f"{self.name}/{reading.split}/{qid}", source=self.name, split=reading.split,
                      image=seen.image, width=seen.width, height=seen.height, question=question,
                      answers=golds, evidence=seen.evidence, meta=seen.meta)

    @abstractmethod
    def read_image(self, reading: Reading, record: Any) -> Seen:
        """The record's image (checked), its size, OCR evidence and meta; raises Malformed or
        ImageError."""

    def write_sample_tree(self, out: Path, per_split: int, seed: int) -> None:
        import_module(f"vlir.sources.samples.{self.name}").write_tree(Path(out), per_split, seed)


def _has_list_at(path: Path, prefix: str) -> bool:
    with open(path, "rb") as fh:
        for got, event, _ in ijson.parse(fh):
            if got == prefix and event == "start_array":
                return True
    return False


def require(record: Any, key: str, types: type | tuple[type, ...], what: str | None = None) -> Any:
    """``record[key]``, which must exist and be of ``types`` (bool is never an int here)."""
    if not isinstance(record, dict):
        raise Malformed(f"record is a {type(record).__name__}, not an object")
    if key not in record or record[key] is None:
        raise Malformed(f"missing field {key!r}")
    value = record[key]
    if isinstance(value, bool) and bool not in _as_tuple(types) or not isinstance(value, types):
        names = "/".join(t.__name__ for t in _as_tuple(types))
        raise Malformed(f"field {key!r} should be {what or names}, got {type(value).__name__}")
    return value


def optional(record: dict[str, Any], key: str, types: type | tuple[type, ...]) -> Any:
    """``record[key]`` when present and of ``types``; None when absent; Malformed when mistyped."""
    if record.get(key) is None:
        return None
    return require(record, key, types)


def native_id(record: Any, key: str) -> str:
    """The record's own id (an int in all three releases; strings accepted) as a string."""
    return str(require(record, key, (int, str)))


def peek_id(record: Any, key: str, index: int) -> str:
    """The id to name a record by in an Invalid: its own id when readable, else ``#<index>``."""
    if isinstance(record, dict) and isinstance(record.get(key), (int, str)) \
            and not isinstance(record.get(key), bool):
        return str(record[key])
    return f"#{index}"


def text(record: Any, key: str) -> str:
    value = require(record, key, str, "a string")
    if not value.strip():
        raise Malformed(f"field {key!r} is empty")
    return value


def answers(record: Any, key: str, required: bool) -> tuple[str, ...]:
    """The answer list. Numbers are kept as their text (DocVQA has a few); anything else is
    malformed. Test splits have no answers (``required=False``) and get ``()``."""
    if not required and (not isinstance(record, dict) or record.get(key) is None):
        return ()
    values = require(record, key, list, "a list of strings")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise Malformed(f"{key}[{i}] should be a string, got {type(v).__name__}")
        out.append(v if isinstance(v, str) else str(v))
    if required and not out:
        raise Malformed(f"field {key!r} is an empty list")
    return tuple(out)


def string_list(record: dict[str, Any], key: str) -> list[str] | None:
    """An optional list-of-strings field (question_types, image_classes, evidence...)."""
    values = optional(record, key, list)
    if values is None:
        return None
    if not all(isinstance(v, str) for v in values):
        raise Malformed(f"field {key!r} should be a list of strings")
    return list(values)


def image_relpath(root: Path, relative: str) -> str:
    """Check an annotation's image path (relative to the root) and return it normalised; raises
    ImageError ``unsafe_path`` for absolute paths and paths escaping the root."""
    full = safe_path(root, relative)
    return full.relative_to(Path(root).resolve()).as_posix()


def dir_in_root(root: Path, directory: str | Path, option: str) -> str:
    """An explicit folder option, as a POSIX path relative to the root (samples reference images
    relative to the root, so the folder must be inside it)."""
    path = Path(directory)
    if not path.is_absolute():
        path = Path(root) / path
    if not path.is_dir():
        raise SourceError(path, f"{option}= folder not found")
    try:
        rel = path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        raise SourceError(path, f"{option}= folder must be inside the source root {root}") from None
    return "" if rel == "." else rel


def join(base: str, name: str) -> str:
    """Join a root-relative folder and a file name without turning '' into '/'."""
    return f"{base}/{name}" if base else name


class LRU(Generic[V]):
    """A small least-recently-used cache (per-image OCR documents are shared by the several
    questions asked about one image, which usually come close together): ``cachetools.LRUCache``
    with a get-or-make."""

    def __init__(self, size: int = 64):
        self.size = size
        self._data: LRUCache[Hashable, V] = LRUCache(maxsize=size)

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        try:
            return self._data[key]  # a hit also marks the key as recently used
        except KeyError:
            value = self._data[key] = make()
            return value


def load_ocr_json(path: Path) -> Any:
    """A per-image OCR file, or the SourceError describing why it cannot be read (returned, not
    raised: a broken OCR file spoils the questions about that image, not the whole split)."""
    try:
        return load_json(path)
    except SourceError as exc:
        return exc


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)
