"""Fixtures every adapter test shares. Each test module names its adapter as ``SRC``; ``pristine``
is that adapter's sample tree (written once per module) and ``tree`` a private copy a test may
break."""

from __future__ import annotations

import hashlib
import json
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


def refuses(src, root, split, match: str, **options) -> None:
    """Reading the split raises a SourceError whose message matches ``match`` (a regex)."""
    from vlir.sources.base import SourceError

    with pytest.raises(SourceError, match=match):
        read_all(src, root, split, **options)


def edit(path: Path, change) -> None:
    """Load a JSON file, let ``change`` modify it in place, write it back."""
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` -> its SHA-256 (two trees are equal when their digests are)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
