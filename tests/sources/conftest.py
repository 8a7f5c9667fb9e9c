"""Fixtures every adapter test shares. Each test module names its adapter as ``SRC``; ``pristine``
is that adapter's sample tree (written once per module) and ``tree`` a private copy a test may
break."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def pristine(request, tmp_path_factory) -> Path:
    src = request.module.SRC
    root = tmp_path_factory.mktemp(src.name) / src.name
    src.write_sample_tree(root, 8, seed=0)
    return root


@pytest.fixture
def tree(pristine, tmp_path) -> Path:
    """A private copy each test may break."""
    return Path(shutil.copytree(pristine, tmp_path / pristine.name))


def read_all(src, root, split="train", **options):
    """All of a split's items and the adapter's counters."""
    stats: Counter = Counter()
    return list(src.iter_samples(root, split, stats, **options)), stats
