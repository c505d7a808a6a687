"""Samplers: which indices a map-style dataset is read at, and in what order, as ``torch.utils.data``.

Random samplers draw from a danlu Generator. Without one they draw a fresh seed from danlu's default
generator at the start of each pass, so ``danlu.manual_seed`` makes the order reproduce.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

from ..core import dtypes as _dt

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
           "BatchSampler"]


def _draw_seed(generator=None) -> int:
    """A 63-bit seed drawn from ``generator`` (danlu's default generator when None)."""
    from ..ops.random import randint

    return int(randint(0, 2 ** 63 - 1, (), dtype=_dt.int64, generator=generator).item())


def _fresh_generator(generator):
    from ..core.random import Generator

    if generator is not None:
        return generator
    return Generator().manual_seed(_draw_seed())


class Sampler:
    """Base class: ``__iter__`` yields indices (or lists of indices for a batch sampler).

    >>> from danlu.data import Sampler
    >>> class Evens(Sampler):
    ...     def __init__(self, n): self.n = n
    ...     def __iter__(self): return iter(range(0, self.n, 2))
    ...     def __len__(self): return (self.n + 1) // 2
    >>> list(Evens(5))
    [0, 2, 4]
    """

    def __init__(self, data_source=None) -> None:
        pass

    def __iter__(self) -> Iterator:
        raise TypeError(f"{type(self).__name__} is a Sampler without __iter__")


class SequentialSampler(Sampler):
    """Indices ``0, 1, ..., len(data_source) - 1`` in order.

    >>> from danlu.data import SequentialSampler
    >>> list(SequentialSampler("abc"))
    [0, 1, 2]
    """

    def __init__(self, data_source) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """Random indices: a permutation (``replacement=False``) or independent draws (``replacement=True``).

    ``num_samples`` defaults to the dataset's length; without replacement, a larger value chains several
    permutations, as PyTorch does.

    >>> import danlu as dl
    >>> from danlu.data import RandomSampler
    >>> g = dl.Generator().manual_seed(0)
    >>> sorted(RandomSampler(range(5), generator=g)), len(RandomSampler(range(5), True, num_samples=7))
    ([0, 1, 2, 3, 4], 7)
    """

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None,
                 generator=None) -> None:
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement should be a boolean value, got replacement={replacement!r}")
        if not isinstance(self.num_samples, int) or isinstance(self.num_samples, bool) or self.num_samples <= 0:
            raise ValueError(f"RandomSampler: num_samples should be a positive integer value, got "
                             f"num_samples={self.num_samples!r}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        from ..ops.random import randint, randperm

        n = len(self.data_source)
        g = _fresh_generator(self.generator)
        if self.replacement:
            # Draw in chunks so that a huge num_samples does not materialise at once.
            for _ in range(self.num_samples // 32):
                yield from randint(0, n, (32,), dtype=_dt.int64, generator=g).tolist()
            yield from randint(0, n, (self.num_samples % 32,), dtype=_dt.int64, generator=g).tolist()
        else:
            for _ in range(self.num_samples // n):
                yield from randperm(n, generator=g).tolist()
            yield from randperm(n, generator=g).tolist()[:self.num_samples % n]

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order, without replacement.

    >>> from danlu.data import SubsetRandomSampler
    >>> sorted(SubsetRandomSampler([7, 3, 9]))
    [3, 7, 9]
    """

    def __init__(self, indices: Sequence[int], generator=None) -> None:
        self.indices = indices
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        from ..ops.random import randperm

        for i in randperm(len(self.indices), generator=self.generator).tolist():
            yield self.indices[i]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """Indices ``0..len(weights)-1`` drawn with probability proportional to ``weights``.

    >>> import danlu as dl
    >>> from danlu.data import WeightedRandomSampler
    >>> list(WeightedRandomSampler([0.0, 0.0, 1.0], 4))
    [2, 2, 2, 2]
    """

    def __init__(self, weights: Sequence[float], num_samples: int, replacement: bool = True,
                 generator=None) -> None:
        from ..core.creation import as_tensor

        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise ValueError(f"WeightedRandomSampler: num_samples should be a positive integer value, got "
                             f"num_samples={num_samples!r}")
        if not isinstance(replacement, bool):
            raise ValueError(f"WeightedRandomSampler: replacement should be a boolean value, got "
                             f"replacement={replacement!r}")
        w = as_tensor(weights, dtype=_dt.float64)
        if w.ndim != 1:
            raise ValueError(f"WeightedRandomSampler: weights should be a 1-d sequence, but they have shape "
                             f"{list(w.shape)}")
        self.weights = w
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        from ..ops.random import multinomial

        drawn = multinomial(self.weights, self.num_samples, self.replacement, generator=self.generator)
        yield from drawn.tolist()

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of another sampler into lists of ``batch_size``.

    >>> from danlu.data import BatchSampler, SequentialSampler
    >>> list(BatchSampler(SequentialSampler(range(5)), 2, drop_last=False))
    [[0, 1], [2, 3], [4]]
    >>> list(BatchSampler(range(5), 2, drop_last=True))
    [[0, 1], [2, 3]]
    """

    def __init__(self, sampler: Sampler | Iterable[int], batch_size: int, drop_last: bool) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size should be a positive integer value, got "
                             f"batch_size={batch_size!r}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"BatchSampler: drop_last should be a boolean value, got drop_last={drop_last!r}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        size = self.batch_size
        it = iter(self.sampler)
        while True:
            batch = list(islice(it, size))
            if len(batch) == size:
                yield batch
                continue
            if batch and not self.drop_last:
                yield batch
            return

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
