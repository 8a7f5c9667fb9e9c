"""The documentation is checked against the code: every relative link in README.md and docs/*.md
resolves (file and, where given, heading anchor), and every ``vlir …`` command line they quote
parses against the real CLI (an unknown verb or flag, a missing required option or a bad value
fails here, not in a reader's terminal).

Command lines come from fenced code blocks (continuations joined, ``# comments`` dropped) and are
parsed with click's own ``make_context``, which validates without running the command. Inline
mentions (`` `vlir build --embed-images` ``) name a verb and maybe flags, not a whole command: the
verb must exist and every ``--flag`` they name must be one of its options.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

try:  # typer >= 0.20 vendors click as typer._click; its classes are not click's
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer uses click itself
    from click.exceptions import UsageError

from tests.conftest import REPO

DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
SHELL_OPERATORS = {"&", "&&", "||", "|", ";", ">", ">>", "2>&1"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _cli():
    from vlir.cli import _register, app

    _register()
    return typer.main.get_command(app)


def _anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {_anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def _links() -> list[tuple[Path, str]]:
    out = []
    for doc in DOCS:
        text = FENCE.sub("", doc.read_text())
        for target in LINK.findall(text):
            if not re.match(r"^[a-z]+:", target):
                out.append((doc, target))
    return out


@pytest.mark.parametrize(("doc", "target"), _links(), ids=lambda v: getattr(v, "name", v))
def test_relative_links_resolve(doc: Path, target: str):
    path, _, anchor = target.partition("#")
    dest = (doc.parent / path).resolve() if path else doc
    assert dest.exists(), f"{doc.relative_to(REPO)}: link {target!r}: {path} does not exist"
    if anchor and dest.suffix == ".md":
        assert anchor in _anchors(dest), f"{doc.relative_to(REPO)}: link {target!r}: no such heading"


def _block_commands() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for block in FENCE.findall(doc.read_text()):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = line.strip().removeprefix("$ ")
                if line.startswith("vlir "):
                    out.append((doc.name, line))
    return out


def _inline_mentions() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        text = FENCE.sub("", doc.read_text())
        out += [(doc.name, m) for m in re.findall(r"`(vlir [^`]+)`", text)]
    return out


def _resolve(group, words: list[str]):
    """Follow the verb path (``train sft``) through nested groups: (command, its path, the rest)."""
    cmd, path = group, []
    while hasattr(cmd, "get_command") and words and not words[0].startswith("-"):
        sub = cmd.get_command(cmd.context_class(cmd), words[0])
        assert sub is not None, f"no verb {' '.join(path + [words[0]])!r}"
        cmd, path, words = sub, path + [words.pop(0)], words
    return cmd, path, words


def _after_root(ctx) -> list[str]:
    """What follows the root options: the verb path and its arguments (click keeps the verb apart)."""
    return [*getattr(ctx, "_protected_args", []), *ctx.args]


def test_docs_quote_commands():
    assert len(_block_commands()) > 20, "the docs quote vlir command lines; the extractor found few"


@pytest.mark.parametrize(("doc", "line"), _block_commands(), ids=lambda v: v[:60])
def test_documented_command_lines_parse(doc: str, line: str):
    words = shlex.split(line, comments=True)[1:]
    cut = [i for i, w in enumerate(words) if w in SHELL_OPERATORS]
    words = words[:cut[0]] if cut else words  # `vlir vllm serve ... &`: the shell's part is not vlir's
    root = _cli()
    ctx = root.make_context("vlir", list(words), resilient_parsing=False)
    cmd, path, rest = _resolve(root, _after_root(ctx))
    try:
        cmd.make_context(" ".join(["vlir", *path]), rest, parent=ctx)
    except UsageError as e:
        pytest.fail(f"{doc}: `{line}` does not parse: {e.format_message()}")


@pytest.mark.parametrize(("doc", "mention"), _inline_mentions(), ids=lambda v: v[:60])
def test_inline_mentions_name_real_verbs_and_flags(doc: str, mention: str):
    words = [w for w in shlex.split(mention.replace("...", "").replace("…", ""))[1:]]
    cmd, path, rest = _resolve(_cli(), words)
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    flags = {w.split("=", 1)[0] for w in rest if w.startswith("--")}
    assert flags <= known, f"{doc}: `{mention}`: {sorted(flags - known)} not options of vlir {' '.join(path)}"


def test_a_wrong_flag_is_caught():
    """The check itself works: an unknown flag and an unknown verb both fail to parse."""
    root = _cli()
    ctx = root.make_context("vlir", ["build", "--no-such-flag"])
    cmd, path, rest = _resolve(root, _after_root(ctx))
    with pytest.raises(UsageError):
        cmd.make_context("vlir build", rest, parent=ctx)
    with pytest.raises(AssertionError):
        _resolve(root, ["no-such-verb"])
