"""The option contract every benchmark honours (``Benchmark.configure``): the common judge flags
are used or refused in one line, never a crash; refusal and use reach the command line as exit 2
or a judged run."""

from __future__ import annotations

import json

import pytest

from tests.eval.benchmarks.conftest import answer_with
from tests.eval.benchmarks.judge_support import RecordingClient, scripted_judge
from vlir.cli import main
from vlir.eval.benchmarks import base, judge as judge_mod
from vlir.eval.benchmarks.base import BenchmarkOptionError
from vlir.eval.benchmarks.runner import item_to_json

JUDGED = {"hrbench4k", "hrbench8k", "mathvista", "mmvp"}  # whose official rule asks an LLM


@pytest.mark.parametrize("name", base.names())
def test_every_benchmark_takes_the_common_flags(name, tmp_path):
    bench = base.get(name)
    judge, _ = scripted_judge(tmp_path, "yes")
    for judge_input in ("response", "answer"):
        if name in JUDGED:
            configured = bench.configure(judge=judge, judge_input=judge_input)
            assert configured.llm is judge and configured.judge_input == judge_input and bench.llm is None
        else:
            with pytest.raises(BenchmarkOptionError) as refused:
                bench.configure(judge=judge, judge_input=judge_input)
            message = str(refused.value)
            assert "\n" not in message and message.startswith(name) and "--judge-model" in message
        assert bench.configure(judge_input=judge_input).llm is None  # no judge: always accepted
    with pytest.raises(BenchmarkOptionError, match="--judge-input"):
        bench.configure(judge_input="everything")
    with pytest.raises(BenchmarkOptionError, match="unknown variant"):
        bench.configure(variant="nope")


@pytest.mark.parametrize("name", base.names())
def test_the_cli_uses_or_refuses_the_judge_flags_in_one_line(name, tmp_path, capsys):
    code = main(["eval", "--benchmark", name, "--predictions", str(tmp_path / "missing.jsonl"), "--out",
                 str(tmp_path / "o"), "--judge-model", "m", "--judge-base-url", "http://127.0.0.1:9/v1"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    if name in JUDGED:
        assert "is not a file" in err  # accepted: it got as far as reading the predictions
    else:
        assert "asks no LLM" in err and len(err.strip().splitlines()) == 1


def test_scienceqa_with_a_judge_is_a_one_line_refusal_not_a_type_error(tmp_path, capsys):
    S = base.get("scienceqa_img")
    S.write_sample(tmp_path / "sqa", n=2)
    pred = tmp_path / "p.jsonl"
    pred.write_text("".join(json.dumps({"id": it.id, "sample": 0, "response": answer_with(it.answer).text,
                                        "boxes": [], "item": item_to_json(it)}) + "\n"
                            for it in S.items(tmp_path / "sqa")))
    assert main(["eval", "--benchmark", "scienceqa_img", "--predictions", str(pred), "--out", str(tmp_path / "o"),
                 "--judge-model", "gpt-4o"]) == 2
    assert "scienceqa_img: its official scorer (LLaVA's eval_science_qa.py) asks no LLM" in capsys.readouterr().err


def test_judge_base_url_alone_is_refused(tmp_path, capsys):
    assert main(["eval", "--benchmark", "mmvp", "--predictions", str(tmp_path / "p.jsonl"),
                 "--judge-base-url", "http://x/v1"]) == 2
    assert "--judge-base-url needs --judge-model" in capsys.readouterr().err


def test_a_judged_rescore_with_answer_input_from_the_cli(tmp_path, capsys, monkeypatch):
    client = RecordingClient("yes")
    real = judge_mod.Judge
    monkeypatch.setattr(judge_mod, "Judge", lambda model, cache, base_url=None, **kw: real(
        model, cache, base_url=base_url, client=client))
    H = base.get("hrbench4k")
    H.write_sample(tmp_path / "hr", n=2)
    pred = tmp_path / "p.jsonl"
    pred.write_text("".join(json.dumps({"id": it.id, "sample": 0, "response": f"<think>hm</think><answer>{it.answer}"
                                        "</answer>", "boxes": [], "item": item_to_json(it)}) + "\n"
                            for it in H.items(tmp_path / "hr")))
    assert main(["eval", "--benchmark", "hrbench4k", "--predictions", str(pred), "--out", str(tmp_path / "o"),
                 "--judge-model", "m", "--judge-input", "answer"]) == 0
    scores = json.loads((tmp_path / "o" / "scores.json").read_text())
    assert scores["judge"]["input"] == "answer" and scores["trajectories"]["judged_by"] == {"m": 2}
    assert all(p.endswith(f"answer:{p.split('correct answer is: ')[1][0]}?") for p in client.prompts)
