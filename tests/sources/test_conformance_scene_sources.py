"""Conformance on the real pack (``../shared/real``): GQA, VSR and M3CoT read the official records.

What the pack holds and what it lacks decides what is asserted:
- GQA val: 5 real questions and their 4 real images, no scene graphs -> 5 samples, sizes from the
  images, empty evidence, ``missing_scene_graph`` == 5.
- VSR random/test and zeroshot/test: 300 real lines each, no COCO images or instances -> every line
  is ``Invalid("missing_image")`` naming the COCO folder its ``image_link`` gives; with stand-in
  images at those names, 300 samples each with empty evidence and ``missing_instances`` == 300.
- M3CoT ``sample.jsonl``: 9 real records (one per topic), no images -> 9 ``missing_image``; with
  stand-in images at ``images/<image_id>.png``, 9 multiple-choice samples.
The sample trees' record keys are checked against the real records too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from vlir.records import Invalid, Sample
from vlir.sources.gqa import GQASource, annotated_object_ids, program_object_ids
from vlir.sources.m3cot import LETTERS, M3CoTSource
from vlir.sources.vsr import VSRSource
from tests.sources.conftest import read_all as read

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "real"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="the real pack ../shared/real is absent")




def stand_in_images(root: Path, relative_paths) -> None:
    for rel in set(relative_paths):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (120, 130, 140)).save(path)


def test_gqa_val(tmp_path):
    path = REAL / "gqa" / "questions" / "val_balanced_questions.json"
    records = json.loads(path.read_text())
    samples, stats = read(GQASource(), REAL / "gqa", "val")
    assert [s.id for s in samples] == [f"gqa/val/{qid}" for qid in records]
    assert all(isinstance(s, Sample) for s in samples)
    assert stats["samples"] == 5 and stats["missing_scene_graph"] == 5 and not stats["invalid"]
    for s in samples:
        record = records[s.meta["question_id"]]
        assert s.question == record["question"] and s.answers == (record["answer"],)
        assert s.image == f"images/{record['imageId']}.jpg" and not s.evidence
        with Image.open(REAL / "gqa" / s.image) as img:
            assert (s.width, s.height) == img.size
        assert s.meta["semantic"] == record["semantic"] and s.meta["types"] == record["types"]
        # every annotated object is named by the program, which is what the annotator walks
        named = {oid for step in record["semantic"] for oid in program_object_ids(step["argument"])}
        assert set(annotated_object_ids(record["annotations"])) <= named
    # the sample tree writes the real records' keys in the real order
    GQASource().write_sample_tree(tmp_path / "tree", 2, seed=0)
    tree = json.loads((tmp_path / "tree" / "questions" / "val_balanced_questions.json").read_text())
    assert {tuple(r) for r in tree.values()} == {tuple(r) for r in records.values()}


@pytest.mark.parametrize("kind", ["random", "zeroshot"])
def test_vsr_test_splits_without_images(kind):
    lines = [json.loads(x) for x in (REAL / "vsr" / "splits" / kind / "test.jsonl").read_text().splitlines()]
    items, stats = read(VSRSource(), REAL / "vsr", f"{kind}/test")
    assert len(items) == len(lines) == 300
    assert all(isinstance(i, Invalid) and i.reason == "missing_image" for i in items)
    for item, line in zip(items, lines):
        subset = line["image_link"].split("/")[-2]
        assert item.image == f"{subset}/{line['image']}" and line["image"] in item.detail
    assert stats["invalid_missing_image"] == 300 and stats["instances_file_missing"] >= 1


@pytest.mark.parametrize("kind", ["random", "zeroshot"])
def test_vsr_test_splits_with_stand_in_images(tmp_path, kind):
    root = tmp_path / "vsr"
    shutil.copytree(REAL / "vsr", root)
    lines = [json.loads(x) for x in (root / "splits" / kind / "test.jsonl").read_text().splitlines()]
    stand_in_images(root, (f"{line['image_link'].split('/')[-2]}/{line['image']}" for line in lines))
    split = "test" if kind == "random" else "zeroshot/test"
    samples, stats = read(VSRSource(), root, split)
    assert stats["samples"] == 300 and stats["missing_instances"] == 300 and not stats["invalid"]
    for i, (s, line) in enumerate(zip(samples, lines)):
        assert s.id == f"vsr/{kind}/test/{i}" and not s.evidence and (s.width, s.height) == (64, 48)
        assert s.answers == (("true",) if line["label"] == 1 else ("false",))
        assert line["caption"] in s.question and s.meta["relation"] == line["relation"]
        # the real validator ids are stringified lists; the sample holds lists
        assert s.meta["vote_true_validator_id"] == json.loads(line["vote_true_validator_id"])
        if kind == "zeroshot":
            assert (s.meta["subj"], s.meta["obj"]) == (line["subj"], line["obj"])
        else:
            assert s.meta["subj"] and s.meta["obj"] and s.meta["subj_obj_from"] == "caption"
            assert s.meta["reference_frame"] == line["reference_frame"]


def test_vsr_sample_tree_keys_match_the_real_lines(tmp_path):
    VSRSource().write_sample_tree(tmp_path / "tree", 2, seed=0)
    for kind in ("random", "zeroshot"):
        real = json.loads((REAL / "vsr" / "splits" / kind / "test.jsonl").read_text().splitlines()[0])
        ours = json.loads((tmp_path / "tree" / "splits" / kind / "train.jsonl").read_text().splitlines()[0])
        assert list(ours) == list(real)
        assert {k: type(v) for k, v in ours.items() if v is not None} == \
            {k: type(v) for k, v in real.items() if v is not None}


def test_m3cot_sample(tmp_path):
    src = REAL / "m3cot" / "sample.jsonl"
    records = [json.loads(x) for x in src.read_text().splitlines()]
    items, stats = read(M3CoTSource(), REAL / "m3cot", "test", files=src)
    assert len(items) == 9 and stats["invalid_missing_image"] == 9
    assert all(isinstance(i, Invalid) and i.reason == "missing_image" for i in items)

    root = tmp_path / "m3cot"
    root.mkdir()
    shutil.copy(src, root / "test.jsonl")
    stand_in_images(root, (f"images/{r['image_id']}.png" for r in records))
    samples, stats = read(M3CoTSource(), root, "test")
    assert stats["samples"] == 9 and not stats["invalid"]
    assert len({s.meta["topic"] for s in samples}) == 9
    for s, r in zip(samples, records):
        assert s.id == f"m3cot/test/{r['id']}" and s.answers == (r["answer"],)
        assert s.meta["choices"] == r["choices"]
        assert s.meta["answer_text"] == r["choices"][LETTERS.index(r["answer"])]
        assert r["question"] in s.question
        assert all(f"({LETTERS[i]}) {c}" in s.question for i, c in enumerate(r["choices"]))


def test_m3cot_sample_tree_columns_cover_the_real_fields(tmp_path):
    import pyarrow.parquet as pq

    real = json.loads((REAL / "m3cot" / "sample.jsonl").read_text().splitlines()[0])
    M3CoTSource().write_sample_tree(tmp_path / "tree", 2, seed=0)
    names = pq.read_schema(tmp_path / "tree" / "data" / "train-00000-of-00001.parquet").names
    assert set(real) <= set(names)
