"""``crop_format: webp`` (issue 24): lossless WebP crops hold exactly the pixels of the default PNG
crops, pass validation, and leave the VLM-R3 export in PNG; PNG stays the default."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from vlir.corpus.build import BuildConfig, Job
from vlir.corpus.executors.local import run_build
from vlir.corpus.shards import iter_rows, shard_files
from vlir.corpus.validate import validate_output
from vlir.sources.registry import get_source


def crops_by_id(out: Path) -> dict[str, list[bytes]]:
    rows = [row for path in shard_files(out / "vsr" / "train")
            for row in iter_rows(path, columns=["id", "crops"])]
    return {row["id"]: [c["bytes"] for c in row["crops"]] for row in rows}


def pixels(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).convert("RGB").tobytes()


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("crop_format")
    get_source("vsr").write_sample_tree(tmp / "vsr", 6, 0)
    jobs = [Job("vsr", "train", str(tmp / "vsr"))]
    for fmt in ("png", "webp"):
        run_build(BuildConfig(crop_format=fmt, tasks=1), jobs, tmp / fmt, show_progress=False)
    return tmp / "png", tmp / "webp"


def test_webp_crops_are_the_png_crops_pixels(builds):
    png, webp = (crops_by_id(out) for out in builds)
    assert png.keys() == webp.keys() and sum(map(len, png.values())) > 0
    for rid, crops in png.items():
        assert all(c.startswith(b"\x89PNG") for c in crops)
        assert all(w[:4] == b"RIFF" and w[8:12] == b"WEBP" for w in webp[rid])
        assert [pixels(c) for c in crops] == [pixels(w) for w in webp[rid]]
    assert validate_output(builds[1]).ok


def test_png_is_the_default_and_an_unknown_format_is_refused():
    assert BuildConfig().crop_format == "png"
    with pytest.raises(ValueError, match="crop_format"):
        BuildConfig.from_dict({"crop_format": "jpeg"})


def test_the_vlmr3_export_writes_png_crops_from_a_webp_build(builds, tmp_path):
    from vlir.formats.vlmr3 import export_corpus

    export_corpus(builds[1], tmp_path / "export")
    written = sorted((tmp_path / "export").rglob("*_0.png"))
    assert written and all(p.read_bytes().startswith(b"\x89PNG") for p in written)
