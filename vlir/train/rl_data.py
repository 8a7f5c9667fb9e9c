"""The RL set: a deterministic, per-source-quota sample of a VLIR corpus for R-GRPO.

The paper trains R-GRPO on about 5,000 questions from TextVQA, GQA, VSR, DocVQA and M3CoT.
:func:`build_rl_set` streams a built corpus (``make vlir``) and keeps, per source, the ``quota``
records with the smallest ``sha256(seed:id)``: the choice depends only on the seed and the record
ids, not on shard order or how many machines built the corpus, and memory stays O(quota). The
chosen records are written in that hash order (a seeded shuffle that mixes sources) as one VLIR
shard with the original image bytes embedded (crops dropped: R-GRPO renders its own), so the RL
set is self-contained, readable by :func:`vlir.corpus.shards.read_records` and by ``datasets``, and
independent of where the source roots live. ``.vlir/rl_data.json`` records the seed, quotas and
counts: in the folder's bookkeeping subfolder (as a build's), not beside the shard, so that
``load_dataset("parquet", data_dir=OUT)`` sees Parquet files only (``datasets`` skips hidden folders).
Sampled with the default quotas, a corpus without one of the paper's five sources gets a warning
naming the mix (and ``missing_paper_sources`` in the manifest), never a silent four-source set.

:class:`RLSet` is the trainer's reader: prompt metadata in memory, images decoded per row group on
demand (the trainer reads in file order, so one cached row group serves consecutive prompts).
No torch here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from vlir import images
from vlir.corpus.layout import bookkeeping_dir
from vlir.corpus.shards import Corpus, ShardWriter, atomic_write_json, shard_name, sha256_file
from vlir.records import Record, Region

log = logging.getLogger(__name__)

PAPER_SOURCES = ("textvqa", "gqa", "vsr", "docvqa", "m3cot")
DEFAULT_QUOTA = 1000  # x 5 sources: the paper's ~5,000
MANIFEST = "rl_data.json"  # under OUT/.vlir/
ROW_GROUP_ROWS = 32


def manifest_path(out_dir: str | Path) -> Path:
    """Where an RL set's manifest lives: its bookkeeping folder, so the data folder holds shards only."""
    return bookkeeping_dir(Path(out_dir)) / MANIFEST


def paper_mix_warning(missing: Sequence[str], corpus_dir: str | Path, split: str) -> str:
    """The one-line warning for paper sources a corpus lacks."""
    return (f"{corpus_dir} has no {split} split of {', '.join(missing)}: the RL set leaves "
            f"{'it' if len(missing) == 1 else 'them'} out, but the paper's R-GRPO mix is five sources "
            f"({', '.join(PAPER_SOURCES)}); build the missing ones or pass --sources to choose the mix")


def selection_key(seed: int, record_id: str) -> str:
    """The order key of a record for a seed (smaller = chosen first)."""
    return hashlib.sha256(f"{seed}:{record_id}".encode()).hexdigest()


def select(records: Iterable[Record], quota: int, seed: int) -> list[tuple[str, Record]]:
    """The ``quota`` records with the smallest keys, as ``(key, record)`` sorted by key; streaming,
    holding at most ``quota`` records (their crops dropped)."""
    heap: list[tuple[str, str, Record]] = []  # max-heap on key via inverted strings
    for rec in records:
        key = selection_key(seed, rec.sample.id)
        item = (_invert(key), rec.sample.id, dataclasses.replace(rec, crops=()))
        if len(heap) < quota:
            heapq.heappush(heap, item)
        elif key < _invert(heap[0][0]):
            heapq.heapreplace(heap, item)
    return sorted(((_invert(k), r) for k, _, r in heap), key=lambda kr: kr[0])


def _invert(hexkey: str) -> str:
    return "".join("0123456789abcdef"[15 - int(c, 16)] for c in hexkey)


def _image_bytes(corpus: Corpus, record: Record) -> bytes:
    """The original image file's bytes (embedded, or read under the source root and checked)."""
    if record.image_bytes is not None:
        return record.image_bytes
    root = corpus.root(record.sample.source)
    if root is None:
        raise FileNotFoundError(f"no source root for {record.sample.source} in {corpus.out}/manifest.json")
    data = images.read_image_bytes(images.safe_path(root, record.sample.image), record.sample.image)
    if record.image_sha256 and images.sha256_hex(data) != record.image_sha256:
        raise ValueError(f"{record.sample.image}: bytes differ from the sha256 recorded for {record.sample.id}")
    return data


