"""Run identity: what made an output folder, written once for every folder vlir writes (a build's
OUT, an eval's OUT, a trainer's ``output_dir``), so a rerun into it continues only the same run.

An identity is a plain JSON mapping of four parts:

* ``inputs``: each input's content fingerprint, never its path (a copy of the same data at
  another path, or on another machine of a ``--num-shards`` build, is the same input):
  :func:`tree_fingerprint` for a source or benchmark root, :func:`file_sha256` for a predictions
  file, :func:`data_fingerprint` for a corpus or RL set;
* ``config``: the settings that decide the bytes written, with those that do not removed by the
  caller (endpoint URLs, ``--workers``, concurrency, timeouts, retries, log level: a teacher build
  resumed on a new endpoint after an outage is the same run);
* ``model``: the checkpoint's sha256 (:func:`model_sha256`: weights, config and tokenizer files);
* ``vlir_version``.

:func:`claim` records it in a folder and, when one is already there, refuses a different one with
:class:`IdentityMismatch`: one line naming each difference (``config.teacher.model: 'a' -> 'b'``)
and what to do. Paths are kept beside the identity (``where``) to be shown, never compared.

Why names + sizes for a root, and not every byte: a source root holds up to hundreds of thousands
of images (tens of GB); reading them all at each rerun would cost minutes, while a stat of each
costs about a second. Re-encoded, added, removed or renamed images change a name or a size. The
annotation files (every file that is not an image) also contribute the sha256 of their first and
last MiB, so an edit that keeps the size still shows. Modification times are left out on purpose:
copying a dataset (``cp``, ``rsync`` without ``-t``) changes them and not the data.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
MODEL_SUFFIXES = (".json", ".safetensors", ".bin", ".jinja", ".model", ".txt", ".tiktoken")
EDGE_BYTES = 1 << 20  # head and tail hashed of each annotation file


class IdentityMismatch(ValueError):
    """The folder holds another run; the message is one line: what differs and what to do."""


# --------------------------------------------------------------------------------------------
# Fingerprints
# --------------------------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _edges_sha256(path: Path, size: int) -> str:
    """sha256 of the first and last :data:`EDGE_BYTES` (the whole file when smaller than both)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if size <= 2 * EDGE_BYTES:
            h.update(fh.read())
        else:
            h.update(fh.read(EDGE_BYTES))
            fh.seek(size - EDGE_BYTES)
            h.update(fh.read(EDGE_BYTES))
    return h.hexdigest()


def _files(root: Path, exclude: Path | None) -> Iterable[tuple[str, os.stat_result, Path]]:
    """Every regular file under ``root`` (symbolic links to files followed, to folders not),
    hidden folders and ``exclude`` skipped, as ``(relative posix path, stat, path)``."""
    skip = exclude.resolve() if exclude is not None else None
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (skip is None or (Path(folder) / d).resolve() != skip))
        for name in sorted(names):
            path = Path(folder) / name
            try:
                st = path.stat()
            except OSError:
                continue
            if path.is_file():
                yield path.relative_to(root).as_posix(), st, path


def tree_fingerprint(root: Path | str, exclude: Path | str | None = None) -> dict[str, Any]:
    """``{"files", "bytes", "sha256"}`` of a folder: names and sizes of every file, plus the
    head/tail sha256 of every non-image file (see the module's docstring for why). A single file
    gets its full sha256; a missing path ``{"missing": True}``. ``exclude``: a folder inside
    ``root`` left out (the output of a build written under its own source root)."""
    root = Path(root)
    if root.is_file():
        return {"files": 1, "bytes": root.stat().st_size, "sha256": file_sha256(root)}
    if not root.is_dir():
        return {"missing": True}
    h, files, total = hashlib.sha256(), 0, 0
    for rel, st, path in _files(root, Path(exclude) if exclude is not None else None):
        files += 1
        total += st.st_size
        h.update(f"{rel}\0{st.st_size}\0".encode("utf-8", "surrogateescape"))
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            h.update(_edges_sha256(path, st.st_size).encode())
        h.update(b"\n")
    return {"files": files, "bytes": total, "sha256": h.hexdigest()}


