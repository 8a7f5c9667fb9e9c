import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlir.manifest import write_manifest
from vlir.shards import sha256_file
from vlir.validate import NotVlirOutput, validate_output


def _reasons(report):
    return [str(p) for p in report.problems]


def test_clean_output_passes(vlir_output):
    report = validate_output(vlir_output)
    assert report.ok, _reasons(report)
    assert report.counts["gqa/val"]["accepted"] == 6 and report.counts["gqa/val"]["rejected"] == 2


def test_truncated_shard(vlir_output):
    p = vlir_output / "gqa/val/part-00000.parquet"
    p.write_bytes(p.read_bytes()[:-100])
    msgs = _reasons(validate_output(vlir_output))
    assert any("part-00000.parquet" in m and "truncated" in m for m in msgs)
    assert any("unreadable Parquet" in m for m in msgs)


def test_edited_shard_same_size(vlir_output):
    p = vlir_output / "gqa/val/part-00000.parquet"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    assert any("checksum differs" in m for m in _reasons(validate_output(vlir_output)))


def test_missing_shard(vlir_output):
    (vlir_output / "rejects/gqa/val/rejects-00000.parquet").unlink()
    msgs = _reasons(validate_output(vlir_output))
    assert any("rejects-00000.parquet" in m and "missing" in m for m in msgs)


def test_row_breaking_schema_is_named(vlir_output):
    p = vlir_output / "gqa/val/part-00000.parquet"
    table = pq.read_table(p)
    rows = table.to_pylist()
    rows[2]["status"] = "maybe"
    rows[3]["steps"][1]["box"] = [50.0, 10.0, 20.0, 30.0]  # inverted look box
    rows[4]["crops"] = []  # a look without its crop
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), p)
    # re-stamp the checksums so only the row problems remain
    stats = vlir_output / ".vlir/gqa/val/stats/00000.json"
    s = json.loads(stats.read_text())
    for shard in s["shards"]:
        f = vlir_output / shard["path"]
        shard["sha256"], shard["bytes"] = sha256_file(f), f.stat().st_size
    stats.write_text(json.dumps(s))
    write_manifest(vlir_output)
    msgs = _reasons(validate_output(vlir_output))
    assert any("row 2: status" in m for m in msgs), msgs
    assert any("row 3: look 0/box" in m and "no positive area" in m for m in msgs), msgs
    assert any("row 4: crops" in m for m in msgs), msgs


def test_duplicate_ids_and_unlisted_shards(vlir_output):
    src = vlir_output / "gqa/val/part-00000.parquet"
    shutil.copy(src, vlir_output / "gqa/val/part-00001.parquet")
    msgs = _reasons(validate_output(vlir_output))
    assert any("not listed in the manifest" in m for m in msgs)


def test_not_a_vlir_output(tmp_path):
    with pytest.raises(NotVlirOutput):
        validate_output(tmp_path)
    (tmp_path / "manifest.json").write_text('{"hello": 1}')
    with pytest.raises(NotVlirOutput):
        validate_output(tmp_path)
