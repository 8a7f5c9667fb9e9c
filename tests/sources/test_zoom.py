"""The zoom task as a source: its sample tree puts the asked square where the evidence says, the
adapter reads it (bad lines become rejects), and ``vlir build`` turns it into grounded chains whose
crop shows the colour, read back by the corpus and RL-set readers."""

from __future__ import annotations

import ast
import json
from collections import Counter
from pathlib import Path

from PIL import Image

from vlir.crops import decode_png
from vlir.records import Invalid, Sample
from vlir.sources.registry import get_source
from vlir.sources.samples import zoom as tree


def _share(image, box, rgb) -> float:
    part = image.crop(tuple(int(v) for v in box)) if box else image
    raw = part.convert("RGB").tobytes()  # (getdata is deprecated in Pillow 12)
    pixels = [tuple(raw[i:i + 3]) for i in range(0, len(raw), 3)]
    return Counter(pixels)[rgb] / len(pixels)


def test_tree_is_deterministic_and_the_evidence_box_is_the_asked_square(tmp_path):
    tree.write_zoom_tree(tmp_path / "a", {"train": 6, "val": 2}, seed=0)
    tree.write_zoom_tree(tmp_path / "b", {"train": 6, "val": 2}, seed=0)
    for name in ("train.jsonl", "val.jsonl", "images/train/00005.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    lines = [json.loads(line) for line in (tmp_path / "a/train.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and {line["quadrant"] for line in lines} <= set(tree.QUADRANTS)
    for line in lines:
        image = Image.open(tmp_path / "a" / line["image"])
        assert image.size == (tree.SIZE, tree.SIZE) and line["quadrant"] in line["question"]
        assert line["square"] == tree.square_box(line["quadrant"]).as_list()
        assert _share(image, line["square"], tree.COLORS[line["answer"]]) == 1.0
    answers = {tree.make_question(i, "val", 0)[1]["answer"] for i in range(40)}
    assert answers == set(tree.COLORS)


def test_adapter_reads_the_tree_and_rejects_bad_lines(tmp_path):
    source = get_source("zoom")
    source.write_sample_tree(tmp_path, 3, seed=1)
    samples = list(source.iter_samples(tmp_path, "val"))
    assert [s.id for s in samples] == ["zoom/val/00000", "zoom/val/00001", "zoom/val/00002"]
    first = samples[0]
    assert isinstance(first, Sample) and (first.width, first.height) == (tree.SIZE, tree.SIZE)
    [region] = first.evidence
    assert region.kind == "object" and region.box == tree.square_box(first.meta["quadrant"])
    good = json.loads((tmp_path / "train.jsonl").read_text().splitlines()[0])
    bad = [{**good, "square": [5, 5, 5, 9]}, {**good, "answer": ""}, {**good, "image": "images/train/gone.png"}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(b) + "\n" for b in [good, *bad]) + "{oops\n")
    stats = Counter()
    items = list(source.iter_samples(tmp_path, "train", stats))
    assert isinstance(items[0], Sample) and all(isinstance(i, Invalid) for i in items[1:])
    assert [i.reason for i in items[1:]] == ["malformed", "malformed", "missing_image", "malformed"]
    assert "train.jsonl: record 1: 'square' [5, 5, 5, 9] is empty" in items[1].detail
    assert stats["samples"] == 1 and stats["invalid"] == 4


def test_vlir_build_writes_grounded_chains_whose_crop_shows_the_colour(tmp_path, capsys):
    from vlir.cli import main
    from vlir.corpus.shards import Corpus
    from vlir.train.rl_data import RLSet

    get_source("zoom").write_sample_tree(tmp_path / "zoom", 6, seed=0)
    assert main(["build", "--source", "zoom", "--root", str(tmp_path / "zoom"), "--split", "train,val",
                 "--out", str(tmp_path / "vlir"), "--no-progress"]) == 0, capsys.readouterr()
    manifest = json.loads((tmp_path / "vlir/manifest.json").read_text())
    assert {k: (v["accepted"], v["rejected"]) for k, v in manifest["splits"].items()} == \
        {"zoom/train": (6, 0), "zoom/val": (6, 0)}
    for record in Corpus(tmp_path / "vlir").records("zoom", "train"):
        [look] = record.chain.looks
        square = record.sample.evidence[0].box
        assert look.box.x1 <= square.x1 and look.box.x2 >= square.x2 and look.box.width < 2 * square.width
        crop = decode_png(record.crops[0].png)
        assert crop.size == (56, 56) and _share(crop, None, tree.COLORS[record.chain.answer]) > 0.35
        assert record.chain.steps[-1].text.endswith(f"{record.chain.answer}.")  # the answer, no option letter
    assert main(["rl-data", "--root", str(tmp_path / "vlir"), "--out", str(tmp_path / "rl"), "--split", "val",
                 "--sources", "zoom", "--per-source", "4"]) == 0, capsys.readouterr()
    rl = RLSet(tmp_path / "rl")
    assert len(rl) == 4 and rl[0].source == "zoom" and rl[0].image.size == (tree.SIZE, tree.SIZE)
    assert [r.box for r in rl[0].evidence] == [tree.square_box(q) for q in tree.QUADRANTS if q in rl[0].question]


def test_the_source_layer_does_not_import_train():
    """Sources sit below train: neither the adapter nor its tree writer imports vlir.train."""
    root = Path(__file__).resolve().parents[2] / "vlir" / "sources"
    for path in (root / "zoom.py", root / "samples" / "zoom.py"):
        names = {getattr(node, "module", None) or "" for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.ImportFrom)}
        names |= {alias.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Import)
                  for alias in node.names}
        assert not any(n == "vlir.train" or n.startswith("vlir.train.") for n in names), path


def test_zoom_answers_are_scored_by_exact_match():
    from vlir import metrics

    assert metrics.is_correct("zoom", " Red ", ["red"]) and not metrics.is_correct("zoom", "dark red", ["red"])
