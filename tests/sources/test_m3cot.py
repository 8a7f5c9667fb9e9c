"""M3CoT adapter: the Parquet sample tree (HF layout, embedded images extracted once), the JSON
Lines form, and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from vlir.records import Invalid, Sample
from vlir.sources.m3cot import LETTERS, M3CoTSource, format_question
from tests.sources.conftest import read_all, digest, refuses

SRC = M3CoTSource()
COLUMNS = ["id", "category", "image_id", "question", "choices", "context", "answer", "rationale",
           "split", "image", "domain", "topic"]


def read(root, split="train", **options):
    return read_all(SRC, root, split, **options)


def rows(root: Path, split: str) -> list[dict]:
    return pq.read_table(root / "data" / f"{split}-00000-of-00001.parquet").to_pylist()


def jsonl_tree(tree: Path, records: list) -> Path:
    """The JSON Lines form: records without embedded images, PNGs under images/."""
    root = tree.parent / "m3cot_jsonl"
    (root / "images").mkdir(parents=True)
    for r in rows(tree, "train"):
        (root / "images" / f"{r['image_id']}.png").write_bytes(r["image"]["bytes"])
    (root / "train.jsonl").write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                                              for r in records))
    return root


def plain(r: dict) -> dict:
    return {k: v for k, v in r.items() if k != "image"}


def test_registry_contract():
    assert SRC.name == "m3cot" and SRC.splits == ("train", "val", "test")
    assert SRC.expected_files and SRC.homepage and SRC.license


def test_hugging_face_layout(pristine):
    assert sorted(p.name for p in (pristine / "data").iterdir()) == [
        "train-00000-of-00001.parquet", "validation-00000-of-00001.parquet"]
    schema = pq.read_schema(pristine / "data" / "train-00000-of-00001.parquet")
    assert schema.names == COLUMNS
    features = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert features["image"] == {"_type": "Image"} and features["choices"]["_type"] == "List"
    for r in rows(pristine, "validation"):
        assert r["split"] == "validation" and r["answer"] in LETTERS[:len(r["choices"])]
        assert r["rationale"].endswith(f"So the answer is ({r['answer']}).")
        assert Image.open(__import__("io").BytesIO(r["image"]["bytes"])).format == "PNG"


def test_reads_parquet_and_extracts_images_once(tree):
    samples, stats = read(tree, "val")
    assert stats["samples"] == 8 and stats["images_extracted"] == 8 and not stats["invalid"]
    source_rows = {r["id"]: r for r in rows(tree, "validation")}
    for s in samples:
        row = source_rows[s.meta["m3cot_id"]]
        assert isinstance(s, Sample) and s.id == f"m3cot/val/{row['id']}"
        assert s.image == f"images/{row['image_id']}.png"
        assert (tree / s.image).read_bytes() == row["image"]["bytes"]
        with Image.open(tree / s.image) as img:
            assert img.size == (s.width, s.height)
        assert s.answers == (row["answer"],) and not s.evidence
        assert s.meta["answer_text"] == row["choices"][LETTERS.index(row["answer"])]
        assert s.question == format_question(row["question"], row["choices"], row["context"])
        assert s.meta["rationale"] == row["rationale"] and s.meta["domain"] == "science"
    again, stats = read(tree, "val")
    assert again == samples and not stats["images_extracted"]
    _, stats = read(tree, "train")
    assert stats["samples"] == 8


def test_format_question():
    text = format_question("Which is tallest?", ["oak", "pine"], "A park.")
    assert text == "Context: A park.\nWhich is tallest?\nOptions:\n(A) oak\n(B) pine"
    assert format_question("Q?", ["a", "b"]).startswith("Q?\nOptions:")


def test_without_extraction_the_image_is_missing(tree):
    items, stats = read(tree, "val", extract_images=False)
    assert {i.reason for i in items} == {"missing_image"} and stats["invalid"] == 8
    assert not (tree / "images").exists()


def test_jsonl_form_with_image_folder_and_split_filter(tree):
    records = [plain(r) for r in rows(tree, "train")]
    records[0]["split"] = "test"  # another split: skipped
    for r in records[1:3]:
        del r["split"]  # no split field: belongs to the split asked for
    root = jsonl_tree(tree, records)
    samples, stats = read(root, "train")
    assert stats["samples"] == 7 and stats["other_split"] == 1
    assert all(s.image.startswith("images/") for s in samples)
    explicit, _ = read(root, "train", files=root / "train.jsonl")
    assert explicit == samples


def test_malformed_records_are_rejected_and_the_read_goes_on(tree):
    records = [plain(r) for r in rows(tree, "train")]
    records[0]["answer"] = "Z"
    records[1]["choices"] = "oak, pine"
    del records[2]["question"]
    del records[3]["id"]
    records[4]["context"] = 3
    root = jsonl_tree(tree, records[:5] + ["{oops"] + records[5:])
    items, stats = read(root, "train")
    bad = [i for i in items if isinstance(i, Invalid)]
    assert len(bad) == 6 and {i.reason for i in bad} == {"malformed"}
    assert bad[0].detail.startswith(f"train.jsonl: record {records[0]['id']}:") and "answer" in bad[0].detail
    assert "choices" in bad[1].detail and "question" in bad[2].detail
    assert bad[3].detail == "train.jsonl: record 3: missing or invalid 'id'"
    assert "context" in bad[4].detail and "not valid JSON" in bad[5].detail
    assert stats["samples"] == 3


def test_unsafe_and_missing_images(tree):
    records = [plain(r) for r in rows(tree, "train")]
    records[0]["image_id"] = "../../escape"
    records[1]["image"] = "../../../etc/passwd"
    records[2]["image_id"] = "no-such-image"
    root = jsonl_tree(tree, records)
    items, _ = read(root, "train")
    assert [i.reason for i in items[:3]] == ["unsafe_path", "unsafe_path", "missing_image"]
    assert "no-such-image.png" in items[2].detail
    assert all(isinstance(s, Sample) for s in items[3:])


def test_unreadable_parquet_is_a_source_error(tree):
    (tree / "data" / "validation-00000-of-00001.parquet").write_bytes(b"PAR1 this is not parquet")
    refuses(SRC, tree, "val", "validation-00000-of-00001.parquet")


def test_missing_files_are_a_source_error(tmp_path):
    refuses(SRC, tmp_path, "test", "test.jsonl")


def test_sample_tree_is_deterministic(tmp_path, pristine):
    SRC.write_sample_tree(tmp_path / "again", 8, seed=0)
    assert digest(tmp_path / "again") == digest(pristine)
