"""Streaming JSON readers: items one at a time, and a SourceError naming the file for bad input."""

from __future__ import annotations

import json

import pytest

from vlir.sources.base import SourceError
from vlir.jsonstream import BadLine, iter_array_items, iter_jsonl, iter_object_items


def test_object_items_stream_in_order(tmp_path):
    path = tmp_path / "q.json"
    path.write_text(json.dumps({"b": {"x": 1.5}, "a": [1, 2]}))
    assert list(iter_object_items(path)) == [("b", {"x": 1.5}), ("a", [1, 2])]
    assert type(next(iter_object_items(path))[1]["x"]) is float  # not Decimal


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"k": 1}).encode())
    assert list(iter_object_items(path)) == [("k", 1)]


@pytest.mark.parametrize("content, message", [
    (b"", "empty"), (b"  \n", "empty"), (b"[1, 2]", "expected a JSON object"),
    (b"hello", "not JSON"), (b'{"a": {"b": ', "not valid JSON"), (b'{"a": 1} {"b"', "not valid JSON"),
])
def test_bad_object_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(SourceError) as err:
        list(iter_object_items(path))
    assert "bad.json" in str(err.value) and message in str(err.value)
    assert err.value.path == str(path)


def test_items_before_a_truncation_are_yielded_then_the_error(tmp_path):
    path = tmp_path / "t.json"
    path.write_text('{"a": 1, "b": 2, "c": ')
    it = iter_object_items(path)
    assert next(it) == ("a", 1) and next(it) == ("b", 2)
    with pytest.raises(SourceError):
        next(it)


def test_missing_file(tmp_path):
    with pytest.raises(SourceError, match="cannot read"):
        list(iter_object_items(tmp_path / "nope.json"))


def test_array_items_at_a_prefix(tmp_path):
    path = tmp_path / "coco.json"
    path.write_text(json.dumps({"images": [{"id": 1}, {"id": 2}], "annotations": [], "categories": [{"id": 3}]}))
    assert list(iter_array_items(path, "images")) == [{"id": 1}, {"id": 2}]
    assert list(iter_array_items(path, "categories")) == [{"id": 3}]
    assert list(iter_array_items(path, "annotations")) == []
    path.write_text("[]")
    with pytest.raises(SourceError, match="expected a JSON object"):
        list(iter_array_items(path, "images"))


def test_jsonl_bad_lines_do_not_stop_the_read(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{oops\n[1]\n\xff\xfe\n{"a": 2}\n')
    out = list(iter_jsonl(path))
    assert [i for i, _ in out] == [0, 2, 3, 4, 5]
    assert out[0][1] == {"a": 1} and out[-1][1] == {"a": 2}
    assert all(isinstance(r, BadLine) for _, r in out[1:4])
    assert "line 3" in str(out[1][1]) and "list" in str(out[2][1])


def test_parse_errors_are_one_line(tmp_path):
    path = tmp_path / "t.json"
    path.write_text('{"a": [1,\n 2,,]}')
    with pytest.raises(SourceError) as err:
        list(iter_object_items(path))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("chunk", [1, 3, 7, 4096])
def test_nan_and_infinity_literals_read_as_null(tmp_path, chunk):
    """Python's json writes NaN/Infinity; yajl refused them and failed the whole split (issue 13)."""
    from vlir.jsonstream import NonFiniteAsNull

    text = ('{"a": {"x": NaN, "y": [1, -Infinity, 2], "t": "NaN, Infinity", "z":Infinity},\n'
            ' "b": {"x": 3}}').encode()
    path = tmp_path / "nan.json"
    path.write_bytes(text)
    assert list(iter_object_items(path)) == [
        ("a", {"x": None, "y": [1, None, 2], "t": "NaN, Infinity", "z": None}), ("b", {"x": 3})]

    class Chunked:  # a file that hands out tiny reads: a literal may straddle any boundary
        def __init__(self):
            self.pos = 0

        def read(self, n=-1):
            part = text[self.pos:self.pos + chunk]
            self.pos += len(part)
            return part

    wrapper, out = NonFiniteAsNull(Chunked()), b""
    while (part := wrapper.read(4096)):
        out += part
    assert json.loads(out) == {"a": {"x": None, "y": [1, None, 2], "t": "NaN, Infinity", "z": None}, "b": {"x": 3}}


def test_object_spans_read_what_ijson_reads_and_find_each_item_again(tmp_path, monkeypatch):
    import vlir.jsonstream as js

    text = ' \n{ "é\u00fc" : {"x": 1.5, "y": [1, 2, 123456789]} , "k2":"ü✓","n":NaN,"z":10 ,"w": -Infinity}\n'
    path = tmp_path / "d.json"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    for chunk in (5, 64, 1 << 22):  # items cut across the scanner's chunks
        monkeypatch.setattr(js, "_SPAN_CHUNK", chunk)
        spans = list(js.iter_object_spans(path))
        assert [(k, v) for k, v, _ in spans] == list(js.iter_object_items(path))
        assert [k for k, _, _ in spans] == ["éü", "k2", "n", "z", "w"] and spans[2][1] is None
        with open(path, "rb") as fh:
            assert [js.read_object_span(fh, span) for _, _, span in spans] == [(k, v) for k, v, _ in spans]


@pytest.mark.parametrize("bad", ['{"a": 1, "b" 2}', '{"a": 1 "b": 2}', '{"a": [1, 2}', '{"a": 1,', '{"a"'])
def test_object_spans_name_the_file_of_broken_json(tmp_path, bad):
    from vlir.jsonstream import iter_object_spans

    path = tmp_path / "bad.json"
    path.write_text(bad)
    with pytest.raises(SourceError, match="bad.json: not valid JSON"):
        list(iter_object_spans(path))
