"""GQA adapter: the sample tree (layout, truthful programs, boxes where drawn) and bad inputs."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from vlir.records import Invalid, Sample
from vlir.sources.base import SourceError
from vlir.sources.gqa import GQASource, annotated_object_ids, program_object_ids
from vlir.sources.samples.synth import COLORS
from tests.sources.conftest import read_all, digest, refuses

SRC = GQASource()
QUESTION_KEYS = ["semantic", "entailed", "equivalent", "question", "imageId", "isBalanced", "groups",
                 "answer", "semanticStr", "annotations", "types", "fullAnswer"]


def read(root, split="train", **options):
    return read_all(SRC, root, split, **options)


def load(path: Path):
    return json.loads(path.read_text())


def edit(path: Path, change) -> None:
    doc = load(path)
    change(doc)
    path.write_text(json.dumps(doc))


def test_registry_contract():
    assert SRC.name == "gqa"
    assert {"train", "val", "testdev", "test", "challenge"} <= set(SRC.splits)
    assert any("{split}_balanced_questions.json" in f for f in SRC.expected_files)
    assert any("{split}_sceneGraphs.json" in f for f in SRC.expected_files)
    assert SRC.homepage and SRC.license


def test_official_layout(pristine):
    assert sorted(p.name for p in pristine.iterdir()) == ["images", "questions", "sceneGraphs"]
    for split in ("train", "val"):
        questions = load(pristine / "questions" / f"{split}_balanced_questions.json")
        graphs = load(pristine / "sceneGraphs" / f"{split}_sceneGraphs.json")
        assert len(questions) == 8
        for qid, q in questions.items():
            assert len(qid) == 8 and qid.isdigit()
            assert list(q) == QUESTION_KEYS
            assert set(q["annotations"]) == {"question", "answer", "fullAnswer"}
            assert set(q["types"]) == {"detailed", "semantic", "structural"}
            assert (pristine / "images" / f"{q['imageId']}.jpg").is_file()
            graph = graphs[q["imageId"]]
            for obj in graph["objects"].values():
                assert set(obj) == {"name", "x", "y", "w", "h", "attributes", "relations"}
                assert all(isinstance(obj[k], int) for k in "xywh")
            with Image.open(pristine / "images" / f"{q['imageId']}.jpg") as img:
                assert img.format == "JPEG" and img.size == (graph["width"], graph["height"])


def test_programs_use_gqa_operations_and_argument_syntax(pristine):
    ops = set()
    for split in ("train", "val"):
        for q in load(pristine / "questions" / f"{split}_balanced_questions.json").values():
            for step in q["semantic"]:
                ops.add(step["operation"].split()[0])
                if step["operation"] in ("select", "relate"):
                    assert program_object_ids(step["argument"]), step
            text = "->".join(f"{s['operation']}: {s['argument']}" +
                             (f" [{', '.join(map(str, s['dependencies']))}]" if s["dependencies"] else "")
                             for s in q["semantic"])
            assert q["semanticStr"] == text
    assert {"select", "relate", "filter", "query", "verify", "exist", "choose", "same"} <= ops


def _execute(q: dict, graph: dict) -> str:
    """A small GQA program interpreter over the scene graph: the answer the drawing implies."""
    objects, results = graph["objects"], []
    for step in q["semantic"]:
        op, arg, deps = step["operation"], step["argument"], step["dependencies"]
        ids = program_object_ids(arg)
        if op == "select":
            results.append(ids[0])
        elif op == "relate":
            name, rel, _ = arg.rsplit(" (", 1)[0].split(",")
            target = ids[0]
            related = any(r["name"] == rel and r["object"] == results[deps[0]]
                          for r in objects[target]["relations"])
            assert name in ("_", objects[target]["name"])
            results.append(target if related else None)
        elif op == "query":
            obj = objects[results[deps[0]]]
            results.append(obj["name"] if arg == "name" else obj["attributes"][0])
        elif op == "verify color":
            results.append("yes" if objects[results[deps[0]]]["attributes"][0] == arg else "no")
        elif op == "choose color":
            color = objects[results[deps[0]]]["attributes"][0]
            assert color in arg.split("|")
            results.append(color)
        elif op == "filter color":
            oid = results[deps[0]]
            results.append(oid if objects[oid]["attributes"][0] == arg else None)
        elif op == "exist":
            results.append("yes" if results[deps[0]] is not None else "no")
        elif op == "same color":
            a, b = (objects[results[d]]["attributes"][0] for d in deps)
            results.append("yes" if a == b else "no")
        elif op == "verify hposition":
            obj = objects[results[deps[0]]]
            side = "left" if obj["x"] + obj["w"] / 2 < graph["width"] / 2 else "right"
            results.append("yes" if side == arg else "no")
        else:
            raise AssertionError(f"unexpected operation {op}")
    return results[-1]


def test_answers_are_what_the_program_computes_on_the_scene_graph(pristine):
    answers = Counter()
    for split in ("train", "val"):
        graphs = load(pristine / "sceneGraphs" / f"{split}_sceneGraphs.json")
        for q in load(pristine / "questions" / f"{split}_balanced_questions.json").values():
            assert _execute(q, graphs[q["imageId"]]) == q["answer"], q["question"]
            answers[q["answer"] in ("yes", "no")] += 1
    assert answers[True] and answers[False]


def test_reads_the_tree_with_evidence_where_the_shapes_are_drawn(pristine):
    for split in ("train", "val"):
        samples, stats = read(pristine, split)
        assert stats["samples"] == 8 and not stats["invalid"] and not stats["missing_scene_graph"]
        graphs = load(pristine / "sceneGraphs" / f"{split}_sceneGraphs.json")
        for s in samples:
            assert isinstance(s, Sample) and s.id.startswith(f"gqa/{split}/") and s.source == "gqa"
            assert s.image == f"images/{s.meta['image_id']}.jpg"
            assert s.evidence and len(s.answers) == 1
            assert set(s.meta) >= {"semantic", "semanticStr", "types", "fullAnswer", "annotations",
                                   "object_index"}
            assert set(s.meta["object_index"]) == set(annotated_object_ids(s.meta["annotations"]))
            objects = graphs[s.meta["image_id"]]["objects"]
            with Image.open(pristine / s.image) as img:
                rgb = img.convert("RGB")
                assert (s.width, s.height) == rgb.size
            for oid, i in s.meta["object_index"].items():
                region, obj = s.evidence[i], objects[oid]
                assert region.kind == "object" and region.label == obj["name"]
                assert region.box.as_list() == [obj["x"], obj["y"], obj["x"] + obj["w"], obj["y"] + obj["h"]]
                assert 0 <= region.box.x1 < region.box.x2 <= s.width
                assert 0 <= region.box.y1 < region.box.y2 <= s.height
                # the fill colour just inside the left edge is the object's colour attribute
                pixel = rgb.getpixel((int(region.box.x1) + 4, int(region.box.center[1])))
                expected = COLORS[obj["attributes"][0]]
                assert max(abs(a - b) for a, b in zip(pixel, expected)) < 40, (s.question, pixel)


def test_sample_tree_is_deterministic(tmp_path, pristine):
    SRC.write_sample_tree(tmp_path / "again", 8, seed=0)
    assert digest(tmp_path / "again") == digest(pristine)
    SRC.write_sample_tree(tmp_path / "other", 8, seed=1)
    assert digest(tmp_path / "other") != digest(pristine)


def test_flat_layout_and_explicit_paths(tree, tmp_path):
    for p in list((tree / "questions").iterdir()) + list((tree / "sceneGraphs").iterdir()):
        p.rename(tree / p.name)
    samples, stats = read(tree, "val")
    assert stats["samples"] == 8 and all(s.evidence for s in samples)
    moved = tmp_path / "elsewhere.json"
    shutil.copy(tree / "val_balanced_questions.json", moved)
    samples, stats = read(tree, "val", questions=moved)
    assert stats["samples"] == 8


def test_all_questions_folder(tree):
    questions = load(tree / "questions" / "train_balanced_questions.json")
    items = list(questions.items())
    folder = tree / "questions" / "train_all_questions"
    folder.mkdir()
    # numeric order of the parts, not string order (10 after 2)
    (folder / "train_all_questions_10.json").write_text(json.dumps(dict(items[4:])))
    (folder / "train_all_questions_2.json").write_text(json.dumps(dict(items[:4])))
    samples, _ = read(tree, "train", question_set="all")
    assert [s.id.rsplit("/", 1)[1] for s in samples] == [qid for qid, _ in items]
    with pytest.raises(SourceError):
        read(tree, "train", question_set="some")


def test_missing_scene_graph_keeps_samples_with_empty_evidence(tree):
    with_graphs, _ = read(tree, "val")
    shutil.rmtree(tree / "sceneGraphs")
    samples, stats = read(tree, "val")
    assert stats["samples"] == 8 and stats["missing_scene_graph"] == 8
    assert all(not s.evidence for s in samples)
    assert [(s.width, s.height) for s in samples] == [(s.width, s.height) for s in with_graphs]
    _, stats = read(tree, "train", scene_graphs=False)
    assert stats["missing_scene_graph"] == 8


def test_scene_graph_gaps_are_counted(tree):
    graph_file = tree / "sceneGraphs" / "val_sceneGraphs.json"
    questions = load(tree / "questions" / "val_balanced_questions.json")
    first = next(iter(questions.values()))
    image_id, object_id = first["imageId"], annotated_object_ids(first["annotations"])[0]

    def damage(doc):
        doc[image_id]["objects"][object_id]["w"] = 0  # degenerate
        other = next(i for i in doc if i != image_id)
        doc.pop(other)  # a whole image missing from the graph

    edit(graph_file, damage)
    samples, stats = read(tree, "val")
    assert stats["samples"] == 8
    assert stats["degenerate_box"] >= 1 and stats["missing_scene_graph"] >= 1
    assert all(0 <= r.box.x1 < r.box.x2 <= s.width for s in samples for r in s.evidence)


def test_malformed_records_are_rejected_and_the_read_goes_on(tree):
    path = tree / "questions" / "train_balanced_questions.json"
    qids = list(load(path))

    def damage(doc):
        del doc[qids[0]]["question"]
        doc[qids[1]] = ["not", "a", "record"]
        doc[qids[2]]["annotations"] = {"question": "1234"}
        doc[qids[3]]["answer"] = 7

    edit(path, damage)
    items, stats = read(tree, "train")
    bad = [i for i in items if isinstance(i, Invalid)]
    assert [i.id for i in bad] == [f"gqa/train/{q}" for q in qids[:4]]
    assert all(i.reason == "malformed" for i in bad)
    assert all(i.detail.startswith(f"train_balanced_questions.json: record {q}:") for i, q in zip(bad, qids))
    assert "question" in bad[0].detail and "annotations" in bad[2].detail and "answer" in bad[3].detail
    assert stats["samples"] == 4 and stats["invalid"] == 4 and stats["invalid_malformed"] == 4


def test_unsafe_and_missing_images(tree):
    path = tree / "questions" / "val_balanced_questions.json"
    qids = list(load(path))
    victim = load(path)[qids[2]]["imageId"]

    def damage(doc):
        doc[qids[0]]["imageId"] = "../../../etc/passwd"
        doc[qids[1]]["imageId"] = "../../gqa-sibling/secret"

    edit(path, damage)
    (tree / "images" / f"{victim}.jpg").unlink()
    items, stats = read(tree, "val")
    reasons = {i.id.rsplit("/", 1)[1]: i.reason for i in items if isinstance(i, Invalid)}
    assert reasons[qids[0]] == "unsafe_path" and reasons[qids[1]] == "unsafe_path"
    assert reasons[qids[2]] == "missing_image"
    missing = next(i for i in items if isinstance(i, Invalid) and i.reason == "missing_image")
    assert f"{victim}.jpg" in missing.detail and missing.image == f"images/{victim}.jpg"
    assert stats["invalid_unsafe_path"] == 2


@pytest.mark.parametrize("content, message", [
    ('{"01": {"question": "x", ', "not valid JSON"),
    ('[{"question": "x"}]', "expected a JSON object"),
    ("", "empty"),
])
def test_unparsable_question_file_is_a_source_error(tree, content, message):
    (tree / "questions" / "val_balanced_questions.json").write_text(content)
    with pytest.raises(SourceError) as err:
        read(tree, "val")
    assert "val_balanced_questions.json" in str(err.value) and message in str(err.value)


def test_unparsable_scene_graph_is_a_source_error(tree):
    (tree / "sceneGraphs" / "val_sceneGraphs.json").write_text('{"1": {"width": 3')
    refuses(SRC, tree, "val", "val_sceneGraphs.json")


def test_unknown_split_and_missing_questions(tree):
    refuses(SRC, tree, "dev", "unknown split")
    refuses(SRC, tree, "testdev", "testdev_balanced_questions.json")


def test_program_object_ids():
    assert program_object_ids("pond (1039893)") == ["1039893"]
    assert program_object_ids("cart,near,s (1039872)") == ["1039872"]
    assert program_object_ids("pitcher (2827701) ") == ["2827701"]
    assert program_object_ids("cup (-)") == []
    assert program_object_ids("people (12,34)") == ["12", "34"]
    assert program_object_ids("not(metal)") == [] and program_object_ids("?") == []


def test_annotated_object_ids_order():
    annotations = {"answer": {"0": "7"}, "question": {"11": "5", "4:6": "6", "14:16": "5"},
                   "fullAnswer": {"2": "8,9"}}
    assert annotated_object_ids(annotations) == ["6", "5", "7", "8", "9"]


def test_negative_width_box_is_refused_not_reordered():
    """Weak spot (issue 13): x, y, w, h with w < 0 used to become the box to the left."""
    from vlir.sources.support import object_region

    stats = Counter()
    assert object_region(50, 10, -20, 10, "cup", 100, 100, stats) is None
    assert object_region(50, 10, 20, -10, "cup", 100, 100, stats) is None
    assert stats["degenerate_box"] == 2
    assert object_region(50, 10, 20, 10, "cup", 100, 100, stats).box.as_list() == [50, 10, 70, 20]
