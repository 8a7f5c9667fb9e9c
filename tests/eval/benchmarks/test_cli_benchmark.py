"""``vlir eval --benchmark`` end to end: sample trees from the CLI, re-scoring from the CLI, clear
exits on bad input, and the tiny model run over every benchmark's sample tree (a scripted policy
makes it crop and answer, so crops, parsing and scoring all run)."""

from __future__ import annotations

import json

import pytest

from vlir.cli import main

from tests.eval.benchmarks.conftest import answer_with

MINE = ["vstar", "hrbench4k", "hrbench8k", "mme_realworld", "mme_realworld_lite", "treebench"]
SCRIPT = ['<think> Let me look.\n\n{"bbox_2d": [20, 20, 120, 100]}\n', ' It is clear. </think>\n<answer>A</answer>']


def test_write_sample_then_rescore_from_the_cli(tmp_path, capsys):
    from vlir.eval.benchmarks import base
    from vlir.eval.benchmarks.runner import item_to_json

    assert main(["eval", "--benchmark", "hrbench4k", "--write-sample", str(tmp_path / "hr")]) == 0
    items = list(base.get("hrbench4k").items(tmp_path / "hr"))
    assert len(items) == 8
    pred = tmp_path / "p.jsonl"
    pred.write_text("".join(json.dumps({"id": it.id, "sample": 0, "response": answer_with(it.answer if i % 2 else "Z").text,
                                        "boxes": [], "item": item_to_json(it)}) + "\n" for i, it in enumerate(items)))
    assert main(["eval", "--benchmark", "hrbench4k", "--predictions", str(pred), "--out", str(tmp_path / "o")]) == 0
    scores = json.loads((tmp_path / "o" / "scores.json").read_text())
    assert scores["scores"]["per_question_mean"] == 0.5 and scores["judge"] == "rule-based"
    assert "hrbench4k: 50.00" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--benchmark", "nope", "--write-sample", "x"], "unknown benchmark"),
    (["--benchmark", "vstar", "--root", "."], "--benchmark needs --root DIR and --model CKPT"),
    (["--benchmark", "vstar", "--predictions", "missing.jsonl"], "is not a file"),
])
def test_bad_input_exits_2(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(["eval", *args]) == 2
    assert message in capsys.readouterr().err


torch = pytest.importorskip("torch")


@pytest.fixture
def scripted(monkeypatch):
    from vlir import rollout
    from vlir.testing.scripted import ScriptedLogits

    real_init = rollout.Rollout.__init__

    def init(self, model, processor, config=None):
        config.logits_processor = ScriptedLogits(processor, SCRIPT)
        real_init(self, model, processor, config)

    monkeypatch.setattr(rollout.Rollout, "__init__", init)


def test_wrong_root_exits_2(tmp_path, capsys):
    from tests.rollout_helpers import tiny_dir

    assert main(["eval", "--benchmark", "treebench", "--root", str(tmp_path), "--model", str(tiny_dir()),
                 "--out", str(tmp_path / "o")]) == 2
    assert "TreeBench.tsv" in capsys.readouterr().err


@pytest.mark.parametrize("name", MINE)
@pytest.mark.slow
def test_tiny_model_end_to_end(name, tmp_path, scripted):
    from tests.rollout_helpers import tiny_dir

    root, out = tmp_path / "data", tmp_path / "out"
    assert main(["eval", "--benchmark", name, "--write-sample", str(root)]) == 0
    code = main(["eval", "--benchmark", name, "--root", str(root), "--model", str(tiny_dir()), "--out", str(out),
                 "--limit", "3", "--batch-size", "2", "--max-new-tokens", "120", "--html"])
    assert code == 0
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    for r in rows:
        assert r["crops"] == 1 and len(r["boxes"]) == 1 and r["parsed_answer"] == "A", r["response"]
        assert r["score"] == float(r["item"]["answer"] == "A")  # every benchmark reads "A" from <answer>A</answer>
    scores = json.loads((out / "scores.json").read_text())
    assert scores["protocol"]["name"] == "vlmr3" and len(scores["protocol"]["model_sha256"]) == 64
    assert scores["scores"]["n"] == 3 or name == "treebench"
    assert (out / "scores.png").is_file() and (out / "index.html").is_file()
    assert list((out / "html").glob("*/crop_1.png"))


@pytest.mark.parametrize("name", ["mmvp", "cvbench", "mathvista", "scienceqa_img"])
@pytest.mark.slow
def test_tiny_model_end_to_end_other_benchmarks(name, tmp_path, scripted):
    """The four benchmarks whose ground truth is not always a letter: the same engine run, and
    each row's score is the benchmark's own rule applied to the logged response."""
    from tests.rollout_helpers import tiny_dir
    from vlir.eval.benchmarks import base, runner

    root, out = tmp_path / "data", tmp_path / "out"
    assert main(["eval", "--benchmark", name, "--write-sample", str(root)]) == 0
    assert main(["eval", "--benchmark", name, "--root", str(root), "--model", str(tiny_dir()), "--out", str(out),
                 "--limit", "3", "--batch-size", "3", "--max-new-tokens", "120"]) == 0
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    bench = base.get(name)
    assert len(rows) == 3
    for r in rows:
        assert r["crops"] == 1 and r["parsed_answer"] == "A", r["response"]
        item = runner.item_from_json(r["id"], r["item"])
        assert r["score"] == runner.score_row(bench, item, r["response"], [])["score"]
    scores = json.loads((out / "scores.json").read_text())
    assert scores["protocol"]["name"] == "vlmr3" and scores["benchmark"] == name


def test_wrong_root_is_reported_before_the_model_loads(tmp_path, capsys, monkeypatch):
    """The layout check comes first: the model folder is not even a checkpoint's contents, and
    loading it would fail differently (were it tried)."""
    from vlir.cli import benchmark

    model = tmp_path / "model"
    model.mkdir()
    monkeypatch.setattr(benchmark, "build_engine", lambda *a, **k: pytest.fail("model loaded before --root check"))
    assert main(["eval", "--benchmark", "vstar", "--root", str(tmp_path), "--model", str(model),
                 "--out", str(tmp_path / "o")]) == 2
    assert "V* Bench download" in capsys.readouterr().err
