"""Shared by the benchmark tests: sample trees in each official layout, written by the
benchmarks' own sample writers into a temporary folder (``sample_tree`` per test; ``tree`` and
``items`` once per module, for the benchmark the module names in ``BENCH``), and a fake engine
that answers with planted responses."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlir.eval.benchmarks import base
from vlir.eval.benchmarks.runner import Response


@pytest.fixture
def sample_tree(tmp_path):
    """``sample_tree(name, n=8) -> root`` of a freshly written sample tree."""
    def make(name: str, n: int = 8, seed: int = 0) -> Path:
        root = tmp_path / f"{name}-{n}-{seed}"
        base.get(name).write_sample(root, n=n, seed=seed)
        return root
    return make


def _module_bench(request) -> str:
    name = getattr(request.module, "BENCH", None)
    if name is None:
        raise pytest.UsageError(f"{request.module.__name__}: set BENCH = '<benchmark name>' to use the "
                                "tree/items fixtures")
    return name


@pytest.fixture(scope="module")
def tree(request, tmp_path_factory) -> Path:
    """The sample tree of the module's ``BENCH`` (``SAMPLE_N`` items, default 8), written once."""
    name = _module_bench(request)
    root = tmp_path_factory.mktemp(name)
    base.get(name).write_sample(root, n=getattr(request.module, "SAMPLE_N", 8))
    return root


@pytest.fixture(scope="module")
def items(request, tree) -> list:
    """The items the module's ``BENCH`` reads from :func:`tree`."""
    return list(base.get(_module_bench(request)).items(tree))


class Planted:
    """A ``generate`` for :func:`vlir.eval.benchmarks.runner.run`: answers each prompt with
    ``respond(question) -> Response`` and records how many prompts it saw."""

    def __init__(self, respond):
        self.respond = respond
        self.seen: list[str] = []

    def __call__(self, prompts, k):
        self.seen.extend(q for q, _ in prompts)
        return [[self.respond(q) for _ in range(k)] for q, _ in prompts]


def answer_with(letter: str, boxes=()) -> Response:
    return Response(f"<think> I look closely. </think>\n<answer>{letter}</answer>", list(boxes), "answer", 12)
