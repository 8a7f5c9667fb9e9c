"""TreeBench: the streamed TSV with target boxes, the official prompt, answer rule and box mIoU."""

from __future__ import annotations

import pytest

from vlir.eval.benchmarks import _common as C
from vlir.eval.benchmarks import base
from vlir.eval.benchmarks.base import BenchItem, BenchmarkLayoutError, ImageRef
from vlir.eval.benchmarks.treebench import COLUMNS, TAGS, box_tags, mean_best_iou, official_tag
from vlir.records import Box

T = base.get("treebench")


def test_reader_keeps_boxes_and_builds_the_official_prompt(sample_tree):
    root = sample_tree("treebench", n=4)
    items = list(T.items(root))
    assert len(items) == 4 and items[0].category == TAGS[0]
    assert items[0].question.startswith("Which colour is the box in picture 0? Options:\nA. red\nB. blue")
    assert items[0].question.endswith("between <answer> and </answer>.")
    assert items[0].options == ("red", "blue", "green", "purple")
    assert len(items[1].target_boxes) == 2 and all(isinstance(b, Box) for b in items[1].target_boxes)
    assert items[0].image.open().size == (256, 192)


def test_literal_ocr_category_drops_the_options(tmp_path):
    row = {"index": 7, "image": C.b64(C.sample_picture(0)[0]), "question": "What does the sign say?",
           "multi-choice options": "A. STOP\nB. GO", "answer": "A", "category": "OCR", "target_instances": "[]"}
    C.write_tsv(tmp_path / "TreeBench.tsv", COLUMNS, [row])
    [item] = T.items(tmp_path)
    assert "Options" not in item.question and item.category == "Perception/OCR"


def test_bad_boxes_and_wrong_folder(tmp_path):
    with pytest.raises(BenchmarkLayoutError, match="TreeBench.tsv"):
        list(T.items(tmp_path))
    C.write_tsv(tmp_path / "TreeBench.tsv", COLUMNS, [{"index": 1, "image": C.b64(b"x"), "target_instances": "[[5, 5, 1, 1]]"}])
    with pytest.raises(BenchmarkLayoutError, match="line 2: target_instances"):
        list(T.items(tmp_path))


@pytest.mark.parametrize("response,expected", [
    ("<answer> b </answer>", "B"),
    ("<answer>C</answer> ... <answer>D</answer>", "C"),  # the first tag (re.search)
    ("<answer>\nA\n</answer>", "A"),
])
def test_answer_rule(response, expected):
    item = BenchItem(id="t", question="", image=ImageRef(), answer=expected)
    assert T.extract(item, response, None) == expected and T.judge(item, T.extract(item, response, None)) == 1.0


def test_no_answer_tag_compares_the_whole_response():
    item = BenchItem(id="t", question="", image=ImageRef(), answer="A")
    assert T.judge(item, T.extract(item, "a", None)) == 1.0  # the whole response, upper-cased
    assert T.judge(item, T.extract(item, "The answer is A", None)) == 0.0


def test_box_tags_follow_the_official_regexes():
    text = ("<box>[10,10,50,50]</box> <box>[0, 0, 5, 5]</box> <box>[60,60,40,80]</box> "
            "<box>[1.5,2,3,4]</box><box> [100,100,120,140]</box>")
    assert [b.as_list() for b in box_tags(text)] == [[10, 10, 50, 50], [100, 100, 120, 140]]


def test_mean_best_iou_per_target():
    targets = [Box(0, 0, 10, 10), Box(100, 100, 110, 110)]
    assert mean_best_iou(targets, [Box(0, 0, 10, 10)]) == pytest.approx(0.5)
    assert mean_best_iou(targets, [Box(0, 0, 10, 10), Box(100, 100, 110, 120)]) == pytest.approx(0.75)
    assert mean_best_iou([], [Box(0, 0, 1, 1)]) == 0.0 and mean_best_iou(targets, []) == 0.0


def test_item_metrics_official_and_crop(sample_tree):
    item = list(T.items(sample_tree("treebench", n=1)))[0]
    t = item.target_boxes[0]
    tag = f"<box>[{int(t.x1)},{int(t.y1)},{int(t.x2)},{int(t.y2)}]</box>"
    m = T.item_metrics(item, tag + "<answer>A</answer>", [Box(0, 0, 1, 1)])
    assert m["box_miou_official"] == pytest.approx(1.0) and m["crop_miou"] == 0.0


def test_aggregate_leaves_out_unknown_categories():
    items = [BenchItem(id=str(i), question="", image=ImageRef(), answer="A", category=c)
             for i, c in enumerate([TAGS[0], TAGS[0], TAGS[5], "Other"])]
    res = T.aggregate(items, [1, 0, 1, 1])
    assert res["overall"] == pytest.approx(2 / 3) and res["n"] == 3 and res["left_out"] == 1
    assert official_tag("Ordering") == "Reasoning/Ordering"
    heads, vals = T.table(res)
    assert heads[0] == "Attributes" and vals[0] == "50.00" and vals[-1] == "66.67"
