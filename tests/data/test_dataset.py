"""Datasets and random_split, against torch.utils.data's behaviour."""

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import danlu as dl
from danlu.data import (ChainDataset, ConcatDataset, Dataset, IterableDataset, StackDataset, Subset, TensorDataset,
                        random_split)


class Squares(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i * i


class Count(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


def test_tensor_dataset_rows_like_torch():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    y = np.array([0, 1, 0, 1])
    ours = TensorDataset(dl.tensor(x), dl.tensor(y))
    theirs = tud.TensorDataset(torch.tensor(x), torch.tensor(y))
    assert len(ours) == len(theirs) == 4
    for i in (0, 3, -1):
        a, b = ours[i], theirs[i]
        assert isinstance(a, tuple) and len(a) == 2
        np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
        assert a[1].item() == b[1].item()
    assert ours[1:3][0].shape == (2, 3)


def test_tensor_dataset_size_mismatch():
    with pytest.raises(ValueError, match=r"size mismatch.*\[3, 2\]"):
        TensorDataset(dl.zeros(3), dl.zeros(2))
    with pytest.raises(ValueError, match="at least one tensor"):
        TensorDataset()
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(dl.tensor(1.0))


def test_subset_and_getitems():
    s = Subset(Squares(10), [9, 2, 4])
    assert len(s) == 3 and [s[i] for i in range(3)] == [81, 4, 16]
    assert s.__getitems__([0, 2]) == [81, 16]

    class Batched(Squares):
        def __getitems__(self, idx):
            return [("batched", i) for i in idx]

    assert Subset(Batched(5), [4, 1]).__getitems__([1, 0]) == [("batched", 1), ("batched", 4)]


def test_concat_dataset_indexing_like_torch():
    ours = ConcatDataset([Squares(2), Squares(3)])
    theirs = tud.ConcatDataset([list(map(lambda i: i * i, range(2))), list(map(lambda i: i * i, range(3)))])
    assert len(ours) == len(theirs) == 5
    assert ours.cumulative_sizes == theirs.cumulative_sizes == [2, 5]
    assert [ours[i] for i in range(-5, 5)] == [theirs[i] for i in range(-5, 5)]
    with pytest.raises(ValueError, match="should not exceed dataset length"):
        ours[-6]
    with pytest.raises(IndexError):
        ours[5]
    with pytest.raises(ValueError, match="empty"):
        ConcatDataset([])
    with pytest.raises(TypeError, match="IterableDataset"):
        ConcatDataset([Count(2)])
    assert len(Squares(2) + Squares(4)) == 6


def test_chain_and_stack_datasets():
    assert list(ChainDataset([Count(2), Count(3)])) == [0, 1, 0, 1, 2]
    assert list(Count(2) + Count(1)) == [0, 1, 0]
    assert len(ChainDataset([Count(2), Count(3)])) == 5
    st = StackDataset(Squares(3), Squares(3))
    assert st[2] == (4, 4) and len(st) == 3
    assert StackDataset(a=Squares(2), b=[5, 6])[1] == {"a": 1, "b": 6}
    with pytest.raises(ValueError, match="size mismatch"):
        StackDataset(Squares(2), Squares(3))


def test_base_dataset_errors_are_clear():
    with pytest.raises(TypeError, match="__getitem__"):
        Dataset()[0]
    with pytest.raises(TypeError, match="__iter__"):
        iter(IterableDataset())


@pytest.mark.parametrize("lengths", [[0.5, 0.5], [0.3, 0.3, 0.4], [0.33, 0.33, 0.34], [0.1, 0.9], [7, 3]])
def test_random_split_lengths_like_torch(lengths):
    ours = random_split(range(10), lengths, generator=dl.Generator().manual_seed(0))
    theirs = tud.random_split(range(10), lengths, generator=torch.Generator().manual_seed(0))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    assert sorted(i for s in ours for i in s) == list(range(10))


def test_random_split_fraction_remainder_goes_to_first_splits():
    assert [len(s) for s in random_split(range(11), [0.25, 0.25, 0.25, 0.25])] == [3, 3, 3, 2]


def test_random_split_is_reproducible():
    a = [list(s) for s in random_split(range(20), [10, 10], generator=dl.Generator().manual_seed(3))]
    b = [list(s) for s in random_split(range(20), [10, 10], generator=dl.Generator().manual_seed(3))]
    c = [list(s) for s in random_split(range(20), [10, 10], generator=dl.Generator().manual_seed(4))]
    assert a == b and a != c
    dl.manual_seed(5)
    d = [list(s) for s in random_split(range(20), [10, 10])]
    dl.manual_seed(5)
    assert d == [list(s) for s in random_split(range(20), [10, 10])]


def test_random_split_errors():
    with pytest.raises(ValueError, match="sum to 9"):
        random_split(range(10), [4, 5])
    with pytest.raises(ValueError, match="not between 0 and 1"):
        random_split(range(10), [1.5, -0.5])
    with pytest.warns(UserWarning, match="index [12] is 0"):
        random_split(range(2), [0.9, 0.05, 0.05])
