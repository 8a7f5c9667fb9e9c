"""The SFT dataset: VLIR shards -> encoded chat samples, with a length per sample for the sampler.

A corpus can hold hundreds of thousands of records whose crops are PNG bytes, so the dataset never
loads it whole: at start it reads only the light columns (sizes, texts, crop sizes) to index every
accepted row and count its tokens (exactly, from the stored image and crop
sizes, without decoding an image), and ``__getitem__`` reads the one row group that holds
the row (a small cache keeps the last few; length-grouped order visits row groups at random, which
costs one row-group decode per sample at worst). Encoding is the chat module's: the rendering, the
masks and the crop images live there once.
"""

from __future__ import annotations

import fnmatch
import logging
from pathlib import Path
from typing import Any, Sequence

import pyarrow.parquet as pq
from cachetools import LRUCache

from vlir.records import Record
from vlir.corpus.shards import Corpus, shard_files

log = logging.getLogger(__name__)

LIGHT_COLUMNS = ["id", "source", "split", "image_path", "width", "height", "question", "steps",
                 "answer", "crop_info", "annotator", "vlir_version"]


def light_record(row: dict[str, Any]) -> Record:
    """A record from the light columns only: crops carry their sizes but no PNG bytes, which is
    all :func:`vlir.models.chat.num_tokens` needs to count a sample's tokens exactly."""
    row = dict(row, crops=[{"bytes": b"", "path": None}] * len(row.get("crop_info") or ()))
    return Record.from_row(row)


class SFTDataset:
    """Map-style dataset over the accepted records of some splits of a VLIR corpus.

    ``lengths[i]`` is sample ``i``'s token count; ``dataset[i]`` is
    ``chat.encode_record(record, image, processor, chat_cfg)``. Samples longer than ``max_length``
    (0 = no limit) are left out and counted in ``dropped``.
    """

    def __init__(self, data_dir: str | Path, processor: Any, chat_cfg: Any, splits: Sequence[str] = (),
                 max_length: int = 0, cache_row_groups: int = 4):
        from vlir.models import chat

        self.corpus = Corpus(Path(data_dir))
        self.processor = processor
        self.chat_cfg = chat_cfg
        self._encode = chat.encode_record
        available = sorted(f"{s}/{p}" for s, p in self.corpus.splits())
        wanted = []
        for pattern in splits or ["*"]:
            matched = [name for name in available if fnmatch.fnmatchcase(name, pattern)]
            if not matched:
                raise ValueError(f"split {pattern!r} matches nothing in {data_dir} (it has {available})")
            wanted += [name for name in matched if name not in wanted]
        self.files: list[Path] = []
        for name in wanted:
            self.files += shard_files(self.corpus.split_dir(*name.split("/", 1)))
        self.index: list[tuple[int, int]] = []  # (file number, row number within the file)
        self.lengths: list[int] = []
        self.dropped = 0
        for fi, path in enumerate(self.files):
            rows = pq.read_table(path, columns=LIGHT_COLUMNS).to_pylist()
            for ri, row in enumerate(rows):
                n = chat.num_tokens(light_record(row), processor, chat_cfg)
                if max_length and n > max_length:
                    self.dropped += 1
                    continue
                self.index.append((fi, ri))
                self.lengths.append(n)
        if not self.index:
            raise ValueError(f"no trainable records in {data_dir} {wanted} "
                             f"({self.dropped} longer than max_length={max_length})")
        log.info("SFT data: %d records from %d shard(s) of %s (%d dropped as too long)",
                 len(self.index), len(self.files), wanted, self.dropped)
        self._cache_size = cache_row_groups
        self._cache: LRUCache[tuple[int, int], list[dict]] = LRUCache(maxsize=max(1, cache_row_groups))
        self._bounds: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self.index)

    def record(self, i: int) -> Record:
        """The ``i``-th record, read from its row group."""
        fi, ri = self.index[i]
        bounds = self._bounds.get(fi)
        if bounds is None:
            meta = pq.ParquetFile(self.files[fi]).metadata
            bounds = [0]
            for g in range(meta.num_row_groups):
                bounds.append(bounds[-1] + meta.row_group(g).num_rows)
            self._bounds[fi] = bounds
        group = next(g for g in range(len(bounds) - 1) if bounds[g] <= ri < bounds[g + 1])
        key = (fi, group)
        rows = self._cache.get(key)
        if rows is None:
            rows = pq.ParquetFile(self.files[fi]).read_row_group(group).to_pylist()
            self._cache[key] = rows
        return Record.from_row(rows[ri - bounds[group]])

    def __getitem__(self, i: int) -> dict[str, Any]:
        record = self.record(i)
        return self._encode(record, self.corpus.image(record), self.processor, self.chat_cfg)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers: no row-group cache in the pickle
        state = dict(self.__dict__)
        state["_cache"] = LRUCache(maxsize=max(1, self._cache_size))
        return state

