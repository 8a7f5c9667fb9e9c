"""The source interface: one adapter per official dataset layout, one registry.

An adapter reads the files a user downloaded from the official site, wherever under ``root`` they
sit (its official file names, looked for in ``root`` and one level of subfolders), and streams
:class:`~vlir.records.Sample` objects. A record it cannot read becomes an
:class:`~vlir.records.Invalid` (kept as a reject by the build, never dropped); a top-level file that
does not parse raises :class:`SourceError`, which the CLI turns into exit code 2 naming the file.
The loop over files and records, and the turning of a bad record into a counted Invalid, are
:class:`Source`'s; an adapter says only how to open a split and parse one file or record.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator

from vlir.jsonstream import SourceError  # noqa: F401  (defined with the readers; adapters raise it)
from vlir.records import Invalid, Sample

log = logging.getLogger(__name__)


class RecordError(Exception):
    """One record cannot become a :class:`Sample`. Raised by an adapter's :meth:`Source.parse`;
    the base class turns it into an :class:`Invalid` whose detail names the file and the record
    (``"<file>: record <id>: <message>"``), so a bad record is a reject, never lost.

    ``native``: the id the Invalid is filed under (default: the record's key from
    :meth:`Source.records`); ``shown``: how the detail names the record (default: ``native``);
    ``image``: the image path the record points to, when known."""

    def __init__(self, message: str, reason: str = "malformed", *, native: object = None,
                 shown: object = None, image: str = ""):
        super().__init__(message)
        self.reason, self.native, self.shown, self.image = reason, native, shown, image


@dataclass
class Reading:
    """One split being read: what :meth:`Source.open` found (the record files, in order) and the
    state its records share (side indexes, image cache). Adapters subclass it to add fields."""

    root: Path
    split: str
    stats: Counter
    files: list[Path]

    def for_tasks(self) -> "Reading":
        """A copy to hand to a build's tasks in other processes (:mod:`vlir.corpus.build_plan`):
        fresh counters (the read's are the split's; a task's re-reads must not count twice) and
        nothing that holds a process's state. Adapters with such state override it."""
        return dataclasses.replace(self, stats=Counter())

    def label(self, path: Path) -> str:
        """How a reject's detail names a record file (the file name; adapters whose layouts put
        several files of one name in different folders say the path under the root)."""
        return Path(path).name


class Source(ABC):
    """Base class of a source adapter. It owns the read loop, as datatrove's readers do:
    :meth:`open` the split (find its files, load what records share), stream each file's
    :meth:`records`, :meth:`parse` each one into a Sample, and turn a :class:`RecordError` or an
    :class:`~vlir.images.ImageError` into a counted ``Invalid`` naming the file and record.
    Subclasses set the class attributes and implement those three steps (and
    :meth:`write_sample_tree`); none repeats the loop."""

    name: ClassVar[str]
    title: ClassVar[str]
    splits: ClassVar[tuple[str, ...]]
    #: the official files, as `vlir sources` lists them (patterns with {split})
    expected_files: ClassVar[tuple[str, ...]]
    homepage: ClassVar[str] = ""
    license: ClassVar[str] = ""
    #: option names the adapter takes (None: it does not check them)
    options: ClassVar[tuple[str, ...] | None] = None

    def iter_samples(self, root: Path, split: str, stats: Counter | None = None,
                     **options: Any) -> Iterator[Sample | Invalid]:
        """Stream the split's samples. ``stats`` (if given) receives counters such as
        ``samples``, ``invalid``, ``missing_ocr``, ``missing_scene_graph``. ``options`` may name
        explicit file paths (each adapter documents its keys)."""
        reading = self.open_split(root, split, stats, options)
        for path in reading.files:
            for key, record in self.records(reading, path):
                item = self.read_record(reading, path, key, record)
                if item is not None:
                    yield item

    def record_files(self, root: Path, split: str, **options: Any) -> list[Path]:
        """The split's record files, found as :meth:`open` finds them (a missing one raises
        :class:`SourceError`) but without loading what the records share: how ``vlir build
        --source all`` tells a present split from a missing one before it writes anything.
        Adapters whose ``open`` loads side files (OCR, scene graphs, COCO boxes) override it."""
        self.check_split(split)
        return self.open(Path(root), split, Counter(), options).files

    def open_split(self, root: Path, split: str, stats: Counter | None = None,
                   options: dict[str, Any] | None = None) -> Reading:
        """Check the split and options, then :meth:`open` it (what :meth:`iter_samples` reads)."""
        options = options or {}
        self.check_split(split)
        if self.options is not None:
            self.check_options(options, self.options)
        return self.open(Path(root), split, stats if stats is not None else Counter(), options)

    #: whether :meth:`record_spans` gives each record's place in its file (then a build's plan
    #: hands tasks those places, not copies of the samples: :mod:`vlir.corpus.build_plan`)
    spans: ClassVar[bool] = False

    def record_spans(self, reading: Reading, path: Path) -> Iterator[tuple[Any, Any, tuple[int, int]]]:
        """``(key, record, (byte offset, byte length))`` of each record of ``path``, where
        :meth:`reread` finds it again; adapters that set :attr:`spans` implement both."""
        raise NotImplementedError(f"{self.name} does not locate its records")

    def reread(self, reading: Reading, fh, span: tuple[int, int]) -> tuple[Any, Any]:
        """The ``(key, record)`` at ``span`` of the open binary record file ``fh``."""
        raise NotImplementedError(f"{self.name} does not locate its records")

    def read_record(self, reading: Reading, path: Path, key: Any, record: Any) -> Sample | Invalid | None:
        """One record through :meth:`parse`: a Sample (counted as ``samples``), an Invalid, or
        None for a record that is not part of the split."""
        from vlir.images import ImageError  # vlir.images imports PIL: keep this module cheap

        try:
            item = self.parse(reading, path, key, record)
        except RecordError as exc:
            native = key if exc.native is None else exc.native
            shown = native if exc.shown is None else exc.shown
            return self.reject(reading, str(native), exc.reason,
                               f"{reading.label(path)}: record {shown}: {exc}", exc.image)
        except ImageError as exc:
            return self.reject(reading, str(key), exc.reason, f"{reading.label(path)}: record {key}: {exc}")
        if isinstance(item, Sample):
            reading.stats["samples"] += 1
        return item

    def reject(self, reading: Reading, native_id: str, reason: str, detail: str, image: str = "") -> Invalid:
        return reject(reading.stats, self.name, reading.split, native_id, reason, detail, image)

    @abstractmethod
    def open(self, root: Path, split: str, stats: Counter, options: dict[str, Any]) -> Reading:
        """Find the split's record files and load what its records share (a top-level file that
        cannot be used raises :class:`SourceError`)."""

    @abstractmethod
    def records(self, reading: Reading, path: Path) -> Iterator[tuple[Any, Any]]:
        """Stream one file's raw records as ``(key, record)``; the key names the record in an
        Invalid (its native id when readable, else its place in the file)."""

    @abstractmethod
    def parse(self, reading: Reading, path: Path, key: Any, record: Any) -> Sample | Invalid | None:
        """One raw record -> a Sample (or None: not part of this split). Raise
        :class:`RecordError` (or ``ImageError``) for a record that cannot be used."""

    @abstractmethod
    def write_sample_tree(self, out: Path, per_split: int, seed: int) -> None:
        """Write a deterministic, format-faithful miniature of the official layout under ``out``
        with ``train`` and ``val`` splits (``per_split`` questions each) and images whose evidence
        boxes are exactly where the text or object is drawn."""

    def check_options(self, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
        """Refuse option names the adapter does not take (a typo must not be silently ignored)."""
        unknown = set(options) - set(allowed)
        if unknown:
            raise SourceError(None, f"unknown option(s) {sorted(unknown)} for {self.name}; use {allowed}")

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise SourceError(None, f"unknown split {split!r} for {self.name}; choose from {', '.join(self.splits)}")


def reject(stats: Counter, source: str, split: str, native_id: str, reason: str, detail: str,
           image: str = "") -> Invalid:
    """An :class:`Invalid`, counted as ``invalid`` and ``invalid_<reason>``."""
    stats["invalid"] += 1
    stats[f"invalid_{reason}"] += 1
    log.debug("%s/%s/%s rejected (%s): %s", source, split, native_id, reason, detail)
    return Invalid(id=f"{source}/{split}/{native_id}", source=source, split=split, reason=reason,
                   detail=detail, image=image)


# ---------------------------------------------------------------------------------------------
# Helpers shared by adapters
# ---------------------------------------------------------------------------------------------

def find_file(root: Path, names: Iterable[str], explicit: str | Path | None = None,
              required: bool = True) -> Path | None:
    """Find the first of ``names`` in ``root`` or one folder below it (sorted, so deterministic).
    ``explicit`` (a user-given path) wins. Raises SourceError when required and absent."""
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise SourceError(p, "file not found")
        return p
    root = Path(root)
    if not root.is_dir():
        raise SourceError(root, "source root is not a directory")
    names = list(names)
    found = _first(root, names, Path.is_file)
    if found is None and required:
        raise SourceError(root, f"none of {', '.join(names)} found here or one folder below")
    return found


def find_dir(root: Path, names: Iterable[str], required: bool = True) -> Path | None:
    """Like :func:`find_file` for folders (``train_images``, ``ocr_results``...)."""
    root = Path(root)
    names = list(names)
    found = _first(root, names, Path.is_dir)
    if found is None and required:
        raise SourceError(root, f"no folder named {' or '.join(names)} here or one folder below")
    return found


def _first(root: Path, names: list[str], kind) -> Path | None:
    """The first of ``names`` that is a ``kind`` (file or folder) in ``root``, else in its
    subfolders (sorted, so deterministic)."""
    for name in names:
        if kind(root / name):
            return root / name
    if root.is_dir():
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            for name in names:
                if kind(sub / name):
                    return sub / name
    return None


def load_json(path: Path) -> Any:
    """Load a whole (small) JSON file; a parse error is a SourceError naming the file. NaN and
    Infinity literals read as None (as in :mod:`vlir.jsonstream`), so the box holding one
    is refused by the adapter like any missing number."""
    try:
        with open(path, "rb") as fh:
            return json.load(fh, parse_constant=lambda _: None)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(path, f"not valid JSON ({exc})") from None
    except OSError as exc:
        raise SourceError(path, f"cannot read ({exc})") from None


def relative_to_root(root: Path, path: Path) -> str:
    """POSIX path of ``path`` relative to ``root`` (what Sample.image holds)."""
    return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
