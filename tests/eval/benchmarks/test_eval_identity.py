"""An eval OUT knows what made it (issue 23, failure 8) and ``--predictions`` is checked row by
row (failure 9): another model's predictions are never credited to this one, duplicates never
inflate a score, malformed rows are one line naming the line, unknown ids are counted."""

from __future__ import annotations

import json
import shutil

import pytest

from vlir.cli import main
from vlir.eval.benchmarks import base, presets, runner
from vlir.identity import IdentityMismatch

from tests.eval.benchmarks.conftest import Planted, answer_with

V = base.get("vstar")


def _right(items):
    by_q = {it.question: it for it in items}
    return Planted(lambda q: answer_with(next(it.answer for k, it in by_q.items() if k.startswith(q.split("\n")[0]))))


def test_a_second_model_into_the_same_out_is_refused_naming_the_model(sample_tree, tmp_path):
    root = sample_tree("vstar", n=3)
    items = list(V.items(root))
    out = tmp_path / "out"
    runner.run(V, iter(items), _right(items), out, presets.preset("model"), root=root,
               info={"model": "/ckpt/A", "model_sha256": "a" * 64})
    gen = _right(items)
    with pytest.raises(IdentityMismatch) as exc:
        runner.run(V, iter(items), gen, out, presets.preset("model"), root=root,
                   info={"model": "/ckpt/B", "model_sha256": "b" * 64})
    msg = str(exc.value)
    assert "model: aaaaaaaaaaaa… -> bbbbbbbbbbbb…" in msg and "--model /ckpt/A, not /ckpt/B" in msg
    assert "\n" not in msg and gen.seen == []  # nothing generated, nothing credited
    # the same model at another path is the same run: it resumes (nothing left to generate)
    again = _right(items)
    scores = runner.run(V, iter(items), again, out, presets.preset("model"), root=root,
                        info={"model": "/elsewhere/A", "model_sha256": "a" * 64})
    assert again.seen == [] and scores["scores"]["n"] == 3


def test_another_benchmark_root_is_another_run(sample_tree, tmp_path):
    root = sample_tree("vstar", n=2)
    items = list(V.items(root))
    runner.run(V, iter(items), _right(items), tmp_path / "o", presets.preset("model"), root=root)
    other = tmp_path / "copy"
    shutil.copytree(root, other)
    (other / "extra.json").write_text("{}")
    with pytest.raises(IdentityMismatch, match="inputs.root"):
        runner.run(V, iter(items), _right(items), tmp_path / "o", presets.preset("model"), root=other)


def _rows(sample_tree, tmp_path):
    items = list(V.items(sample_tree("vstar", n=2)))
    runner.run(V, iter(items), _right(items), tmp_path / "first", presets.preset("model"))
    return [json.loads(x) for x in (tmp_path / "first" / runner.PREDICTIONS).read_text().splitlines()]


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_duplicate_predictions_are_refused_naming_the_id_and_lines(sample_tree, tmp_path):
    rows = _rows(sample_tree, tmp_path)
    p = _write(tmp_path / "p.jsonl", [rows[0], rows[0], rows[0], rows[1]])
    with pytest.raises(ValueError) as exc:
        runner.rescore(V, p, tmp_path / "o")
    assert str(exc.value) == (f"{p}, line 2: a second prediction for id {rows[0]['id']!r} sample 0 (first on "
                              "line 1); keep one row per item and sample")
    assert not (tmp_path / "o" / runner.SCORES).exists()


@pytest.mark.parametrize("bad, says", [
    ("[1, 2]", "a JSON list, not an object"),
    ("7", "a JSON int, not an object"),
    ('{"response": "x", "item": {"answer": "A"}}', "no string id"),
    ('{"id": "vstar/1", "response": 5, "item": {"answer": "A"}}', "response is a int"),
    ('{"id": "vstar/1", "response": "x", "item": {"answer": 3}}', "item.answer must be a string"),
    ('{"id": "vstar/1", "response": "x", "item": {"answer": "A"}, "boxes": [[1, 2]]}', "boxes must be"),
    ('{"id": "vstar/1", "response": "x", "item": {"answer": "A"}, "sample": "0"}', "sample must be"),
    ('{"id": "vstar/1", "resp', "not JSON"),
])
def test_malformed_rows_are_one_line_naming_the_line(sample_tree, tmp_path, bad, says):
    rows = _rows(sample_tree, tmp_path)
    p = _write(tmp_path / "p.jsonl", [rows[0], bad])
    with pytest.raises(ValueError) as exc:
        runner.rescore(V, p, tmp_path / "o")
    assert str(exc.value).startswith(f"{p}, line 2: ") and says in str(exc.value)
    assert "\n" not in str(exc.value)


