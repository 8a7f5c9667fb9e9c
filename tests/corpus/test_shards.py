import pyarrow.parquet as pq
from PIL import Image

from vlir.corpus import shards
from vlir.records import Record
from tests.conftest import make_record


def test_write_read_round_trip_and_determinism(tmp_path):
    recs = [make_record(i, looks=i % 5) for i in range(7)]
    a = shards.write_records(tmp_path / "a" / "part-00000.parquet", recs)
    b = shards.write_records(tmp_path / "b" / "part-00000.parquet", recs)
    assert a["sha256"] == b["sha256"] and a["rows"] == 7  # byte-identical: no timestamps inside
    assert list(shards.read_records(tmp_path / "a")) == recs
    assert not list((tmp_path / "a").glob("*.tmp"))


def test_streaming_writer_uses_row_groups(tmp_path):
    w = shards.ShardWriter(tmp_path / "p.parquet", row_group_rows=3)
    for i in range(8):
        w.write(make_record(i))
    assert not (tmp_path / "p.parquet").exists()  # only the temp name until close
    w.close()
    assert pq.ParquetFile(tmp_path / "p.parquet").metadata.num_row_groups == 3


def test_aborted_writer_leaves_nothing(tmp_path):
    w = shards.ShardWriter(tmp_path / "p.parquet")
    w.write(make_record(0))
    w.abort()
    assert list(tmp_path.iterdir()) == []


def test_load_dataset_decodes_images(tmp_path):
    recs = [make_record(i, looks=2, embed=True) for i in range(3)]
    shards.write_records(tmp_path / "gqa" / "val" / "part-00000.parquet", recs)
    from datasets import load_dataset

    ds = load_dataset("parquet", data_dir=str(tmp_path / "gqa" / "val"), split="train",
                      cache_dir=str(tmp_path / "hf"))
    row = ds[0]
    assert isinstance(row["image"], Image.Image) and row["image"].size == (320, 240)
    assert len(row["crops"]) == 2 and all(isinstance(c, Image.Image) for c in row["crops"])
    assert row["crops"][0].size == (recs[0].crops[0].width, recs[0].crops[0].height)
    assert ds.features["crops"].feature.__class__.__name__ == "Image"


def test_reference_mode_keeps_path_and_hash(tmp_path):
    rec = make_record(0, embed=False)
    shards.write_records(tmp_path / "s" / "part-00000.parquet", [rec])
    row = next(shards.iter_rows(tmp_path / "s" / "part-00000.parquet"))
    assert row["image"] is None and row["image_path"] == "images/0.jpg" and len(row["image_sha256"]) == 64


def test_corpus_resolves_referenced_images(vlir_output):
    corpus = shards.Corpus(vlir_output)
    assert corpus.splits() == [("gqa", "val")]
    recs = list(corpus.records("gqa", "val"))
    assert len(recs) == 6 and all(isinstance(r, Record) for r in recs)
    assert corpus.image(recs[0]).size == (recs[0].sample.width, recs[0].sample.height)
    assert len(list(corpus.records("gqa", "val", rejects=True))) == 2


def test_arrow_schema_is_datasets_features_schema():
    """The build writes shards with a schema made by pyarrow alone (no `datasets` import on the build
    path); it must stay byte-equal to what `datasets` derives from the same features, metadata
    included, or readers would see another dataset."""
    assert shards.arrow_schema().equals(shards.features().arrow_schema, check_metadata=True)


def test_writer_with_no_rows_writes_no_file(tmp_path):
    """An empty shard would be a split "with no data" to ``datasets``: none is written, and a stale
    file under the final name goes too."""
    path = tmp_path / "s" / "part-00000.parquet"
    shards.write_records(path, [make_record(0)])
    info = shards.write_records(path, [])
    assert info == {"rows": 0, "sha256": None, "bytes": 0}
    assert not path.exists() and not list(path.parent.glob("*.tmp"))
