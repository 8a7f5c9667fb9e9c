"""``vlir.paths``: the one confinement rule for paths that come from data."""

from __future__ import annotations

import os

import pytest

from vlir.paths import ConfinementError, confine, path_problem


@pytest.fixture
def base(tmp_path):
    (tmp_path / "base" / "sub").mkdir(parents=True)
    (tmp_path / "base" / "sub" / "ok.png").write_bytes(b"x")
    (tmp_path / "secret.png").write_bytes(b"private")
    return tmp_path / "base"


def test_a_relative_path_inside_resolves(base):
    assert confine(base, "sub/ok.png") == (base / "sub" / "ok.png").resolve()
    assert confine(base, "sub/../sub/ok.png") == (base / "sub" / "ok.png").resolve()
    assert confine(base, "sub/not-there-yet.png").name == "not-there-yet.png"  # a target to write


@pytest.mark.parametrize("bad, words", [
    ("/etc/passwd", "is absolute"), ("C:\\secret.png", "is absolute"), ("../secret.png", "leads outside"),
    ("sub/../../secret.png", "leads outside"), ("", "not a relative path"), ("a\x00b", "NUL"),
])
def test_absolute_and_escaping_paths_are_refused(base, bad, words):
    with pytest.raises(ConfinementError, match=words) as info:
        confine(base, bad, "crop 0 path", "the base folder (--base)")
    message = str(info.value)
    assert str(base) not in message and str(base.parent) not in message  # no local absolute path
    assert info.value.reason == "unsafe_path" and path_problem(bad) is not None


def test_a_symlink_leading_out_is_refused(base):
    os.symlink(base.parent / "secret.png", base / "sub" / "link.png")
    os.symlink(base.parent, base / "up")
    for rel in ("sub/link.png", "up/secret.png"):
        with pytest.raises(ConfinementError, match="symbolic link"):
            confine(base, rel, "image", "the source root")


def test_the_refusal_does_not_tell_whether_the_outside_file_exists(base):
    messages = []
    for rel in ("../secret.png", "../no-such-file.png"):
        with pytest.raises(ConfinementError) as info:
            confine(base, rel, "crop 0 path", "the base folder")
        messages.append(str(info.value).replace(rel, "<rel>"))
    assert messages[0] == messages[1]


def test_path_problem_is_lexical():
    assert path_problem("images/a.jpg") is None and path_problem("a/../b.jpg") is None
    assert "absolute" in path_problem("/abs/a.jpg", "image_path")
    assert "outside" in path_problem("a/../../b.jpg")
    assert path_problem(None) is not None
