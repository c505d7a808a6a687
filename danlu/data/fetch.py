"""Fetchers: turn one index (or one list of indices) from the sampler into one batch.

The same fetcher runs in the main process (``num_workers=0``) and in each worker process.
"""

from __future__ import annotations

import numpy as np

from ..core.tensor import Tensor
from .collate import default_collate
from .dataset import Subset, TensorDataset

__all__ = ["make_fetcher"]


class _TensorRows:
    """Fast path for a TensorDataset (possibly under Subsets) with the default collate: one ``index_select``
    per tensor gives the collated batch (PyTorch's result: a list of stacked tensors), instead of one
    ``__getitem__`` per sample followed by a stack."""

    def __init__(self, tensors: tuple, maps: list[np.ndarray]) -> None:
        self.tensors = tensors
        self.maps = maps  # Subset index arrays, outermost first
        self.n = len(tensors[0])

    @staticmethod
    def build(dataset) -> _TensorRows | None:
        maps = []
        while isinstance(dataset, Subset):
            cls = type(dataset)
            if cls.__getitem__ is not Subset.__getitem__ or cls.__getitems__ is not Subset.__getitems__:
                return None
            try:
                m = np.asarray(dataset.indices)
            except Exception:
                return None
            if m.ndim != 1 or (m.size and m.dtype.kind not in "iu"):
                return None
            maps.append(m.astype(np.int64, copy=False))
            dataset = dataset.dataset
        if not isinstance(dataset, TensorDataset) or type(dataset).__getitem__ is not TensorDataset.__getitem__:
            return None
        if not all(isinstance(t, Tensor | np.ndarray) for t in dataset.tensors):
            return None
        return _TensorRows(dataset.tensors, maps)

    def take(self, index) -> list | None:
        """The collated batch, or None when ``index`` is unusual (the generic path then raises its own
        errors, with the dataset's own messages)."""
        from ..core.creation import from_numpy
        from ..core.dtypes import _FROM_NP

        try:
            idx = np.asarray(index)
        except Exception:
            return None
        if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
            return None
        for m in self.maps:
            if not _in_range(idx, len(m)):
                return None
            idx = m[idx]
        if not _in_range(idx, self.n):
            return None
        out = []
        for t in self.tensors:
            if isinstance(t, Tensor):
                if t.requires_grad:  # keep the graph, as stacking the rows would
                    from ..ops.index import index_select

                    out.append(index_select(t, 0, from_numpy(idx.astype(np.int64, copy=False))))
                    continue
                t = t.numpy()
            # Data loading runs on the CPU: one NumPy gather per tensor is the whole batch.
            rows = np.take(t, idx, axis=0)
            out.append(from_numpy(rows) if rows.dtype in _FROM_NP else _as_tensor(rows))
        return out


def _in_range(idx: np.ndarray, n: int) -> bool:
    return bool(idx.min() >= -n and idx.max() < n)


def _as_tensor(a: np.ndarray) -> Tensor:
    from ..core.creation import as_tensor

    return as_tensor(a)


class _MapFetcher:
    def __init__(self, dataset, auto_collation: bool, collate_fn, drop_last: bool) -> None:
        self.dataset = dataset
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.rows = _TensorRows.build(dataset) if auto_collation and collate_fn is default_collate else None
        getitems = getattr(dataset, "__getitems__", None)
        self.getitems = getitems if callable(getitems) else None

    def fetch(self, index):
        if not self.auto_collation:
            return self.collate_fn(self.dataset[index])
        if self.rows is not None:
            batch = self.rows.take(index)
            if batch is not None:
                return batch
        if self.getitems is not None:
            data = self.getitems(index)
        else:
            data = [self.dataset[i] for i in index]
        return self.collate_fn(data)


class _IterableFetcher:
    def __init__(self, dataset, auto_collation: bool, collate_fn, drop_last: bool) -> None:
        self.it = iter(dataset)
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.ended = False

    def fetch(self, index):
        if self.ended:
            raise StopIteration
        if not self.auto_collation:
            return self.collate_fn(next(self.it))
        data = []
        for _ in index:
            try:
                data.append(next(self.it))
            except StopIteration:
                self.ended = True
                break
        if not data or (self.drop_last and len(data) < len(index)):
            raise StopIteration
        return self.collate_fn(data)


def make_fetcher(kind: str, dataset, auto_collation: bool, collate_fn, drop_last: bool):
    cls = _IterableFetcher if kind == "iterable" else _MapFetcher
    return cls(dataset, auto_collation, collate_fn, drop_last)
