"""The model layer works from an installed wheel, outside the repository: the tiny model's YAML is
package data read through importlib.resources, not a path under the checkout.

The fresh venv sees this interpreter's site-packages through a ``.pth`` line (torch, transformers
... without any download); a plain path line does not run that directory's own ``.pth`` files, so
an editable install of vlir there stays invisible and ``import vlir`` must find the wheel.
"""

from __future__ import annotations

import os
import shutil
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
from vlir.serving.tiny import load_tiny_vllm_config  # the served tiny model's YAML is package data too
assert load_tiny_vllm_config()["text"]["hidden_size"] == 256
print("OK", vlir.__file__, type(model).__name__, sum(p.numel() for p in model.parameters()))
"""


def _run(cmd, cwd, env=None):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.subprocess
@pytest.mark.timeout(600)
def test_wheel_builds_the_tiny_model_outside_the_repo(tmp_path):
    # build from a copy of the sources: setuptools' build/ folder keeps files a move left behind, and
    # building in place would write build/ and *.egg-info into the checkout
    src = tmp_path / "src"
    shutil.copytree(REPO / "vlir", src / "vlir", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, src],
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
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "vlir/models/qwen2_5_vl/tiny.yaml" in names and "vlir/rollout/engine.py" in names
    assert "vlir/rollout.py" not in names and "vlir/train/model.py" not in names
