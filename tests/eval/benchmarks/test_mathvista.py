"""MathVista testmini: json and parquet readers, layout errors, the official extraction rules,
normalisation quirks (by question and answer type), the GPT-extraction hook and the breakdown."""

from __future__ import annotations

import json
import shutil

import pytest

from vlir.eval.benchmarks.base import BenchmarkLayoutError, get
from tests.eval.benchmarks.judge_support import scripted_judge
from vlir.eval.benchmarks.mathvista import DEMO_PROMPT, levenshtein, normalize_extracted_answer


BENCH = "mathvista"


@pytest.fixture(scope="module")
def items(tree):
    return {it.meta["answer_type"]: it for it in get("mathvista").items(tree)}


def test_reader_uses_query_json(tree):
    got = list(get("mathvista").items(tree))
    assert [it.id for it in got] == [f"mathvista/{i}" for i in range(1, 9)]
    queries = json.loads((tree / "data" / "query.json").read_text())
    assert all(it.question == queries[it.meta["pid"]] for it in got)
    mc = next(it for it in got if it.meta["question_type"] == "multi_choice")
    assert mc.answer in mc.options and "Choices:" in mc.question
    assert {it.meta["answer_type"] for it in got} == {"text", "integer", "float", "list"}
    assert got[0].category == got[0].meta["task"] and got[0].image.open().size == (120, 100)


def test_parquet_form(tree, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    problems = json.loads((tree / "data" / "testmini.json").read_text())
    queries = json.loads((tree / "data" / "query.json").read_text())
    rows = [{**p, "query": queries[pid], "choices": p["choices"] or None,
             "decoded_image": {"bytes": (tree / p["image"]).read_bytes(), "path": p["image"]}}
            for pid, p in problems.items()]
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "testmini-00000-of-00001.parquet")
    got = list(get("mathvista").items(tmp_path))
    assert [it.id for it in got] == [f"mathvista/{i}" for i in range(1, 9)]
    assert got[0].image.data is not None and got[0].question == queries["1"]


def test_layout_errors(tree, tmp_path):
    with pytest.raises(BenchmarkLayoutError, match=r"data/testmini\.json"):
        list(get("mathvista").items(tmp_path))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "testmini.json").write_text((tree / "data" / "testmini.json").read_text())
    with pytest.raises(BenchmarkLayoutError, match=r"images/1\.jpg"):
        list(get("mathvista").items(tmp_path))
    shutil.copytree(tree / "images", tmp_path / "images")  # a copy: a symlink leading out is refused
    with pytest.raises(BenchmarkLayoutError, match=r"query\.json: no query for problem 1"):
        list(get("mathvista").items(tmp_path))
    (tmp_path / "data" / "testmini.json").write_text("[1, 2]")
    with pytest.raises(BenchmarkLayoutError, match="testmini.json"):
        list(get("mathvista").items(tmp_path))


def test_levenshtein():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3 and levenshtein("abc", "abc") == 0 and levenshtein("ab", "ba") == 2


@pytest.mark.parametrize("extraction,expected", [
    ("B", "8/11"), ("(C) 6/11", "6/11"), ("The answer is (D)", "3/5"),
    ("8/11", "8/11"), ("8/12", "8/11"),
    ("b", "3/5"),        # quirk: a lower-case letter is not an option letter; edit distance picks "3/5"
    ("", "3/5"),         # quirk: an empty extraction still maps to a choice (the nearest, "3/5")
    ("3/1", "3/11"),     # ties (3/11 and 3/5 are both 1 edit away): the first choice wins
])
def test_multi_choice_normalisation(extraction, expected):
    choices = ["3/11", "8/11", "6/11", "3/5"]
    assert normalize_extracted_answer(extraction, choices, "multi_choice", "text", None) == expected


@pytest.mark.parametrize("extraction,answer_type,precision,expected", [
    ("3", "integer", None, "3"), ("3.0", "integer", None, "3"),
    ("3.7", "integer", None, "3"),          # quirk: int(float()) truncates
    ("three", "integer", None, None), ("", "integer", None, None),
    ("1.50", "float", 1, "1.5"), ("1.25", "float", 2.0, "1.25"), ("2", "float", 1, "2.0"),
    ("x", "float", 1, None),
    ("[1, 2]", "list", None, "[1, 2]"), ("[1,2]", "list", None, "[1,2]"),  # no list parsing
])
def test_free_form_normalisation(extraction, answer_type, precision, expected):
    assert normalize_extracted_answer(extraction, None, "free_form", answer_type, precision) == expected


