"""The runner: rows and files, resume after a partial predictions.jsonl, re-scoring planted
predictions, avg@k, crop hit rates, protocol presets and the model fingerprint."""

from __future__ import annotations

import json

import pytest

from vlir.eval.benchmarks import base, presets, runner
from vlir.eval.benchmarks.runner import Response
from vlir.records import Box

from tests.eval.benchmarks.conftest import Planted, answer_with

V, T = base.get("vstar"), base.get("treebench")


def _right_or_wrong(items, wrong=()):
    """Answer each item right, except the ids in ``wrong``; the crop is the first target box."""
    by_q = {}
    for it in items:
        by_q[it.question] = it
        by_q[it.question.replace("\n" + "Answer with the option's letter from the given choices directly.", "")] = it

    def respond(q):
        it = by_q[q]
        letter = "Z" if it.id in wrong else it.answer
        return answer_with(letter, it.target_boxes[:1])
    return respond


def test_run_writes_predictions_scores_report_and_plot(sample_tree, tmp_path):
    root = sample_tree("vstar", n=6)
    items = list(V.items(root))
    gen = Planted(_right_or_wrong(items, wrong={items[1].id}))
    scores = runner.run(V, iter(items), gen, tmp_path / "out", presets.preset("vlmr3"), batch_size=4,
                        info={"model": "m"})
    rows = [json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and rows[0]["parsed_answer"] == items[0].answer and rows[0]["extracted"] == items[0].answer
    assert rows[1]["score"] == 0.0 and rows[1]["extracted"] == "Z" and rows[0]["boxes"]  # can_infer: a lone Z is Z
    assert "Answer with the option" not in gen.seen[0]  # vlmr3 strips V*'s direct instruction
    assert scores["scores"]["overall"] == pytest.approx(5 / 6)
    assert scores["alternatives"]["vlmr3_acc_verifier"]["overall"] == pytest.approx(5 / 6)
    assert scores["crop_hits"]["crop_hit"]["all"] == {"rate": 1.0, "n": 6}
    assert scores["protocol"]["name"] == "vlmr3" and scores["protocol"]["max_pixels"] == 8192 * 28 * 28
    assert scores["protocol"]["model"] == "m" and scores["judge"] == "rule-based"
    for name in ("scores.json", "report.md", "scores.png", "run.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert "| Attribute | Spatial | Overall |" in (tmp_path / "out" / "report.md").read_text()


def test_resume_skips_finished_items_and_repairs_a_torn_line(sample_tree, tmp_path):
    items = list(V.items(sample_tree("vstar", n=6)))
    out = tmp_path / "out"
    first = Planted(_right_or_wrong(items))
    runner.run(V, iter(items), first, out, presets.preset("model"), batch_size=2, limit=4)
    assert len(first.seen) == 4
    pred = out / "predictions.jsonl"
    pred.write_text(pred.read_text() + '{"id": "vstar/torn", "sam')  # killed mid-write
    second = Planted(_right_or_wrong(items))
    scores = runner.run(V, iter(items), second, out, presets.preset("model"), batch_size=2)
    assert len(second.seen) == 2  # only the two unfinished items were generated
    rows = [json.loads(x) for x in pred.read_text().splitlines()]
    assert [r["id"] for r in rows] == [it.id for it in items] and scores["scores"]["n"] == 6


def test_resume_with_another_protocol_is_refused(sample_tree, tmp_path):
    items = list(V.items(sample_tree("vstar", n=2)))
    runner.run(V, iter(items), Planted(_right_or_wrong(items)), tmp_path, presets.preset("model"))
    with pytest.raises(ValueError, match="another --out"):
        runner.run(V, iter(items), Planted(_right_or_wrong(items)), tmp_path, presets.preset("vlmr3"))


def test_rescore_planted_predictions_gives_the_official_result(sample_tree, tmp_path):
    """Planted responses of every kind, written as a run writes them, re-scored without a model."""
    from vlir.eval.benchmarks.runner import item_to_json

    items = list(base.get("mme_realworld").items(sample_tree("mme_realworld", n=4)))
    planted = ["<answer>Best answer: C</answer>", "The best answer is " + items[1].answer, "<answer></answer>",
               "<answer>" + items[3].answer + "</answer>"]
    pred = tmp_path / "planted.jsonl"
    pred.write_text("".join(json.dumps({"id": it.id, "sample": 0, "response": r, "boxes": [], "score": -1,
                                        "item": item_to_json(it)}) + "\n" for it, r in zip(items, planted)))
    bench = base.get("mme_realworld")
    scores = runner.rescore(bench, pred, tmp_path / "re")
    rows = [json.loads(x) for x in (tmp_path / "re" / "predictions.jsonl").read_text().splitlines()]
    assert [r["extracted"] for r in rows] == ["B", items[1].answer, "A", items[3].answer]
    expected = [float(e == it.answer) for e, it in zip(["B", items[1].answer, "A", items[3].answer], items)]
    assert [r["score"] for r in rows] == expected
    assert scores["scores"]["overall"] == pytest.approx(sum(expected) / 4)
    assert scores["protocol"]["rescored_from"] == str(pred)


def test_rescore_refuses_foreign_files(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"id": "x"}\n')
    with pytest.raises(ValueError, match="lacks the item/response"):
        runner.rescore(V, p, tmp_path / "o")


def test_avg_at_k_reports_mean_and_spread(sample_tree, tmp_path):
    items = list(V.items(sample_tree("vstar", n=4)))
    flips = iter([True, False] * 4 + [True] * 8)

    def respond(q):
        it = next(i for i in items if i.question.startswith(q.split("\n")[0]) and q.split("\n")[1] in i.question)
        return answer_with(it.answer if next(flips) else "Z")
    scores = runner.run(V, iter(items), Planted(respond), tmp_path, presets.preset("avg@2"), batch_size=4)
    s = scores["scores"]
    assert s["per_sample"] == [1.0, 0.0] and s["overall"] == 0.5 and s["overall_std"] == pytest.approx(0.7071, abs=1e-3)
    assert len((tmp_path / "predictions.jsonl").read_text().splitlines()) == 8


def test_crop_hits():
    t = [Box(100, 100, 120, 120)]
    assert runner.crop_hits(t, [Box(100, 100, 121, 121)])["crop_hit"] == 1.0
    wide = runner.crop_hits(t, [Box(50, 50, 200, 200)])  # covers the target, IoU small
    assert wide["crop_hit"] == 0.0 and wide["crop_covers"] == 1.0 and wide["crop_best_iou"] < 0.1
    assert runner.crop_hits(t, []) == {"crop_hit": 0.0, "crop_covers": 0.0, "crop_best_iou": 0.0}


def test_treebench_metrics_are_averaged(sample_tree, tmp_path):
    items = list(T.items(sample_tree("treebench", n=2)))

    def respond(q):
        it = next(i for i in items if i.question == q)
        return Response("<answer>" + it.answer + "</answer>", list(it.target_boxes))
    scores = runner.run(T, iter(items), Planted(respond), tmp_path, presets.preset("model"))
    assert scores["metrics"]["crop_miou"]["all"] == pytest.approx(1.0)
    assert scores["metrics"]["box_miou_official"]["all"] == 0.0


def test_presets():
    p = presets.preset("vlmr3", max_new_tokens=64)
    assert (p.min_pixels, p.max_pixels, p.crop_min_pixels, p.crop_max_pixels) == (32 * 784, 8192 * 784, 32 * 784, 4096 * 784)
    assert p.temperature == 0 and p.samples == 1 and p.max_new_tokens == 64
    assert presets.preset("avg@32").samples == 32 and presets.preset("model").max_pixels is None
    with pytest.raises(ValueError, match="unknown protocol"):
        presets.preset("best")
    with pytest.raises(ValueError, match="temperature"):
        presets.preset("avg@4", temperature=0.0)


def test_fingerprint_changes_with_the_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"abc")
    a = presets.fingerprint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"abd")
    assert presets.fingerprint(tmp_path) != a


