"""``vlir export`` / ``vlir import --format vlmr3`` from the command line: a round trip that
``vlir validate`` accepts, and bad input as one line with exit code 2."""

from __future__ import annotations

import pytest

import json
import subprocess
import sys

from tests.conftest import make_output

pytestmark = pytest.mark.subprocess  # runs the CLI in child interpreters (make test-fast skips)


def vlir(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vlir", *args], capture_output=True, text=True, timeout=300)


def test_export_import_validate(tmp_path):
    out = make_output(tmp_path / "out")
    r = vlir("export", "--format", "vlmr3", str(out), str(tmp_path / "dest"), "--max-pixels", "40000")
    assert r.returncode == 0, r.stderr
    assert "wrote 6 records" in r.stdout
    info = json.loads((tmp_path / "dest" / "vlir_export.json").read_text())
    assert (info["min_pixels"], info["max_pixels"]) == (3136, 40000)
    r = vlir("import", "--format", "vlmr3", str(tmp_path / "dest"), str(tmp_path / "back"), "--max-pixels", "40000")
    assert r.returncode == 0, r.stderr
    assert "gqa/val" in r.stdout and "vlir validate" in r.stdout
    r = vlir("validate", str(tmp_path / "back"))
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "back" / "manifest.json").read_text())
    assert manifest["splits"]["gqa/val"]["accepted"] == 6
    assert manifest["config"]["budget"] == {"min_pixels": 3136, "max_pixels": 40000}


def test_bad_input_exits_2_with_one_line(tmp_path):
    out = make_output(tmp_path / "out", n=1, n_rejects=0)
    cases = [
        ("export", "--format", "llava", str(out), str(tmp_path / "d1")),
        ("export", "--format", "vlmr3", str(tmp_path / "missing"), str(tmp_path / "d2")),
        ("export", "--format", "vlmr3", str(out), str(tmp_path / "d3"), "--images", "link"),
        ("export", "--format", "vlmr3", str(out), str(tmp_path / "d4"), "--min-pixels", "9", "--max-pixels", "8"),
        ("export", "--format", "vlmr3", str(out), str(tmp_path / "d5"), "--split", "test"),
        ("import", "--format", "vlmr3", str(tmp_path / "missing"), str(tmp_path / "o1")),
        ("import", "--format", "vlmr3", str(out), str(tmp_path / "o2"), "--source", "Not OK"),
        ("import", "--format", "vlmr3", str(out / "gqa"), str(out)),
        # one flag of a pair: the other half is the model family's default crop budget's
        ("import", "--format", "vlmr3", str(out), str(tmp_path / "o3"), "--crop-min-pixels", "99999999"),
    ]
    for args in cases:
        r = vlir(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vlir: error:"), (args, r.stderr)
    assert "known: vlmr3" in vlir(*cases[0]).stderr
    assert "--crop-min-pixels/--crop-max-pixels: need 0 < min_pixels <= max_pixels" in vlir(*cases[-1]).stderr
    assert not (tmp_path / "d2").exists() and not (tmp_path / "o1").exists()
