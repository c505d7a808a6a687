"""Tensors from Python data, NumPy arrays and DLPack capsules."""

from __future__ import annotations

import numpy as np

from . import dtypes as _dt
from .errors import api
from .tensor import Tensor, _from_np, _wrap

__all__ = ["tensor", "as_tensor", "from_numpy", "from_dlpack", "asarray"]


def _infer_dtype(data) -> _dt.DType:
    """PyTorch's inference for Python data: Python bools -> bool, ints -> int64, floats -> the default
    dtype; NumPy scalars, arrays and tensors inside the data bring their own dtypes; all promote."""
    out = None
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
            continue
        if isinstance(x, Tensor):
            dt = x.dtype
        elif isinstance(x, (np.ndarray, np.generic)) and x.dtype in _dt._FROM_NP:
            dt = _dt._FROM_NP[x.dtype]
        elif isinstance(x, bool):
            dt = _dt.bool_
        elif isinstance(x, int):
            dt = _dt.int64
        elif isinstance(x, float):
            dt = _dt.get_default_dtype()
        else:
            raise TypeError(f"tensor(): can't convert element of type {type(x).__name__} ({x!r:.40}); "
                            "expected numbers, nested lists/tuples of numbers, arrays or tensors")
        out = dt if out is None else _dt.promote_types(out, dt)
    return out if out is not None else _dt.get_default_dtype()


def _to_array(data, dtype: _dt.DType | None) -> np.ndarray:
    if isinstance(data, Tensor):
        a = data._data
        return a.astype(dtype.np) if dtype is not None else a
    if isinstance(data, np.ndarray | np.generic):
        a = np.asarray(data)
        if dtype is None:
            return _from_np(a)._data
        return a.astype(dtype.np, copy=False)
    if hasattr(data, "__dlpack__") and not isinstance(data, (list, tuple)):
        a = np.from_dlpack(data)
        return a if dtype is None else a.astype(dtype.np, copy=False)
    dt = dtype or _infer_dtype(data)
    if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in _flat_first(data)):
        data = _unwrap_nested(data)
    try:
        a = np.array(data, dtype=dt.np)
    except ValueError as e:
        raise ValueError(f"tensor(): the nested sequence is ragged or malformed ({e}); every list at one "
                         "depth must have the same length") from None
    return a


def _flat_first(data):
    while isinstance(data, (list, tuple)) and data:
        yield from (x for x in data if isinstance(x, Tensor))
        data = data[0]


def _unwrap_nested(data):
    if isinstance(data, Tensor):
        return data._data
    if isinstance(data, (list, tuple)):
        return [_unwrap_nested(x) for x in data]
    return data


@api
def tensor(data, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (numbers, nested lists, arrays, tensors).

    >>> import danlu as dl
    >>> dl.tensor([[1, 2], [3, 4]]).dtype, dl.tensor([1.0, 2]).dtype, dl.tensor(True).dtype
    (danlu.int64, danlu.float32, danlu.bool)
    """
    from .device import device as _device

    if device is not None:
        _device(device)
    dt = None if dtype is None else _dt.as_dtype(dtype)
    a = _to_array(data, dt)
    a = np.array(a, copy=True, order="C")
    t = _wrap(a)
    if requires_grad:
        t.requires_grad_(True)
    return t


@api
def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like :func:`tensor`, but shares memory with a NumPy array or tensor when it can.

    >>> import danlu as dl, numpy as np
    >>> a = np.zeros(2); t = dl.as_tensor(a); a[0] = 5; t
    tensor([5., 0.], dtype=danlu.float64)
    """
    dt = None if dtype is None else _dt.as_dtype(dtype)
    if isinstance(data, Tensor):
        return data if dt is None or data.dtype is dt else data.to(dt)
    return _wrap(_to_array(data, dt))


asarray = as_tensor


@api
def from_numpy(a: np.ndarray) -> Tensor:
    """A tensor sharing memory with NumPy array ``a``.

    >>> import danlu as dl, numpy as np
    >>> dl.from_numpy(np.arange(3)).dtype
    danlu.int64
    """
    if not isinstance(a, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray (got {type(a).__name__}); use danlu.tensor for "
                        "other data")
    if a.dtype not in _dt._FROM_NP:
        raise TypeError(f"from_numpy: can't convert np.ndarray of type {a.dtype}; supported types are "
                        f"{', '.join(d.name for d in _dt.ALL)}")
    return _wrap(a)


@api
def from_dlpack(ext) -> Tensor:
    """A tensor sharing memory with any DLPack-capable array (NumPy, PyTorch, ...).

    >>> import danlu as dl, numpy as np
    >>> dl.from_dlpack(np.ones(2, np.float32))
    tensor([1., 1.])
    """
    a = np.from_dlpack(ext)
    if a.dtype not in _dt._FROM_NP:
        raise TypeError(f"from_dlpack: dtype {a.dtype} is not supported by danlu")
    return _wrap(a)
