"""The recipe loading both trainer configs share (vlir/train/recipe_config.py)."""

import subprocess
import sys

import pytest

from vlir.train.grpo_config import GRPOConfig
from vlir.train.sft_config import SFTConfig


@pytest.mark.parametrize("cls", [SFTConfig, GRPOConfig])
def test_overrides_coerce_and_reach_into_mappings(cls, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 2e-7\nmax_steps: 3\n")
    cfg = cls.load(recipe, ["max_steps=5", "chat.max_pixels=50176", "seed=7"])
    assert cfg.learning_rate == 2e-7 and isinstance(cfg.learning_rate, float)
    assert cfg.max_steps == 5 and cfg.seed == 7 and cfg.chat["max_pixels"] == 50176
    assert cls.from_dict(cfg.to_dict()) == cfg
    assert "learning_rate = " in cls.help()


@pytest.mark.parametrize("cls,kind", [(SFTConfig, "SFT"), (GRPOConfig, "GRPO")])
def test_bad_recipes_say_what_is_wrong(cls, kind, tmp_path):
    with pytest.raises(ValueError, match=f"unknown {kind} config key no_such_key"):
        cls.load(None, ["no_such_key=1"])
    with pytest.raises(ValueError, match="not key=value"):
        cls.load(None, ["max_steps"])
    with pytest.raises(ValueError, match="max_steps must be an integer"):
        cls.load(None, ["max_steps=lots"])
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must be a YAML mapping"):
        cls.load(tmp_path / "list.yaml")


@pytest.mark.parametrize("module", ["vlir.train.sft", "vlir.train.grpo"])
@pytest.mark.subprocess
def test_module_entry_points_exit_2_on_a_bad_recipe(module, tmp_path):
    r = subprocess.run([sys.executable, "-m", module, "--config", str(tmp_path / "missing.yaml")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and f"python -m {module}: error:" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("cls,override,message", [
    (GRPOConfig, "num_generations=0", "num_generations must be >= 1"), (GRPOConfig, "loss_type=ppo", "loss_type must be one of grpo, dapo"),
    (GRPOConfig, "epsilon_low=1", "epsilon_low must be < 1"), (SFTConfig, "warmup_ratio=1", "warmup_ratio must be < 1"),
    (SFTConfig, "adam_beta2=1", "adam_beta2 must be < 1"), (SFTConfig, "keep_checkpoints=-1", "keep_checkpoints must be >= 0"),
])
def test_ranges_and_choices_are_declared_with_the_fields(cls, override, message):
    """The trainer configs use option() like every config: the range is checked by the base and
    shown by help()."""
    with pytest.raises(ValueError, match=message):
        cls.load(None, [override])
    name = override.split("=")[0]
    line = next(line for line in cls.help().splitlines() if line.startswith(f"{name} = "))
    assert line.endswith("]") and ("one of" in line or "<" in line or ">" in line)
