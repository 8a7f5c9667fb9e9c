"""The record model: the one place vlir's data types live.

Every stage speaks these types: sources yield :class:`Sample` (or :class:`Invalid` for a record that
could not be read), annotators turn a sample into a :class:`Chain`, the build wraps both into a
:class:`Record`, and shards store ``Record.to_row()``. Boxes are always in **original-image pixels**
(x right, y down), so a stored record stays valid for any model resolution; model-space conversion
lives in :mod:`vlir.geometry` and happens only when a chat is rendered.
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterable, Union

SCHEMA_VERSION = 1

ACCEPTED = "accepted"
REJECTED = "rejected"
BAD_ID = "bad_id"  # the reject reason of a record whose native id breaks :func:`id_problem`


def id_problem(rid: object, source: str | None = None, split: str | None = None,
               native_slash: bool = True) -> str | None:
    """Why ``rid`` cannot be a record id, or None. The one rule of ids, applied by the build (a
    reject, :func:`safe_reject_id`) and by ``vlir validate`` (on every row): ``<source>/<split>/<native>``
    with that source and split when given, no empty, ``.`` or ``..`` part, no control or
    format character (NUL, CR/LF, ANSI escapes, bidi overrides). ``native_slash=False``: the native
    part must be one name (a source's own id; an import's ids name a file and a line)."""
    if not isinstance(rid, str) or not rid:
        return f"id {rid!r} is not a non-empty string"
    if bad := sorted({f"U+{ord(c):04X}" for c in rid if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")}):
        return f"id {rid!r} holds control or format characters ({', '.join(bad)})"
    prefix = f"{source}/{split}/" if source is not None and split is not None else ""
    if prefix and not rid.startswith(prefix):
        return f"id {rid!r} does not start with {prefix!r}"
    native = rid[len(prefix):]
    parts = native.split("/") if prefix else rid.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return f"id {rid!r} has an empty, '.' or '..' part"
    if prefix and not native_slash and len(parts) > 1:
        return f"id {rid!r}: the native id {native!r} holds a '/'"
    return None


def safe_reject_id(source: str, split: str, rid: str) -> str:
    """The id a :data:`BAD_ID` reject is stored under (the original goes into its detail): stable,
    and valid by :func:`id_problem`."""
    return f"{source}/{split}/bad-id-{hashlib.sha256(rid.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


@dataclass(frozen=True)
class Box:
    """Axis-aligned box ``(x1, y1, x2, y2)`` in original-image pixels, with x1 < x2 and y1 < y2."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        values = (self.x1, self.y1, self.x2, self.y2)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise ValueError(f"box coordinates must be finite numbers, got {list(values)}")
        if not (self.x1 < self.x2 and self.y1 < self.y2):
            raise ValueError(f"box must have x1 < x2 and y1 < y2, got {list(values)}")

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    def as_list(self) -> list[float]:
        return [float(self.x1), float(self.y1), float(self.x2), float(self.y2)]

    @classmethod
    def from_list(cls, values: Iterable[float]) -> "Box":
        vals = [float(v) for v in values]
        if len(vals) != 4:
            raise ValueError(f"a box needs 4 numbers, got {len(vals)}")
        return cls(*vals)


@dataclass(frozen=True)
class Region:
    """An evidence region from a source's annotations.

    ``kind`` is one of ``ocr_word``, ``ocr_line``, ``object`` (scene-graph / COCO objects).
    """

    box: Box
    label: str
    kind: str

    def to_dict(self) -> dict[str, Any]:
        return {"box": self.box.as_list(), "label": self.label, "kind": self.kind}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Region":
        return cls(Box.from_list(d["box"]), str(d.get("label") or ""), str(d.get("kind") or ""))


