"""Samplers against torch.utils.data's behaviour (orders differ, being drawn by other generators; lengths,
batching, reproducibility and distributions are checked)."""

import collections

import numpy as np
import pytest
import torch.utils.data as tud

import danlu as dl
from danlu.data import (BatchSampler, RandomSampler, SequentialSampler, SubsetRandomSampler,
                        WeightedRandomSampler)


def test_sequential_sampler():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    assert len(SequentialSampler("abc")) == 3


def test_random_sampler_is_a_permutation_per_pass():
    s = RandomSampler(range(50))
    a, b = list(s), list(s)
    assert sorted(a) == sorted(b) == list(range(50))
    assert a != b  # a new draw every pass


def test_random_sampler_reproducible_with_manual_seed_and_generator():
    dl.manual_seed(7)
    a = list(RandomSampler(range(30)))
    dl.manual_seed(7)
    assert list(RandomSampler(range(30))) == a
    g1, g2 = dl.Generator().manual_seed(1), dl.Generator().manual_seed(1)
    assert list(RandomSampler(range(30), generator=g1)) == list(RandomSampler(range(30), generator=g2))
    # A given generator advances, so two passes differ, but the sequence of passes reproduces.
    g = dl.Generator().manual_seed(1)
    s = RandomSampler(range(30), generator=g)
    first, second = list(s), list(s)
    g.manual_seed(1)
    assert [list(s), list(s)] == [first, second] and first != second


@pytest.mark.parametrize("n,num_samples", [(5, 12), (5, 3), (7, 7), (3, 70)])
def test_random_sampler_num_samples_without_replacement_like_torch(n, num_samples):
    ours = list(RandomSampler(range(n), num_samples=num_samples))
    theirs = list(tud.RandomSampler(range(n), num_samples=num_samples))
    assert len(ours) == len(theirs) == num_samples
    counts = collections.Counter(ours)
    # Whole permutations first, then part of one: counts differ by at most one.
    assert max(counts.values()) - min(counts.values()) <= 1 and set(counts) <= set(range(n))
    full = num_samples // n
    for p in range(full):
        assert sorted(ours[p * n:(p + 1) * n]) == list(range(n))


def test_random_sampler_with_replacement():
    out = list(RandomSampler(range(4), replacement=True, num_samples=1000))
    assert len(out) == 1000 and set(out) == {0, 1, 2, 3}
    counts = np.bincount(out, minlength=4)
    assert counts.min() > 180  # 250 expected each
    assert len(list(RandomSampler(range(4), replacement=True, num_samples=33))) == 33


def test_random_sampler_errors():
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        RandomSampler(range(3), num_samples=0)
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        RandomSampler([])
    with pytest.raises(TypeError, match="replacement should be a boolean"):
        RandomSampler(range(3), replacement=1)


def test_subset_random_sampler():
    dl.manual_seed(0)
    out = list(SubsetRandomSampler([10, 20, 30, 40]))
    assert sorted(out) == [10, 20, 30, 40] and len(SubsetRandomSampler([1, 2])) == 2
    g = dl.Generator().manual_seed(2)
    a = list(SubsetRandomSampler(list(range(20)), generator=g))
    g.manual_seed(2)
    assert list(SubsetRandomSampler(list(range(20)), generator=g)) == a


@pytest.mark.parametrize("n,bs,drop", [(10, 3, False), (10, 3, True), (9, 3, False), (9, 3, True), (2, 5, False),
                                       (2, 5, True), (0, 2, False)])
def test_batch_sampler_like_torch(n, bs, drop):
    ours = BatchSampler(SequentialSampler(range(n)), bs, drop)
    theirs = tud.BatchSampler(tud.SequentialSampler(range(n)), bs, drop)
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)


def test_batch_sampler_errors():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch_size should be a positive integer"):
            BatchSampler(range(3), bad, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean"):
        BatchSampler(range(3), 2, 0)


def test_weighted_random_sampler_distribution():
    w = [1.0, 3.0, 0.0, 4.0]
    out = list(WeightedRandomSampler(w, 4000))
    counts = np.bincount(out, minlength=4) / 4000
    assert counts[2] == 0
    np.testing.assert_allclose(counts, np.array(w) / 8, atol=0.04)
    assert len(WeightedRandomSampler(w, 7)) == 7


def test_weighted_random_sampler_without_replacement_and_reproducibility():
    out = list(WeightedRandomSampler([1, 1, 1, 1, 1], 5, replacement=False))
    assert sorted(out) == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="without replacement"):
        list(WeightedRandomSampler([1, 1], 3, replacement=False))
    g = dl.Generator().manual_seed(9)
    a = list(WeightedRandomSampler([0.2, 0.8], 20, generator=g))
    g.manual_seed(9)
    assert list(WeightedRandomSampler([0.2, 0.8], 20, generator=g)) == a


def test_weighted_random_sampler_errors():
    with pytest.raises(ValueError, match="1-d"):
        WeightedRandomSampler([[1.0, 2.0]], 2)
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        WeightedRandomSampler([1.0], 0)
    with pytest.raises(ValueError, match="replacement should be a boolean"):
        WeightedRandomSampler([1.0], 1, replacement=None)
