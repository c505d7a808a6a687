"""Collation: a list of samples becomes one batch, as ``torch.utils.data.default_collate`` does.

NumPy arrays and Python numbers are stacked with NumPy and wrapped once per batch (no Tensor per
sample); tensors are stacked with ``danlu.stack``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping, MutableSequence, Sequence

import numpy as np

from ..core import dtypes as _dt
from ..core.creation import as_tensor
from ..core.tensor import Tensor

__all__ = ["default_collate", "default_convert"]

_BAD_ELEMENT = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}")
_STRING_KINDS = "SaUO"  # NumPy dtype chars of bytes, str and object arrays: no tensor for those


def _from_numpy_batch(a: np.ndarray) -> Tensor:
    # as_tensor maps dtypes danlu lacks (uint16, ...) to the nearest supported one, as elsewhere in danlu.
    return as_tensor(a)


def _stack_tensors(batch: list) -> Tensor:
    """Stack tensors without autograd history: one NumPy stack, not a dispatched op over many inputs (this
    runs once per batch in every worker)."""
    try:
        arrays = [t.numpy() for t in batch]
        dtype, shape = arrays[0].dtype, arrays[0].shape
        if all(a.dtype == dtype and a.shape == shape for a in arrays):
            return as_tensor(np.stack(arrays))
    except (AttributeError, TypeError):
        pass
    from ..ops.shape import stack

    return stack(batch, 0)  # mixed inputs: danlu's rules, and its errors name the offending shapes


def _collate_numbers(batch: list) -> Tensor:
    """Python ints/bools first: the dtype PyTorch infers for ``torch.tensor(batch)``."""
    try:
        a = np.array(batch)
    except (TypeError, ValueError):
        raise TypeError(_BAD_ELEMENT.format(sorted({type(x).__name__ for x in batch}))) from None
    kind = a.dtype.kind
    if kind == "b":
        return as_tensor(a)
    if kind in "iu":
        return as_tensor(a.astype(np.int64, copy=False))
    if kind == "f":
        return as_tensor(a.astype(_dt.get_default_dtype().np, copy=False))
    raise TypeError(_BAD_ELEMENT.format(a.dtype))


def default_collate(batch: list):
    """Stack a list of samples into a batch, keeping the samples' structure.

    Tensors and NumPy arrays are stacked along a new first dimension (NumPy dtypes are kept: uint8 stays
    uint8, float32 stays float32); Python ints become int64, Python floats float64, bools bool. Dicts,
    namedtuples and lists are collated field by field; a tuple sample gives a list, as in PyTorch.
    Strings and bytes are returned as a list.

    >>> import numpy as np
    >>> from danlu.data import default_collate
    >>> b = default_collate([(np.zeros(2, np.float32), 1), (np.ones(2, np.float32), 0)])
    >>> type(b).__name__, b[0].dtype, b[0].shape, b[1]
    ('list', danlu.float32, danlu.Size([2, 2]), tensor([1, 0]))
    >>> default_collate([{"x": 1.5, "name": "a"}, {"x": 2.0, "name": "b"}])
    {'x': tensor([1.5000, 2.0000], dtype=danlu.float64), 'name': ['a', 'b']}
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        if any(t.requires_grad for t in batch):
            from ..ops.shape import stack

            return stack(batch, 0)  # keeps the graph
        return _stack_tensors(batch)
    if isinstance(elem, np.ndarray):
        if elem.dtype.char in _STRING_KINDS:
            raise TypeError(_BAD_ELEMENT.format(elem.dtype))
        try:
            return _from_numpy_batch(np.stack(batch))
        except ValueError as e:
            shapes = sorted({tuple(np.shape(x)) for x in batch})
            raise RuntimeError(f"default_collate: NumPy arrays in a batch must have equal shapes to be stacked, "
                               f"got shapes {shapes} ({e})") from None
    if isinstance(elem, np.generic):
        if isinstance(elem, np.str_ | np.bytes_):
            return batch
        if elem.dtype.char in _STRING_KINDS:
            raise TypeError(_BAD_ELEMENT.format(elem.dtype))
        return _from_numpy_batch(np.array(batch))
    if isinstance(elem, float):
        try:
            return as_tensor(np.array(batch, dtype=np.float64))
        except (TypeError, ValueError):
            raise TypeError(_BAD_ELEMENT.format(sorted({type(x).__name__ for x in batch}))) from None
    if isinstance(elem, int):  # bool included, as in PyTorch
        return _collate_numbers(batch)
    if isinstance(elem, str | bytes):
        return batch
    if isinstance(elem, Mapping):
        collated = {key: default_collate([d[key] for d in batch]) for key in elem}
        return _rebuild_mapping(elem, collated)
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(samples) for samples in zip(*batch, strict=False)))
    if isinstance(elem, Sequence):
        size = len(elem)
        if any(len(x) != size for x in batch):
            raise RuntimeError(f"default_collate: each element in list of batch should be of equal size, got "
                               f"sizes {sorted({len(x) for x in batch})}")
        columns = [default_collate(samples) for samples in zip(*batch, strict=True)]
        if isinstance(elem, tuple):
            return columns  # PyTorch returns a list for tuples (kept for backward compatibility there)
        return _rebuild_sequence(elem, columns)
    raise TypeError(_BAD_ELEMENT.format(type(elem)))


def _rebuild_mapping(elem: Mapping, items: dict):
    if isinstance(elem, MutableMapping):
        clone = copy.copy(elem)
        clone.update(items)
        return clone
    try:
        return type(elem)(items)
    except TypeError:
        return items


def _rebuild_sequence(elem: Sequence, items: list):
    try:
        if isinstance(elem, MutableSequence):
            clone = copy.copy(elem)
            for i, x in enumerate(items):
                clone[i] = x
            return clone
        return type(elem)(items)
    except TypeError:
        return items


def default_convert(data):
    """Turn NumPy arrays inside ``data`` into tensors, keeping everything else (used with ``batch_size=None``).

    >>> import numpy as np
    >>> from danlu.data import default_convert
    >>> default_convert((np.arange(2), 3, "s"))
    [tensor([0, 1]), 3, 's']
    """
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray | np.generic):
        if isinstance(data, np.str_ | np.bytes_) or data.dtype.char in _STRING_KINDS:
            return data
        return _from_numpy_batch(np.asarray(data))
    if isinstance(data, Mapping):
        return _rebuild_mapping(data, {key: default_convert(data[key]) for key in data})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        return _rebuild_sequence(data, [default_convert(d) for d in data])
    return data
