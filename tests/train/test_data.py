"""The SFT dataset over shards: exact lengths without decoding images, split patterns, max_length,
rows read back across row groups, picklable for DataLoader workers."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
from pathlib import Path

import pytest

pytest.importorskip("torch")

from vlir.corpus.shards import ShardWriter  # noqa: E402
from vlir.models.chat import ChatConfig, encode_record  # noqa: E402
from vlir.train.data import SFTDataset  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, make_record) -> Path:
    """synth/train: 7 records in row groups of 3 (so reads cross row groups); synth/val: 2."""
    root = tmp_path_factory.mktemp("data_corpus")
    manifest = {"splits": {}, "roots": {}}
    for split, n in (("train", 7), ("val", 2)):
        path = root / "synth" / split / "part-00000.parquet"
        with ShardWriter(path, row_group_rows=3) as writer:
            for i in range(n):
                record, image = make_record((0, 1, 4)[i % 3], seed=i, size=(140 + 20 * i, 100))
                buf = io.BytesIO()
                image.save(buf, "PNG")
                writer.write(dataclasses.replace(record, image_bytes=buf.getvalue(), sample=dataclasses.replace(
                    record.sample, id=f"synth/{split}/{i}", split=split)))
            writer.close()
        manifest["splits"][f"synth/{split}"] = {"source": "synth", "split": split}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_lengths_are_exact_and_rows_round_trip(corpus, tiny):
    _, processor = tiny
    cfg = ChatConfig.for_processor(processor)
    ds = SFTDataset(corpus, processor, cfg, splits=["synth/train"])
    assert len(ds) == 7
    for i in range(len(ds)):
        record = ds.record(i)
        assert record.sample.id == f"synth/train/{i}"
        encoded = ds[i]
        assert encoded["input_ids"].shape[0] == ds.lengths[i]
        assert len(record.crops) == len(record.chain.looks)
        ref = encode_record(record, ds.corpus.image(record), processor, cfg)
        assert encoded["input_ids"].tolist() == ref["input_ids"].tolist()


def test_split_patterns_and_max_length(corpus, tiny):
    _, processor = tiny
    cfg = ChatConfig.for_processor(processor)
    assert len(SFTDataset(corpus, processor, cfg)) == 9
    assert len(SFTDataset(corpus, processor, cfg, splits=["*/val"])) == 2
    with pytest.raises(ValueError, match="matches nothing"):
        SFTDataset(corpus, processor, cfg, splits=["gqa/*"])
    full = SFTDataset(corpus, processor, cfg, splits=["*/train"])
    limit = sorted(full.lengths)[3]
    short = SFTDataset(corpus, processor, cfg, splits=["*/train"], max_length=limit)
    assert len(short) == sum(n <= limit for n in full.lengths) and short.dropped == 7 - len(short)
    assert max(short.lengths) <= limit
    with pytest.raises(ValueError, match="no trainable records"):
        SFTDataset(corpus, processor, cfg, max_length=1)


def test_pickles_without_its_cache(corpus, tiny):
    _, processor = tiny
    ds = SFTDataset(corpus, processor, ChatConfig.for_processor(processor), splits=["synth/train"])
    ds.record(0)
    assert ds._cache
    clone = pickle.loads(pickle.dumps(ds))
    assert not clone._cache
    assert clone.record(5).sample.id == "synth/train/5"
