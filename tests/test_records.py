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
