"""MME-RealWorld (+Lite): the JSON + images, base64 TSV and parquet forms, and the official
extraction with each of its quirks."""

from __future__ import annotations

import json

import pytest

from vlir.eval.benchmarks import base
from vlir.eval.benchmarks.base import BenchItem, BenchmarkLayoutError, ImageRef
from vlir.eval.benchmarks.mme_realworld import category_key, extract_characters_regex

M, LITE = base.get("mme_realworld"), base.get("mme_realworld_lite")
CHOICES = ["(A) red", "(B) blue", "(C) green", "(D) white", "(E) unable to decide"]


@pytest.mark.parametrize("bench", [M, LITE])
def test_three_forms_give_the_same_questions(sample_tree, bench):
    root = sample_tree(bench.name, n=6)
    forms = [list(bench.items(root)), list(bench.items(root / "tsv")), list(bench.items(root / "parquet"))]
    for form in forms:
        assert [(i.id, i.answer, i.category, i.meta["fine"], i.meta["choices"]) for i in form] == \
               [(i.id, i.answer, i.category, i.meta["fine"], i.meta["choices"]) for i in forms[0]]
        assert form[0].image.open().size == (256, 192)
    recs = json.loads((root / bench.json_name).read_text())
    first = forms[0][0]
    assert first.category == f"{recs[0]['Task']}/{recs[0]['Subtask']}" and first.answer == recs[0]["Ground truth"]
    assert first.question == (recs[0]["Text"] + " The choices are listed below: \n" + "\n".join(CHOICES) + "\n"
                              "Select the best answer to the above multiple-choice question based on the image. "
                              "Respond with only the letter (A, B, C, D, or E) of the correct option.\n"
                              "The best answer is:")
    assert forms[0][1].meta["fine"] == "attribute/attribute"  # "attribute/color" folded as the script folds it


def test_wrong_folder_and_broken_json(tmp_path):
    with pytest.raises(BenchmarkLayoutError, match="MME_RealWorld.json"):
        list(M.items(tmp_path))
    (tmp_path / "MME_RealWorld.json").write_text('[{"Question_id": 1}]')
    with pytest.raises(BenchmarkLayoutError, match="item 0: lacks Image"):
        list(M.items(tmp_path))


@pytest.mark.parametrize("text,expected", [
    ("C", "C"),
    ("The best answer is D", "D"),
    ("The answer is (B)", "B"),
    ("Best answer: C", "B"),                       # quirk: "Best answer:" is never stripped; B of "Best" wins
    ("The correct option is C", "C"),              # not stripped either, but "The correct option is" has no A-E
    ("A cat sits there, so (C)", "A"),             # the first capital A-E anywhere
    ("green", "C"),                                # no capital A-E: the choice holding the text
    ("", "A"),                                     # quirk: "" is in every choice, so the first one's letter
    ("this is a long answer without any capital letter in it at all really", ""),  # > 10 words, no A-E
    ("purple", ""),
])
def test_official_extraction(text, expected):
    assert extract_characters_regex(text, CHOICES) == expected


def test_lower_case_letter_falls_back_to_the_choice_text():
    # no capital A-E; the script lower-cases both sides, so "(c) green" matches the choice "(C) green"
    assert extract_characters_regex("(c) green", CHOICES) == "C"


def test_category_folding():
    assert category_key("Attribute/Color") == "attribute/attribute"
    assert category_key("Vehicle/attribute") == "vehicle/attribute"
    assert category_key("Counting") == "counting"


def test_extract_uses_the_answer_tag_content_when_there_is_one(sample_tree):
    item = next(iter(M.items(sample_tree("mme_realworld", n=1))))
    response = "<think> A quick look at B and C </think><answer>D</answer>"
    assert M.extract(item, response, "D") == "D"
    assert M.extract(item, response, None) == "A"  # over the whole trace the first capital wins (why vlir uses the tag)


def _it(i, cat, fine, task):
    return BenchItem(id=str(i), question="", image=ImageRef(), answer="A", category=cat,
                     meta={"task": task, "fine": fine})


def test_aggregate_is_micro_at_every_level():
    items = [_it(0, "Perception/Monitoring", "counting", "Perception"),
             _it(1, "Perception/Monitoring", "counting", "Perception"),
             _it(2, "Perception/Remote Sensing", "color", "Perception"),
             _it(3, "Reasoning/Monitoring", "intention", "Reasoning")]
    res = M.aggregate(items, [1, 0, 1, 1])
    assert res["overall"] == 0.75 and res["n"] == 4
    assert res["tasks"]["Perception"] == {"score": pytest.approx(2 / 3), "n": 3}
    assert res["categories"]["Perception/Monitoring"] == {"score": 0.5, "n": 2}
    assert res["fine"]["Perception/Monitoring/counting"]["n"] == 2
    heads, vals = M.table(res)
    assert heads[-1] == "Overall" and vals[-1] == "75.00" and "Perception (all)" in heads
