"""HR-Bench 4K/8K: the streamed TSV and its parquet copy, cycle-averaged accuracy with FSP/FCP,
VLMEvalKit's option rule and the official yes/no LLM judge (through a fake client)."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest

from vlir.eval.benchmarks import _common as C
from vlir.eval.benchmarks import base
from vlir.eval.benchmarks.base import BenchItem, BenchmarkLayoutError, ImageRef
from vlir.eval.benchmarks.hrbench import COLUMNS, judge_reply_score
from vlir.eval.benchmarks.judge import Judge
from tests.eval.benchmarks.judge_support import RecordingClient

H4, H8 = base.get("hrbench4k"), base.get("hrbench8k")


def test_tsv_and_parquet_give_the_same_items(sample_tree):
    root = sample_tree("hrbench4k", n=8)
    tsv, pq = list(H4.items(root)), list(H4.items(root / "parquet"))
    assert len(tsv) == 8 and [i.id for i in tsv] == [i.id for i in pq]
    assert [(i.answer, i.category, i.meta["cycle"], i.image.data) for i in tsv] == \
           [(i.answer, i.category, i.meta["cycle"], i.image.data) for i in pq]
    first = tsv[0]
    assert first.question.startswith("Question: ") and "A. red\nB. blue" in first.question
    assert first.question.endswith("Please select the correct answer from the options above. \n")
    assert {i.category for i in tsv} == {"FSP", "FCP"} and first.image.open().size == (256, 192)


def test_8k_reads_its_own_file_only(sample_tree):
    root = sample_tree("hrbench4k", n=2)
    with pytest.raises(BenchmarkLayoutError, match="hr_bench_8k"):
        list(H8.items(root))
    assert len(list(H8.items(sample_tree("hrbench8k", n=2)))) == 2


def test_a_cell_larger_than_csvs_default_limit_streams(tmp_path):
    big = C.sample_picture(0)[0] + bytes(range(256)) * 800  # base64 > 131072 chars, csv's default cap
    row = {"index": 0, "question": "q", "answer": "A", "category": "single", "A": "x", "B": "y", "C": "", "D": "",
           "cycle_category": "0", "image": C.b64(big)}
    assert len(row["image"]) > 131072
    C.write_tsv(tmp_path / "hr_bench_4k.tsv", COLUMNS, [row])
    [item] = H4.items(tmp_path)
    assert item.image.data == big and item.options == ("x", "y")


def test_missing_column_and_bad_answer_name_the_file(tmp_path):
    with open(tmp_path / "hr_bench_4k.tsv", "w", newline="") as fh:
        csv.writer(fh, delimiter="\t").writerow(["index", "question"])
    with pytest.raises(BenchmarkLayoutError, match="hr_bench_4k.tsv: header lacks"):
        list(H4.items(tmp_path))
    C.write_tsv(tmp_path / "hr_bench_4k.tsv", COLUMNS, [{"index": 1, "answer": "E", "category": "single", "A": "x",
                                                        "image": C.b64(b"x")}])
    with pytest.raises(BenchmarkLayoutError, match="row .*answer 'E'"):
        list(H4.items(tmp_path))


def _item(i, cat, cycle):
    return BenchItem(id=f"h/{i}", question="", image=ImageRef(), answer="A", category=cat, meta={"cycle": cycle})


def test_accuracy_per_cycle_then_averaged():
    # cycle 0: 3 FSP (2 right) + 1 FCP (right) ; cycle 1: 1 FSP (wrong) + 1 FCP (right)
    items = [_item(0, "FSP", "0"), _item(1, "FSP", "0"), _item(2, "FSP", "0"), _item(3, "FCP", "0"),
             _item(4, "FSP", "1"), _item(5, "FCP", "1")]
    res = H4.aggregate(items, [1, 1, 0, 1, 0, 1])
    assert res["cycles"]["0"] == {"all": 0.75, "FSP": 2 / 3, "FCP": 1.0}
    assert res["overall"] == pytest.approx((0.75 + 0.5) / 2)  # not the plain mean 4/6
    assert res["per_question_mean"] == pytest.approx(4 / 6)
    assert res["categories"]["FSP"]["score"] == pytest.approx((2 / 3 + 0) / 2)
    assert res["categories"]["FCP"] == {"score": 1.0, "n": 2}


def test_a_category_missing_from_a_cycle_still_divides_by_all_cycles():
    items = [_item(0, "FSP", "0"), _item(1, "FCP", "0"), _item(2, "FSP", "1")]
    res = H4.aggregate(items, [1, 1, 1])
    assert res["categories"]["FCP"]["score"] == pytest.approx(0.5)  # official quirk: (1 + nothing) / 2


@pytest.mark.parametrize("answer,expected", [
    ("B", "B"), ("The answer is B.", "B"), ("(C) green", "C"), ("green", "C"), ("A or B", ""), ("purple", ""),
])
def test_rule_based_extraction(sample_tree, answer, expected):
    item = next(iter(H4.items(sample_tree("hrbench4k", n=1))))
    assert H4.extract(item, f"<answer>{answer}</answer>", answer) == expected


@pytest.mark.parametrize("reply,score", [("Yes.", 1.0), ("yes, it does", 1.0), ("No", 0.0), (" yes", 0.0),
                                         ("The answer is yes", 0.0)])
def test_judge_reply_parsing(reply, score):
    assert judge_reply_score(reply) == score


def test_llm_judge_asks_once_and_caches(sample_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-never-written")
    item = next(iter(H4.items(sample_tree("hrbench4k", n=1))))
    client = RecordingClient("Yes")
    judge = Judge("judge-model", tmp_path / "cache.sqlite", client=client)
    judged = H4.configure(judge=judge)
    assert judged.llm_judge(item, "<answer>red</answer>", "red") == 1.0
    assert "the correct answer is: A. red" in client.prompts[0] and "answer:<answer>red</answer>?" in client.prompts[0]
    assert judged.llm_judge(item, "<answer>red</answer>", "red") == 1.0
    assert judge.calls == 1 and len(client.prompts) == 1  # the second came from the cache
    assert b"sk-secret" not in (tmp_path / "cache.sqlite").read_bytes()


def test_deepeyes_overall_and_rule_are_reported_apart():
    items = [_item(0, "FSP", "0"), _item(1, "FSP", "0"), _item(2, "FSP", "0"), _item(3, "FCP", "0")]
    res = H4.aggregate(items, [1, 0, 0, 1])
    assert res["fsp_fcp_mean"] == pytest.approx((1 / 3 + 1) / 2) and res["per_question_mean"] == 0.5


@pytest.mark.parametrize("pred,score", [("A", 1.0), ("B", 0.0), ("A.", 1.0), ("\\boxed{A}", 1.0),
                                        ("it is red", 1.0), ("It is Red", 0.0), ("the answer is A", 0.0)])
def test_deepeyes_rule(pred, score):
    assert C.deepeyes_rule(pred, "A", "red") == score


def test_a_broken_parquet_is_a_layout_error(tmp_path):
    (tmp_path / "hr_bench_4k.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(BenchmarkLayoutError, match="not a readable parquet"):
        list(H4.items(tmp_path))