@dataclass(frozen=True)
class Sample:
    """One question about one image, as a source adapter reads it.

    ``image`` is a path relative to the source root (never absolute, never escaping the root).
    ``meta`` keeps native fields worth keeping (GQA ``semantic``/``types``, DocVQA
    ``question_types``, VSR ``relation``...); it must be JSON-serialisable.
    """

    id: str
    source: str
    split: str
    image: str
    width: int
    height: int
    question: str
    answers: tuple[str, ...]
    evidence: tuple[Region, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "answers", tuple(self.answers))
        object.__setattr__(self, "evidence", tuple(self.evidence))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (what ``vlir read`` prints)."""
        return {
            "id": self.id,
            "source": self.source,
            "split": self.split,
            "image": self.image,
            "width": self.width,
            "height": self.height,
            "question": self.question,
            "answers": list(self.answers),
            "evidence": [r.to_dict() for r in self.evidence],
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Sample":
        return cls(
            id=d["id"],
            source=d["source"],
            split=d["split"],
            image=d["image"],
            width=int(d["width"]),
            height=int(d["height"]),
            question=d["question"],
            answers=tuple(d.get("answers") or ()),
            evidence=tuple(Region.from_dict(r) for r in d.get("evidence") or ()),
            meta=dict(d.get("meta") or {}),
        )


@dataclass(frozen=True)
class Invalid:
    """A source record that could not be read. It is never dropped: the build stores it as a reject.

    ``reason`` is a short machine-readable tag (``malformed``, ``unsafe_path``...); ``detail`` names
    the file and the record and says what is wrong.
    """

    id: str
    source: str
    split: str
    reason: str
    detail: str
    image: str = ""


@dataclass(frozen=True)
class Think:
    text: str


@dataclass(frozen=True)
class Look:
    box: Box
    label: str = ""


Step = Union[Think, Look]


@dataclass(frozen=True)
class Chain:
    """An interleaved reasoning chain: think / look(box) / think ... then the answer."""

    steps: tuple[Step, ...]
    answer: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))

    @property
    def looks(self) -> list[Look]:
        return [s for s in self.steps if isinstance(s, Look)]

    def steps_to_rows(self) -> list[dict[str, Any]]:
        rows = []
        for s in self.steps:
            if isinstance(s, Think):
                rows.append({"type": "think", "text": s.text, "box": None, "label": None})
            else:
                rows.append({"type": "look", "text": None, "box": s.box.as_list(), "label": s.label})
        return rows

    @staticmethod
    def steps_from_rows(rows: Iterable[dict[str, Any]]) -> tuple[Step, ...]:
        steps: list[Step] = []
        for r in rows:
            if r["type"] == "think":
                steps.append(Think(r["text"] or ""))
            elif r["type"] == "look":
                steps.append(Look(Box.from_list(r["box"]), r.get("label") or ""))
            else:
                raise ValueError(f"unknown step type {r['type']!r}")
        return tuple(steps)


@dataclass(frozen=True)
class Crop:
    """The rendered crop of one look step (see :mod:`vlir.crops`): PNG bytes plus how it was made."""

    png: bytes
    box: Box  # the clipped box that was cut, original pixels
    scale: float  # the real zoom after grid snapping (vlir.crops.real_zoom), not the rule's target
    width: int
    height: int

    def __repr__(self) -> str:  # never the PNG bytes: a printed record stays readable
        return (f"Crop(box={self.box.as_list()}, scale={self.scale:.3f}, size={self.width}x{self.height}, "
                f"png=<{len(self.png):,} bytes>)")


@dataclass(frozen=True)
class Provenance:
    annotator: str
    vlir_version: str
    teacher_model: str | None = None
    prompt_hash: str | None = None


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    value: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class Record:
    """A VLIR record: the sample, its chain, the crops, where it came from and how it was checked.

    A record with any ``reasons`` is a reject; rejects keep whatever was known about the sample.
    """

    sample: Sample
    chain: Chain | None
    provenance: Provenance
    crops: tuple[Crop, ...] = ()
    checks: tuple[CheckResult, ...] = ()
    reasons: tuple[str, ...] = ()
    image_sha256: str | None = None
    image_bytes: bytes | None = None  # only with --embed-images
    reject_detail: str = ""  # a reject's one-line why (file, record, what is wrong); "" when accepted

    def __post_init__(self) -> None:
        object.__setattr__(self, "crops", tuple(self.crops))
        # every reason of a reject is a failed check, so `checks` says why whatever the reason was
        # (an annotator's `no_evidence`, an unreadable image...), not only for the check functions
        named = {c.name for c in self.checks if not c.passed}
        missing = tuple(CheckResult(r, False, None, self.reject_detail) for r in self.reasons if r not in named)
        object.__setattr__(self, "checks", tuple(self.checks) + missing)
        object.__setattr__(self, "reasons", tuple(self.reasons))

    def __repr__(self) -> str:  # the id and verdict, never image or crop bytes
        looks = len(self.chain.looks) if self.chain is not None else 0
        answer = self.chain.answer if self.chain is not None else None
        why = f", reasons={list(self.reasons)}, detail={self.reject_detail!r}" if self.reasons else ""
        image = f"<{len(self.image_bytes):,} bytes>" if self.image_bytes is not None else self.sample.image
        return (f"Record(id={self.sample.id!r}, status={self.status!r}{why}, question={self.sample.question!r}, "
                f"answer={answer!r}, looks={looks}, crops={list(self.crops)!r}, image={image!r})")

    @property
    def reject_reason(self) -> str | None:
        """The first (main) reason of a reject, as its own column; ``reasons`` lists them all."""
        return self.reasons[0] if self.reasons else None

    @property
    def accepted(self) -> bool:
        return not self.reasons

    @property
    def status(self) -> str:
        return ACCEPTED if self.accepted else REJECTED

    @classmethod
    def from_invalid(cls, inv: Invalid, provenance: Provenance) -> "Record":
        sample = Sample(
            id=inv.id, source=inv.source, split=inv.split, image=inv.image, width=0, height=0,
            question="", answers=(), evidence=(), meta={},
        )
        return cls(sample=sample, chain=None, provenance=provenance, reasons=(inv.reason,),
                   reject_detail=inv.detail)

    def to_row(self) -> dict[str, Any]:
        """Flat row for Parquet/JSON; column types are declared in :mod:`vlir.corpus.shards`."""
        s = self.sample
        return {
            "schema_version": SCHEMA_VERSION,
            "id": s.id,
            "source": s.source,
            "split": s.split,
            "image_path": s.image,
            "image_sha256": self.image_sha256,
            "image": None if self.image_bytes is None else {"bytes": self.image_bytes, "path": s.image},
            "width": int(s.width),
            "height": int(s.height),
            "question": s.question,
            "answers": list(s.answers),
            "evidence": [r.to_dict() for r in s.evidence],
            "meta": json.dumps(s.meta, sort_keys=True, ensure_ascii=False),
            "steps": [] if self.chain is None else self.chain.steps_to_rows(),
            "answer": None if self.chain is None else self.chain.answer,
            "crops": [{"bytes": c.png, "path": None} for c in self.crops],
            "crop_info": [
                {"box": c.box.as_list(), "scale": float(c.scale), "width": c.width, "height": c.height}
                for c in self.crops
            ],
            "annotator": self.provenance.annotator,
            "teacher_model": self.provenance.teacher_model,
            "prompt_hash": self.provenance.prompt_hash,
            "vlir_version": self.provenance.vlir_version,
            "checks": [
                {"name": c.name, "passed": bool(c.passed), "value": c.value, "detail": c.detail}
                for c in self.checks
            ],
            "status": self.status,
            "reasons": list(self.reasons),
            "reject_reason": self.reject_reason,
            "reject_detail": self.reject_detail if self.reasons else None,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Record":
        """Inverse of :meth:`to_row`. Image columns may hold ``{bytes, path}`` dicts or raw bytes."""
        evidence = tuple(Region.from_dict(r) for r in row.get("evidence") or ())
        sample = Sample(
            id=row["id"], source=row["source"], split=row["split"], image=row.get("image_path") or "",
            width=int(row.get("width") or 0), height=int(row.get("height") or 0),
            question=row.get("question") or "", answers=tuple(row.get("answers") or ()),
            evidence=evidence, meta=json.loads(row.get("meta") or "{}"),
        )
        chain = None
        if row.get("answer") is not None:
            chain = Chain(Chain.steps_from_rows(row.get("steps") or ()), row["answer"])
        crops = []
        for blob, info in zip(row.get("crops") or (), row.get("crop_info") or ()):
            data = blob["bytes"] if isinstance(blob, dict) else blob
            crops.append(Crop(png=data, box=Box.from_list(info["box"]), scale=float(info["scale"]),
                              width=int(info["width"]), height=int(info["height"])))
        image = row.get("image")
        image_bytes = image.get("bytes") if isinstance(image, dict) else image
        return cls(
            sample=sample,
            chain=chain,
            provenance=Provenance(
                annotator=row.get("annotator") or "", vlir_version=row.get("vlir_version") or "",
                teacher_model=row.get("teacher_model"), prompt_hash=row.get("prompt_hash"),
            ),
            crops=tuple(crops),
            checks=tuple(
                CheckResult(c["name"], bool(c["passed"]), c.get("value"), c.get("detail") or "")
                for c in row.get("checks") or ()
            ),
            reasons=tuple(row.get("reasons") or ()),
            image_sha256=row.get("image_sha256"),
            image_bytes=image_bytes,
            reject_detail=row.get("reject_detail") or "",
        )
