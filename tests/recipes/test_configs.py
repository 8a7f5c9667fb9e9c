"""Every file under recipes/, recursively, is a valid config of its kind (unlike torchtune's test,
which scans only the top folder): YAML recipes load into their trainer's config dataclass, open
with a comment giving the exact launch command and name files that exist; DeepSpeed JSONs, once
their "auto" values are filled, pass DeepSpeed's own validation. A new kind of file fails here
until it is given a check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"
YAMLS = sorted(p for p in RECIPES.rglob("*") if p.suffix in (".yaml", ".yml"))
JSONS = sorted(RECIPES.rglob("*.json"))
#: files another test runs: tests/recipes/test_slurm.py runs the Slurm array script as Slurm would
CHECKED_ELSEWHERE = {RECIPES / "slurm" / "build_array.sbatch"}
OTHER = sorted(p for p in RECIPES.rglob("*") if p.is_file() and p not in YAMLS and p not in JSONS
               and p not in CHECKED_ELSEWHERE)


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _config_class(path: Path):
    """The config dataclass a recipe feeds, by its name (``<method>_<model>.yaml``, ``build.yaml``)."""
    if path.parent == RECIPES and path.name.startswith("build"):
        from vlir.corpus.build import BuildConfig

        return BuildConfig
    if path.parent == RECIPES and path.name.startswith("sft_"):
        from vlir.train.sft_config import SFTConfig

        return SFTConfig
    if path.parent == RECIPES and path.name.startswith("grpo_"):
        module = pytest.importorskip("vlir.train.grpo_config")
        return module.GRPOConfig
    return None


def test_there_is_something_to_check():
    assert len(YAMLS) >= 3 and len(JSONS) >= 2
    assert not OTHER, f"recipes/ holds files no test checks: {[_rel(p) for p in OTHER]}"


@pytest.mark.parametrize("path", YAMLS, ids=_rel)
def test_yaml_recipe(path: Path):
    text = path.read_text()
    assert text.startswith("#"), f"{_rel(path)} must open with a comment giving its launch command"
    data = yaml.safe_load(text)
    assert isinstance(data, dict) and data
    cls = _config_class(path)
    assert cls is not None, f"{_rel(path)}: no config class for this recipe name"
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert _rel(path) in header and any(w in header for w in ("vlir train", "vlir build", "deepspeed", "python -m")), \
        f"{_rel(path)}: the header comment must give the launch command naming this file"
    cfg = cls.load(path)
    if hasattr(cfg, "deepspeed"):
        assert (REPO / cfg.deepspeed).is_file(), f"{_rel(path)}: deepspeed={cfg.deepspeed} does not exist"
    if getattr(cfg, "build_model", ""):
        from vlir.models import load_tiny_config

        assert load_tiny_config(cfg.build_model)["text"]


@pytest.mark.parametrize("path", JSONS, ids=_rel)
@pytest.mark.parametrize("bf16", [True, False])
def test_deepspeed_json(path: Path, bf16: bool):
    from deepspeed.runtime.config import DeepSpeedConfig

    from vlir.train.ds_config import fill_deepspeed_config

    raw = json.loads(path.read_text())
    filled = fill_deepspeed_config(raw, micro_batch=2, grad_accum=8, world_size=1, lr=2e-7,
                                   betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, grad_clip=1.0,
                                   bf16=bf16, on_cpu=not bf16)
    ds = DeepSpeedConfig(filled)  # DeepSpeed's own checks: batch arithmetic, unknown keys
    assert ds.train_batch_size == 16 and ds.gradient_accumulation_steps == 8
    assert ds.optimizer_name == "adamw" and ds.gradient_clipping == 1.0
    stage = raw["zero_optimization"]["stage"]
    assert ds.zero_optimization_stage == stage and path.stem == f"zero{stage}"
    if stage == 3:  # save_pretrained needs the consolidated weights
        assert raw["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_sft_7b_recipe_has_the_papers_settings():
    from vlir.train.sft_config import SFTConfig

    path = RECIPES / "sft_qwen2_5_vl_7b.yaml"
    cfg = SFTConfig.load(path)
    assert (cfg.learning_rate, cfg.per_device_batch_size, cfg.gradient_accumulation_steps, cfg.epochs) == \
        (2e-7, 2, 8, 3.0)
    assert cfg.freeze_vision_tower and cfg.freeze_merger and not cfg.freeze_language_model
    assert cfg.max_pixels == 2048 * 28 * 28 and cfg.min_pixels == 4 * 28 * 28  # the released agent's
    assert "deepspeed --num_gpus 4 --module vlir.train.sft --config recipes/sft_qwen2_5_vl_7b.yaml" in path.read_text()


def test_sft_tiny_recipe_is_the_make_train_one():
    from vlir.train.sft_config import SFTConfig

    cfg = SFTConfig.load(RECIPES / "sft_tiny.yaml")
    assert cfg.data_dir == "out/vlir" and cfg.output_dir == "out/train/sft"
    assert cfg.model_path == "out/models/tiny" and cfg.build_model == "tiny"
    # make train's budget: minutes of CPU steps, long enough for the model to write boxes itself
    assert 10 <= cfg.max_steps <= 500
    # the zoom task's 224-pixel images are seen at 112 pixels: the asked square is legible in a crop only
    assert cfg.max_pixels == 16 * 28 * 28 and cfg.chat == {"instruction": ""}


def test_build_example_states_the_defaults():
    """recipes/build.yaml is an example of every top-level build key: it loads, and the values it
    states are the defaults (an example that drifted from the code would teach the wrong thing)."""
    import dataclasses

    from vlir.corpus.build import BuildConfig

    path = RECIPES / "build.yaml"
    stated = yaml.safe_load(path.read_text())
    assert set(stated) == {f.name for f in dataclasses.fields(BuildConfig)}
    cfg, default = BuildConfig.load(path), BuildConfig()
    for key, value in stated.items():
        if isinstance(value, dict):  # a section: the keys it names, at their defaults
            section = {"checks": "vlir.checks:CheckConfig", "grounded": "vlir.annotate.grounded:GroundedConfig",
                       "teacher": "vlir.annotate.teacher_config:TeacherConfig"}.get(key)
            if section:
                import importlib

                module, name = section.split(":")
                cls = getattr(importlib.import_module(module), name)
                assert {k: getattr(cls(), k) for k in value} == value, key
            continue
        assert getattr(cfg, key) == getattr(default, key), key
