"""The compact scene-graph index: lookups, skipped bad entries, and its size per object."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from vlir.sources.base import SourceError
from vlir.sources.scenegraph import SceneGraphIndex, SceneObject


def write(tmp_path, graphs) -> object:
    path = tmp_path / "val_sceneGraphs.json"
    path.write_text(json.dumps(graphs))
    return path


def test_lookups(tmp_path):
    graphs = {
        "1": {"width": 500, "height": 375, "objects": {
            "10": {"name": "cup", "x": 1, "y": 2, "w": 30, "h": 40, "attributes": ["red"], "relations": []},
            "11": {"name": "table", "x": 5.5, "y": 6, "w": 300, "h": 100}}},
        "n2": {"width": 640, "height": 480, "objects": {
            "10": {"name": "dog", "x": 0, "y": 0, "w": 9, "h": 9}}},
    }
    index = SceneGraphIndex.build(write(tmp_path, graphs))
    assert len(index) == 2
    assert index.image_size("1") == (500, 375) and index.image_size("n2") == (640, 480)
    assert index.image_size("3") is None
    assert index.object("1", "10") == SceneObject("cup", 1.0, 2.0, 30.0, 40.0)
    assert index.object("1", "11") == SceneObject("table", 5.5, 6.0, 300.0, 100.0)
    # object ids are only unique per image
    assert index.object("n2", "10").name == "dog"
    assert index.object("1", "12") is None and index.object("9", "10") is None


def test_bad_entries_are_skipped_and_counted(tmp_path):
    graphs = {
        "1": {"width": 10, "height": 10, "objects": {"a": {"name": "x", "x": 0, "y": 0, "w": 1},
                                                      "b": {"name": "y", "x": 0, "y": 0, "w": 1, "h": 1}}},
        "2": {"height": 10, "objects": {}},
        "3": ["not", "a", "graph"],
        "4": {"width": 10, "height": 10, "objects": ["x"]},
        "5": {"width": 10, "height": 10, "objects": []},  # empty: an image without objects
    }
    stats = Counter()
    index = SceneGraphIndex.build(write(tmp_path, graphs), stats)
    assert stats == Counter({"scene_graph_bad_image": 3, "scene_graph_bad_object": 1})
    assert index.image_size("1") == (10, 10) and index.object("1", "b") and index.object("1", "a") is None
    assert index.image_size("5") == (10, 10) and index.image_size("4") is None


def test_empty_and_broken_files(tmp_path):
    assert len(SceneGraphIndex.build(write(tmp_path, {}))) == 0
    path = tmp_path / "broken.json"
    path.write_text('{"1": {"width": ')
    with pytest.raises(SourceError, match="broken.json"):
        SceneGraphIndex.build(path)


def test_index_is_compact(tmp_path):
    graphs = {str(i): {"width": 100, "height": 100, "objects": {
        str(i * 100 + k): {"name": f"n{k % 7}", "x": k, "y": k, "w": 5, "h": 5, "attributes": ["a", "b"],
                           "relations": [{"name": "near", "object": "0"}] * 5}
        for k in range(20)}} for i in range(500)}
    index = SceneGraphIndex.build(write(tmp_path, graphs))
    assert index.object("499", "49919").name == "n5"
    assert index.nbytes / 10_000 < 40  # bytes per object (a dict per object would be ~1 KB)


def test_nan_in_a_box_rejects_that_object_not_the_file(tmp_path):
    path = tmp_path / "g.json"
    path.write_text('{"1": {"width": 10, "height": 10, "objects": {'
                    '"a": {"name": "x", "x": NaN, "y": 0, "w": 1, "h": 1}, '
                    '"b": {"name": "y", "x": 0, "y": 0, "w": 1, "h": 1}}}}')
    stats = Counter()
    index = SceneGraphIndex.build(path, stats)
    assert stats == Counter({"scene_graph_bad_object": 1})
    assert index.object("1", "a") is None and index.object("1", "b") == SceneObject("y", 0, 0, 1, 1)


def test_index_keys_are_the_same_in_every_process():
    """The build's plan hands the index to tasks in other processes (Ray workers), whose
    Python hash seeds differ: the keys must not depend on them."""
    import os
    import subprocess
    import sys

    from vlir.sources.scenegraph import _key

    code = "from vlir.sources.scenegraph import _key; print(_key('2354786'), _key('2354786', '3'))"
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.split() == [str(_key("2354786")), str(_key("2354786", "3"))]
