"""The zoom task: the asked square is where the evidence says, its crop shows its colour, and the
corpus it writes reads back through the corpus, SFT and RL-set readers."""

from __future__ import annotations

from collections import Counter

import pytest

from vlir.crops import decode_png
from vlir.sources import zoom


def _share(image, box, rgb) -> float:
    part = image.crop(tuple(int(v) for v in box)) if box else image
    raw = part.convert("RGB").tobytes()  # (getdata is deprecated in Pillow 12)
    pixels = [tuple(raw[i:i + 3]) for i in range(0, len(raw), 3)]
    return Counter(pixels)[rgb] / len(pixels)


def test_records_are_deterministic_and_the_crop_shows_the_answer():
    a, b = zoom.make_record(3, "train", 0, look=True), zoom.make_record(3, "train", 0, look=True)
    assert a == b and a != zoom.make_record(4, "train", 0, look=True)
    image = decode_png(a.image_bytes)
    rgb = zoom.COLORS[a.chain.answer]
    [region] = a.sample.evidence
    assert _share(image, region.box.as_list(), rgb) == 1.0  # the evidence box is the square
    assert region.box == zoom.square_box(a.sample.meta["quadrant"]) and a.sample.meta["quadrant"] in a.sample.question
    crop = decode_png(a.crops[0].png)
    assert crop.size == (56, 56) and _share(crop, None, rgb) > 0.5  # zoomed: mostly the square
    no_look = zoom.make_record(3, "train", 0, look=False)
    assert not no_look.crops and no_look.chain.answer == a.chain.answer
    assert {zoom.make_record(i, "rl", 0, look=False).chain.answer for i in range(40)} == set(zoom.COLORS)


def test_write_corpus_reads_back_as_sft_data_and_rl_set(tmp_path):
    from vlir.corpus.shards import Corpus
    from vlir.train.rl_data import RLSet

    manifest = zoom.write_corpus(tmp_path, train=20, rl=8, look_fraction=0.5, seed=1)
    assert manifest["counts"]["train"]["records"] == 20 and 0 < manifest["counts"]["train"]["with_look"] < 20
    corpus = Corpus(tmp_path / "corpus")
    assert corpus.splits() == [("zoom", "rl"), ("zoom", "train")]
    train_ids = {r.sample.id for r in corpus.records("zoom", "train")}
    rl = RLSet(tmp_path / "rl")
    assert len(rl) == 8 and not {rl[i].id for i in range(8)} & train_ids
    prompt = rl[0]
    assert prompt.source == "zoom" and prompt.image.size == (zoom.SIZE, zoom.SIZE)
    assert [r.box for r in prompt.evidence] == [zoom.square_box(q) for q in zoom.QUADRANTS if q in prompt.question]


def test_bad_arguments_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="look_fraction"):
        zoom.write_corpus(tmp_path, look_fraction=1.5)
    assert zoom.main(["--out", str(tmp_path), "--train", "0"]) == 2
    assert "at least one train" in capsys.readouterr().err


def test_zoom_answers_are_scored_by_exact_match():
    from vlir import metrics

    assert metrics.is_correct("zoom", " Red ", ["red"]) and not metrics.is_correct("zoom", "dark red", ["red"])
