"""The contract every benchmark module implements, and the registry ``vlir eval --benchmark`` reads.

A benchmark is three things kept apart so each can be tested alone:

* a **reader** over the official download (``Benchmark.items(root)``), streaming, yielding
  :class:`BenchItem` (clear ``BenchmarkLayoutError`` naming the file when ``root`` is not the
  expected layout);
* a **sample writer** (``Benchmark.write_sample(root, n)``) that writes a small tree in the official
  layout, so tests and users can run the reader without the real download;
* **scoring** as the official script does it: ``extract(item, response, answer)`` turns the model's
  full response (and the protocol's parsed answer) into the string the official script compares;
  ``judge(item, extracted)`` gives the per-item score in [0, 1]; ``aggregate(items, scores)``
  computes the official overall figure and its breakdown (pair accuracy, cycle grouping, weighted
  means...). Each module's docstring names the official file it follows.

Options are one contract for every benchmark: :meth:`Benchmark.configure` returns a copy with a
``variant`` (a peer's item rule), an LLM ``judge`` and what the judge is shown (``judge_input``:
the whole ``response``, as the official scripts, or only the ``answer`` tag's content). A judge
given to a benchmark (or variant) whose official rule asks no LLM is refused with a one-line
:class:`BenchmarkOptionError` (exit 2 on the command line), never ignored and never a crash.

Modules register themselves with :func:`register`; :func:`get` and :func:`names` are the lookup.
Pure Python: no torch here (the engine is passed in by the caller).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from vlir.records import Box

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image


class BenchmarkLayoutError(ValueError):
    """The folder given is not the benchmark's official layout (the message names the file)."""


class BenchmarkOptionError(ValueError):
    """An option this benchmark cannot honour (an unknown variant, a judge where the official
    scorer asks no LLM); the message is one line naming the benchmark."""


#: What an LLM judge is shown: the whole response (what the official scripts send), or the
#: content of the response's ``<answer>`` tag (the whole response when it has none).
JUDGE_INPUTS = ("response", "answer")


def data_path(root: Path, rel: str, where: str) -> Path:
    """A path a benchmark file names (an image column), confined to the benchmark folder by
    :func:`vlir.paths.confine`; a path leaving it is a layout error naming ``where``."""
    from vlir.paths import ConfinementError, confine

    try:
        return confine(root, str(rel), "image path", "the benchmark folder")
    except ConfinementError as exc:
        raise BenchmarkLayoutError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class ImageRef:
    """Where an item's image is: a file path, or bytes (base64 TSV / parquet forms), never both."""

    path: Path | None = None
    data: bytes | None = None

    def open(self) -> "Image.Image":
        from vlir import images  # the one decode (EXIF orientation, bit depth)

        if self.data is not None:
            return images.decode_image(self.data, "embedded image")
        if self.path is None:
            raise ValueError("ImageRef holds neither a path nor bytes")
        return images.decode_image(images.read_image_bytes(self.path, self.path.name), self.path.name)


