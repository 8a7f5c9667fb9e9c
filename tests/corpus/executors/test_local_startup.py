"""The ``vlir build`` program does not import pandas at start-up (pyarrow would, at its first list
conversion: ~0.2-0.3 s of serial start-up, ~5 % of a 1000-record build; bench/build_throughput.py),
while vlir called as a library leaves pyarrow's pandas probe alone (pyarrow then converts pandas
objects as it always does). Both in fresh interpreters: the suite's own has pandas loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess

LIBRARY_PROBE = """
import sys
from vlir.corpus.build import BuildConfig
from vlir.corpus.executors.local import _warm_imports

_warm_imports(BuildConfig())
import pandas as pd
import pyarrow as pa

print(pa.array(pd.Categorical(["a", "b", "a"])).type)
"""


def test_the_build_program_never_imports_pandas(tmp_path: Path):
    vlir = [sys.executable, "-X", "importtime", "-m", "vlir"]
    subprocess.run(vlir + ["sample", "--out", str(tmp_path / "s"), "--per-source", "4", "--source", "textvqa"],
                   check=True, capture_output=True)
    done = subprocess.run(vlir + ["build", "--source", "textvqa", "--root", str(tmp_path / "s/textvqa"),
                                  "--split", "train", "--out", str(tmp_path / "out"), "--workers", "2",
                                  "--no-progress"], check=True, capture_output=True, text=True)
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")]
    assert "pyarrow" in imported and "PIL.PngImagePlugin" in imported  # the probe sees the build's imports
    # (the probe's refused ``import pandas`` is logged too, as a bare "pandas" line of a few µs)
    assert not [m for m in imported if m.startswith("pandas.")]
    assert (tmp_path / "out/manifest.json").is_file()


def test_vlir_as_a_library_leaves_pyarrows_pandas_probe_alone():
    out = subprocess.run([sys.executable, "-c", LIBRARY_PROBE], capture_output=True, text=True, check=True).stdout
    assert out.strip().startswith("dictionary")  # a pandas Categorical, converted as pyarrow always does