def build_rl_set(corpus_dir: str | Path, out_dir: str | Path, quotas: Mapping[str, int] | None = None,
                 seed: int = 0, split: str = "train", per_source: int = DEFAULT_QUOTA) -> dict[str, Any]:
    """Sample the RL set from ``corpus_dir`` into ``out_dir``; returns the manifest written.

    ``quotas`` maps source -> number of records (default: ``per_source`` from each of the paper's
    sources present in the corpus). A source short of its quota gives all it has (and a warning).
    """
    corpus = Corpus(Path(corpus_dir))
    available = {src for src, sp in corpus.splits() if sp == split}
    absent: list[str] = []
    if quotas is None:
        quotas = {s: per_source for s in PAPER_SOURCES if s in available}
        absent = [s for s in PAPER_SOURCES if s not in available]
        if absent:
            log.warning("%s", paper_mix_warning(absent, corpus_dir, split))
    chosen: list[tuple[str, Record]] = []
    counts: dict[str, int] = {}
    for source, quota in sorted(quotas.items()):
        if source not in available:
            log.warning("%s has no %s/%s split: skipped", corpus_dir, source, split)
            counts[source] = 0
            continue
        picked = select(corpus.records(source, split), int(quota), seed)
        if len(picked) < quota:
            log.warning("%s/%s has %d records, fewer than its quota %d", source, split, len(picked), quota)
        counts[source] = len(picked)
        chosen.extend(picked)
    if not chosen:
        raise ValueError(f"no records selected from {corpus_dir} (split {split!r}, sources {sorted(quotas)})")
    chosen.sort(key=lambda kr: kr[0])
    out = Path(out_dir)
    path = out / shard_name("part", 0)
    writer = ShardWriter(path, row_group_rows=ROW_GROUP_ROWS)
    try:
        for _, rec in chosen:
            writer.write(dataclasses.replace(rec, image_bytes=_image_bytes(corpus, rec)))
    except BaseException:
        writer.abort()
        raise
    info = writer.close()
    manifest = {"kind": "vlir-rl-set", "corpus": str(corpus_dir), "split": split, "seed": seed,
                "quotas": dict(quotas), "counts": counts, "rows": info["rows"],
                "files": {path.name: {"sha256": info["sha256"], "bytes": info["bytes"]}}}
    if absent:
        manifest["missing_paper_sources"] = absent
    manifest_path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(manifest_path(out), manifest)
    log.info("RL set: %d records (%s) -> %s", info["rows"], counts, out)
    return manifest


@dataclass(frozen=True)
class Prompt:
    """One RL prompt: what the rollout and the rewards need."""

    id: str
    source: str
    question: str
    answers: tuple[str, ...]
    image: Any  # PIL.Image.Image, RGB original
    evidence: tuple = ()  # vlir.records.Region: the sample's evidence (R-GRPO logs crop hit rates)


class RLSet:
    """Random access to an RL set's prompts: metadata in memory, images per row group on demand."""

    COLUMNS = ["id", "source", "question", "answers", "evidence"]

    def __init__(self, path: str | Path):
        import pyarrow.parquet as pq

        path = Path(path)
        files = [path] if path.is_file() else sorted(path.glob("part-*.parquet"))
        if not files:
            raise FileNotFoundError(f"no RL set at {path} (run `vlir rl-data`)")
        self._files = [pq.ParquetFile(f) for f in files]
        self._index: list[tuple[int, int, int]] = []  # (file, row group, row in group)
        self._meta: list[dict[str, Any]] = []
        for fi, pf in enumerate(self._files):
            for rg in range(pf.num_row_groups):
                rows = pf.read_row_group(rg, columns=self.COLUMNS).to_pylist()
                self._meta.extend(rows)
                self._index.extend((fi, rg, i) for i in range(len(rows)))
        self._cached: tuple[tuple[int, int], list[Any]] | None = None

    def __len__(self) -> int:
        return len(self._meta)

    def __getitem__(self, i: int) -> Prompt:
        fi, rg, row = self._index[i]
        if self._cached is None or self._cached[0] != (fi, rg):
            column = self._files[fi].read_row_group(rg, columns=["image"]).column("image").to_pylist()
            self._cached = ((fi, rg), column)
        blob = self._cached[1][row]
        meta = self._meta[i]
        data = blob.get("bytes") if isinstance(blob, dict) else blob
        if data is None:
            raise ValueError(f"RL set row {i} ({meta['id']}) has no embedded image")
        image = images.decode_image(data, meta["id"])
        evidence = tuple(Region.from_dict(r) for r in meta.get("evidence") or ())
        return Prompt(meta["id"], meta["source"], meta["question"], tuple(meta["answers"] or ()), image, evidence)

    def describe(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for m in self._meta:
            counts[m["source"]] = counts.get(m["source"], 0) + 1
        return counts


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    return json.loads(manifest_path(out_dir).read_text())


def verify(out_dir: str | Path) -> None:
    """Raise ValueError when a file of the RL set differs from its manifest checksum."""
    man = read_manifest(out_dir)
    for name, info in man["files"].items():
        if sha256_file(Path(out_dir) / name) != info["sha256"]:
            raise ValueError(f"{out_dir}/{name}: sha256 differs from {manifest_path(out_dir)}")
