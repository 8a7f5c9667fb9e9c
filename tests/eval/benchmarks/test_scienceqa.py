"""ScienceQA image test split: reader filtering, layout errors, LLaVA's letter parsing (FAILED and
its quirks), lmms-eval's rule (VLM-R3's variant) and the subject / context / grade breakdown."""

from __future__ import annotations

import json

import pytest

from vlir.eval.benchmarks.base import BenchmarkLayoutError, get
from vlir.eval.benchmarks.scienceqa import grade_band, llava_parse, lmms_eval_correct


BENCH = "scienceqa_img"


def test_reader_keeps_image_test_problems_only(tree, items):
    problems = json.loads((tree / "problems.json").read_text())
    assert len(problems) == 10                       # 8 image test + 1 text-only test + 1 train
    assert [it.meta["pid"] for it in items] == [str(100 + i) for i in range(1, 9)]
    it = items[0]
    p = problems[it.meta["pid"]]
    assert it.answer == "ABCDE"[p["answer"]] and it.options == tuple(p["choices"])
    assert it.question == (f"Context: {p['hint']}\n{p['question']}\n"
                           + "\n".join(f"{'ABCDE'[i]}. {c}" for i, c in enumerate(p["choices"]))
                           + "\nAnswer with the option's letter from the given choices directly.")
    no_hint = next(x for x in items if not x.meta["has_text"])
    assert not no_hint.question.startswith("Context:")
    assert it.image.open().size == (64, 48)
    assert it.category in ("NAT", "SOC", "LAN") and it.meta["band"] in ("G1-6", "G7-12")


def test_layout_errors(tree, tmp_path):
    with pytest.raises(BenchmarkLayoutError, match="problems.json"):
        list(get("scienceqa_img").items(tmp_path))
    (tmp_path / "problems.json").write_text((tree / "problems.json").read_text())
    with pytest.raises(BenchmarkLayoutError, match="pid_splits.json"):
        list(get("scienceqa_img").items(tmp_path))
    (tmp_path / "pid_splits.json").write_text((tree / "pid_splits.json").read_text())
    with pytest.raises(BenchmarkLayoutError, match=r"images/test/101/image\.png"):
        list(get("scienceqa_img").items(tmp_path))
    (tmp_path / "pid_splits.json").write_text('{"train": []}')
    with pytest.raises(BenchmarkLayoutError, match="no 'test' list"):
        list(get("scienceqa_img").items(tmp_path))


@pytest.mark.parametrize("reply,parsed", [
    ("B", "B"), ("B. green", "B"), ("The answer is B.", "B"), ("I think The answer is C, clearly", "C"),
    ("b", "FAILED"),                                  # lower case is not an option
    ("B.", "FAILED"),                                 # "X. " needs the space
    ("(B)", "FAILED"),
    ("The answer is B", "FAILED"),                    # the regex's "." needs one more character
    ("The answer is A. No, The answer is B.", "FAILED"),   # two matches
    ("F", "FAILED"), ("E", "E"),                      # options are A-E whatever the choices
])
def test_llava_letter_parsing(reply, parsed):
    assert llava_parse(reply) == parsed


def test_official_grading(items):
    bench = get("scienceqa_img")
    it = next(x for x in items if len(x.options) == 2)
    right, wrong = it.answer, "AB"[1 - "AB".index(it.answer)]
    assert bench.judge(it, bench.extract(it, "resp", right)) == 1.0
    assert bench.judge(it, bench.extract(it, f"The answer is {right}. Because", None)) == 1.0
    assert bench.judge(it, bench.extract(it, f"  {right}. {it.options['AB'.index(right)]}  ", None)) == 1.0
    assert bench.judge(it, bench.extract(it, wrong, wrong)) == 0.0
    assert bench.extract(it, "no idea", None) == "FAILED" and bench.judge(it, "FAILED") == 0.0
    assert bench.judge(it, "C") == 0.0               # a letter past the problem's choices


def test_vlmr3_lmms_eval_variant(items):
    bench = get("scienceqa_img").configure(variant="vlmr3")
    it = items[0]
    assert bench.judge(it, bench.extract(it, "x", it.answer.lower())) == 1.0
    assert bench.judge(it, bench.extract(it, "x", f"{it.answer}. text")) == 1.0
    assert bench.judge(it, bench.extract(it, "x", f"{it.answer}.")) == 1.0      # lmms-eval: no space needed
    assert bench.judge(it, bench.extract(it, "x", f"The answer is {it.answer}.")) == 0.0
    assert lmms_eval_correct("b.", "B") is False     # the "X." prefix must be upper case
    with pytest.raises(ValueError, match="unknown variant"):
        get("scienceqa_img").configure(variant="gpt")


def test_grade_band():
    assert [grade_band(g) for g in ("grade1", "grade6", "grade7", "grade12", "kinder")] == \
        ["G1-6", "G1-6", "G7-12", "G7-12", ""]


def test_breakdown_on_planted_scores(items):
    bench = get("scienceqa_img")
    scores = [1.0 if it.meta["subject"] == "NAT" else 0.0 for it in items]
    result = bench.aggregate(items, scores)
    cats = result["categories"]
    n_nat = sum(it.meta["subject"] == "NAT" for it in items)
    assert cats["NAT"] == {"score": 1.0, "n": n_nat}
    assert cats["SOC"]["score"] == 0.0 and cats["LAN"]["score"] == 0.0
    assert cats["IMG"] == {"score": n_nat / len(items), "n": len(items)}        # every item has an image
    assert cats["TXT"]["n"] == sum(it.meta["has_text"] for it in items)
    assert cats["G1-6"]["n"] + cats["G7-12"]["n"] == len(items)
    assert "NO" not in cats and result["empty_categories"] == ["NO"]
    assert result["overall"] == n_nat / len(items)


def test_failed_and_random_fallback(items):
    bench = get("scienceqa_img")
    chosen = items[:4]
    extracted = [bench.extract(it, r, None) for it, r in zip(chosen, ["zzz", chosen[1].answer, "??", "zzz"])]
    scores = [bench.judge(it, e) for it, e in zip(chosen, extracted)]
    assert scores == [0.0, 1.0, 0.0, 0.0]
    result = bench.aggregate(chosen, scores, extracted=extracted)
    assert result["failed"] == 3
    expected = (1 + sum(1 / len(chosen[i].options) for i in (0, 2, 3))) / 4
    assert result["expected_with_random_fallback"] == pytest.approx(expected)
    assert "failed" not in bench.aggregate(chosen, scores)   # the runner's two-argument call works
