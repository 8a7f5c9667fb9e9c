"""The build's bookkeeping: per-task stats and completion markers, the build info, the manifest,
and ``vlir merge``.

A task's files live next to its shards::

    <out>/<source>/<split>/stats/NNNNN.json     counts, reasons, shard checksums of task NNNNN
    <out>/<source>/<split>/completions/NNNNN    empty marker, written last
    <out>/build.json                            the build config and source roots (fixed per output)
    <out>/manifest.json                         derived from the above once every task is complete

The manifest is a pure function of the task stats and the build info, so it is deterministic and
can be rebuilt at any time (``vlir merge OUT``), also from several machines' outputs.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import vlir
from vlir.records import SCHEMA_VERSION
from vlir.shards import MANIFEST, atomic_write_json

BUILD_INFO = "build.json"


class ManifestError(Exception):
    """The output cannot get a manifest (incomplete tasks, conflicting configs...)."""


def _task_name(task: int) -> str:
    return f"{task:05d}"


def stats_path(out: Path, source: str, split: str, task: int) -> Path:
    return Path(out) / source / split / "stats" / f"{_task_name(task)}.json"


def completion_marker(out: Path, source: str, split: str, task: int) -> Path:
    return Path(out) / source / split / "completions" / _task_name(task)


def task_done(out: Path, source: str, split: str, task: int) -> bool:
    return completion_marker(out, source, split, task).exists() and stats_path(out, source, split, task).exists()


def write_build_info(out: Path, config: dict[str, Any], roots: dict[str, str]) -> None:
    """Record the config and roots of this output; refuse a different config on an existing one
    (resuming with other settings would mix two builds in one corpus)."""
    path = Path(out) / BUILD_INFO
    info = {"config": config, "roots": roots}
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("config") != config:
            raise ManifestError(f"{path}: this output was built with another config; use a new --out "
                                "or the same settings")
        info["roots"] = {**old.get("roots", {}), **roots}
    atomic_write_json(path, info)


def _all_stats(out: Path) -> list[dict[str, Any]]:
    stats = []
    for path in sorted(Path(out).glob("**/stats/*.json")):
        data = json.loads(path.read_text())
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
        "splits": dict(sorted(splits.items())),
        "shards": sorted(shards, key=lambda s: s["path"]),
        "annotator_stats": annotator_stats,
    }


def write_manifest(out: Path) -> dict[str, Any]:
    manifest = build_manifest(out)
    atomic_write_json(Path(out) / MANIFEST, manifest)
    return manifest


def merge(target: Path, others: list[Path]) -> dict[str, Any]:
    """Bring other machines' task outputs into ``target`` (copying shards, stats and markers it
    lacks) and write the one manifest over all of them."""
    target = Path(target)
    for other in map(Path, others):
        if other.resolve() == target.resolve():
            continue
        oinfo = json.loads((other / BUILD_INFO).read_text()) if (other / BUILD_INFO).is_file() else None
        if oinfo is None:
            raise ManifestError(f"{other} has no {BUILD_INFO}: not a vlir build output")
        write_build_info(target, oinfo["config"], oinfo["roots"])
        for s in _all_stats(other):
            if task_done(target, s["source"], s["split"], s["task"]):
                continue
            for shard in s["shards"]:
                dest = target / shard["path"]
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(other / shard["path"], dest)
            atomic_write_json(stats_path(target, s["source"], s["split"], s["task"]), s)
            marker = completion_marker(target, s["source"], s["split"], s["task"])
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
    return write_manifest(target)
