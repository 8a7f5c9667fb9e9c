"""`vlir rl-data`: per-source quotas, determinism, order independence, embedded original images."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from PIL import Image

from vlir import images
from vlir.cli import main
from vlir.records import Chain, Provenance, Record, Sample, Think
from vlir.corpus.shards import read_records, write_records
from vlir.train.rl_data import RLSet, build_rl_set, read_manifest, select, selection_key, verify


def _record(source: str, i: int, image_bytes: bytes | None = None, sha: str | None = None) -> Record:
    sample = Sample(id=f"{source}/train/{i}", source=source, split="train", image=f"images/{i % 3}.png",
                    width=40, height=30, question=f"q{i}?", answers=(f"a{i}",))
    return Record(sample, Chain((Think("look"),), f"a{i}"), Provenance("grounded", "0.1.0"),
                  image_sha256=sha, image_bytes=image_bytes)


@pytest.fixture()
def corpus(tmp_path) -> Path:
    """gqa: 12 records referencing images under a source root; vsr: 5 with embedded images."""
    root = tmp_path / "gqa_root"
    (root / "images").mkdir(parents=True)
    blobs = []
    for k in range(3):
        path = root / "images" / f"{k}.png"
        Image.new("RGB", (40, 30), (40 * k, 90, 200)).save(path)
        blobs.append(path.read_bytes())
    out = tmp_path / "vlir"
    write_records(out / "gqa/train/part-00000.parquet",
                  [_record("gqa", i, sha=images.sha256_hex(blobs[i % 3])) for i in range(12)])
    write_records(out / "vsr/train/part-00000.parquet", [_record("vsr", i, image_bytes=blobs[0]) for i in range(5)])
    manifest = {"splits": {f"{s}/train": {"source": s, "split": "train"} for s in ("gqa", "vsr")},
                "roots": {"gqa": str(root)}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_quotas_and_embedded_images(corpus, tmp_path):
    man = build_rl_set(corpus, tmp_path / "rl", {"gqa": 4, "vsr": 9, "textvqa": 3}, seed=7)
    assert man["counts"] == {"gqa": 4, "vsr": 5, "textvqa": 0}  # vsr short; textvqa absent
    recs = list(read_records(tmp_path / "rl"))
    assert len(recs) == 9 == man["rows"]
    keys = [selection_key(7, r.sample.id) for r in recs]
    assert keys == sorted(keys)  # seeded order, sources mixed
    gqa_ids = sorted(r.sample.id for r in recs if r.sample.source == "gqa")
    expect = sorted(sorted((f"gqa/train/{i}" for i in range(12)), key=lambda x: selection_key(7, x))[:4])
    assert gqa_ids == expect
    root = corpus.parent / "gqa_root"
    for r in recs:
        if r.sample.source == "gqa":
            assert r.image_bytes == (root / r.sample.image).read_bytes()  # exact original bytes
    verify(tmp_path / "rl")
    rl = RLSet(tmp_path / "rl")
    assert len(rl) == 9 and rl.describe() == {"gqa": 4, "vsr": 5}
    p = rl[3]
    assert p.image.size == (40, 30) and p.answers == (recs[3].sample.answers) and p.id == recs[3].sample.id


def test_deterministic_and_independent_of_order(corpus, tmp_path):
    build_rl_set(corpus, tmp_path / "a", {"gqa": 5}, seed=1)
    build_rl_set(corpus, tmp_path / "b", {"gqa": 5}, seed=1)
    assert (tmp_path / "a/part-00000.parquet").read_bytes() == (tmp_path / "b/part-00000.parquet").read_bytes()
    build_rl_set(corpus, tmp_path / "c", {"gqa": 5}, seed=2)
    ids = lambda d: [r.sample.id for r in read_records(tmp_path / d)]  # noqa: E731
    assert ids("a") != ids("c")
    recs = [_record("gqa", i) for i in range(30)]
    forward = [r.sample.id for _, r in select(recs, 7, seed=3)]
    backward = [r.sample.id for _, r in select(list(reversed(recs)), 7, seed=3)]
    assert forward == backward and len(forward) == 7


def test_default_quotas_are_the_papers_sources_and_absent_ones_are_a_warning(corpus, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="vlir.train.rl_data"):
        man = build_rl_set(corpus, tmp_path / "rl")
    assert man["quotas"] == {"gqa": 1000, "vsr": 1000} and man["rows"] == 17
    assert read_manifest(tmp_path / "rl")["seed"] == 0
    # M3CoT (and TextVQA, DocVQA) absent: said in one line naming the paper's five-source mix
    assert man["missing_paper_sources"] == ["textvqa", "docvqa", "m3cot"]
    [warning] = [r.getMessage() for r in caplog.records if "mix" in r.getMessage()]
    assert "no train split of textvqa, docvqa, m3cot" in warning
    assert "the paper's R-GRPO mix is five sources (textvqa, gqa, vsr, docvqa, m3cot)" in warning
    caplog.clear()
    with caplog.at_level("WARNING", logger="vlir.train.rl_data"):
        chosen = build_rl_set(corpus, tmp_path / "chosen", {"gqa": 2})  # an explicit mix: no warning
    assert "missing_paper_sources" not in chosen and not [r for r in caplog.records if "mix" in r.getMessage()]


def test_the_rl_folder_loads_with_datasets_parquet(corpus, tmp_path):
    """No side file beside the shard: the manifest lives in .vlir/, which `datasets` skips."""
    datasets = pytest.importorskip("datasets")
    build_rl_set(corpus, tmp_path / "rl", {"gqa": 3, "vsr": 2}, seed=0)
    assert sorted(p.name for p in (tmp_path / "rl").iterdir()) == [".vlir", "part-00000.parquet"]
    assert (tmp_path / "rl/.vlir/rl_data.json").is_file()
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "rl"), split="train")
    assert len(ds) == 5 and sorted(set(ds["source"])) == ["gqa", "vsr"]


def test_tampered_image_is_refused(corpus, tmp_path):
    (corpus.parent / "gqa_root/images/1.png").write_bytes(b"not the same")
    with pytest.raises(ValueError, match="sha256"):
        build_rl_set(corpus, tmp_path / "rl", {"gqa": 12})


def test_cli(corpus, tmp_path, capsys):
    out = tmp_path / "rl"
    assert main(["rl-data", "--root", str(corpus), "--out", str(out), "--sources", "gqa,vsr",
                 "--per-source", "2", "--quota", "vsr=1", "--seed", "3"]) == 0
    assert "RL set: 3 records (gqa 2, vsr 1)" in capsys.readouterr().out
    assert main(["rl-data", "--root", str(corpus), "--out", str(out), "--per-source", "3"]) == 0
    assert "RL set: 6 records (gqa 3, vsr 3)" in capsys.readouterr().out
    assert main(["rl-data", "--root", str(tmp_path), "--out", str(out)]) == 2
    assert main(["rl-data", "--root", str(corpus), "--out", str(out), "--quota", "gqa"]) == 2
    assert main(["rl-data", "--root", str(corpus), "--out", str(out), "--sources", "textvqa"]) == 2
    assert "no records selected" in capsys.readouterr().err


def test_rl_set_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="vlir rl-data"):
        RLSet(tmp_path)
    write_records(tmp_path / "part-00000.parquet", [dataclasses.replace(_record("gqa", 0))])
    with pytest.raises(ValueError, match="no embedded image"):
        RLSet(tmp_path)[0]