def test_an_unreadable_image_names_the_item(sample_tree, tmp_path):
    from vlir.eval.benchmarks.base import BenchmarkLayoutError

    root = sample_tree("vstar", n=2)
    items = list(V.items(root))
    (root / "direct_attributes" / (items[0].id.split("/")[-1] + ".jpg")).write_bytes(b"not a jpeg")
    with pytest.raises(BenchmarkLayoutError, match=items[0].id):
        runner.run(V, iter(items), Planted(lambda q: answer_with("A")), tmp_path, presets.preset("model"))


def test_llm_judge_is_recorded_when_on(sample_tree, tmp_path, monkeypatch):
    from tests.eval.benchmarks.judge_support import RecordingClient as FakeClient
    from vlir.eval.benchmarks.judge import Judge

    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-written")
    H = base.get("hrbench4k")
    items = list(H.items(sample_tree("hrbench4k", n=2)))
    judge = Judge("judge-m", tmp_path / "cache.sqlite", client=FakeClient("No"))
    scores = runner.run(H, iter(items), Planted(lambda q: answer_with("A")), tmp_path / "o", presets.preset("model"),
                        judge=judge)
    assert scores["judge"]["model"] == "judge-m" and scores["trajectories"]["judged_by"] == {"judge-m": 2}
    assert scores["scores"]["overall"] == 0.0  # the judge said no, whatever the letter
    assert "sk-never-written" not in (tmp_path / "o" / "scores.json").read_text()


def test_report_prints_the_papers_table_and_the_extra_figures(sample_tree, tmp_path):
    H = base.get("hrbench8k")
    items = list(H.items(sample_tree("hrbench8k", n=8)))
    runner.run(H, iter(items), Planted(lambda q: answer_with("A")), tmp_path, presets.preset("model"))
    text = (tmp_path / "report.md").read_text()
    assert "| FSP | FCP | Overall |" in text and "`fsp_fcp_mean`" in text and "`per_question_mean`" in text
    assert "deepeyes\\_rule" in text and "| name | model |" in text  # table cells are escaped Markdown


def test_judge_model_reaches_the_configure_style_benchmarks(tmp_path, monkeypatch):
    """--judge-model on mmvp (whose LLM step is a prompt -> reply callable set by configure())
    asks the judge and records it; before, the runner called the module's judge attribute as if it
    were the base class's llm_judge method."""
    from tests.eval.benchmarks.judge_support import RecordingClient as FakeClient
    from vlir.eval.benchmarks import judge as judge_mod
    from vlir.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-written")
    real = judge_mod.Judge
    monkeypatch.setattr(judge_mod, "Judge", lambda model, cache, base_url=None, **kw: real(
        model, cache, base_url=base_url, client=FakeClient("no")))
    M = base.get("mmvp")
    M.write_sample(tmp_path / "mmvp", n=4)
    items = list(M.items(tmp_path / "mmvp"))
    runner.run(M, iter(items), Planted(lambda q: answer_with("a")), tmp_path / "first", presets.preset("model"))
    assert main(["eval", "--benchmark", "mmvp", "--predictions", str(tmp_path / "first" / runner.PREDICTIONS),
                 "--out", str(tmp_path / "re"), "--judge-model", "judge-m"]) == 0
    scores = json.loads((tmp_path / "re" / runner.SCORES).read_text())
    assert scores["trajectories"]["judged_by"] == {"judge-m": 4}
    assert scores["scores"]["overall"] == 0.0  # the grader said no to every answer
