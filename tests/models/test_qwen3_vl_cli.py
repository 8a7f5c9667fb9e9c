"""``vlir infer`` and ``vlir eval`` on the tiny Qwen3-VL checkpoint: the family comes from its
config.json, the call's numbers are read on the 0-1000 grid."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from vlir.cli import main  # noqa: E402

from tests.cli.test_infer import scripted  # noqa: E402,F401  (fixture: a crop call, then 'red')
from tests.conftest import make_image  # noqa: E402
from tests.rollout_helpers import tiny_dir  # noqa: E402

def test_infer_on_qwen3_maps_thousandths_to_original_pixels(tmp_path, scripted):
    image = tmp_path / "photo.png"
    make_image(320, 240).save(image)
    out = tmp_path / "infer"
    code = main(["infer", "--model", str(tiny_dir("qwen3_vl_tiny")), "--image", str(image), "--question",
                 "What color is the square?", "--out", str(out), "--max-new-tokens", "80"])
    assert code == 0
    info = json.loads((out / "trajectory.json").read_text())
    assert info["answer"] == "red" and info["crops"] == ["crop_1.png"]
    # the script's call [30, 20, 150, 130] read as thousandths of 320 x 240
    assert info["boxes"] == [[9.6, 4.8, 48.0, 31.2]]


def test_eval_on_qwen3_over_a_source(tmp_path, capsys):
    from vlir.sources.registry import get_source

    get_source("textvqa").write_sample_tree(tmp_path / "textvqa", 3, 0)
    out = tmp_path / "eval"
    code = main(["eval", "--model", str(tiny_dir("qwen3_vl_tiny")), "--source", "textvqa", "--root",
                 str(tmp_path / "textvqa"), "--split", "val", "--out", str(out), "--limit", "2",
                 "--max-new-tokens", "4"])
    assert code == 0 and "vqa_accuracy" in capsys.readouterr().out
    scores = json.loads((out / "scores.json").read_text())
    assert scores["sources"]["textvqa"]["n"] == 2
