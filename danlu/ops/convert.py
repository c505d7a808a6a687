"""dtype conversion methods (``to``, ``float()``, ``long()``...) over the ``convert`` primitive."""

from __future__ import annotations

from ..core import dtypes as _dt
from ..core.device import device as _device
from ..core.dispatch import CONVERT, apply
from ..core.errors import api
from ..core.tensor import Tensor

__all__ = ["to"]


@api
def to(self, *args, dtype=None, device=None, copy: bool = False, non_blocking: bool = False, memory_format=None):
    """Convert dtype (and check the device), as ``Tensor.to``: ``x.to(dl.float64)``, ``x.to('cpu')``,
    ``x.to(other)``. Returns ``self`` when nothing changes and ``copy`` is False.

    >>> import danlu as dl
    >>> dl.tensor([1.7]).to(dl.int64)
    tensor([1])
    """
    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, (_dt.DType, type)) or a in ("float32", "float64"):
            dtype = a
        elif isinstance(a, (str, _device)):
            device = a
        elif a is not None:
            raise TypeError(f"to(): expected a dtype, device or tensor, got {a!r}")
    if device is not None:
        _device(device)
    if dtype is None:
        return _copy(self) if copy else self
    dt = _dt.as_dtype(dtype)
    if dt is self.dtype:
        return _copy(self) if copy else self
    return apply(CONVERT, self, dtype=dt)


def _copy(x):
    from .shape import clone

    return clone(x)


Tensor.to = to


def _as(dt):
    def method(self, memory_format=None):
        return to(self, dt)
    method.__name__ = dt.name
    method.__doc__ = f"``self.to(danlu.{dt.name})``."
    return method


Tensor.float = _as(_dt.float32)
Tensor.double = _as(_dt.float64)
Tensor.half = _as(_dt.float16)
Tensor.int = _as(_dt.int32)
Tensor.long = _as(_dt.int64)
Tensor.short = _as(_dt.int16)
Tensor.char = _as(_dt.int8)
Tensor.byte = _as(_dt.uint8)
Tensor.bool = _as(_dt.bool_)


def _type(self, dtype=None, non_blocking=False):
    if dtype is None:
        return {"float32": "danlu.FloatTensor", "float64": "danlu.DoubleTensor", "float16": "danlu.HalfTensor",
                "int64": "danlu.LongTensor", "int32": "danlu.IntTensor", "int16": "danlu.ShortTensor",
                "int8": "danlu.CharTensor", "uint8": "danlu.ByteTensor", "bool": "danlu.BoolTensor"}[self.dtype.name]
    return to(self, dtype)


Tensor.type = _type
Tensor.type_as = lambda self, other: to(self, other.dtype)  # noqa: E731
