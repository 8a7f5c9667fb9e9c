"""CV-Bench: jsonl and parquet readers, layout errors, Cambrian's first-letter rule, VLM-R3's
verifier, and the official source weighting against VLM-R3's 2D plain mean."""

from __future__ import annotations

import io
import json
import shutil

import pytest

from tests.eval.benchmarks.judge_support import scripted_judge
from vlir.eval.benchmarks.base import BenchmarkLayoutError, get
from vlir.eval.benchmarks.cvbench import cambrian_letter


BENCH = "cvbench"
SAMPLE_N = 9


def test_reader_reads_both_files(items):
    assert len(items) == 9
    assert {it.meta["source"] for it in items} == {"ADE20K", "COCO", "Omni3D"}
    assert [it.meta["type"] for it in items] == ["2D"] * 6 + ["3D"] * 3   # test_2d then test_3d
    it = items[0]
    assert it.answer == "a" and it.meta["answer_raw"] == "(A)" and it.options[0] == "1"
    assert it.question.startswith(it.meta["prompt"]) and it.question.endswith("directly.")
    assert it.image.open().size == (160, 120)


def test_parquet_form_with_embedded_images(tree, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for kind in ("2d", "3d"):
        rows = [json.loads(line) for line in open(tree / f"test_{kind}.jsonl")]
        for row in rows:
            row["image"] = {"bytes": (tree / row["filename"]).read_bytes(), "path": row["filename"]}
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / f"test_{kind}.parquet")
    got = list(get("cvbench").items(tmp_path))   # no img/ folder: images come from the parquet
    assert [it.id for it in got] == [it.id for it in get("cvbench").items(tree)]
    assert got[0].image.data is not None and got[0].image.open().size == (160, 120)


def test_wrong_folder_and_bad_rows(tree, tmp_path):
    with pytest.raises(BenchmarkLayoutError, match="test_2d.jsonl"):
        list(get("cvbench").items(tmp_path))
    (tmp_path / "test_2d.jsonl").write_text('{"idx": 0}\n')
    with pytest.raises(BenchmarkLayoutError, match=r"test_2d\.jsonl: line 1: missing field"):
        list(get("cvbench").items(tmp_path))
    row = json.loads(open(tree / "test_2d.jsonl").readline())
    (tmp_path / "test_2d.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(BenchmarkLayoutError, match=row["filename"]):   # no img/ here
        list(get("cvbench").items(tmp_path))
    (tmp_path / "test_2d.jsonl").write_text("not json\n")
    with pytest.raises(BenchmarkLayoutError, match="line 1 is not JSON"):
        list(get("cvbench").items(tmp_path))


@pytest.mark.parametrize("response,letter", [
    ("A", "a"), ("(A)", "a"), ("A.", "a"), ("(a) 1", "a"), ("B. left", "b"),
    ("The answer is (C).", "c"), ("Answer: D", "d"),
    ("The answer is: B", ":"),  # quirk: "answer is" splits first, leaving ": b" (first char ":")
    ("Left", "l"),             # quirk: a long reply is judged on its first character
    ("3 circles", "3"), ("", ""),
])
def test_cambrian_first_letter_rule(response, letter):
    assert cambrian_letter(response) == letter


def test_grading(items):
    bench = get("cvbench")
    it = items[0]
    assert bench.judge(it, bench.extract(it, "<answer>A</answer>", "A")) == 1.0
    assert bench.judge(it, bench.extract(it, "The answer is (A) 1", None)) == 1.0
    assert bench.judge(it, bench.extract(it, "B", "B")) == 0.0
    # the first-character quirk: a sentence is judged on its first letter, whatever it says
    assert bench.judge(it, bench.extract(it, "Clearly (A)", None)) == 0.0
    assert bench.judge(it, bench.extract(it, "After looking, B", None)) == 1.0


def test_vlmr3_variant(items, tmp_path):
    it = items[0]
    plain = get("cvbench").configure(variant="vlmr3")
    assert plain.judge(it, plain.extract(it, "x\n(A)", None)) == 1.0    # last line equals "(A)"
    assert plain.judge(it, plain.extract(it, "<answer>A</answer>", None)) == 0.0  # "A" != "(A)", no judge
    judge, client = scripted_judge(tmp_path, "1.0")
    judged = get("cvbench").configure(variant="vlmr3", judge=judge)
    assert judged.judge(it, "A") == 1.0 and "Correct answer: (A)" in client.prompts[0]


def test_official_weighting_and_vlmr3_mean(items):
    bench = get("cvbench")
    by_source = {"ADE20K": 1.0, "COCO": 0.0, "Omni3D": 1.0}
    scores = [by_source[it.meta["source"]] for it in items]
    result = bench.aggregate(items, scores)
    assert result["official_complete"]
    assert result["overall"] == pytest.approx(((1.0 + 0.0) / 2 + 1.0) / 2)   # 0.75
    assert result["accuracy_2d"] == 0.5 and result["accuracy_3d"] == 1.0
    n_ade = sum(it.meta["source"] == "ADE20K" for it in items)
    n_2d = sum(it.meta["type"] == "2D" for it in items)
    assert result["vlmr3_2d_mean"] == pytest.approx(n_ade / n_2d)
    assert result["sources"]["COCO"] == {"score": 0.0, "n": sum(it.meta["source"] == "COCO" for it in items)}
    assert set(result["categories"]) == {"2D/Count", "2D/Relation", "3D/Depth"}


def test_unbalanced_sources_differ_from_plain_mean(items):
    """Weighting by source is not the item mean: 3 ADE right, 1 COCO wrong, Omni3D all wrong."""
    bench = get("cvbench")
    chosen = [it for it in items if it.meta["source"] == "ADE20K"] + \
             [it for it in items if it.meta["source"] == "COCO"][:1] + \
             [it for it in items if it.meta["source"] == "Omni3D"]
    scores = [1.0 if it.meta["source"] == "ADE20K" else 0.0 for it in chosen]
    result = bench.aggregate(chosen, scores)
    assert result["overall"] == pytest.approx((1.0 + 0.0) / 2 / 2)
    assert result["vlmr3_2d_mean"] == pytest.approx(3 / 4)


def test_2d_only_download_is_flagged(tree, tmp_path):
    (tmp_path / "test_2d.jsonl").write_text((tree / "test_2d.jsonl").read_text())
    shutil.copytree(tree / "img", tmp_path / "img")  # a copy: a symlink leading out is refused (vlir.paths)
    got = list(get("cvbench").items(tmp_path))
    assert {it.meta["type"] for it in got} == {"2D"}
    result = get("cvbench").aggregate(got, [1.0] * len(got))
    assert not result["official_complete"] and result["metric"].startswith("INCOMPLETE")
    assert result["accuracy_3d"] is None
