"""The build's bookkeeping: per-task stats and completion markers, the build info, the manifest,
and ``vlir merge``.

A task's files live in the output's bookkeeping folder, outside the split folders
(:mod:`vlir.corpus.layout`)::

    <out>/.vlir/<source>/<split>/stats/NNNNN.json    counts, reasons, shard checksums of task NNNNN
    <out>/.vlir/<source>/<split>/completions/NNNNN   empty marker, written last
    <out>/build.json                                 the build config and source roots (fixed per output)
    <out>/manifest.json                              derived from the above once every task is complete

The manifest is a pure function of the task stats and the build info, so it is deterministic and
can be rebuilt at any time (``vlir merge OUT``), also from several machines' outputs. Stats files
are input like any other: a shard path in one that is not the path the build writes for that
(source, split, task) is refused (``vlir merge`` never writes, nor reads, outside its folders).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import vlir
from vlir import identity
from vlir.corpus import layout
from vlir.corpus.layout import BUILD_INFO, completion_marker, stats_path  # noqa: F401 (re-exported)
from vlir.records import SCHEMA_VERSION
from vlir.corpus.shards import MANIFEST, atomic_write_json


class ManifestError(Exception):
    """The output cannot get a manifest (incomplete tasks, conflicting configs...)."""


def task_done(out: Path, source: str, split: str, task: int) -> bool:
    return completion_marker(out, source, split, task).exists() and stats_path(out, source, split, task).exists()


def finish_task(out: Path, source: str, split: str, task: int, tasks: int, accepted, rejected,
                rejected_by_reason: dict[str, int], stats: dict[str, int],
                annotator_stats: dict[str, Any]) -> None:
    """Close a task's accepted and rejects :class:`vlir.corpus.shards.ShardWriter`\\ s, save its stats and
    then its completion marker (in that order: a task counts as finished only once the marker
    exists, after everything it wrote is in place). The one ending of a task, for ``vlir build``
    and for ``vlir import``."""
    shards = []
    for writer, kind in ((accepted, "accepted"), (rejected, "rejected")):
        info = writer.close()
        if not info["rows"]:  # no rows, no file: nothing for the manifest or `datasets` to find
            continue
        shards.append({"path": writer.path.relative_to(out).as_posix(), "kind": kind, **info})
    atomic_write_json(stats_path(out, source, split, task), {
        "source": source, "split": split, "task": task, "tasks": tasks,
        "accepted": accepted.rows, "rejected": rejected.rows,
        "rejected_by_reason": dict(sorted(rejected_by_reason.items())),
        "stats": dict(sorted(stats.items())), "annotator_stats": annotator_stats, "shards": shards,
    }, tmp_dir=layout.temp_dir(out))
    marker = completion_marker(out, source, split, task)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


#: Build settings that are not properties of the corpus: where the teacher lives and how hard the
#: build talks to it, and how many samples are in flight (output order never depends on it).
NOT_IDENTITY = ("batch_size", "teacher.base_url", "teacher.api_key_env", "teacher.concurrency",
                "teacher.timeout_s", "teacher.max_retries", "teacher.backoff_s", "teacher.max_backoff_s",
                "teacher.max_response_bytes", "teacher.breaker_failures", "teacher.bench_s",
                "teacher.cache_path")
BUILD_TODO = "use a new --out, or the same inputs and settings to resume (delete the folder to start over)"


def build_identity(config: dict[str, Any], roots: dict[str, str], out: Path | None = None) -> dict[str, Any]:
    """The run identity (:mod:`vlir.identity`) of a build: each source root's content
    fingerprint (``out`` left out should it lie inside a root), the config less
    :data:`NOT_IDENTITY`, the vlir version."""
    return identity.make(inputs={source: identity.tree_fingerprint(root, exclude=out)
                                 for source, root in sorted(roots.items())},
                         config=identity.without(config, NOT_IDENTITY))


def identity_differences(before: dict[str, Any], ident: dict[str, Any]) -> list[str]:
    """What differs between two build identities, over the sources both name (a source not
    built yet may join an output)."""
    shared = set(before.get("inputs", {})) & set(ident.get("inputs", {}))

    def pick(i: dict[str, Any]) -> dict[str, Any]:
        return {**i, "inputs": {k: v for k, v in i.get("inputs", {}).items() if k in shared}}
    return identity.differences(pick(before), pick(ident))


def write_build_info(out: Path, config: dict[str, Any], roots: dict[str, str],
                     ident: dict[str, Any] | None = None, todo: str = BUILD_TODO,
                     missing: list[dict[str, str]] | None = None) -> None:
    """Record the config, roots and run identity of this output; refuse another identity on an
    existing one (resuming from other images or with other settings would mix two builds in one
    corpus) with one line naming what differs and ``todo``. Sources not built yet into ``out``
    may be added; a setting outside the identity (an endpoint URL after an outage) is simply
    recorded anew. ``ident``: an identity already computed (``vlir merge`` passes a part's own);
    ``missing``: what the run was asked for and did not find."""
    path = Path(out) / BUILD_INFO
    ident = ident if ident is not None else build_identity(config, roots, Path(out))
    info: dict[str, Any] = {"config": config, "roots": roots, "identity": ident}
    if missing:  # what the latest run was asked for and did not find (replaces the previous list)
        info["missing"] = missing
    if path.is_file():
        old = json.loads(path.read_text())
        before = old.get("identity")
        if before is None:
            raise ManifestError(f"{path}: built by a vlir without run identities; {todo}")
        if (diffs := identity_differences(before, ident)):
            raise ManifestError(identity.mismatch_line(out, diffs, todo, what="build"))
        info["roots"] = {**old.get("roots", {}), **roots}
        info["identity"] = {**ident, "inputs": {**before.get("inputs", {}), **ident.get("inputs", {})}}
    atomic_write_json(path, info)


def stats_problem(data: Any) -> str | None:
    """Why a task's stats (read back from disk) cannot be trusted to name files, or None."""
    if not isinstance(data, dict) or not isinstance(data.get("task"), int) or isinstance(data.get("task"), bool):
        return "not a task stats object"
    if (msg := layout.name_problem(data.get("source"), data.get("split"))):
        return msg
    shards = data.get("shards")
    if not isinstance(shards, list):
        return "no shard list"
    for shard in shards:
        rel = shard.get("path") if isinstance(shard, dict) else None
        if (msg := layout.shard_path_problem(rel)):
            return msg
        expected = layout.expected_shard_rel(data["source"], data["split"], data["task"], shard.get("kind"))
        if rel != expected:
            return f"shard path {rel!r} is not {expected!r}, the path this task writes; refused"
    return None


def _all_stats(out: Path) -> list[dict[str, Any]]:
    stats = []
    for path in sorted(layout.bookkeeping_dir(out).glob("**/stats/*.json")):
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{path}: not valid JSON ({exc})") from None
        if (msg := stats_problem(data)):
            raise ManifestError(f"{path}: {msg}")
        if path != stats_path(out, data["source"], data["split"], data["task"]):
            raise ManifestError(f"{path}: names {data['source']}/{data['split']} task {data['task']}, "
                                "which lives elsewhere; refused")
        if completion_marker(out, data["source"], data["split"], data["task"]).exists():
            stats.append(data)
    return stats


def _add(into: dict[str, Any], other: dict[str, Any]) -> None:
    """Sum numeric leaves of nested dicts (annotator counters)."""
    for key, value in other.items():
        if isinstance(value, dict):
            _add(into.setdefault(key, {}), value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            into[key] = into.get(key, 0) + value


def build_manifest(out: Path) -> dict[str, Any]:
    out = Path(out)
    info_path = out / BUILD_INFO
    if not info_path.is_file():
        raise ManifestError(f"{out} has no {BUILD_INFO}: not a vlir build output")
    info = json.loads(info_path.read_text())
    splits: dict[str, dict[str, Any]] = {}
    shards: list[dict[str, Any]] = []
    annotator_stats: dict[str, Any] = {}
    seen_tasks: dict[str, set[int]] = {}
    for s in _all_stats(out):
        key = f"{s['source']}/{s['split']}"
        entry = splits.setdefault(key, {"source": s["source"], "split": s["split"], "tasks": s["tasks"],
                                        "accepted": 0, "rejected": 0, "rejected_by_reason": Counter(),
                                        "stats": Counter()})
        entry["accepted"] += s["accepted"]
        entry["rejected"] += s["rejected"]
        entry["rejected_by_reason"].update(s["rejected_by_reason"])
        entry["stats"].update(s["stats"])
        seen_tasks.setdefault(key, set()).add(s["task"])
        shards.extend(s["shards"])
        _add(annotator_stats, s.get("annotator_stats") or {})
    missing = [f"{key} task {t}" for key, e in splits.items() for t in range(e["tasks"]) if t not in seen_tasks[key]]
    if missing:
        raise ManifestError(f"{out}: {len(missing)} task(s) not complete: {', '.join(missing[:8])}"
                            + (" ..." if len(missing) > 8 else ""))
    for entry in splits.values():
        entry["rejected_by_reason"] = dict(sorted(entry["rejected_by_reason"].items()))
        entry["stats"] = dict(sorted(entry["stats"].items()))
    return {
        "format": "vlir",
        "schema_version": SCHEMA_VERSION,
        "vlir_version": vlir.__version__,
        "config": info["config"],
        "roots": info["roots"],
        "identity": info.get("identity"),
        "splits": dict(sorted(splits.items())),
        "shards": sorted(shards, key=lambda s: s["path"]),
        "annotator_stats": annotator_stats,
        **({"missing": info["missing"]} if info.get("missing") else {}),
    }


def write_manifest(out: Path) -> dict[str, Any]:
    manifest = build_manifest(out)
    atomic_write_json(Path(out) / MANIFEST, manifest)
    return manifest


def merge(target: Path, others: list[Path]) -> dict[str, Any]:
    """Bring other machines' task outputs into ``target`` (copying shards, stats and markers it
    lacks) and write the one manifest over all of them."""
    from vlir.corpus.lock import OutputLock

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    with OutputLock(target):  # no build (or other merge) writes into it meanwhile
        return _merge_locked(target, others)


def _merge_locked(target: Path, others: list[Path]) -> dict[str, Any]:
    for other in map(Path, others):
        if other.resolve() == target.resolve():
            continue
        oinfo = json.loads((other / BUILD_INFO).read_text()) if (other / BUILD_INFO).is_file() else None
        if oinfo is None:
            raise ManifestError(f"{other} has no {BUILD_INFO}: not a vlir build output")
        other_stats = _all_stats(other)  # all checked before anything is written: no '..', no absolute path
        if oinfo.get("identity") is None:
            raise ManifestError(f"{other}: built by a vlir without run identities; rebuild it")
        write_build_info(target, oinfo["config"], oinfo["roots"], oinfo["identity"],
                         todo=f"{other} is a part of another build; merge only parts of one build")
        for s in other_stats:
            if task_done(target, s["source"], s["split"], s["task"]):
                continue
            for shard in s["shards"]:
                src, dest = other / shard["path"], target / shard["path"]
                if not layout.inside(other, src):
                    raise ManifestError(f"{src}: a symbolic link out of {other}; refused")
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not layout.inside(target, dest.parent):
                    raise ManifestError(f"{dest.parent}: a symbolic link out of {target}; refused")
                # copy to a temp name, then rename: a symlink at dest is replaced, never followed
                tmp = layout.temp_dir(target) / f"merge-{dest.name}.tmp"
                tmp.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, tmp)
                os.replace(tmp, dest)
            atomic_write_json(stats_path(target, s["source"], s["split"], s["task"]), s,
                              tmp_dir=layout.temp_dir(target))
            marker = completion_marker(target, s["source"], s["split"], s["task"])
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
    return write_manifest(target)