def model_sha256(model_dir: Path | str) -> str:
    """sha256 over a checkpoint's weight, config and tokenizer files (top level, sorted by name;
    each file's name and bytes); ``"missing"`` when the folder does not exist."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return "missing"
    h = hashlib.sha256()
    for path in sorted(p for p in model_dir.iterdir() if p.is_file() and p.suffix in MODEL_SUFFIXES):
        h.update(path.name.encode("utf-8") + b"\0")
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def checkpoint_problem(model_dir: Path | str) -> str | None:
    """Why ``model_dir`` is not a loadable checkpoint, in one line, or None: no folder, no or an
    unreadable ``config.json``, no weights, or a safetensors file that is truncated (its header's
    tensors end past the file's size) or not safetensors at all. Read without torch, before any
    model code runs, so a bad ``--model`` is one line and not a loader's traceback."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return f"{model_dir} is not a checkpoint directory"
    try:
        json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{model_dir} has no config.json: not a checkpoint"
    except (OSError, ValueError) as exc:
        return f"{model_dir}/config.json is not readable JSON ({exc})"
    weights = sorted(model_dir.glob("*.safetensors"))
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            return f"{index} is not a weight index ({exc})"
        missing = sorted(n for n in names if not (model_dir / n).is_file())
        if missing:
            return f"{model_dir} lacks {len(missing)} weight shard(s) its index names, e.g. {missing[0]}"
    if not weights and not list(model_dir.glob("pytorch_model*.bin")):
        return f"{model_dir} has no weights (model.safetensors or pytorch_model.bin)"
    for path in weights:
        if (msg := _safetensors_problem(path)):
            return f"{path}: {msg}; copy the checkpoint again"
    return None


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return "truncated (no header)"
        length = int.from_bytes(head, "little")
        if length > size - 8:
            return f"truncated or not safetensors (a {length}-byte header in a {size}-byte file)"
        try:
            header = json.loads(fh.read(length))
        except ValueError:
            return "not safetensors (its header is not JSON)"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)
               and isinstance(t.get("data_offsets"), list) and len(t["data_offsets"]) == 2), default=0)
    if 8 + length + end > size:
        return f"truncated ({size} bytes; its tensors end at byte {8 + length + end})"
    return None


def data_fingerprint(path: Path | str) -> dict[str, Any]:
    """A built corpus is named by its ``manifest.json`` (which holds every shard's checksum); any
    other folder or file by :func:`tree_fingerprint`."""
    path = Path(path)
    if (path / "manifest.json").is_file():
        return {"manifest_sha256": file_sha256(path / "manifest.json")}
    return tree_fingerprint(path)


def without(config: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """``config`` less ``keys``; a dotted key (``teacher.base_url``) reaches into a section."""
    out = json.loads(json.dumps(config, default=str))
    for key in keys:
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return out


def make(*, inputs: dict[str, Any], config: dict[str, Any], model: Any = None) -> dict[str, Any]:
    import vlir

    identity = {"inputs": inputs, "config": config, "model": model, "vlir_version": vlir.__version__}
    return json.loads(json.dumps(identity, default=str))  # the form it has once read back


# --------------------------------------------------------------------------------------------
# Comparing and claiming
# --------------------------------------------------------------------------------------------

def _shown(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "…"  # a sha256
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "…"


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """One ``path: old -> new`` per differing leaf (a mapping compared key by key)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                found.append(f"{path}: (none) -> {_shown(new[key])}")
            elif key not in new:
                found.append(f"{path}: {_shown(old[key])} -> (none)")
            else:
                found += differences(old[key], new[key], path)
        return found
    return [] if old == new else [f"{prefix or 'identity'}: {_shown(old)} -> {_shown(new)}"]


def mismatch_line(folder: Path | str, diffs: list[str], todo: str, what: str = "run") -> str:
    shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
    return f"{folder} holds another {what} ({shown}); {todo}"


def read(path: Path) -> dict[str, Any] | None:
    """The identity recorded in the JSON file at ``path`` (under its ``identity`` key), or None."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("identity") if isinstance(data, dict) else None


def check(recorded: dict[str, Any] | None, identity: dict[str, Any], folder: Path | str, todo: str,
          what: str = "run", ignore: Iterable[str] = ()) -> None:
    """Raise :class:`IdentityMismatch` when ``recorded`` (None: nothing recorded yet) differs from
    ``identity`` outside the top-level parts in ``ignore``."""
    if recorded is None:
        return
    skip = set(ignore)
    diffs = differences({k: v for k, v in recorded.items() if k not in skip},
                        {k: v for k, v in identity.items() if k not in skip})
    if diffs:
        raise IdentityMismatch(mismatch_line(folder, diffs, todo, what))


def claim(path: Path, identity: dict[str, Any], todo: str, *, what: str = "run",
          where: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> None:
    """Check ``identity`` against the one recorded in the JSON file ``path`` (see :func:`check`),
    then :func:`record` it there."""
    path = Path(path)
    check(read(path), identity, path.parent, todo, what)
    record(path, identity, where=where, extra=extra)


def record(path: Path, identity: dict[str, Any], *, where: dict[str, Any] | None = None,
           extra: dict[str, Any] | None = None) -> None:
    """Write ``identity`` to the JSON file ``path`` (temp name, then rename) with ``where`` (paths,
    shown in messages, never compared) and the ``extra`` keys."""
    path = Path(path)
    data = {**(extra or {}), "identity": identity, "where": where or {}}
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
