"""The benches are run by ``make bench``, not by the suite: a name they import from vlir, or a recipe
they load, that a restructuring moved away breaks them only there (bench/grpo_served.py imported
``vlir.sources.zoom.write_corpus`` and loaded ``recipes/grpo_zoom_tiny.yaml`` long after both were
gone). Checked statically here: every ``from vlir... import name`` in bench/*.py (at any depth, inside
functions too) names something the module has, and every ``recipes/*.yaml`` it mentions exists."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHES = sorted((REPO / "bench").glob("*.py"))


@pytest.mark.parametrize("path", BENCHES, ids=lambda p: p.name)
def test_a_bench_imports_only_what_vlir_has_and_loads_only_recipes_that_exist(path):
    tree = ast.parse(path.read_text("utf-8"))
    missing = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vlir":
            module = importlib.import_module(node.module)
            missing += [f"{node.module}.{a.name} (line {node.lineno})" for a in node.names
                        if not hasattr(module, a.name) and importlib.util.find_spec(f"{node.module}.{a.name}") is None]
    recipes = set(re.findall(r"recipes/[\w./-]+\.(?:yaml|json)", path.read_text("utf-8")))
    missing += [r for r in sorted(recipes) if not (REPO / r).is_file()]
    assert not missing, f"{path.name} refers to what is not there: {missing}"
