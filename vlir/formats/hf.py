"""``vlir export --format hf``: a Hub-ready copy of a corpus (images embedded, card, configs).

A build references its original images by path under each source root (one photo serves many
questions), so its shards show no images on the Hub and load nowhere the roots are absent. The
export rewrites every listed shard with the original image bytes in the ``image`` column (checked
against the stored sha256, read through :mod:`vlir.images`), keeps the corpus layout
(``<source>/<split>/part-*.parquet``, ``rejects/<source>/<split>/rejects-*.parquet``), writes a
manifest over the new shards (``config.embed_images`` true, no local roots) and the dataset card
(:func:`vlir.corpus.cards.write_card`: the YAML ``configs`` the Hub and ``load_dataset(DEST,
config)`` read). The folder then validates with ``vlir validate DEST`` and uploads as is::

    huggingface-cli upload <user>/<dataset> DEST . --repo-type dataset

(vlir never uploads anything itself.)
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable

from vlir import images

log = logging.getLogger(__name__)

UPLOAD_HINT = "huggingface-cli upload <user>/<dataset> {dest} . --repo-type dataset"


class HubExportError(Exception):
    """The export cannot run (no corpus, DEST not empty, an image missing or changed)."""


def _original_bytes(corpus: Any, record: Any) -> bytes:
    """The record's original image file, read under its source root and checked against its sha256."""
    root = corpus.root(record.sample.source)
    if root is None:
        raise HubExportError(f"{record.sample.id}: the manifest records no root for {record.sample.source}")
    path = images.safe_path(root, record.sample.image)
    data = images.read_image_bytes(path, record.sample.image)
    if record.image_sha256 and images.sha256_hex(data) != record.image_sha256:
        raise HubExportError(f"{record.sample.id}: {path} differs from the sha256 recorded in the corpus")
    return data


def _embedded(corpus: Any, record: Any):
    """The record with its original image's bytes. A reject keeps its reference when its image
    cannot be read (that is often why it was rejected); an accepted record must have it."""
    if record.image_bytes is not None:
        return record
    try:
        return dataclasses.replace(record, image_bytes=_original_bytes(corpus, record))
    except (HubExportError, images.ImageError):
        if record.accepted:
            raise
        return record


def _write_bookkeeping(out: Path, dest: Path, manifest: dict[str, Any],
                       written: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The copy's task stats, markers, build info and manifest, made by the build's own code with
    the new shards' sizes and sha256, so ``vlir validate DEST`` checks it like any build."""
    from vlir.corpus.manifest import (_all_stats, completion_marker, stats_path, write_build_info,
                                      write_manifest)
    from vlir.corpus.shards import atomic_write_json

    write_build_info(dest, {**manifest["config"], "embed_images": True}, {})  # no local roots
    for stats in _all_stats(out):
        shards = [{**s, **written[s["path"]]} for s in stats["shards"] if written.get(s["path"], {}).get("rows")]
        atomic_write_json(stats_path(dest, stats["source"], stats["split"], stats["task"]), {**stats, "shards": shards})
        marker = completion_marker(dest, stats["source"], stats["split"], stats["task"])
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    return write_manifest(dest)


def export_hub(out: Path, dest: Path, progress: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Write the Hub-ready copy of corpus ``out`` into ``dest`` (new or empty); returns its manifest.
    ``progress()`` is called once per record."""
    from vlir.corpus.cards import write_card
    from vlir.corpus.shards import Corpus, ShardWriter, read_records

    out, dest = Path(out), Path(dest)
    try:
        corpus = Corpus(out)
    except FileNotFoundError as exc:
        raise HubExportError(str(exc)) from None
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise HubExportError(f"{dest} exists and is not an empty folder; choose a new DEST")
    written: dict[str, dict[str, Any]] = {}
    for entry in corpus.manifest["shards"]:
        rel = entry["path"]
        writer = ShardWriter(dest / rel)
        try:
            for record in read_records(out / rel):
                try:
                    writer.write(_embedded(corpus, record))
                except images.ImageError as exc:
                    raise HubExportError(f"{out / rel}: record {record.sample.id}: {exc}") from None
                if progress is not None:
                    progress()
        except BaseException:
            writer.abort()
            raise
        written[rel] = writer.close()
    manifest = _write_bookkeeping(out, dest, corpus.manifest, written)
    write_card(dest)
    log.info("Hub-ready corpus in %s; upload with: %s", dest, UPLOAD_HINT.format(dest=dest))
    return manifest
