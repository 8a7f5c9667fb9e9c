"""The model family as the one source of its facts (issue 22.2): the default family, grids and
default budgets, a user's pixel knob placed on a family, image blocks and vision tokens, the lazy
model package and the tiny models that live with their family. No model is built here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from vlir import geometry, protocol
from vlir.config import ConfigError
from vlir.geometry import PixelBudget
from vlir.models import defaults
from vlir.models.registry import default_family, families, family_for
from vlir.models.tiny import load_tiny_config


def test_the_default_family_is_named_once_and_its_numbers_are_the_geometry_defaults():
    fam = default_family()
    assert fam.name == defaults.DEFAULT_FAMILY and fam.factor == defaults.FACTOR == geometry.FACTOR
    assert fam.view() == geometry.MODEL_PIXELS == PixelBudget(defaults.MIN_PIXELS, defaults.MAX_PIXELS)
    assert fam.crop() == geometry.CROP_PIXELS == PixelBudget(defaults.CROP_MIN_PIXELS, defaults.CROP_MAX_PIXELS)
    assert (fam.view().min_pixels, fam.view().max_pixels, fam.crop().max_pixels) == (3136, 1605632, 802816)


def test_a_knob_is_placed_on_each_familys_grid_and_box_convention():
    knob = PixelBudget(4096, 65536)  # a knob as a config parses it: the pixel counts are what matter
    qwen3 = family_for("qwen3_vl")
    assert qwen3.view(knob) == PixelBudget(4096, 65536, factor=32, box_grid=1000)
    assert qwen3.crop(knob) == PixelBudget(4096, 65536, factor=32, box_grid=None)
    assert default_family().view(knob) == PixelBudget(4096, 65536, factor=28, box_grid=None)
    # None: the family's own defaults; Qwen3-VL crops keep the agent's pixel counts on its 32-px grid
    assert qwen3.view() == PixelBudget(65536, 16777216, factor=32, box_grid=1000)
    assert (qwen3.crop().min_pixels, qwen3.crop().max_pixels, qwen3.crop().factor) == (
        default_family().crop().min_pixels, default_family().crop().max_pixels, 32)
    # the older count-based spellings give the same budgets
    assert qwen3.budget(4096, 65536) == qwen3.view(knob) and qwen3.crop_budget(4096, 65536) == qwen3.crop(knob)


@pytest.mark.parametrize("value", [{"min_pixels": 3136, "max_pixels": 50176}, [3136, 50176],
                                   PixelBudget(3136, 50176)])
def test_the_knob_has_one_type_whatever_its_written_shape(value):
    assert PixelBudget.parse(value) == PixelBudget(3136, 50176)
    assert PixelBudget.parse(value).knob() == {"min_pixels": 3136, "max_pixels": 50176}


@pytest.mark.parametrize("value,message", [
    ([3136], "write {min_pixels: N, max_pixels: N}"),
    ({"min": 1, "max": 2}, "not the keys"),
    ({"min_pixels": 1.5, "max_pixels": 9}, "min_pixels must be an integer"),
    ({"min_pixels": 9, "max_pixels": 3}, "min_pixels <= max_pixels"),
    ("3136,50176", "write {min_pixels: N, max_pixels: N}"),
])
def test_a_bad_knob_says_what_to_write(value, message):
    with pytest.raises(ValueError, match=message):
        PixelBudget.parse(value)


def test_image_blocks_and_vision_tokens_come_from_the_family():
    fam = default_family()
    assert fam.image_block == "".join(fam.special_tokens[k] for k in ("vision_start", "image_pad", "vision_end"))
    assert fam.vision_token_strings == tuple(fam.special_tokens[k] for k in fam.vision_tokens)
    # the protocol reads images in decoded text through every family's pattern
    text = "look\n" + fam.special_tokens["vision_start"] + fam.special_tokens["image_pad"] * 3 + \
        fam.special_tokens["vision_end"] + "red"
    assert protocol.split_at_images(text) == ["look", "red"]
    assert {f.name for f in families()} == {"qwen2_5_vl", "qwen3_vl"}


def test_tiny_models_live_with_their_family():
    """Each packaged tiny YAML is its family's sub-package data, named by the family."""
    assert {f.tiny_name: f.name for f in families()} == {"tiny": "qwen2_5_vl", "qwen3_vl_tiny": "qwen3_vl"}
    for fam in families():
        assert (REPO / "vlir" / "models" / fam.name / "tiny.yaml").is_file()
        assert load_tiny_config(fam.tiny_name)["family"] == fam.name
    with pytest.raises(ConfigError, match="packaged name: qwen3_vl_tiny, tiny"):
        load_tiny_config("no_such_tiny")


@pytest.mark.subprocess
def test_geometry_reads_the_defaults_without_loading_the_model_layer():
    """vlir.models is lazy: vlir.geometry (below the model layer) loads only its leaf defaults."""
    code = ("import json, sys, vlir.geometry\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('vlir.models'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ["vlir.models", "vlir.models.defaults"]
