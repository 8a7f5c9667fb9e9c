"""Structure rules of issue 12, checked on the source: inference never needs the training code
(``vlir.rollout``, ``vlir.eval.evaluate`` and ``vlir infer`` must run where ``vlir.train``'s stack is
absent or broken), module-level imports form no cycle, no Python file grows past 400 lines, and
docs/design.md's layout section names every package and top-level module.

The import graph is read from the files (``ast``), so an import inside a function counts too: a
lazy ``from vlir.train import ...`` in the engine would break inference only when that function
runs, which an import-time check misses. A fresh interpreter then confirms what really loads."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

INFERENCE = ("vlir.rollout", "vlir.eval", "vlir.serving", "vlir.cli.infer", "vlir.cli.benchmark")
MAX_LINES = 400
# Deliberate: rewards.py imports rewards_vlmr3 at its very end so that the vlmr3/* rewards
# register themselves with the ``register`` defined above it (see the comment on that line).
KNOWN_CYCLES = [{"vlir.train.rewards", "vlir.train.rewards_vlmr3"}]


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the vlir package."""
    out = {}
    for path in (REPO / "vlir").rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The vlir module an imported name lives in (``vlir.models.special_ids`` -> ``vlir.models``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(module: str, top_level_only: bool) -> set[str]:
    """The vlir modules ``module`` imports: at module level only (what runs on import), or
    anywhere in the file. A module's own parent packages are left out (they are loaded before it
    anyway, and a package re-exporting its submodules is no cycle)."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    if top_level_only:
        nodes = [n for n in tree.body if not _is_type_checking(n)]
        nodes = [d for n in nodes if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                 for d in ast.walk(n)]
    else:  # everywhere but ``if TYPE_CHECKING:`` blocks, which never run
        skip = {id(d) for n in ast.walk(tree) if _is_type_checking(n) for d in ast.walk(n)}
        nodes = [n for n in ast.walk(tree) if id(n) not in skip]
    names = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    ancestors = {module.rsplit(".", i)[0] for i in range(1, module.count(".") + 1)}
    return {r for r in map(_resolve, names) if r and r != module and r not in ancestors}


def reachable(starts: list[str], top_level_only: bool) -> set[str]:
    seen, stack = set(), list(starts)
    while stack:
        m = stack.pop()
        if m not in seen:
            seen.add(m)
            stack.extend(imports_of(m, top_level_only))
    return seen


def _with_submodules(root: str) -> list[str]:
    return [m for m in MODULES if m == root or m.startswith(root + ".")]


@pytest.mark.parametrize("root", INFERENCE)
def test_inference_code_never_imports_vlir_train(root):
    """Following every import, function-level ones included, from the module and its submodules."""
    seen = reachable(_with_submodules(root), False)
    gates = {m: sorted(i for i in imports_of(m, False) if i.startswith("vlir.train"))
             for m in seen if not m.startswith("vlir.train")}
    gates = {m: d for m, d in gates.items() if d}
    assert not gates, f"{root} reaches vlir.train: these modules import it: {gates}"


@pytest.mark.subprocess
def test_inference_modules_load_without_vlir_train_in_a_fresh_interpreter():
    """What a process really loads: the three roots (each in its own interpreter), and the CLI
    with every verb registered, as ``vlir infer`` runs."""
    code = ("import importlib, json, sys\n"
            "root = sys.argv[1]\n"
            "if root == 'cli': from vlir.cli import _register; _register()\n"
            "else: importlib.import_module(root)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[:2] == ['vlir', 'train'])))")
    for root in (*INFERENCE, "cli"):
        r = subprocess.run([sys.executable, "-c", code, root], capture_output=True, text=True, timeout=120,
                           cwd=REPO)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == [], f"importing {root} loads {r.stdout.strip()}"


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[set[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.add(m)
                    if m == node:
                        break
                if len(component) > 1:
                    out.append(component)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_cycles_at_module_level():
    graph = {m: imports_of(m, True) for m in MODULES}
    cycles = [c for c in _cycles(graph) if c not in KNOWN_CYCLES]
    assert not cycles, f"module-level import cycles: {[sorted(c) for c in cycles]}"


def test_no_import_cycles_at_any_level():
    """Function-level imports included: a lazy import hides a cycle from the interpreter, not from
    the design (two modules that need each other are one concept cut in two, or a registry that
    should sit above its members)."""
    graph = {m: imports_of(m, False) for m in MODULES}
    cycles = [c for c in _cycles(graph) if c not in KNOWN_CYCLES]
    assert not cycles, f"import cycles (function-level imports included): {[sorted(c) for c in cycles]}"


def test_sources_sit_below_train_and_eval():
    """The layers: sources never import training or evaluation (a synthetic source included)."""
    gates = {m: sorted(i for i in imports_of(m, False) if i.startswith(("vlir.train", "vlir.eval")))
             for m in _with_submodules("vlir.sources")}
    assert not {m: d for m, d in gates.items() if d}


def test_no_python_file_over_400_lines():
    files = [p for d in ("vlir", "tests", "bench") for p in (REPO / d).rglob("*.py")]
    assert len(files) > 100
    long = {str(p.relative_to(REPO)): n for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines (split them by concept): {long}"


def _readme_layout() -> str:
    text = (REPO / "docs" / "design.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def test_readme_layout_names_every_package_and_top_level_module():
    """Each ``vlir/<package>/`` and ``vlir/<module>.py`` is in docs/design.md's layout section, and each
    ``vlir/...`` path the section names exists (a new package, or a moved one, updates docs/design.md)."""
    layout = _readme_layout()
    packages = {f"vlir/{p.name}/" for p in (REPO / "vlir").iterdir() if (p / "__init__.py").is_file()
                or (p.is_dir() and any(p.iterdir()) and not p.name.startswith(("_", ".")))}
    modules = {f"vlir/{p.name}" for p in (REPO / "vlir").glob("*.py") if not p.name.startswith("_")}
    missing = sorted(n for n in packages | modules if n not in layout)
    assert not missing, f"docs/design.md ## Layout does not mention {missing}"
    named = set(re.findall(r"\bvlir/[\w/]+(?:\.\w+)?/?", layout))
    gone = sorted(n for n in named if not (REPO / n).exists())
    assert not gone, f"docs/design.md ## Layout names paths that do not exist: {gone}"


# --------------------------------------------------------------------------------------------
# Model-family facts (issue 22.2): defined once, in vlir/models, and read from there elsewhere
# --------------------------------------------------------------------------------------------

# Files that still spell a family fact; each is being rewritten by engineer "loop" to read the
# family API (ModelFamily.view/crop, image_block, vision_token_strings): pending loop merge.
FAMILY_FACT_PENDING: tuple[str, ...] = ()


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants of a module, its classes and functions."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def family_fact_leaks(path: Path) -> list[str]:
    """Where a file outside the model layer spells a model-family fact in code (docstrings and
    comments may name them): a vision token string, the default family's name, a pixel count on the
    28-px grid or a default budget's number, a grid factor re-applied to a budget, or a fallback to
    the default budgets past the family."""
    from vlir.models import defaults
    from vlir.models.registry import families

    tokens = {t for f in families() for t in (*f.vision_token_strings, f.image_block)}
    numbers = {defaults.MIN_PIXELS, defaults.MAX_PIXELS, defaults.CROP_MIN_PIXELS, defaults.CROP_MAX_PIXELS}
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree)
    name = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
    leaks = []
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Constant) and id(node) not in skip:
            if isinstance(node.value, str) and (node.value == defaults.DEFAULT_FAMILY
                                                or any(t in node.value for t in tokens)):
                leaks.append(f"{where} string {node.value[:40]!r}")
            elif type(node.value) is int and node.value in numbers:
                leaks.append(f"{where} number {node.value}")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) and defaults.FACTOR in (
                getattr(node.left, "value", None), getattr(node.right, "value", None)):
            leaks.append(f"{where} grid arithmetic {ast.unparse(node)}")
        elif (isinstance(node, ast.Call) and any(k.arg == "factor" for k in node.keywords)
              and ast.unparse(node.func).rsplit(".", 1)[-1] in ("replace", "PixelBudget")):
            leaks.append(f"{where} grid factor re-applied: {ast.unparse(node)[:60]}")
        elif isinstance(node, ast.BoolOp) and any(isinstance(v, ast.Name) and v.id in ("CROP_PIXELS", "MODEL_PIXELS")
                                                  for v in node.values):
            leaks.append(f"{where} fallback past the family: {ast.unparse(node)[:60]}")
    return leaks


def test_family_fact_finder_finds_each_kind_of_leak(tmp_path):
    bad = tmp_path / "probe.py"  # parsed only, never imported
    bad.write_text('"""<|image_pad|> in a docstring is fine."""\n'
                   'BLOCK = "<|vision_start|><|image_pad|><|vision_end|>"\nFAMILY = "qwen2_5_vl"\n'
                   'LOW = 4 * 28 * 28\nHIGH = 1605632\nB = replace(crop, factor=32)\nC = None or CROP_PIXELS\n')
    lines = sorted((int(leak.split(" ", 1)[0].rsplit(":", 1)[1]), leak.split(" ", 2)[1])
                   for leak in family_fact_leaks(bad))
    assert sorted(set(lines)) == [(2, "string"), (3, "string"), (4, "grid"), (5, "number"), (6, "grid"),
                                  (7, "fallback")], lines


def test_model_family_facts_are_defined_once_in_vlir_models():
    """Image blocks, vision tokens, the default family's name, its grid factor and default budgets
    live in vlir/models (vlir/models/defaults.py, the family modules); vlir/geometry.py reads the
    defaults from there (its PixelBudget type is where a budget's grid is a field)."""
    files = [p for p in (REPO / "vlir").rglob("*.py")
             if not str(p.relative_to(REPO)).startswith(("vlir/models/", "vlir/geometry.py", *FAMILY_FACT_PENDING))]
    leaks = [leak for p in files for leak in family_fact_leaks(p)]
    assert not leaks, "model-family facts outside vlir/models (read them from the family): " + "; ".join(leaks)