@dataclass(frozen=True)
class BenchItem:
    """One benchmark question.

    id: ``"<benchmark>/<native id>"``, unique within the benchmark.
    question: the text given to the model, built as the official protocol builds it (question,
        options, the official answer-format instruction).
    answer: the ground truth as the official script compares it (an option letter or a string).
    category: the official breakdown key (V* category, HR-Bench FSP/FCP, MME-RW subtask, ...).
    options: the option texts in order (empty for open questions).
    target_boxes: annotated target regions in original-image pixels (V*, TreeBench), else empty.
    meta: native fields the scorer needs (cycle index, pair index, question/answer type, ...).
    """

    id: str
    question: str
    image: ImageRef
    answer: str
    category: str = ""
    options: tuple[str, ...] = ()
    target_boxes: tuple[Box, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


class Benchmark:
    """Base class: subclasses set ``name`` (the command-line name), ``official`` (the official
    scorer's file it follows) and implement the methods below. ``variants`` lists the item rules
    :meth:`configure` accepts, ``judged_variants`` those whose rule asks an LLM (a judge is
    refused for the others, with ``no_judge_reason``)."""

    name: str = ""
    official: str = ""
    download: str = ""  # where the official files come from (README, --help); optional
    variants: tuple[str, ...] = ("official",)
    judged_variants: frozenset[str] = frozenset()
    no_judge_reason: str = "its official scorer asks no LLM"
    # set by configure(); the registered instance keeps the defaults
    variant: str = "official"
    llm: Any = None  # a vlir.eval.benchmarks.judge.Judge (anything with .model and .ask(JudgeRequest))
    judge_input: str = "response"

    def configure(self, *, judge: Any = None, variant: str = "official",
                  judge_input: str = "response") -> "Benchmark":
        """A copy scoring with ``variant``, the LLM ``judge`` (None: rule-based) shown
        ``judge_input``; :class:`BenchmarkOptionError` for what this benchmark cannot do."""
        if variant not in self.variants:
            raise BenchmarkOptionError(f"{self.name}: unknown variant {variant!r}; choose from "
                                       f"{', '.join(self.variants)}")
        if judge_input not in JUDGE_INPUTS:
            raise BenchmarkOptionError(f"{self.name}: --judge-input must be one of {', '.join(JUDGE_INPUTS)}, "
                                       f"got {judge_input!r}")
        if judge is not None and variant not in self.judged_variants:
            what = self.name if variant == "official" else f"{self.name} (variant {variant})"
            raise BenchmarkOptionError(f"{what}: {self.no_judge_reason}, so there is nothing to judge; "
                                       "drop --judge-model/--judge-base-url")
        other = copy.copy(self)
        other.variant, other.llm, other.judge_input = variant, judge, judge_input
        return other

    def judge_text(self, response: str, answer: str | None) -> str:
        """What the LLM judge is shown of a response (see :data:`JUDGE_INPUTS`)."""
        if self.judge_input == "answer" and answer is not None:
            return answer.strip()
        return response

    def items(self, root: Path) -> Iterator[BenchItem]:  # pragma: no cover - abstract
        raise NotImplementedError

    def write_sample(self, root: Path, n: int = 8, seed: int = 0) -> None:  # pragma: no cover
        raise NotImplementedError

    def extract(self, item: BenchItem, response: str, answer: str | None) -> str:
        """The answer string the official script would compare, from the full ``response`` and the
        protocol's parsed ``answer`` (None when the response has no answer tag)."""
        return (answer if answer is not None else response).strip()

    def judge(self, item: BenchItem, extracted: str) -> float:
        """Per-item score in [0, 1] as the official script gives it."""
        return float(extracted.strip().lower() == item.answer.strip().lower())

    # ---- optional hooks (defaults do nothing); the runner calls them when a benchmark has them ----
    def alternatives(self, item: BenchItem, response: str, answer: str | None) -> dict[str, float]:
        """Per-item scores under *other* published rules, each labelled by name (e.g. a peer
        repository's verifier); aggregated like the official score and reported beside it."""
        return {}

    def item_metrics(self, item: BenchItem, response: str, boxes: Sequence[Box]) -> dict[str, float]:
        """Extra per-item figures the official script reports (e.g. TreeBench's box IoU), from the
        full response and the crop boxes (original pixels); averaged overall and per category."""
        return {}

    def llm_judge(self, item: BenchItem, response: str, answer: str | None) -> float | None:
        """Where the official script's per-item verdict is an LLM's (called only when
        :meth:`configure` set ``llm``): the score from ``self.llm``, or None where the LLM step
        is elsewhere (an extraction inside :meth:`extract`) or absent."""
        return None

    def table(self, result: dict[str, Any]) -> tuple[list[str], list[str]]:
        """One header row and one value row, as the papers print this benchmark (``report.md``);
        values are percentages of ``aggregate``'s result."""
        cats = result.get("categories", {})
        heads = list(cats) + ["Overall"]
        vals = [f"{100 * cats[c]['score']:.2f}" for c in cats] + [f"{100 * result.get('overall', 0.0):.2f}"]
        return heads, vals

    def aggregate(self, items: Sequence[BenchItem], scores: Sequence[float]) -> dict[str, Any]:
        """Official overall figure and breakdown: ``{"overall": float, "categories": {name:
        {"score": float, "n": int}}, "n": int, ...}`` (extra keys for e.g. per-question vs pair)."""
        cats: dict[str, list[float]] = {}
        for it, s in zip(items, scores):
            cats.setdefault(it.category, []).append(s)
        n = len(scores)
        return {"overall": (sum(scores) / n) if n else 0.0, "n": n,
                "categories": {c: {"score": sum(v) / len(v), "n": len(v)} for c, v in sorted(cats.items())}}


_REGISTRY: dict[str, Benchmark] = {}


def register(cls: type[Benchmark]) -> type[Benchmark]:
    """Class decorator: register one instance under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY:
        raise ValueError(f"benchmark {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> Benchmark:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(sorted(_REGISTRY))}") from None


def _load_all() -> None:
    """Import every benchmark module of this package once (each registers itself)."""
    import importlib
    import pkgutil

    import vlir.eval.benchmarks as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name not in ("base",) and not info.name.startswith("_"):
            importlib.import_module(f"vlir.eval.benchmarks.{info.name}")
