"""V* Bench: both official layouts, the target boxes, the letter rule and VLM-R3's verifier."""

from __future__ import annotations

import json

import pytest

from vlir.eval.benchmarks import base
from vlir.eval.benchmarks.base import BenchmarkLayoutError
from vlir.eval.benchmarks.vstar import DIRECT, read_letter, strip_direct, vlmr3_acc_verifier

V = base.get("vstar")


def test_jsonl_layout_keeps_the_label_and_the_target_boxes(sample_tree):
    root = sample_tree("vstar", n=6)
    items = list(V.items(root))
    assert len(items) == 6
    lines = [json.loads(x) for x in (root / "test_questions.jsonl").read_text().splitlines()]
    for it, rec in zip(items, lines):
        assert it.answer == rec["label"] and it.category == rec["category"]
        assert it.question == rec["text"] and len(it.options) in (2, 4)
        ann = json.loads((root / rec["image"]).with_suffix(".json").read_text())
        # x, y, w, h in the file -> x1, y1, x2, y2 in original pixels
        assert [b.as_list() for b in it.target_boxes] == [[x, y, x + w, y + h] for x, y, w, h in ann["bbox"]]
        assert it.image.open().size == (224, 168)


def test_folder_layout_letters_the_first_option_as_the_answer(sample_tree):
    root = sample_tree("vstar", n=6)
    (root / "test_questions.jsonl").unlink()
    items = list(V.items(root))
    assert {it.category for it in items} == {"direct_attributes", "relative_position"}
    for it in items:
        ann = json.loads((root / it.category / (it.id.split("/")[-1] + ".json")).read_text())
        assert it.options[ord(it.answer) - 65] == ann["options"][0]  # the first option is the right one
        assert sorted(it.options) == sorted(ann["options"]) and it.question.endswith(DIRECT)
    # the order is fixed per item: reading twice gives the same letters
    assert [it.answer for it in items] == [it.answer for it in V.items(root)]


def test_wrong_folder_is_a_clear_error(tmp_path):
    with pytest.raises(BenchmarkLayoutError, match="V\\* Bench"):
        list(V.items(tmp_path))


def test_broken_jsonl_line_names_the_file(tmp_path):
    (tmp_path / "test_questions.jsonl").write_text('{"image": "a.jpg"}\n')
    with pytest.raises(BenchmarkLayoutError, match="test_questions.jsonl, line 1"):
        list(V.items(tmp_path))


@pytest.mark.parametrize("text,expected", [
    ("B", "B"), ("(C)", "C"), ("D.", "D"), ("The answer is (B) red", "B"), ("red", "A"),
    ("It is blue, not red", ""), ("A or B", ""), ("", ""),
])
def test_letter_rule(text, expected):
    assert read_letter(text, {"A": "red", "B": "blue", "C": "green", "D": "white"}) == expected


def test_extract_reads_the_answer_tag_else_the_response(sample_tree):
    item = next(iter(V.items(sample_tree("vstar", n=1))))
    assert V.extract(item, "<answer>(B)</answer>", "(B)") == "B"
    assert V.extract(item, "I think (C)", None) == "C"
    assert V.judge(item, item.answer) == 1.0


@pytest.mark.parametrize("response,label,expected", [
    ("<think>..</think><answer>A</answer>", "A", 1.0),
    ("<answer>a</answer>", "A", 1.0),                  # case-insensitive
    ("<answer>B</answer>", "A", 0.0),                  # single letters that differ: 0
    ("<answer>C</answer> then <answer>A</answer>", "A", 1.0),  # the last answer tag
    ("no tags\nA", "A", 1.0),                          # the last line when there is no tag
    ("<answer>the red one</answer>", "A", 0.0),        # would go to their LLM: 0 with it off
    ("<answer>B</answer>", "A/B", 0.0),                # quirk: the first single-letter mismatch ends the loop
])
def test_vlmr3_acc_verifier(response, label, expected):
    assert vlmr3_acc_verifier(response, label) == expected


def test_strip_direct_removes_the_instruction():
    assert strip_direct("Q?\n(A) x\n" + DIRECT) == "Q?\n(A) x"


def test_aggregate_is_micro_over_items(sample_tree):
    items = list(V.items(sample_tree("vstar", n=5)))  # 3 attribute, 2 spatial
    res = V.aggregate(items, [1, 1, 0, 0, 0])
    cats = res["categories"]
    assert cats["direct_attributes"]["n"] == 3 and cats["relative_position"]["n"] == 2
    assert res["overall"] == pytest.approx(2 / 5)
    heads, vals = V.table(res)
    assert heads == ["Attribute", "Spatial", "Overall"] and vals[-1] == "40.00"