def test_unknown_ids_are_counted_warned_and_left_out(sample_tree, tmp_path, caplog):
    rows = _rows(sample_tree, tmp_path)
    stranger = {**rows[0], "id": "vstar/not-in-the-benchmark"}
    p = _write(tmp_path / "p.jsonl", [*rows, stranger])
    scores = runner.rescore(V, p, tmp_path / "o", known_ids={r["id"] for r in rows})
    assert scores["scores"]["n"] == 2 and scores["protocol"]["unknown_ids"] == 1
    assert "1 row(s) name ids the benchmark does not have" in caplog.text


def test_cli_rescore_with_root_counts_unknown_ids_and_refuses_duplicates(sample_tree, tmp_path, capsys):
    root = sample_tree("vstar", n=2)
    rows = _rows(sample_tree, tmp_path)
    p = _write(tmp_path / "p.jsonl", [*rows, {**rows[0], "id": "vstar/zz"}])
    assert main(["eval", "--benchmark", "vstar", "--predictions", str(p), "--root", str(root),
                 "--out", str(tmp_path / "o")]) == 0
    assert json.loads((tmp_path / "o" / runner.SCORES).read_text())["protocol"]["unknown_ids"] == 1
    capsys.readouterr()
    _write(p, [rows[0], rows[0]])
    assert main(["eval", "--benchmark", "vstar", "--predictions", str(p), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "line 2: a second prediction for id" in err[0]


def test_rescore_never_replaces_a_models_run(sample_tree, tmp_path):
    rows = _rows(sample_tree, tmp_path)
    p = _write(tmp_path / "p.jsonl", rows)
    with pytest.raises(ValueError, match="holds a model's evaluation"):
        runner.rescore(V, p, tmp_path / "first")
    before = (tmp_path / "first" / runner.PREDICTIONS).read_text()
    runner.rescore(V, tmp_path / "first" / runner.PREDICTIONS, tmp_path / "first")  # in place: allowed
    assert json.loads(before.splitlines()[0])["id"] == rows[0]["id"]


def test_report_escapes_every_data_field(sample_tree, tmp_path):
    rows = _rows(sample_tree, tmp_path)
    evil = "<script>alert(1)</script> | [x](http://e) `c`"
    for r in rows:
        r["item"]["category"] = evil
        r["id"] = r["id"] + "<img src=x onerror=alert(1)>"
    p = _write(tmp_path / "p.jsonl", rows)
    runner.rescore(V, p, tmp_path / "o", html=True)
    report = (tmp_path / "o" / "report.md").read_text()
    page = (tmp_path / "o" / "index.html").read_text()
    for text in (report, page):
        assert "<script>" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt; \\| \\[x\\]\\(http://e\\) \\`c\\`" in report


@pytest.mark.slow
def test_cli_a_second_model_into_the_same_out_exits_2(tmp_path, capsys):
    pytest.importorskip("torch")
    from tests.rollout_helpers import tiny_dir

    root, out, b = tmp_path / "data", tmp_path / "out", tmp_path / "B"
    assert main(["eval", "--benchmark", "vstar", "--write-sample", str(root)]) == 0
    shutil.copytree(tiny_dir(), b)
    (b / "config.json").write_text(json.dumps(json.loads((b / "config.json").read_text()), indent=1))
    common = ["eval", "--benchmark", "vstar", "--root", str(root), "--out", str(out), "--limit", "1",
              "--max-new-tokens", "8"]
    assert main([*common, "--model", str(tiny_dir())]) == 0
    capsys.readouterr()
    assert main([*common, "--model", str(b)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"not {b.resolve()}" in err[0] and "model:" in err[0]


@pytest.mark.slow
def test_vlir_eval_over_shards_refuses_an_out_holding_another_model(vlir_output, tmp_path, capsys):
    """``vlir eval --data`` rewrites its predictions: into an OUT made by another model it is
    refused before the model loads; the same command again is allowed."""
    pytest.importorskip("torch")
    from tests.rollout_helpers import tiny_dir

    b = tmp_path / "B"
    shutil.copytree(tiny_dir(), b)
    (b / "config.json").write_text(json.dumps(json.loads((b / "config.json").read_text()), indent=1))
    common = ["eval", "--data", str(vlir_output / "gqa" / "val"), "--out", str(tmp_path / "e"), "--limit", "1",
              "--max-new-tokens", "4"]
    assert main([*common, "--model", str(tiny_dir())]) == 0
    assert main([*common, "--model", str(tiny_dir())]) == 0
    capsys.readouterr()
    assert main([*common, "--model", str(b)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds another evaluation (model: " in err[0]


def test_an_out_inside_the_benchmark_root_is_not_part_of_its_fingerprint(sample_tree, tmp_path):
    root = sample_tree("vstar", n=2)
    items = list(V.items(root))
    out = root / "runs" / "a"
    runner.run(V, iter(items), _right(items), out, presets.preset("model"), root=root)
    again = _right(items)
    runner.run(V, iter(items), again, out, presets.preset("model"), root=root)  # its own files changed nothing
    assert again.seen == []
