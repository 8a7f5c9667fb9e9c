"""``vlir.eval.evaluate``: inputs from shards, per-source scoring with the official metrics, the files
written. The engine is a stand-in here (the CLI test runs the real one on the tiny model)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from vlir import metrics
from vlir.eval import evaluate
from vlir.records import Box, Sample

from tests.conftest import make_image


@dataclass
class FakeTrajectory:
    answer: str | None
    boxes: list
    finish_reason: str = "answer"
    crops: list = field(default_factory=list)
    token_ids: list = field(default_factory=lambda: [1] * 10)
    num_sampled: int = 4


class FakeEngine:
    """Answers from a table keyed by question; one box per crop."""

    def __init__(self, answers: dict[str, tuple[str | None, list[Box]]]):
        self.answers = answers
        self.batches: list[int] = []

    def generate(self, prompts, num_samples=1):
        self.batches.append(len(prompts))
        out = []
        for question, _ in prompts:
            answer, boxes = self.answers[question]
            out.append(FakeTrajectory(answer, boxes, crops=[object()] * len(boxes),
                                      finish_reason="answer" if answer is not None else "max_new_tokens"))
        return out


def sample(i: int, source: str, question: str, answers: tuple[str, ...]) -> Sample:
    return Sample(id=f"{source}/val/{i}", source=source, split="val", image=f"{i}.png", width=320,
                  height=240, question=question, answers=answers)


TEXTVQA_ANSWERS = ("stop",) * 3 + ("stop sign",) * 7


def test_evaluate_scores_each_source_with_its_metric(tmp_path):
    image = make_image()
    items = [
        (sample(0, "textvqa", "q0", TEXTVQA_ANSWERS), image),
        (sample(1, "docvqa", "q1", ("Total: $12.50",)), image),
        (sample(2, "gqa", "q2", ("red",)), image),
        (sample(3, "gqa", "q3", ("blue",)), image),
        (sample(4, "synth", "q4", ("Red",)), image),
    ]
    box = Box(0, 0, 160, 120)  # a quarter of the image
    engine = FakeEngine({"q0": ("stop", [box, box]), "q1": ("total: $12.5O", []), "q2": ("Red.", [box]),
                         "q3": (None, []), "q4": ("red", [])})
    scores = evaluate.evaluate(engine, iter(items), tmp_path, batch_size=2)
    assert engine.batches == [2, 2, 1]
    by = scores["sources"]
    assert by["textvqa"]["metric"] == "vqa_accuracy"
    assert by["textvqa"]["score"] == pytest.approx(metrics.vqa_accuracy("stop", TEXTVQA_ANSWERS))
    assert by["docvqa"]["score"] == pytest.approx(metrics.anls("total: $12.5O", ["Total: $12.50"]))
    assert by["gqa"] == {"metric": "gqa_accuracy", "score": 0.5, "n": 2, "crops_per_answer": 0.5,
                         "box_area_ratio": 0.25, "tokens_per_answer": 4.0,
                         "finish_reasons": {"answer": 1, "max_new_tokens": 1}}
    assert by["textvqa"]["crops_per_answer"] == 2.0 and by["docvqa"]["box_area_ratio"] is None
    assert by["synth"]["metric"] == "exact_match" and by["synth"]["score"] == 1.0
    assert scores["n"] == 5
    assert json.loads((tmp_path / evaluate.SCORES).read_text()) == scores
    rows = [json.loads(line) for line in (tmp_path / evaluate.PREDICTIONS).read_text().splitlines()]
    assert [r["id"] for r in rows] == [s.id for s, _ in items]
    assert rows[0]["boxes"] == [box.as_list()] * 2 and rows[0]["crops"] == 2 and rows[0]["tokens"] == 4
    assert rows[3]["answer"] is None and rows[3]["score"] == 0.0
    table = evaluate.format_table(scores)
    assert "textvqa" in table and "vqa_accuracy" in table and "50.00" in table


def test_evaluate_respects_limit_and_streams(tmp_path):
    image = make_image()

    def endless():
        i = 0
        while True:
            yield sample(i, "gqa", "q", ("red",)), image
            i += 1

    scores = evaluate.evaluate(FakeEngine({"q": ("red", [])}), endless(), tmp_path, limit=5, batch_size=3)
    assert scores["n"] == 5 and scores["sources"]["gqa"]["score"] == 1.0


def test_shard_items_resolve_referenced_and_embedded_images(vlir_output, tmp_path):
    from vlir.corpus import shards

    items = list(evaluate.shard_items(vlir_output / "gqa" / "val"))
    records = list(shards.read_records(vlir_output / "gqa" / "val"))
    assert [s.id for s, _ in items] == [r.sample.id for r in records] and len(items) == 6
    assert all(img.size == (s.width, s.height) and img.mode == "RGB" for s, img in items)
    # a lone shard without a manifest works when images are embedded, and says why when not
    from tests.conftest import make_record

    shards.write_records(tmp_path / "part-00000.parquet", [make_record(1, embed=True)])
    [(s, img)] = list(evaluate.shard_items(tmp_path / "part-00000.parquet"))
    assert img.size == (320, 240)
    shards.write_records(tmp_path / "bare" / "part-00000.parquet", [make_record(2)])
    with pytest.raises(FileNotFoundError, match="no manifest"):
        list(evaluate.shard_items(tmp_path / "bare"))


def test_score_answer_uses_the_official_scripts():
    """vlir eval reports the published tables' numbers: GQA by eval.py after LLaVA's converter
    (articles count), ANLS with its exactly-0.5 rule; TextVQA falls back to the lenient rule only
    when a record does not hold the 10 answers the official evaluator is defined on."""
    assert evaluate.score_answer("gqa", "the cat", ["cat"]) == 0.0
    assert metrics.score("gqa", "the cat", ["cat"]) == 1.0  # the lenient rule rewards use
    assert evaluate.score_answer("gqa", "Cat.", ["cat"]) == 1.0
    assert evaluate.score_answer("docvqa", "ab", ["abcd"]) == 0.5  # distance exactly 0.5 scores 0.5
    assert evaluate.score_answer("textvqa", "stop", ["stop"]) == 1.0  # 1 answer: lenient, no crash
