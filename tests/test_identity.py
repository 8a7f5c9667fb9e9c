"""vlir.identity: the fingerprints see what changes the data and nothing else, and a mismatch is
one line naming each difference."""

from __future__ import annotations

import os
import shutil

import pytest

from vlir import identity


def _tree(root):
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.jpg").write_bytes(b"\xff\xd8" + b"x" * 100)
    (root / "questions.json").write_text('{"q": "what colour is the car?"}')
    return root


def test_a_copy_elsewhere_with_new_mtimes_is_the_same_input(tmp_path):
    a = _tree(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)  # copytree keeps mtimes: touch them to be sure
    for p in b.rglob("*"):
        os.utime(p, (1, 1))
    assert identity.tree_fingerprint(a) == identity.tree_fingerprint(b)


@pytest.mark.parametrize("change", ["reencode", "rename", "add", "edit_annotation_same_size"])
def test_a_change_of_the_data_changes_the_fingerprint(tmp_path, change):
    a = _tree(tmp_path / "a")
    before = identity.tree_fingerprint(a)
    if change == "reencode":
        (a / "images" / "a.jpg").write_bytes(b"\xff\xd8" + b"y" * 120)
    elif change == "rename":
        (a / "images" / "a.jpg").rename(a / "images" / "b.jpg")
    elif change == "add":
        (a / "images" / "c.jpg").write_bytes(b"z")
    else:
        (a / "questions.json").write_text('{"q": "what colour is the bus?"}')
    assert identity.tree_fingerprint(a) != before


def test_the_output_inside_the_root_is_left_out(tmp_path):
    a = _tree(tmp_path / "a")
    before = identity.tree_fingerprint(a, exclude=a / "out")
    (a / "out").mkdir()
    (a / "out" / "part-00000.parquet").write_bytes(b"rows")
    assert identity.tree_fingerprint(a, exclude=a / "out") == before


def test_missing_inputs_and_models_are_named_not_crashed(tmp_path):
    assert identity.tree_fingerprint(tmp_path / "nope") == {"missing": True}
    assert identity.model_sha256(tmp_path / "nope") == "missing"


def test_data_fingerprint_of_a_corpus_is_its_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "gqa").mkdir()
    assert identity.data_fingerprint(tmp_path) == {"manifest_sha256": identity.file_sha256(tmp_path / "manifest.json")}


def test_without_drops_dotted_keys_only():
    cfg = {"batch_size": 4, "limit": 2, "teacher": {"base_url": "http://a/v1", "model": "m"}}
    assert identity.without(cfg, ["batch_size", "teacher.base_url", "absent.key"]) == \
        {"limit": 2, "teacher": {"model": "m"}}
    assert cfg["teacher"]["base_url"] == "http://a/v1"  # the caller's dict is untouched


def test_claim_records_then_refuses_another_identity_in_one_line(tmp_path):
    run = tmp_path / "run.json"
    first = identity.make(inputs={"gqa": {"sha256": "a" * 64}}, config={"tasks": 2}, model="m" * 64)
    identity.claim(run, first, "use another --out", where={"gqa": "/data/gqa"})
    identity.claim(run, first, "use another --out")  # the same run: accepted
    other = identity.make(inputs={"gqa": {"sha256": "b" * 64}}, config={"tasks": 3}, model="m" * 64)
    with pytest.raises(identity.IdentityMismatch) as exc:
        identity.claim(run, other, "use another --out")
    msg = str(exc.value)
    assert "\n" not in msg and "inputs.gqa.sha256: aaaaaaaaaaaa… -> bbbbbbbbbbbb…" in msg
    assert "config.tasks: 2 -> 3" in msg and msg.endswith("use another --out")
    assert identity.read(run) == first  # the refused identity is not recorded


def _checkpoint(folder, payload: bytes = b"\0" * 64):
    """A checkpoint folder with one safetensors file holding one F32 tensor of ``len(payload)`` bytes."""
    import json as _json

    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    header = _json.dumps({"w": {"dtype": "F32", "shape": [len(payload) // 4], "data_offsets": [0, len(payload)]}}).encode()
    (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + payload)
    return folder


def test_checkpoint_problem_accepts_a_whole_checkpoint(tmp_path):
    assert identity.checkpoint_problem(_checkpoint(tmp_path / "m")) is None


@pytest.mark.parametrize("damage, says", [
    ("truncate", "truncated"), ("no_weights", "has no weights"), ("no_config", "has no config.json"),
    ("bad_config", "config.json is not readable JSON"), ("garbage", "not safetensors"),
    ("missing_shard", "lacks 1 weight shard"),
])
def test_checkpoint_problem_names_truncated_or_missing_weights(tmp_path, damage, says):
    m = _checkpoint(tmp_path / "m")
    weights = m / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:-10])
    elif damage == "no_weights":
        weights.unlink()
    elif damage == "no_config":
        (m / "config.json").unlink()
    elif damage == "bad_config":
        (m / "config.json").write_text("{")
    elif damage == "garbage":
        weights.write_bytes(b"\xff" * 100)
    else:
        (m / "model.safetensors.index.json").write_text('{"weight_map": {"w": "model-00002-of-00002.safetensors"}}')
    problem = identity.checkpoint_problem(m)
    assert problem is not None and says in problem and "\n" not in problem


@pytest.mark.parametrize("argv", [
    ["eval", "--benchmark", "vstar", "--root", "{root}", "--model", "{model}", "--out", "{out}"],
    ["eval", "--data", "{root}", "--model", "{model}", "--out", "{out}"],
])
def test_cli_with_truncated_weights_is_one_line(tmp_path, capsys, argv):
    from vlir.cli import main

    m = _checkpoint(tmp_path / "m")
    (m / "model.safetensors").write_bytes((m / "model.safetensors").read_bytes()[:-10])
    (tmp_path / "root").mkdir()
    if "--benchmark" in argv:  # a real V* tree: its layout is checked before the model, and passes
        from vlir.eval.benchmarks import base

        base.get("vstar").write_sample(tmp_path / "root", n=2)
    args = [a.format(root=tmp_path / "root", model=m, out=tmp_path / "out") for a in argv]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.safetensors: truncated" in err[0], err
