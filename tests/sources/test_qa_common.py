"""Shared reading helpers of the text-VQA adapters: streaming, field checks, caches."""

from __future__ import annotations

import pytest

from vlir.images import ImageError
from vlir.sources.base import SourceError
from vlir.sources.qa_common import (LRU, Malformed, answers, image_relpath, iter_data_records,
                                    native_id, require)


def test_stream_yields_records_then_names_the_file_on_a_late_error(tmp_path):
    path = tmp_path / "q.json"
    path.write_text('{"dataset_name": "x", "data": [{"a": 1}, {"a": 2.5}, {"a": ')
    got = []
    with pytest.raises(SourceError, match=r"q\.json: not valid JSON"):
        for index, record in iter_data_records(path):
            got.append((index, record))
    assert got == [(0, {"a": 1}), (1, {"a": 2.5})]
    assert isinstance(got[1][1]["a"], float)  # not Decimal


def test_stream_empty_list_is_fine_but_no_list_is_not(tmp_path):
    (tmp_path / "empty.json").write_text('{"data": []}')
    assert list(iter_data_records(tmp_path / "empty.json")) == []
    (tmp_path / "other.json").write_text('{"questions": [1]}')
    with pytest.raises(SourceError, match="other.json: no top-level 'data' list"):
        list(iter_data_records(tmp_path / "other.json"))
    (tmp_path / "list.json").write_text('[{"question": "q"}]')
    with pytest.raises(SourceError, match="list.json: expected a JSON object"):
        list(iter_data_records(tmp_path / "list.json"))


def test_field_checks():
    assert native_id({"id": 7}, "id") == "7"
    with pytest.raises(Malformed, match="'id' should be int/str, got bool"):
        native_id({"id": True}, "id")
    with pytest.raises(Malformed, match="not an object"):
        require([1], "id", int)
    assert answers({"answers": ["a", 3]}, "answers", required=True) == ("a", "3")
    assert answers({}, "answers", required=False) == ()
    with pytest.raises(Malformed, match="empty list"):
        answers({"answers": []}, "answers", required=True)


def test_image_relpath_refuses_escapes(tmp_path):
    assert image_relpath(tmp_path, "a/../b/c.jpg") == "b/c.jpg"
    for bad in ("../x.jpg", "/etc/passwd", "a/../../x.jpg"):
        with pytest.raises(ImageError) as err:
            image_relpath(tmp_path, bad)
        assert err.value.reason == "unsafe_path"


def test_lru_evicts_the_oldest():
    made = []
    cache = LRU(2)
    for key in (1, 2, 1, 3, 2):
        cache.get(key, lambda: made.append(key) or key)
    assert made == [1, 2, 3, 2]
