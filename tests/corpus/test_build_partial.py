"""``vlir build --source all`` over a partial download: it builds what is present, says what is
missing (one line each, and in the manifest), and ``--strict`` refuses instead (issue 26 item 2)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REAL
from vlir.corpus.validate import validate_output
from vlir.sources.registry import get_source


def test_source_all_builds_what_is_present_and_lists_what_is_missing(tmp_path, capsys):
    """A partial download (sources absent, a split's file absent) builds what is there, one line
    per gap, recorded in the manifest; --strict fails before writing anything; nothing present is
    an error."""
    from vlir.cli import main

    root = tmp_path / "tree"
    for name in ("textvqa", "vsr", "zoom"):
        get_source(name).write_sample_tree(root / name, 3, 0)
    (root / "textvqa" / "TextVQA_0.5.1_train.json").unlink()  # a split removed
    args = ["build", "--source", "all", "--root", str(root), "--split", "train,val", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "strict"), "--strict"]) == 2
    assert "--strict: 4 source/split(s) missing" in capsys.readouterr().err
    assert not (tmp_path / "strict").exists()
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    gaps = [line for line in captured.err.splitlines() if line.startswith("vlir: skipped: ")]
    assert [line.split(": ")[2] for line in gaps] == ["textvqa/train", "docvqa", "gqa", "infographicsvqa"]
    assert "TextVQA_0.5.1_train.json found" in gaps[0] and f"no folder {root / 'gqa'}" in gaps[2]
    assert "not built (missing under" in captured.out
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert sorted(manifest["splits"]) == ["textvqa/val", "vsr/train", "vsr/val", "zoom/train", "zoom/val"]
    assert [(g["source"], g["split"]) for g in manifest["missing"]] == \
        [("textvqa", "train"), ("docvqa", "*"), ("gqa", "*"), ("infographicsvqa", "*")]
    assert validate_output(tmp_path / "out").ok
    (tmp_path / "empty").mkdir()
    assert main(["build", "--source", "all", "--root", str(tmp_path / "empty"), "--split", "val",
                 "--out", str(tmp_path / "none"), "--no-progress"]) == 2
    assert "nothing to build" in capsys.readouterr().err


@pytest.mark.skipif(not REAL.is_dir(), reason="shared/real pack not present")
def test_the_real_excerpts_build_with_source_all(tmp_path, capsys):
    """The partial real download of issue 26 (train files of some sources only, no zoom) builds."""
    from vlir.cli import main

    assert main(["build", "--source", "all", "--root", str(REAL), "--split", "train,val",
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["splits"] and ("zoom", "*") in {(g["source"], g["split"]) for g in manifest["missing"]}
    assert validate_output(tmp_path / "out").ok
