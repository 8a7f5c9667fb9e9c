"""Corpora for the format tests: the hand-assembled output of ``tests/conftest.py`` (boxes not on the
model grid, 1-3 looks) and a small ``make vlir``-style build of the sample trees (built once per
module that asks for it), and a destination that is already taken."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_output

BUILT_SOURCES = ("gqa", "textvqa", "vsr")


@pytest.fixture
def taken_dest(tmp_path) -> Path:
    """A folder holding one file: export and import must refuse to write into it."""
    dest = tmp_path / "full"
    dest.mkdir()
    (dest / "x").write_text("x")
    return dest


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    return make_output(tmp_path_factory.mktemp("small") / "out")


@pytest.fixture(scope="module")
def built_corpus(tmp_path_factory) -> Path:
    """``vlir sample`` + ``vlir build`` (grounded annotator) over three sources, train and val."""
    from vlir.corpus.build import BuildConfig, Job
    from vlir.corpus.executors.local import run_build
    from vlir.sources.registry import get_source

    root = tmp_path_factory.mktemp("built")
    jobs = []
    for name in BUILT_SOURCES:
        get_source(name).write_sample_tree(root / "sample" / name, 4, 0)
        jobs += [Job(name, split, str(root / "sample" / name)) for split in ("train", "val")]
    run_build(BuildConfig(tasks=1), jobs, root / "out", workers=1, show_progress=False)
    return root / "out"
