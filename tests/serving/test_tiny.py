"""The served tiny model's YAML (package data, read through vlir.models' tiny config) and the error
of building it without the vLLM environment; building and serving it is tests/vllm's."""

from __future__ import annotations

import pytest

from vlir.config import ConfigError
from vlir.serving import tiny, vllm_env


def test_the_packaged_yaml_has_head_sizes_vllm_cpu_takes():
    cfg = tiny.load_tiny_vllm_config()
    text, vision = cfg["text"], cfg["vision"]
    assert text["hidden_size"] // text["num_attention_heads"] == 64 == 2 * sum(text["mrope_section"])
    assert vision["hidden_size"] // vision["num_heads"] == 64
    assert cfg["family"] == "qwen2_5_vl"


def test_another_yaml_is_a_path(tmp_path):
    with pytest.raises(ConfigError, match="no tiny model YAML"):
        tiny.load_tiny_vllm_config(tmp_path / "missing.yaml")


def test_the_video_processor_needs_the_vllm_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(vllm_env.ENV_VAR, str(tmp_path / "no-venv" / "python"))
    with pytest.raises(FileNotFoundError, match="make vllm-venv"):
        tiny.add_video_processor(tmp_path)
