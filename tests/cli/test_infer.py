"""``vlir infer`` and ``vlir eval`` end to end on the tiny random model."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from vlir.cli import main  # noqa: E402

from tests.conftest import make_image  # noqa: E402
from tests.rollout_helpers import tiny_dir  # noqa: E402

SCRIPT = ['<think> The square is on the left.\n\n{"bbox_2d": [30, 20, 150, 130]}\n',
          ' It is red. </think>\n<answer>red</answer>']


@pytest.fixture
def scripted(monkeypatch):
    """Make the random model write a crop call and an answer (the CLI has no hook option)."""
    from vlir import rollout
    from vlir.testing.scripted import ScriptedLogits

    real_init = rollout.Rollout.__init__

    def init(self, model, processor, config=None):
        config.logits_processor = ScriptedLogits(processor, SCRIPT, image_newline=config.image_newline)
        real_init(self, model, processor, config)

    monkeypatch.setattr(rollout.Rollout, "__init__", init)


def test_infer_prints_the_chain_and_saves_crops(tmp_path, capsys, scripted):
    image = tmp_path / "photo.png"
    make_image().save(image)
    out = tmp_path / "infer"
    code = main(["infer", "--model", str(tiny_dir()), "--image", str(image), "--question",
                 "What color is the square?", "--out", str(out), "--html", "--max-new-tokens", "80"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"[crop 1: {out / 'crop_1.png'}]" in printed and "<answer>red</answer>" in printed
    assert (out / "crop_1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "index.html").read_text()
    assert "src='crop_1.png'" in page and "src='original.png'" in page and "answer:</b> red" in page
    info = json.loads((out / "trajectory.json").read_text())
    assert info["answer"] == "red" and info["crops"] == ["crop_1.png"] and len(info["boxes"]) == 1


def test_infer_with_the_released_agents_preset_and_flags(tmp_path, scripted):
    image = tmp_path / "photo.png"
    make_image().save(image)
    out = tmp_path / "infer"
    code = main(["infer", "--model", str(tiny_dir()), "--image", str(image), "--question", "What color?",
                 "--out", str(out), "--agent", "vlmr3", "--max-new-tokens", "80", "--crop-max-pixels", "50176",
                 "--min-pixels", "3136", "--max-pixels", "200704"])
    assert code == 0
    info = json.loads((out / "trajectory.json").read_text())
    agent = info["agent"]
    assert (agent["preset"], agent["max_rounds"], agent["tokens_per_round"], agent["image_newline"],
            agent["bad_box"]) == ("vlmr3", 8, 2048, True, "skip")
    assert agent["crop_budget"] == [3136, 50176] and agent["model_budget"] == [3136, 200704]
    assert info["answer"] == "red" and "<|vision_end|>\n It is red." in info["text"]
    code = main(["infer", "--model", str(tiny_dir()), "--image", str(image), "--question", "What color?",
                 "--out", str(out), "--agent", "vlmr3", "--no-image-newline", "--max-rounds", "1",
                 "--bad-box", "end", "--max-new-tokens", "80"])
    agent = json.loads((out / "trajectory.json").read_text())["agent"]
    assert code == 0 and (agent["image_newline"], agent["max_rounds"], agent["bad_box"]) == (False, 1, "end")
    assert main(["infer", "--model", str(tiny_dir()), "--image", str(image), "--question", "q",
                 "--agent", "r1"]) == 2
    assert main(["infer", "--model", str(tiny_dir()), "--image", str(image), "--question", "q",
                 "--bad-box", "ignore"]) == 2


def test_eval_over_sample_shards(vlir_output, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["eval", "--model", str(tiny_dir()), "--data", str(vlir_output / "gqa" / "val"), "--out",
                 str(out), "--limit", "3", "--max-new-tokens", "6", "--batch-size", "2"])
    assert code == 0
    table = capsys.readouterr().out
    assert "gqa" in table and "gqa_accuracy" in table
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and {"id", "answer", "boxes", "crops", "tokens", "score"} <= set(rows[0])
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n"] == 3 and scores["sources"]["gqa"]["n"] == 3


def test_bad_input_exits_2(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "none"), "--data", str(tmp_path)]) == 2
    assert "not a checkpoint" in capsys.readouterr().err
    assert main(["infer", "--model", str(tiny_dir()), "--image", str(tmp_path / "x.png"), "--question", "q"]) == 2
    assert "x.png" in capsys.readouterr().err


def test_eval_straight_from_a_source_adapter(tmp_path, capsys):
    from vlir.sources.registry import get_source

    get_source("textvqa").write_sample_tree(tmp_path / "textvqa", 3, 0)
    out = tmp_path / "eval"
    code = main(["eval", "--model", str(tiny_dir()), "--source", "textvqa", "--root", str(tmp_path / "textvqa"),
                 "--split", "val", "--out", str(out), "--limit", "2", "--max-new-tokens", "4"])
    assert code == 0 and "vqa_accuracy" in capsys.readouterr().out
    assert json.loads((out / "scores.json").read_text())["sources"]["textvqa"]["n"] == 2
