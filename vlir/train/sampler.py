"""Length-grouped batching: batches of samples with similar token counts, so little of each batch
is padding, while the order stays random from epoch to epoch.

The recipe (as in Hugging Face's ``LengthGroupedSampler``): shuffle all indices with the epoch's
seed, cut them into mega-batches of ``group_size`` global batches, sort each mega-batch by length,
cut it into global batches, then shuffle the order of the global batches (the batch holding the
longest sample goes first, so an out-of-memory shows on step one, not hours in). A global batch is
``batch_size * world_size`` samples; rank ``r`` takes its ``r``-th slice, so every rank runs the same
number of micro-batches (a rank that ran one more would hang the others in the next collective).

Pure Python + numpy: no torch, so it is cheap to test and to use in the bench.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np


class LengthGroupedBatchSampler:
    """Yields this rank's micro-batches (lists of dataset indices) for the current epoch.

    ``set_epoch(epoch, skip=k)`` starts the epoch at its ``k``-th batch, which is how a resumed run
    continues exactly where the checkpoint stopped. Incomplete global batches are dropped.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, world_size: int = 1, rank: int = 0,
                 group_size: int = 64, group_by_length: bool = True, shuffle: bool = True, seed: int = 0):
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size or group_size < 1:
            raise ValueError(f"bad sampler arguments: batch_size={batch_size}, world_size={world_size}, "
                             f"rank={rank}, group_size={group_size}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.world_size = world_size
        self.rank = rank
        self.group_size = group_size
        self.group_by_length = group_by_length
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.skip = 0
        if len(self) == 0:
            raise ValueError(f"{len(self.lengths)} samples make no full global batch of "
                             f"{batch_size} x {world_size}; lower per_device_batch_size or add data")

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch = epoch
        self.skip = skip

    def global_batches(self, epoch: int) -> list[list[int]]:
        """Every global batch of ``epoch``, in the order they will be trained."""
        rng = np.random.default_rng([self.seed, epoch])
        n = len(self.lengths)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        gb = self.batch_size * self.world_size
        order = order[: (n // gb) * gb]
        if self.group_by_length:
            mega = gb * self.group_size
            chunks = [order[i:i + mega] for i in range(0, len(order), mega)]
            # stable sort, longest first: equal lengths keep their random order
            order = np.concatenate([c[np.argsort(-self.lengths[c], kind="stable")] for c in chunks])
        batches = [order[i:i + gb].tolist() for i in range(0, len(order), gb)]
        if self.shuffle and len(batches) > 1:
            perm = rng.permutation(len(batches))
            batches = [batches[i] for i in perm]
            if self.group_by_length:
                longest = max(range(len(batches)), key=lambda i: self.lengths[batches[i]].max())
                batches.insert(0, batches.pop(longest))
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        lo, hi = self.rank * self.batch_size, (self.rank + 1) * self.batch_size
        for batch in self.global_batches(self.epoch)[self.skip:]:
            yield batch[lo:hi]

    def __len__(self) -> int:
        """Micro-batches per epoch on each rank (the skip of a resumed epoch not subtracted)."""
        return len(self.lengths) // (self.batch_size * self.world_size)


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of the tokens of right-padded batches that are padding."""
    lengths = np.asarray(lengths)
    real = padded = 0
    for batch in batches:
        if len(batch):
            ls = lengths[list(batch)]
            real += int(ls.sum())
            padded += int(ls.max()) * len(ls)
    return 0.0 if padded == 0 else 1.0 - real / padded
