"""Shared helpers of the teacher tests: samples with images, a config pointed at a loopback
server (fast backoff so retry tests stay quick), and one annotation run."""

from __future__ import annotations

import hashlib
import io

from PIL import Image, ImageDraw

from vlir.annotate.base import AnnotateInput
from vlir.annotate.teacher import TeacherAnnotator
from vlir.annotate.teacher_config import TeacherConfig
from vlir.records import Box, Region, Sample


def make_item(idx: int = 0, width: int = 640, height: int = 480, question: str | None = None,
              evidence: tuple[Region, ...] | None = None, answers: tuple[str, ...] = ("stop",)) -> AnnotateInput:
    img = Image.new("RGB", (width, height), (230, 230, 230))
    draw = ImageDraw.Draw(img)
    draw.rectangle((100, 100, 200, 150), fill=(200, 30, 30))
    draw.text((110, 115), f"STOP {idx}", fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    if evidence is None:
        evidence = (Region(Box(100, 100, 200, 150), "stop", "ocr_word"),)
    sample = Sample(
        id=f"textvqa/val/{idx}", source="textvqa", split="val", image=f"images/{idx}.png",
        width=width, height=height,
        question=question or f"What does sign number {idx} say?",
        answers=answers, evidence=evidence,
    )
    return AnnotateInput(sample, img, sha)


def config(server, tmp_path, **kw) -> TeacherConfig:
    opts = dict(base_url=server.base_url, model="fake-teacher", cache_path=str(tmp_path / "cache.sqlite"),
                concurrency=4, timeout_s=5.0, max_retries=3, backoff_s=0.02, max_backoff_s=2.0)
    opts.update(kw)
    return TeacherConfig(**opts)


def annotate(cfg: TeacherConfig, items: list[AnnotateInput]) -> tuple[list, dict]:
    """Annotate ``items`` with a fresh annotator: (results, stats), the annotator closed after."""
    annotator = TeacherAnnotator(cfg)
    try:
        return annotator.annotate_many(items), annotator.stats()
    finally:
        annotator.close()
