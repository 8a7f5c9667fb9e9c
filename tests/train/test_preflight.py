"""Config and data are checked before any model load or op build, recipes ship with the package,
and a path inside a recipe resolves against the recipe file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vlir.train import recipe_files
from vlir.train.grpo_config import GRPOConfig
from vlir.train.preflight import check_inputs, input_problems
from vlir.train.sft_config import SFTConfig

REPO = Path(__file__).resolve().parents[2]


def test_missing_data_model_and_deepspeed_named_in_one_line(tmp_path):
    cfg = SFTConfig(data_dir=str(tmp_path / "nope"), model_path=str(tmp_path / "m"), deepspeed=str(tmp_path / "z.json"))
    problems = input_problems(cfg)
    assert len(problems) == 3
    with pytest.raises(FileNotFoundError, match=r"^SFT config: model_path=.*; data_dir=.*nope: no manifest.json.*"
                                                r"; deepspeed=.*z.json"):
        check_inputs(cfg)
    grpo = GRPOConfig(data_dir=str(tmp_path), model_path=str(tmp_path), build_model="tiny")
    assert [p.split(":")[0] for p in input_problems(grpo)] == [f"data_dir={tmp_path}"]


def test_cli_reports_missing_data_before_importing_torch(tmp_path):
    """`vlir train sft data_dir=/nonexistent` answers in one line, exit 2, from a fresh interpreter
    that never imported torch or deepspeed (so no model load and no op compile happened first)."""
    code = ("import sys; from vlir.cli import main; rc = main(['train', 'sft', '--config', "
            f"{str(REPO / 'recipes/sft_tiny.yaml')!r}, 'data_dir={tmp_path / 'nonexistent'}']); "
            "print('torch' in sys.modules, 'deepspeed' in sys.modules); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stdout.split() == ["False", "False"]
    assert done.stderr.startswith("vlir: error: SFT config: data_dir=") and "Traceback" not in done.stderr


def test_recipe_paths_resolve_against_the_recipe_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the checkout: recipes/ is not here
    written = recipe_files.copy_recipes(tmp_path / "mine", ["sft_tiny.yaml", "deepspeed/zero3.json"])
    assert [p.relative_to(tmp_path).as_posix() for p in written] == ["mine/sft_tiny.yaml", "mine/deepspeed/zero3.json"]
    (tmp_path / "mine" / "sft_tiny.yaml").write_text(
        (tmp_path / "mine" / "sft_tiny.yaml").read_text().replace("deepspeed/zero2.json", "deepspeed/zero3.json"))
    cfg = SFTConfig.load(tmp_path / "mine" / "sft_tiny.yaml")
    assert Path(cfg.deepspeed) == tmp_path / "mine" / "deepspeed" / "zero3.json"
    # not copied beside the recipe: the packaged file of that name
    packaged = SFTConfig.load(REPO / "recipes" / "sft_tiny.yaml", ["deepspeed=deepspeed/zero2.json"])
    assert Path(packaged.deepspeed) == recipe_files.packaged_dir() / "deepspeed" / "zero2.json"
    default = input_problems(SFTConfig(build_model="tiny", data_dir=str(tmp_path)))
    assert not [p for p in default if p.startswith("deepspeed")]  # the default JSON, found from any folder
    with pytest.raises(FileExistsError, match="--overwrite"):
        recipe_files.copy_recipes(tmp_path / "mine", ["sft_tiny.yaml"])


def test_every_recipe_file_is_package_data():
    """The wheel's package-data globs (pyproject) cover every file under recipes/, and the packaged
    folder is the checkout's."""
    import tomllib

    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["vlir"]
    files = [p.relative_to(REPO / "recipes").as_posix() for p in (REPO / "recipes").rglob("*") if p.is_file()]
    assert files and all(any(Path("recipes", f).match(g) for g in globs) for f in files), files
    assert sorted(files) == recipe_files.list_recipes()


def test_extension_cache_is_set_before_deepspeed(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    code = "import os, vlir.train; print(os.environ['TORCH_EXTENSIONS_DIR'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(tmp_path / ".cache" / "vlir" / "torch_extensions")
    out = subprocess.run([sys.executable, "-c", code], env={**env, "TORCH_EXTENSIONS_DIR": "/x"},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "/x"  # the user's choice is kept


def test_recipes_cli_lists_and_copies(tmp_path, capsys):
    from vlir.cli import main

    assert main(["recipes", "list"]) == 0
    listed = capsys.readouterr().out.split()
    assert "sft_tiny.yaml" in listed and "deepspeed/zero2.json" in listed and "build.yaml" in listed
    assert main(["recipes", "copy", str(tmp_path / "r"), "--name", "grpo_tiny.yaml"]) == 0
    assert (tmp_path / "r" / "grpo_tiny.yaml").read_text() == (REPO / "recipes" / "grpo_tiny.yaml").read_text()
    assert main(["recipes", "copy", str(tmp_path / "r"), "--name", "grpo_tiny.yaml"]) == 2
    assert main(["recipes", "copy", str(tmp_path / "r"), "--name", "nope.yaml"]) == 2
    assert "no packaged recipe 'nope.yaml'" in capsys.readouterr().err

