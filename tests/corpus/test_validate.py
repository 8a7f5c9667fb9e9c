import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlir.corpus.manifest import write_manifest
from vlir.corpus.shards import sha256_file
from vlir.corpus.validate import NotVlirOutput, validate_output


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


# ---------------------------------------------------------------------------------------------
# Issue 13: only expected files, stats checksums, nothing read outside OUT, interrupted builds
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rel", ["gqa/val/extra.parquet", "stray.parquet", "gqa/val/part-00000.parquet.tmp",
                                 "gqa/val/PART-00001.PARQUET", "rejects/gqa/val/notes.txt",
                                 ".vlir/tmp/abc-part-00000.parquet.tmp"])
def test_files_the_layout_does_not_expect_are_refused(vlir_output, rel):
    (vlir_output / rel).parent.mkdir(parents=True, exist_ok=True)
    (vlir_output / rel).write_bytes(b"PAR1")
    msgs = _reasons(validate_output(vlir_output))
    assert any(m.startswith(f"{rel}: ") for m in msgs), msgs


def test_card_and_cache_files_are_expected(vlir_output):
    from vlir.corpus.cards import write_card

    write_card(vlir_output)
    (vlir_output / "cache").mkdir()
    (vlir_output / "cache" / "teacher.sqlite").write_bytes(b"")
    assert validate_output(vlir_output).ok, _reasons(validate_output(vlir_output))


def test_rehashed_shard_disagrees_with_the_task_stats(vlir_output):
    """An edited shard whose new sha256 and size were written into the manifest still fails."""
    rel = "gqa/val/part-00000.parquet"
    table = pq.read_table(vlir_output / rel)
    rows = table.to_pylist()
    rows[0]["answer"] = "blue"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), vlir_output / rel)
    manifest = json.loads((vlir_output / "manifest.json").read_text())
    for shard in manifest["shards"]:
        if shard["path"] == rel:
            shard["sha256"], shard["bytes"] = sha256_file(vlir_output / rel), (vlir_output / rel).stat().st_size
    (vlir_output / "manifest.json").write_text(json.dumps(manifest))
    msgs = _reasons(validate_output(vlir_output))
    assert any(m.startswith(".vlir/gqa/val/stats/00000.json: shards/gqa/val/part-00000.parquet/sha256") for m in msgs), msgs


@pytest.mark.parametrize("bad", ["../victim/part-00000.parquet", "/etc/passwd", "gqa/../../victim/x.parquet"])
def test_manifest_paths_outside_out_are_reported_not_read(vlir_output, tmp_path, bad, monkeypatch):
    victim = tmp_path / "victim"
    victim.mkdir(exist_ok=True)
    (victim / "part-00000.parquet").write_bytes(b"secret")
    manifest = json.loads((vlir_output / "manifest.json").read_text())
    manifest["shards"].append({"path": bad, "kind": "accepted", "rows": 1, "bytes": 6, "sha256": "0" * 64})
    (vlir_output / "manifest.json").write_text(json.dumps(manifest))
    opened = []
    real_open = open

    def spy(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy)
    msgs = _reasons(validate_output(vlir_output))
    assert any(m.startswith("manifest.json: shards: ") and "not followed" in m for m in msgs), msgs
    assert not [p for p in opened if "victim" in p or p == "/etc/passwd"]


def test_symlinked_shard_is_not_followed(vlir_output, tmp_path):
    rel = "gqa/val/part-00000.parquet"
    target = tmp_path / "elsewhere.parquet"
    (vlir_output / rel).rename(target)
    (vlir_output / rel).symlink_to(target)
    msgs = _reasons(validate_output(vlir_output))
    assert any(rel in m and "symbolic link" in m for m in msgs), msgs


def test_interrupted_build_is_told_from_a_foreign_folder(vlir_output, tmp_path):
    (vlir_output / "manifest.json").unlink()
    with pytest.raises(NotVlirOutput, match="an incomplete build \\(rerun the build command to finish"):
        validate_output(vlir_output)
    (tmp_path / "foreign").mkdir()
    with pytest.raises(NotVlirOutput, match="not a vlir output"):
        validate_output(tmp_path / "foreign")
