"""The one config base (vlir/config.py): strict types and ranges for every field, unknown keys
named by file and key path, and every CLI config error one line with exit 2 (issue 13.9)."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

from vlir.corpus.build import BuildConfig
from vlir.config import Config, ConfigError, option


@dataclass
class Toy(Config):
    kind = "toy"
    count: int = option(2, "A count.", ge=1)
    ratio: float = option(0.5, "A share.", ge=0, le=1)
    flag: bool = option(False, "A switch.")
    name: str = option("a", "A name.", choices=("a", "b"))
    limit: int | None = option(None, "Optional.", ge=0)
    opts: dict = option({}, "A mapping.")
    urls: str | list[str] = option("u", "One name or a list of them.")


@pytest.mark.parametrize("values,message", [
    ({"count": 4.5}, "count must be an integer, got 4.5"),
    ({"count": "four"}, "count must be an integer, got 'four'"),
    ({"count": True}, "count must be an integer, got True"),
    ({"count": 0}, "count must be >= 1, got 0"),
    ({"flag": "no"}, "flag must be true or false, got 'no'"),
    ({"flag": 1}, "flag must be true or false"),
    ({"ratio": 1.5}, "ratio must be <= 1"),
    ({"name": "c"}, "name must be one of a, b"),
    ({"limit": -1}, "limit must be >= 0"),
    ({"limit": "x"}, "limit must be an integer or null"),
    ({"opts": [1]}, "opts must be a mapping"),
    ({"bogus": 1}, "unknown toy config key bogus"),
    ({"api_key": "x"}, "api_key: a config may not hold an API key"),
    ({"opts": {"inner": "sk-abcdefghijklmnop"}}, "opts.inner looks like an API key"),
    ({"urls": ["a", 2]}, "urls must be a string or a list whose every item is a string, got ['a', 2]"),
    ({"urls": 3}, "urls must be a string or a list"),
    ({"urls": ["a", "sk-abcdefghijklmnop"]}, "urls[1] looks like an API key"),
])
def test_types_ranges_and_keys_are_checked(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Toy.from_dict(values)


def test_lossless_conversions_and_defaults():
    toy = Toy.from_dict({"count": "3", "ratio": "2e-1", "limit": None})  # YAML 1.1 leaves 2e-1 a string
    assert (toy.count, toy.ratio, toy.limit) == (3, 0.2, None) and isinstance(toy.ratio, float)
    assert Toy.from_dict({"urls": ("a", "b")}).urls == ["a", "b"] and Toy().urls == "u"
    assert Toy.from_dict({"count": 4.0}).count == 4 and "count = 2: A count." in Toy.help()


def test_load_names_the_file_and_applies_overrides(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text("count: 3\nopts: {x: 1}\n")
    toy = Toy.load(path, ["flag=true", "opts.y=2"])
    assert toy.flag is True and toy.opts == {"x": 1, "y": 2} and toy.count == 3
    path.write_text("cuont: 3\n")
    with pytest.raises(ConfigError, match=r"toy\.yaml: unknown toy config key cuont"):
        Toy.load(path)


@pytest.mark.parametrize("text,message", [
    ("teacher: {bogus: 1}\n", "unknown teacher config key teacher.bogus"),
    ("teacher: {concurrency: many}\n", "teacher.concurrency must be an integer"),
    ("tasks: 4.5\n", "tasks must be an integer"),
    ("tasks: four\n", "tasks must be an integer"),
    ("tasks: true\n", "tasks must be an integer"),
    ("embed_images: 'no'\n", "embed_images must be true or false"),
    ("row_group_rows: -5\n", "row_group_rows must be >= 1"),
    ("max_image_pixels: -1\n", "max_image_pixels must be >= 1"),
    ("checks: {min_sid: 1}\n", "unknown check config key checks.min_sid"),
    ("grounded: {text_match_min: 2}\n", "grounded.text_match_min must be <= 1"),
    ("source_options: {textvqa: {questions: 3}, nosuch: {}}\n", "unknown source source_options.nosuch"),
])
def test_bad_build_configs_name_the_file_and_key_path(tmp_path, text, message):
    path = tmp_path / "build.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        BuildConfig.from_yaml(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_raising_a_check_threshold_alone_does_not_fail_grounded_looks():
    """The grounded annotator grows looks to the checks' min_side: one home for the threshold."""
    from PIL import Image

    from vlir.annotate import AnnotateInput, get_annotator
    from vlir.checks import CheckConfig, run_checks
    from vlir.records import Box, Region, Sample

    sample = Sample(id="textvqa/val/1", source="textvqa", split="val", image="1.png", width=640,
                    height=480, question="What does the sign say?", answers=("stop",) * 10,
                    evidence=(Region(Box(100, 100, 130, 112), "stop", "ocr_word"),))
    checks = CheckConfig(min_side=84.0)
    chain = get_annotator("grounded", checks=checks).annotate(
        AnnotateInput(sample, Image.new("RGB", (640, 480)), ""))
    results = {c.name: c for c in run_checks(sample, chain, checks)}
    assert results["box_min_side"].passed, results["box_min_side"].detail


def test_cli_config_errors_are_one_line_exit_2(tmp_path):
    path = tmp_path / "build.yaml"
    path.write_text("teacher: {bogus: 1}\n")
    (tmp_path / "root").mkdir()
    r = subprocess.run([sys.executable, "-m", "vlir", "build", "--source", "textvqa", "--root",
                        str(tmp_path / "root"), "--split", "val", "--out", str(tmp_path / "out"),
                        "--config", str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "teacher.bogus" in r.stderr and "build.yaml" in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,message", [
    (["--split", ""], "names no split"),
    (["--out", "{file}/x"], "is not a directory"),
    (["--tasks", "0"], "--tasks"),
])
def test_cli_flag_errors_are_one_line_exit_2(tmp_path, args, message):
    (tmp_path / "root").mkdir()
    (tmp_path / "file").write_text("not a folder")
    base = {"--split": "val", "--out": str(tmp_path / "out")}
    given = dict(zip(args[::2], [a.format(file=tmp_path / "file") for a in args[1::2]]))
    flags = [x for k, v in {**base, **given}.items() for x in (k, v)]
    r = subprocess.run([sys.executable, "-m", "vlir", "build", "--source", "textvqa", "--root",
                        str(tmp_path / "root"), *flags], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0
    assert message in r.stderr