def test_extraction_rules_and_grading(items):
    bench = get("mathvista")
    mc, integer, flt, lst = items["text"], items["integer"], items["float"], items["list"]
    letter = chr(ord("A") + mc.options.index(mc.answer))
    assert bench.extract(mc, "r", mc.answer) == mc.answer                         # equals a choice
    assert bench.judge(mc, bench.extract(mc, "r", letter)) == 1.0                 # letter, passed through
    assert bench.judge(mc, bench.extract(mc, "r", f"({letter}) {mc.answer}")) == 1.0
    assert bench.extract(integer, "r", " 12 ") == "12"
    assert bench.judge(integer, bench.extract(integer, "r", integer.answer + ".0")) == 1.0
    assert bench.extract(flt, "r", "2.50") == "2.5"
    assert bench.judge(flt, bench.extract(flt, "r", flt.answer + "0")) == 1.0
    assert bench.extract(integer, 'Counting. The answer is "7".', None) == "7"    # quick-extract regex
    assert bench.extract(integer, 'so the answer is "7".', None).startswith("so")  # it is case-sensitive
    assert bench.extract(integer, "I count 7 bars", None) == "I count 7 bars"     # no GPT: passed through
    assert bench.judge(integer, "I count 7 bars") == 0.0
    assert bench.judge(lst, bench.extract(lst, "r", lst.answer)) == 1.0
    assert bench.judge(lst, lst.answer.replace(", ", ",")) == 0.0                 # string comparison
    assert bench.extract(integer, "", None) == ""


def test_gpt_extraction_hook(items, tmp_path):
    integer = items["integer"]
    judge, client = scripted_judge(tmp_path / "a", f" {integer.answer}\n")
    bench = get("mathvista").configure(judge=judge)
    response = "<think>the bars are 2, 3 and 4</think><answer>they add up to nine</answer>"
    extracted = bench.extract(integer, response, "they add up to nine")
    assert extracted == integer.answer and bench.judge(integer, extracted) == 1.0  # the reply, stripped
    assert client.prompts[0] == f"{DEMO_PROMPT}\n\n{integer.meta['query']}\n\n{response}\n\nExtracted answer: "
    assert bench.extract(integer, "12", "12") == "12" and len(client.sent) == 1   # rules first, no call
    # with a judge, the rules see the whole response: a tagged one goes to GPT, as the official's would
    bench.extract(integer, "<answer>12</answer>", "12")
    assert len(client.sent) == 2
    # the quick-extract regex is off with a judge (the official default): GPT is asked
    bench.extract(integer, 'The answer is "7".', None)
    assert len(client.sent) == 3
    answer_only = get("mathvista").configure(judge=judge, judge_input="answer")
    assert answer_only.extract(integer, "<answer>12</answer>", "12") == "12" and len(client.sent) == 3
    assert "rule-based" in get("mathvista").scoring and "GPT" in bench.scoring


def test_a_refused_request_extracts_nothing_and_other_failures_stop(items, tmp_path):
    import httpx2 as httpx
    import openai

    from vlir.eval.benchmarks.judge import JudgeError

    integer = items["integer"]
    request = httpx.Request("POST", "http://judge/v1/chat/completions")

    def failing(status):
        def create(kw):
            raise openai.APIStatusError("nope", response=httpx.Response(status, request=request), body=None)
        return create

    judge, _ = scripted_judge(tmp_path / "a", failing(400))
    assert get("mathvista").configure(judge=judge).extract(integer, "many", None) == ""   # "reduce the length"
    judge, _ = scripted_judge(tmp_path / "b", failing(401))
    with pytest.raises(JudgeError, match="HTTP 401"):
        get("mathvista").configure(judge=judge).extract(integer, "many", None)


def test_aggregate_breakdown(tree):
    bench = get("mathvista")
    got = list(bench.items(tree))
    scores = [1.0 if it.meta["question_type"] == "multi_choice" else 0.0 for it in got]
    result = bench.aggregate(got, scores)
    assert result["overall"] == 2 / 8 and result["correct"] == 2
    assert result["breakdown"]["question_type"] == {"multi_choice": {"score": 1.0, "n": 2},
                                                    "free_form": {"score": 0.0, "n": 6}}
    skills = result["breakdown"]["skills"]
    assert skills["arithmetic reasoning"]["n"] == 8 and skills["statistical reasoning"]["n"] == 4
    assert result["categories"] == result["breakdown"]["task"]
    assert sum(v["n"] for v in result["categories"].values()) == 8
