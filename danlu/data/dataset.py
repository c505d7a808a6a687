"""Datasets: the map-style ``Dataset`` (indexable) and the ``IterableDataset`` (a stream), with the usual
wrappers, as ``torch.utils.data`` offers them."""

from __future__ import annotations

import bisect
import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..core.errors import api

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "ChainDataset",
           "StackDataset", "random_split"]


class Dataset:
    """A map-style dataset: ``dataset[i]`` gives sample ``i``; ``len(dataset)`` is usually defined too.

    Subclasses override ``__getitem__`` (and ``__len__`` for the default samplers). They may also define
    ``__getitems__(indices) -> list of samples`` to fetch a whole batch at once; the DataLoader then uses it.

    >>> from danlu.data import Dataset
    >>> class Squares(Dataset):
    ...     def __len__(self): return 4
    ...     def __getitem__(self, i): return i * i
    >>> [Squares()[i] for i in range(4)], len(Squares() + Squares())
    ([0, 1, 4, 9], 8)
    """

    def __getitem__(self, index):
        raise TypeError(f"{type(self).__name__} is a Dataset without __getitem__: subclasses must define how to "
                        "fetch a sample")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset that is a stream of samples: subclasses define ``__iter__``.

    With ``num_workers > 0`` every worker process iterates its own copy; use
    :func:`danlu.data.get_worker_info` inside ``__iter__`` to give each worker its own shard, or every
    sample is seen ``num_workers`` times.

    >>> from danlu.data import IterableDataset
    >>> class Count(IterableDataset):
    ...     def __iter__(self): return iter(range(3))
    >>> list(Count() + Count())
    [0, 1, 2, 0, 1, 2]
    """

    def __iter__(self):
        raise TypeError(f"{type(self).__name__} is an IterableDataset without __iter__: subclasses must "
                        "define the stream of samples")

    def __add__(self, other: Dataset) -> ChainDataset:
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Samples are rows of tensors that share their first dimension: ``ds[i] == (t0[i], t1[i], ...)``.

    The DataLoader fetches a whole batch of a TensorDataset (or a Subset of one) with one indexing per
    tensor instead of one ``__getitem__`` per sample, when ``collate_fn`` is the default.

    >>> import danlu as dl
    >>> from danlu.data import TensorDataset
    >>> ds = TensorDataset(dl.arange(6).reshape(3, 2), dl.tensor([0, 1, 0]))
    >>> len(ds), ds[1]
    (3, (tensor([2, 3]), tensor(1)))
    """

    def __init__(self, *tensors) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        n = _first_dim(tensors[0], 0)
        for i, t in enumerate(tensors):
            if _first_dim(t, i) != n:
                sizes = [_first_dim(x, j) for j, x in enumerate(tensors)]
                raise ValueError(f"TensorDataset: size mismatch between tensors: their first dimensions are "
                                 f"{sizes}; every tensor must have one row per sample")
        self.tensors = tuple(tensors)

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return _first_dim(self.tensors[0], 0)


def _first_dim(t, i: int) -> int:
    shape = getattr(t, "shape", None)
    if not shape:
        raise ValueError(f"TensorDataset: tensor {i} is 0-d (shape {list(shape) if shape is not None else '?'}); "
                         "every tensor needs a first dimension that indexes the samples")
    return shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    >>> from danlu.data import Subset
    >>> s = Subset(list("abcde"), [4, 0]); len(s), s[0], s[1]
    (2, 'e', 'a')
    """

    def __init__(self, dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: list[int]) -> list:
        inner = [self.indices[i] for i in indices]
        getitems = getattr(self.dataset, "__getitems__", None)
        if callable(getitems):
            return getitems(inner)
        return [self.dataset[i] for i in inner]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several map-style datasets one after the other.

    >>> from danlu.data import ConcatDataset
    >>> c = ConcatDataset([[1, 2], [3, 4, 5]]); len(c), c[2], c[-1], c.cumulative_sizes
    (5, 3, 5, [2, 5])
    """

    def __init__(self, datasets: Iterable) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset; use ChainDataset to chain "
                                "streams")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]).tolist())

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int):
        n = len(self)
        if idx < 0:
            if -idx > n:
                raise ValueError(f"ConcatDataset: index {idx} is out of range for a dataset of length {n} "
                                 "(absolute value of index should not exceed dataset length)")
            idx += n
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        if which >= len(self.datasets):
            raise IndexError(f"ConcatDataset: index {idx} is out of range for a dataset of length {n}")
        offset = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][idx - offset]


class ChainDataset(IterableDataset):
    """Several iterable datasets, streamed one after another.

    >>> from danlu.data import ChainDataset
    >>> list(ChainDataset([range(2), range(3)]))
    [0, 1, 0, 1, 2]
    """

    def __init__(self, datasets: Iterable) -> None:
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            yield from d

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)


class StackDataset(Dataset):
    """Several datasets of equal length zipped: samples are tuples (positional) or dicts (keywords).

    >>> from danlu.data import StackDataset
    >>> StackDataset([1, 2], ["a", "b"])[1], StackDataset(x=[1, 2], y=["a", "b"])[0]
    ((2, 'b'), {'x': 1, 'y': 'a'})
    """

    def __init__(self, *args, **kwargs) -> None:
        if args and kwargs:
            raise ValueError("StackDataset: pass datasets either positionally (tuple samples) or as keywords "
                             "(dict samples), not both")
        parts = args or tuple(kwargs.values())
        if not parts:
            raise ValueError("StackDataset needs at least one dataset")
        lengths = [len(d) for d in parts]
        if len(set(lengths)) != 1:
            raise ValueError(f"StackDataset: size mismatch between datasets: lengths {lengths}")
        self._length = lengths[0]
        self.datasets: Any = args if args else dict(kwargs)

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __len__(self) -> int:
        return self._length


@api
def random_split(dataset, lengths: Sequence[int | float], generator=None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random Subsets of the given lengths (or fractions summing to 1).

    Fractions are turned into lengths by flooring, and the leftover items go one each to the first splits,
    as PyTorch does. ``generator`` (a danlu Generator) makes the split reproducible; it defaults to danlu's
    default generator, so ``danlu.manual_seed`` does too.

    >>> import danlu as dl
    >>> from danlu.data import random_split
    >>> a, b = random_split(range(10), [0.7, 0.3], generator=dl.Generator().manual_seed(0))
    >>> len(a), len(b), sorted(list(a) + list(b)) == list(range(10))
    (7, 3, True)
    """
    from ..ops.random import randperm

    n = len(dataset)
    lengths = list(lengths)
    total = sum(lengths)
    if math.isclose(total, 1) and total <= 1:
        sizes = []
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ValueError(f"random_split: fraction at index {i} is {frac}, not between 0 and 1")
            sizes.append(int(math.floor(n * frac)))
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, size in enumerate(sizes):
            if size == 0:
                warnings.warn(f"random_split: length of split at index {i} is 0; this split will be empty",
                              stacklevel=3)
        lengths = sizes
    if any(int(x) != x or x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths must be non-negative integers or fractions summing to 1, got "
                         f"{lengths}")
    lengths = [int(x) for x in lengths]
    if sum(lengths) != n:
        raise ValueError(f"random_split: the lengths {lengths} sum to {sum(lengths)}, but the dataset has {n} "
                         "samples; they must be equal")
    order = randperm(n, generator=generator).tolist()
    out, start = [], 0
    for size in lengths:
        out.append(Subset(dataset, order[start:start + size]))
        start += size
    return out
