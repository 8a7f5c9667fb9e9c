import json

import pytest

from vlir.records import Box, Chain, Invalid, Look, Provenance, Record, Sample, Think
from tests.conftest import make_record


def test_box_rejects_inverted_and_nonfinite():
    with pytest.raises(ValueError):
        Box(10, 10, 5, 20)
    with pytest.raises(ValueError):
        Box(0, 0, float("nan"), 1)
    assert Box(0, 0, 2, 3).area == 6


@pytest.mark.parametrize("looks", [0, 1, 4])
def test_record_row_round_trip(looks):
    rec = make_record(3, looks=looks, embed=True)
    row = rec.to_row()
    json.dumps({k: v for k, v in row.items() if k not in ("image", "crops")})  # JSON-able
    assert Record.from_row(row) == rec
    assert len(row["crops"]) == len(rec.chain.looks) == looks


def test_sample_json_round_trip():
    s = make_record(1).sample
    assert Sample.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_invalid_becomes_reject():
    inv = Invalid("gqa/val/9", "gqa", "val", "malformed", "q.json: record 9: missing 'question'")
    rec = Record.from_invalid(inv, Provenance("grounded", "0.1.0"))
    assert not rec.accepted and rec.reasons == ("malformed",)
    assert Record.from_row(rec.to_row()) == rec


def test_chain_steps_round_trip():
    chain = Chain([Think("a"), Look(Box(1, 2, 3, 4), "x"), Think("b")], "ans")
    assert Chain.steps_from_rows(chain.steps_to_rows()) == chain.steps
    assert chain.looks == [Look(Box(1, 2, 3, 4), "x")]


def test_reject_columns_and_checks_for_every_reason(tmp_path):
    """A reject carries `reject_reason` and `reject_detail` as columns (not inside `meta`), and every
    reason is a failed check, also for reasons no check function gives (an annotator's no_evidence)."""
    import dataclasses

    from vlir.corpus import shards
    from vlir.records import Invalid, Provenance, Record
    from tests.conftest import make_record

    rec = dataclasses.replace(make_record(0), chain=None, crops=(), reasons=("no_evidence",),
                              reject_detail="no OCR word matches the answer")
    assert [(c.name, c.passed, c.detail) for c in rec.checks if not c.passed] == [
        ("no_evidence", False, "no OCR word matches the answer")]
    bad = Record.from_invalid(Invalid("gqa/val/9", "gqa", "val", "malformed", "q.json: record 9 has no image"),
                              Provenance("grounded", "0"))
    assert bad.sample.meta == {} and bad.reject_detail == "q.json: record 9 has no image"
    path = tmp_path / "r.parquet"
    shards.write_records(path, [rec, bad, make_record(1)])
    rows = list(shards.iter_rows(path, columns=["reject_reason", "reject_detail", "meta"]))
    assert [(r["reject_reason"], r["reject_detail"]) for r in rows] == [
        ("no_evidence", "no OCR word matches the answer"), ("malformed", "q.json: record 9 has no image"),
        (None, None)]
    assert all("detail" not in r["meta"] for r in rows)
    back = list(shards.read_records(path))
    assert back[:2] == [rec, bad]  # round trip: checks not doubled, detail kept


def test_reprs_name_the_record_never_its_bytes():
    import dataclasses

    from tests.conftest import make_record

    rec = make_record(3, looks=2, embed=True)
    text = repr(rec)
    assert len(text) < 1000 and "\\x" not in text and "PNG" not in text
    assert "id='gqa/val/3'" in text and "status='accepted'" in text and "looks=2" in text
    assert f"png=<{len(rec.crops[0].png):,} bytes>" in text and f"<{len(rec.image_bytes):,} bytes>" in text
    rej = dataclasses.replace(rec, reasons=("answer_correct",), reject_detail="says blue")
    assert "reasons=['answer_correct'], detail='says blue'" in repr(rej)
