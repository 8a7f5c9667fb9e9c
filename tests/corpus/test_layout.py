"""The output layout (vlir.corpus.layout): docs/corpus.md's loading snippet, run verbatim, yields exactly the
accepted records; paths read back from files are checked before use (issue 13, items 2 and 10)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO
from vlir.corpus import layout


def readme_loading_snippet() -> str:
    text = (REPO / "docs" / "corpus.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    snippet = [b for b in blocks if "load_dataset(\"parquet\", data_dir=" in b]
    assert len(snippet) == 1, "docs/corpus.md has one loading snippet"
    return snippet[0]


def test_readme_loading_snippet_runs_verbatim(tmp_path, monkeypatch):
    from vlir.corpus.build import BuildConfig, Job
    from vlir.corpus.executors.local import run_build
    from vlir.sources.registry import get_source

    get_source("gqa").write_sample_tree(tmp_path / "src" / "gqa", 6, 0)
    manifest = run_build(BuildConfig(tasks=2), [Job("gqa", "train", str(tmp_path / "src" / "gqa"))],
                         tmp_path / "out" / "vlir", show_progress=False)
    assert manifest["splits"]["gqa/train"]["accepted"] > 0
    from vlir.corpus.cards import write_card

    write_card(tmp_path / "out" / "vlir")  # the snippet loads by the card's configs too
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(readme_loading_snippet(), "docs/corpus.md", "exec"), scope)
    ds = scope["ds"]
    assert scope["by_config"]["train"]["id"] == ds["id"]
    assert len(ds) == manifest["splits"]["gqa/train"]["accepted"] and set(ds["status"]) == {"accepted"}
    assert ds[0]["crops"] and ds[0]["crops"][0].size[0] > 0
    assert scope["img"].size == (scope["rec"].sample.width, scope["rec"].sample.height)


@pytest.mark.parametrize("rel, ok", [
    ("gqa/val/part-00000.parquet", True),
    ("rejects/gqa/val/rejects-00003.parquet", True),
    ("vsr/random/test/part-00001.parquet", True),
    ("../victim/important.txt", False),
    ("/etc/passwd", False),
    ("gqa/../../x/part-00000.parquet", False),
    ("gqa/val/rejects-00000.parquet", False),   # rejects never sit in a split folder
    ("rejects/gqa/val/part-00000.parquet", False),
    ("gqa/val/extra.parquet", False),
    ("gqa/val/part-00000.PARQUET", False),
    ("gqa\\..\\x/val/part-00000.parquet", False),
    (".vlir/val/part-00000.parquet", False),
    (None, False),
])
def test_shard_path_problem(rel, ok):
    assert (layout.shard_path_problem(rel) is None) == ok


def test_bookkeeping_lives_outside_split_folders(tmp_path):
    out = tmp_path / "out"
    for p in (layout.stats_path(out, "gqa", "val", 3), layout.completion_marker(out, "gqa", "val", 3),
              layout.lock_path(out), layout.temp_dir(out)):
        assert layout.split_dir(out, "gqa", "val") not in [p, *p.parents]
        assert layout.split_dir(out, "gqa", "val", rejects=True) not in [p, *p.parents]
    assert layout.is_expected_extra(layout.stats_path(out, "gqa", "val", 3).relative_to(out).as_posix())
    assert not layout.is_expected_extra("gqa/val/stats/00003.json")
