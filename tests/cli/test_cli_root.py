"""The root CLI: --help, --version, exit codes, and `import vlir` staying light."""

import subprocess
import sys

import pytest

import vlir
from vlir.cli import main

pytestmark = pytest.mark.subprocess  # runs the CLI in child interpreters (make test-fast skips)


def run(*args):
    return subprocess.run([sys.executable, "-m", "vlir", *args], capture_output=True, text=True, timeout=120)


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert vlir.__version__ in capsys.readouterr().out
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in ("validate", "build", "sources", "read", "sample", "merge"):
        assert verb in out


def test_bad_arguments_one_line_exit_2():
    r = run("validate")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = run("build", "--source", "nope", "--root", ".", "--split", "x", "--out", "/tmp/x")
    assert r.returncode == 2 and "unknown source" in r.stderr and "Traceback" not in r.stderr


def test_validate_exit_codes(vlir_output, tmp_path):
    assert run("validate", str(vlir_output)).returncode == 0
    assert run("validate", str(tmp_path / "nothing")).returncode == 2
    (vlir_output / "rejects/gqa/val/rejects-00000.parquet").unlink()
    r = run("validate", str(vlir_output))
    assert r.returncode == 1 and "rejects-00000.parquet" in r.stderr


def test_import_vlir_is_light():
    code = ("import sys, vlir, vlir.records, vlir.geometry, vlir.crops, vlir.corpus.shards, vlir.corpus.build, "
            "vlir.corpus.executors.local, vlir.corpus.validate, vlir.cli; from vlir.cli import _register; _register(); "
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_log_level_and_quiet(monkeypatch):
    """-q: warnings only and no progress bars (VLIR_QUIET, inherited by workers); --log-level wins;
    a bad level is one line, exit 2."""
    import logging

    from vlir import progress
    from vlir.cli import log_level

    monkeypatch.setenv(progress.QUIET_ENV, "0")  # restored (unset) after the test
    assert log_level(False, True, None) == logging.WARNING and log_level(True, False, None) == logging.DEBUG
    assert log_level(True, False, "error") == logging.ERROR and log_level(False, False, None) == logging.INFO
    assert main(["-q", "sources"]) == 0
    assert progress.quiet() and progress.bar(total=3).disable
    progress.set_quiet(False)
    assert main(["--log-level", "INFO", "sources"]) == 0 and not progress.quiet()
    r = run("--log-level", "loud", "sources")
    assert r.returncode == 2 and r.stderr.strip() == ("vlir: error: --log-level must be one of DEBUG, INFO, "
                                                      "WARNING, ERROR, got 'loud'")


@pytest.mark.parametrize("args", [["infer", "--help"], ["eval", "--help"], ["train", "sft", "--help"],
                                  ["train", "sft", "--show-config"], ["train", "grpo", "--show-config"]])
def test_help_names_both_model_families(args, capsys):
    assert main(args) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Qwen2.5-VL" in text and "Qwen3-VL" in text, text[:400]


def test_eval_bar_total_is_the_rows_of_the_data(tmp_path):
    """`vlir eval --data` gives its bar a total (so an ETA): the rows in the Parquet footers."""
    from tests.conftest import make_output
    from vlir.cli.infer import _shard_rows

    out = make_output(tmp_path / "out", n=5)
    assert _shard_rows(out / "gqa" / "val") == 5
    assert _shard_rows(out / "gqa" / "val" / "part-00000.parquet") == 5

