"""The base class owns the read loop: open -> each file's records -> parse one record -> a Sample,
an Invalid naming the file and the record, or nothing (not part of the split)."""

from __future__ import annotations

from collections import Counter

import pytest

from vlir.images import ImageError
from vlir.records import Invalid, Sample
from vlir.sources.base import Reading, RecordError, Source, SourceError


class Toy(Source):
    """Each file holds one record per line: ``ok``, ``bad``, ``gone``, ``skip`` or ``other-id``."""

    name, title, splits, expected_files, options = "toy", "Toy", ("train",), (), ("files",)

    def open(self, root, split, stats, options):
        return Reading(root, split, stats, [root / name for name in options.get("files", ["a.txt"])])

    def records(self, reading, path):
        return enumerate(path.read_text().split())

    def parse(self, reading, path, key, record):
        if record == "bad":
            raise RecordError("no question")
        if record == "gone":
            raise ImageError("missing_image", "image file not found: x.jpg")
        if record == "other-id":
            raise RecordError("no id", native=f"line-{key}", shown=f"#{key}", image="y.jpg")
        if record == "skip":
            return None
        return Sample(id=f"toy/{reading.split}/{path.stem}{key}", source="toy", split=reading.split,
                      image="x.jpg", width=1, height=1, question="q", answers=("a",), evidence=(), meta={})

    def write_sample_tree(self, out, per_split, seed):
        raise NotImplementedError


def test_the_loop_turns_each_record_into_a_sample_a_reject_or_nothing(tmp_path):
    (tmp_path / "a.txt").write_text("ok bad skip gone other-id")
    (tmp_path / "b.txt").write_text("ok")
    stats: Counter = Counter()
    items = list(Toy().iter_samples(tmp_path, "train", stats, files=["a.txt", "b.txt"]))
    assert [i.id for i in items] == ["toy/train/a0", "toy/train/1", "toy/train/3", "toy/train/line-4",
                                     "toy/train/b0"]
    bad, gone, other = items[1:4]
    assert isinstance(bad, Invalid) and (bad.reason, bad.detail) == ("malformed", "a.txt: record 1: no question")
    assert (gone.reason, gone.detail) == ("missing_image", "a.txt: record 3: image file not found: x.jpg")
    assert (other.detail, other.image) == ("a.txt: record #4: no id", "y.jpg")
    assert stats == {"samples": 2, "invalid": 3, "invalid_malformed": 2, "invalid_missing_image": 1}


def test_split_and_options_are_checked_before_anything_is_read(tmp_path):
    with pytest.raises(SourceError, match="unknown split"):
        list(Toy().iter_samples(tmp_path, "val"))
    with pytest.raises(SourceError, match="unknown option"):
        list(Toy().iter_samples(tmp_path, "train", file="a.txt"))


def test_nothing_is_read_until_the_stream_is(tmp_path):
    stream = Toy().iter_samples(tmp_path, "train", files=["missing.txt"])  # no error yet: lazy
    with pytest.raises(FileNotFoundError):
        next(stream)
