"""The source interface: one adapter per official dataset layout, one registry.

An adapter reads the files a user downloaded from the official site, wherever under ``root`` they
sit (its official file names, looked for in ``root`` and one level of subfolders), and streams
:class:`~vlir.records.Sample` objects. A record it cannot read becomes an
:class:`~vlir.records.Invalid` (kept as a reject by the build, never dropped); a top-level file that
does not parse raises :class:`SourceError`, which the CLI turns into exit code 2 naming the file.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator

from vlir.records import Invalid, Sample


class SourceError(Exception):
    """A whole input is unusable (missing or unparsable top-level file, unknown split)."""

    def __init__(self, path: Path | str | None, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = str(path) if path else None
        self.message = message

    def __reduce__(self):  # picklable, so a worker process can hand it to the CLI
        return (type(self), (self.path, self.message))


class Source(ABC):
    """Base class of a source adapter. Subclasses set the class attributes and implement
    :meth:`iter_samples` and :meth:`write_sample_tree`."""

    name: ClassVar[str]
    title: ClassVar[str]
    splits: ClassVar[tuple[str, ...]]
    #: the official files, as `vlir sources` lists them (patterns with {split})
    expected_files: ClassVar[tuple[str, ...]]
    homepage: ClassVar[str] = ""
    license: ClassVar[str] = ""

    @abstractmethod
    def iter_samples(self, root: Path, split: str, stats: Counter | None = None,
                     **options: Any) -> Iterator[Sample | Invalid]:
        """Stream the split's samples. ``stats`` (if given) receives counters such as
        ``samples``, ``invalid``, ``missing_ocr``, ``missing_scene_graph``. ``options`` may name
        explicit file paths (each adapter documents its keys)."""

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


_REGISTRY: dict[str, type[Source]] = {}


def register(cls: type[Source]) -> type[Source]:
    """Class decorator: make an adapter available by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def source_names() -> list[str]:
    _import_all()
    return sorted(_REGISTRY)


def get_source(name: str) -> Source:
    _import_all()
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise SourceError(None, f"unknown source {name!r}; choose from {', '.join(sorted(_REGISTRY))}") from None


def _import_all() -> None:
    # Importing the modules registers them; kept lazy so `import vlir.sources.base` stays cheap.
    from vlir.sources import docvqa, gqa, infographicsvqa, m3cot, textvqa, vsr  # noqa: F401


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
    for name in names:
        if (root / name).is_file():
            return root / name
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for name in names:
            if (sub / name).is_file():
                return sub / name
    if required:
        raise SourceError(root, f"none of {', '.join(names)} found here or one folder below")
    return None


def find_dir(root: Path, names: Iterable[str], required: bool = True) -> Path | None:
    """Like :func:`find_file` for folders (``train_images``, ``ocr_results``...)."""
    root = Path(root)
    names = list(names)
    for name in names:
        if (root / name).is_dir():
            return root / name
    if root.is_dir():
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            for name in names:
                if (sub / name).is_dir():
                    return sub / name
    if required:
        raise SourceError(root, f"no folder named {' or '.join(names)} here or one folder below")
    return None


def load_json(path: Path) -> Any:
    """Load a whole (small) JSON file; a parse error is a SourceError naming the file. NaN and
    Infinity literals read as None (as in :mod:`vlir.sources.jsonstream`), so the box holding one
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
