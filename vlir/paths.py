"""Confinement: every path that comes from data stays inside the folder it belongs to.

Paths read from data (a shard row's ``image_path``, an import record's ``image_path`` and
``img_crop_list``, a manifest's shard list, a benchmark file's image column) are joined to their
base folder here and nowhere else. :func:`confine` refuses an absolute path, a ``..`` that leaves the
base and a symbolic link that leads out of it; :func:`path_problem` is the same rule without a
folder on disk (what ``vlir validate`` applies to a row). Errors name the path as the data wrote it
and the base by the name the caller gives (``"the source root"``, ``"--image-root"``), never by its
absolute local path, and they read the same whether or not anything exists at the refused place, so
a crafted record learns nothing about the machine.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path, PureWindowsPath

UNSAFE_PATH = "unsafe_path"  # the reject reason of a refused path


class ConfinementError(ValueError):
    """A path from data is absolute or leads outside its base folder. ``reason`` is
    :data:`UNSAFE_PATH` (a rejects tag)."""

    reason = UNSAFE_PATH


def path_problem(relpath: object, what: str = "path") -> str | None:
    """Why ``relpath`` cannot be a path relative to some folder (lexically, no file system):
    not a non-empty string, a NUL byte, absolute (POSIX or a Windows drive), or a ``..`` that climbs
    above its start. None when it is fine."""
    if not isinstance(relpath, str) or not relpath:
        return f"{what} {relpath!r} is not a relative path"
    if "\x00" in relpath:
        return f"{what} {relpath!r} holds a NUL byte"
    if relpath.startswith("/") or (("\\" in relpath or ":" in relpath)  # only then can Windows see a drive
                                   and (PureWindowsPath(relpath).is_absolute() or PureWindowsPath(relpath).drive)):
        return f"{what} {relpath!r} is absolute; it must be relative to its folder"
    normal = posixpath.normpath(relpath.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        return f"{what} {relpath!r} leads outside its folder ('..')"
    return None


def confine(base: Path | str, relpath: str, what: str = "path", base_name: str = "its folder") -> Path:
    """``base / relpath`` resolved (symbolic links followed), or :class:`ConfinementError` when
    that is not inside ``base``. ``what`` names the path in the error (``"image"``, ``"crop 2"``)
    and ``base_name`` the folder (``"the source root"``), so the message carries no local
    absolute path."""
    problem = path_problem(relpath, what)
    if problem is not None:
        raise ConfinementError(problem.replace("its folder", base_name))
    # os.path on strings, not pathlib: this runs once per record of a build (~1 % of its CPU in pathlib)
    root = os.path.realpath(base)
    full = os.path.realpath(os.path.join(root, relpath))
    if full != root and not full.startswith(root if root.endswith(os.sep) else root + os.sep):
        raise ConfinementError(f"{what} {relpath!r} leads outside {base_name} "
                               "(through '..' or a symbolic link); refused")
    return Path(full)


def is_inside(base: Path | str, path: Path | str) -> bool:
    """``path`` resolves (symbolic links followed) to ``base`` or a place under it."""
    root = Path(base).resolve()
    full = Path(path).resolve()
    return full == root or root in full.parents


def relative_name(base: Path | str, path: Path | str) -> str:
    """How an error names ``path``: relative to ``base`` when it lies under it, else its file name
    only (never an absolute local path)."""
    try:
        return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        return Path(path).name
