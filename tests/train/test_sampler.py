"""Length-grouped batching: coverage, rank disjointness, determinism, resume skip, less padding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlir.train.sampler import LengthGroupedBatchSampler, padding_fraction


def _lengths(n: int, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(50, 2000, size=n).tolist()


def _epoch(sampler: LengthGroupedBatchSampler, epoch: int, skip: int = 0) -> list[list[int]]:
    sampler.set_epoch(epoch, skip)
    return list(sampler)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(4, 300), batch=st.integers(1, 5), world=st.integers(1, 4), group=st.integers(1, 8),
       grouped=st.booleans())
def test_ranks_cover_disjoint_equal_shares(n, batch, world, group, grouped):
    if n < batch * world:
        with pytest.raises(ValueError, match="no full global batch"):
            LengthGroupedBatchSampler(_lengths(n), batch, world_size=world, group_size=group)
        return
    per_rank = [_epoch(LengthGroupedBatchSampler(_lengths(n), batch, world_size=world, rank=r,
                                                 group_size=group, group_by_length=grouped), 3)
                for r in range(world)]
    assert {len(b) for b in per_rank} == {n // (batch * world)}  # same number of steps on each rank
    flat = [i for batches in per_rank for b in batches for i in b]
    assert all(len(b) == batch for batches in per_rank for b in batches)
    assert len(flat) == len(set(flat)) == (n // (batch * world)) * batch * world  # no sample twice
    assert set(flat) <= set(range(n))


def test_deterministic_per_epoch_and_different_across_epochs():
    a = LengthGroupedBatchSampler(_lengths(200), 4, seed=7)
    b = LengthGroupedBatchSampler(_lengths(200), 4, seed=7)
    assert _epoch(a, 0) == _epoch(b, 0)
    assert _epoch(a, 0) != _epoch(a, 1)
    assert _epoch(a, 0) != _epoch(LengthGroupedBatchSampler(_lengths(200), 4, seed=8), 0)


def test_skip_resumes_inside_an_epoch():
    s = LengthGroupedBatchSampler(_lengths(100), 2, world_size=2, rank=1)
    full = _epoch(s, 2)
    assert _epoch(s, 2, skip=7) == full[7:]
    assert len(s) == 25


def test_grouping_cuts_padding_and_puts_the_longest_batch_first():
    lengths = _lengths(2000, seed=1)
    grouped = LengthGroupedBatchSampler(lengths, 4, group_size=64)
    random = LengthGroupedBatchSampler(lengths, 4, group_by_length=False)
    pad_grouped = padding_fraction(lengths, _epoch(grouped, 0))
    pad_random = padding_fraction(lengths, _epoch(random, 0))
    assert pad_grouped < 0.05 < 0.2 < pad_random
    batches = _epoch(grouped, 0)
    assert max(lengths[i] for i in batches[0]) == max(lengths[i] for b in batches for i in b)


def test_unshuffled_is_in_order():
    s = LengthGroupedBatchSampler([5] * 8, 2, shuffle=False, group_by_length=False)
    assert _epoch(s, 0) == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_padding_fraction():
    assert padding_fraction([10, 10, 5, 15], [[0, 1], [2, 3]]) == pytest.approx(1 - 40 / 50)
    assert padding_fraction([3], []) == 0.0
