"""TeacherConfig: YAML loading, validation, and no secrets."""

from __future__ import annotations

import pytest

from vlir.annotate.teacher_config import TeacherConfig


def test_from_dict_and_yaml(tmp_path):
    cfg = TeacherConfig.from_dict({"base_url": "http://localhost:8000/v1", "model": "Qwen/Qwen2.5-VL-72B-Instruct",
                                   "concurrency": 32, "judge": True})
    assert cfg.api_key_env == "OPENAI_API_KEY" and cfg.concurrency == 32 and cfg.judge
    path = tmp_path / "t.yaml"
    path.write_text("teacher:\n  model: gpt-4o\n  timeout_s: 30\n  hints: false\n")
    loaded = TeacherConfig.from_yaml(path)
    assert (loaded.model, loaded.timeout_s, loaded.hints) == ("gpt-4o", 30, False)
    assert set(cfg.to_dict()) >= {"base_url", "model", "api_key_env", "concurrency", "timeout_s",
                                  "max_retries", "temperature", "max_tokens", "image_max_pixels",
                                  "hints", "judge", "cache_path"}


def test_unknown_keys_are_refused_and_a_key_field_is_explained():
    with pytest.raises(ValueError, match="known"):
        TeacherConfig.from_dict({"modle": "x"})
    with pytest.raises(ValueError, match="environment variable"):
        TeacherConfig.from_dict({"api_key": "sk-123"})


@pytest.mark.parametrize("bad", [
    {"base_url": "localhost:8000"}, {"model": ""}, {"concurrency": 0}, {"timeout_s": 0},
    {"max_retries": -1}, {"max_tokens": 0}, {"image_max_pixels": 100},
    {"api_key_env": "sk-proj-abc123"}, {"base_url": []}, {"base_url": ["http://a/v1", "b:8000"]},
    {"base_url": ["http://a/v1", "http://a/v1"]}, {"base_url": ["http://a/v1", 8000]}, {"bench_s": 0},
])
def test_bad_values_are_refused(bad):
    with pytest.raises(ValueError):
        TeacherConfig(**bad)


def test_a_key_given_as_api_key_env_is_not_echoed():
    with pytest.raises(ValueError) as info:
        TeacherConfig(api_key_env="sk-live-SECRET")
    assert "SECRET" not in str(info.value)


def test_base_url_may_list_replicas(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("teacher:\n  base_url:\n    - http://gpu1:8000/v1\n    - http://gpu2:8000/v1\n")
    cfg = TeacherConfig.from_yaml(path)
    assert cfg.base_urls == ["http://gpu1:8000/v1", "http://gpu2:8000/v1"]
    assert cfg.to_dict()["base_url"] == cfg.base_urls  # the manifest records the list as given
    assert TeacherConfig(base_url="http://one:8000/v1").base_urls == ["http://one:8000/v1"]
