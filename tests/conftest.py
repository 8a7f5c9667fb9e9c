"""Shared fixtures: small records and a hand-assembled vlir output (no sources or annotators
needed), so foundation tests stand alone."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "real"


def make_image(width: int = 320, height: int = 240, seed: int = 0) -> Image.Image:
    img = Image.new("RGB", (width, height), (200, 220, 240))
    draw = ImageDraw.Draw(img)
    draw.rectangle((40 + seed, 30, 140, 120), fill=(220, 40, 40))
    draw.ellipse((180, 100, 290, 210), fill=(40, 90, 200))
    return img


def make_record(idx: int = 0, looks: int = 1, split: str = "val", image: Image.Image | None = None,
                embed: bool = False):
    from vlir import images
    from vlir.crops import render_crop
    from vlir.records import Box, Chain, CheckResult, Look, Provenance, Record, Region, Sample, Think

    image = image or make_image(seed=idx % 5)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    sample = Sample(
        id=f"gqa/{split}/{idx}", source="gqa", split=split, image=f"images/{idx}.jpg",
        width=image.width, height=image.height, question="What color is the square?",
        answers=("red",), evidence=(Region(Box(40, 30, 140, 120), "square", "object"),),
        meta={"types": {"structural": "query"}},
    )
    boxes = [Box(40, 30, 140, 120), Box(180, 100, 290, 210), Box(10, 10, 100, 90), Box(150, 20, 300, 110)]
    steps = [Think("I should find the square.")]
    for b in boxes[:looks]:
        steps += [Look(b, "square"), Think("The region shows a red square.")]
    chain = Chain(steps, "red")
    crops = [render_crop(image, b) for b in boxes[:looks]]
    return Record(sample=sample, chain=chain, provenance=Provenance("grounded", "0.1.0"), crops=crops,
                  checks=(CheckResult("schema", True),), image_sha256=images.sha256_hex(data),
                  image_bytes=data if embed else None)


def make_output(out: Path, n: int = 6, embed: bool = False, n_rejects: int = 2) -> Path:
    """A small valid vlir output: gqa/val with ``n`` accepted and ``n_rejects`` rejected records,
    assembled with the real writer, stats, markers and manifest code (paths from vlir.corpus.layout); the
    referenced originals live beside it in ``<out>-src``."""
    import dataclasses

    from vlir.corpus import layout
    from vlir.corpus.manifest import completion_marker, stats_path, write_build_info, write_manifest
    from vlir.corpus.shards import atomic_write_json, write_records

    src_root = out.parent / f"{out.name}-src"
    write_build_info(out, {"annotator": "grounded"}, {"gqa": str(src_root)})
    records = [make_record(i, looks=1 + i % 3, embed=embed) for i in range(n)]
    rejects = [dataclasses.replace(make_record(100 + i), reasons=("answer_correct",), crops=())
               for i in range(n_rejects)]
    shards = []
    for rel, kind, recs in ((layout.shard_rel("gqa", "val", 0), "accepted", records),
                            (layout.shard_rel("gqa", "val", 0, rejects=True), "rejected", rejects)):
        info = write_records(out / rel, recs)
        if not info["rows"]:  # as finish_task: no rows, no file, no entry
            continue
        shards.append({"path": rel, "kind": kind, **info})
    atomic_write_json(stats_path(out, "gqa", "val", 0), {
        "source": "gqa", "split": "val", "task": 0, "tasks": 1, "accepted": n, "rejected": n_rejects,
        "rejected_by_reason": {"answer_correct": n_rejects} if n_rejects else {}, "stats": {},
        "annotator_stats": {}, "shards": shards})
    marker = completion_marker(out, "gqa", "val", 0)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    # the referenced originals, so Corpus.image can resolve them
    for r in records:
        path = src_root / r.sample.image
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        make_image(seed=int(r.sample.id.rsplit("/", 1)[1]) % 5).save(buf, format="JPEG", quality=90)
        path.write_bytes(buf.getvalue())
    write_manifest(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The one tiny Qwen2.5-VL of the test session (the packaged YAML, seed 0), built once per
    process by :func:`tests.rollout_helpers.tiny_dir` (which non-fixture helpers call too)."""
    pytest.importorskip("transformers")
    from tests.rollout_helpers import tiny_dir

    return tiny_dir()


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    """``(model, processor)`` loaded from :func:`tiny_model_dir` (fp32, CPU, eval mode). Shared: do
    not train it in place; load your own copy with ``load_model(tiny_model_dir)``."""
    from tests.rollout_helpers import tiny as load

    return load()


@pytest.fixture
def vlir_output(tmp_path: Path) -> Path:
    return make_output(tmp_path / "out")
