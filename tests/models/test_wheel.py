"""The model layer works from an installed wheel, outside the repository: the tiny model's YAML is
package data read through importlib.resources, not a path under the checkout.

The fresh venv sees this interpreter's site-packages through a ``.pth`` line (torch, transformers
... without any download); a plain path line does not run that directory's own ``.pth`` files, so
an editable install of vlir there stays invisible and ``import vlir`` must find the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytest.importorskip("transformers")

SCRIPT = """
import sys, tempfile, pathlib
import vlir, vlir.models
from vlir.models import build_tiny_model, load_model
assert pathlib.Path(vlir.__file__).is_relative_to(pathlib.Path(sys.prefix)), vlir.__file__
out = build_tiny_model(pathlib.Path(tempfile.mkdtemp()) / "tiny")
model, processor = load_model(out)
print("OK", vlir.__file__, type(model).__name__, sum(p.numel() for p in model.parameters()))
"""


def _run(cmd, cwd, env=None):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.subprocess
@pytest.mark.timeout(600)
def test_wheel_builds_the_tiny_model_outside_the_repo(tmp_path):
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, REPO],
         cwd=tmp_path)
    [wheel] = wheels.glob("vlir-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path).strip())
    (purelib / "shared_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", purelib, wheel], cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    work = tmp_path / "elsewhere"
    work.mkdir()
    out = _run([python, "-c", SCRIPT], cwd=work, env=env).splitlines()[-1]
    assert out.startswith("OK ") and "Qwen2_5_VLForConditionalGeneration" in out
    assert str(purelib) in out  # the wheel's vlir, not the checkout's
