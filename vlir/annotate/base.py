"""The annotator interface: a sample (and its image) in, a :class:`~vlir.records.Chain` out.

Two annotators implement it: ``grounded`` (offline, deterministic, from the sample's evidence) and
``teacher`` (any OpenAI-compatible chat endpoint). The build calls :meth:`Annotator.annotate_many`
on small batches so a network annotator can keep many requests in flight; a per-item failure is an
:class:`AnnotationError` in the returned list, never an exception that stops the build.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Iterator

from PIL import Image

from vlir.records import Chain, Provenance, Sample


class AnnotationError(Exception):
    """The annotator could not produce a chain. ``reason`` is a short tag stored in the rejects
    shard (``no_evidence``, ``teacher_invalid_json``, ``teacher_http_error``...)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class AnnotatorUnavailable(AnnotationError):
    """The annotator could not be asked (teacher refused the connection, timed out, answered 5xx
    or 429 past every retry, or sent something that is no answer at all). Nothing is known about
    the sample: the build must not store it as a reject, and its task stays unfinished so the next
    run asks again."""


@dataclass(frozen=True)
class AnnotateInput:
    """What an annotator sees: the sample, its decoded original image (RGB) and the sha256 of the
    image file's bytes (a stable cache key)."""

    sample: Sample
    image: Image.Image
    image_sha256: str


class Annotator(ABC):
    name: ClassVar[str]

    @abstractmethod
    def provenance(self) -> Provenance:
        """Who wrote the chains (annotator, teacher model, prompt hash, vlir version)."""

    @abstractmethod
    def annotate(self, item: AnnotateInput) -> Chain:
        """One chain, or raise :class:`AnnotationError`."""

    def annotate_many(self, items: list[AnnotateInput]) -> list[Chain | AnnotationError]:
        """A batch, in order. Network annotators override this to run requests concurrently."""
        out: list[Chain | AnnotationError] = []
        for item in items:
            try:
                out.append(self.annotate(item))
            except AnnotationError as exc:
                out.append(exc)
            except Exception as exc:  # noqa: BLE001 - a bug on one sample is its reject, not the task's end
                out.append(AnnotationError("annotator_failed", f"{item.sample.id}: {type(exc).__name__}: {exc}"))
        return out

    #: items per annotate_many call in the default :meth:`annotate_stream`
    batch_size: int = 16

    def annotate_stream(self, items: Iterable[AnnotateInput], window: int | None = None,
                        ) -> Iterator[tuple[AnnotateInput, Chain | AnnotationError]]:
        """``(item, result)`` pairs in input order, consuming ``items`` lazily. The default runs
        :meth:`annotate_many` on windows of ``window`` items; network annotators override it to
        keep requests in flight continuously."""
        window = window or self.batch_size
        batch: list[AnnotateInput] = []
        for item in items:
            batch.append(item)
            if len(batch) >= window:
                yield from zip(batch, self.annotate_many(batch))
                batch = []
        if batch:
            yield from zip(batch, self.annotate_many(batch))

    def stats(self) -> dict[str, Any]:
        """Counters for the manifest (requests, retries, tokens, failures by reason...)."""
        return {}

    def close(self) -> None:
        """Release clients, caches and event loops."""
