"""Creation primitives: ``full``, ``arange``, ``linspace``, ``eye``. They take no tensor inputs, so
tracing records them as nodes (and constant folding may fold them)."""

from __future__ import annotations

import math

import numpy as np

from ..core import dtypes as _dt
from ..core.dispatch import apply
from ..core.errors import api
from ..core.registry import AVal, register
from ..core.tensor import Tensor, tensor_method

__all__ = ["full", "zeros", "ones", "empty", "arange", "linspace", "logspace", "eye"]


def _size(size, opname) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, Tensor):
            s = int(s)
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"{opname}: sizes must be ints, got {type(s).__name__} ({s!r}) in {tuple(size)}")
        if s < 0:
            raise RuntimeError(f"{opname}: trying to create tensor with negative dimension {s}: {list(size)}")
        out.append(s if isinstance(s, int) else int(s))  # keeps symbolic sizes (int subclasses)
    return tuple(out)


def _fill_dtype(value) -> _dt.DType:
    """PyTorch infers full()'s dtype from the fill value's kind only (NumPy scalars included)."""
    if isinstance(value, (bool, np.bool_)):
        return _dt.bool_
    if isinstance(value, (int, np.integer)):
        return _dt.int64
    return _dt.get_default_dtype()


FULL = register("full", infer=lambda *, shape, value, dtype: AVal(shape, dtype),
                impl=lambda *, shape, value, dtype: np.full(shape, value, dtype=dtype.np),
                differentiable=False, family="creation")


def _finish(t: Tensor, requires_grad: bool) -> Tensor:
    if requires_grad:
        t.requires_grad_(True)
    return t


@api
def full(size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of shape ``size`` filled with ``fill_value`` (dtype inferred from it, as PyTorch).

    >>> import danlu as dl
    >>> dl.full((2,), 7), dl.full((1,), 0.5)
    (tensor([7, 7]), tensor([0.5000]))
    """
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    dt = _fill_dtype(fill_value) if dtype is None else _dt.as_dtype(dtype)
    return _finish(apply(FULL, shape=_size((size,), "full"), value=fill_value, dtype=dt), requires_grad)


@api
def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Zeros of the given shape (default float dtype).

    >>> import danlu as dl
    >>> dl.zeros(2, 3).shape
    danlu.Size([2, 3])
    """
    return _finish(apply(FULL, shape=_size(size, "zeros"), value=0, dtype=_dt.as_dtype(dtype)), requires_grad)


@api
def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Ones of the given shape (default float dtype).

    >>> import danlu as dl
    >>> dl.ones(2)
    tensor([1., 1.])
    """
    return _finish(apply(FULL, shape=_size(size, "ones"), value=1, dtype=_dt.as_dtype(dtype)), requires_grad)


@api
def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of the given shape. danlu never exposes uninitialised memory: it holds zeros.

    >>> import danlu as dl
    >>> dl.empty(2, 2).shape
    danlu.Size([2, 2])
    """
    return _finish(apply(FULL, shape=_size(size, "empty"), value=0, dtype=_dt.as_dtype(dtype)), requires_grad)


def _arange_len(start, end, step):
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError(f"arange: upper bound and larger bound inconsistent with step sign "
                           f"(start={start}, end={end}, step={step})")
    return max(0, math.ceil((end - start) / step))


def _arange_impl(*, start, end, step, dtype):
    n = _arange_len(start, end, step)
    if dtype.is_floating_point or any(isinstance(v, float) for v in (start, end, step)):
        return (start + np.arange(n, dtype=np.float64) * step).astype(dtype.np)
    return np.arange(start, start + n * step, step, dtype=np.int64)[:n].astype(dtype.np)


ARANGE = register("arange", infer=lambda *, start, end, step, dtype: AVal((_arange_len(start, end, step),), dtype),
                  impl=_arange_impl, differentiable=False, family="creation")


@api
def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Values from ``start`` up to (not including) ``end`` in steps of ``step``.

    >>> import danlu as dl
    >>> dl.arange(5), dl.arange(0, 1, 0.25)
    (tensor([0, 1, 2, 3, 4]), tensor([0.0000, 0.2500, 0.5000, 0.7500]))
    """
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    if dtype is None:
        dt = _dt.get_default_dtype() if any(isinstance(v, float) for v in vals) else _dt.int64
    else:
        dt = _dt.as_dtype(dtype)
    return _finish(apply(ARANGE, start=vals[0], end=vals[1], step=vals[2], dtype=dt), requires_grad)


def _two_sum(a, b):
    """s + err == a + b exactly (Knuth), elementwise in float64."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _two_prod(a, b):
    """p + err == a * b exactly (Dekker's product with Veltkamp splitting), elementwise in float64."""
    p = a * b
    c = 134217729.0 * a  # 2**27 + 1
    ah = c - (c - a)
    c = 134217729.0 * b
    bh = c - (c - b)
    al, bl = a - ah, b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _fma_round(a, b, c, np_dtype):
    """``a * b + c`` rounded once to ``np_dtype`` (a fused multiply-add, which PyTorch's kernel compiles to).

    float64 arrays in. For float32 outputs ``a * b`` is exact in float64 (a float32 times an integer
    below 2**29), and the sum is rounded to odd in float64 first, which makes the final rounding
    correct. For float64 outputs the product's error term is added last (correct except in vanishingly
    rare near-ties)."""
    if np.dtype(np_dtype) == np.float64:
        p, pe = _two_prod(a, b)
        s, se = _two_sum(p, c)
        return s + (se + pe)
    s, err = _two_sum(a * b, c)
    fix = (err != 0) & ((s.view(np.int64) & 1) == 0)
    s[fix] = np.nextafter(s[fix], np.copysign(np.inf, err[fix]))
    return s.astype(np_dtype)


def _linspace_impl(*, start, end, steps, dtype):
    """PyTorch's CPU kernel, bit for bit: start/end cast to the dtype, the step computed in the dtype
    (in float64 for integer dtypes), then ``start + step * i`` for the first half and
    ``end - step * (steps - 1 - i)`` for the second, each a fused multiply-add (float16 rounds after
    every operation instead, as its arithmetic goes through float32 one operation at a time)."""
    npdt = dtype.np
    if dtype.is_floating_point:
        a, b = np.asarray(start).astype(npdt), np.asarray(end).astype(npdt)
    else:
        a, b = np.asarray(int(start)).astype(npdt), np.asarray(int(end)).astype(npdt)
    if steps == 1:
        return np.asarray([a], dtype=npdt)
    half = steps // 2
    lo_i = np.arange(half, dtype=np.float64)                  # i for the first half
    hi_i = np.arange(steps - half - 1, -1, -1, dtype=np.float64)  # steps - 1 - i for the second
    with np.errstate(over="ignore", invalid="ignore"):
        if npdt == np.float16:
            f32, h = np.float32, np.float16
            step = ((b.astype(f32) - a.astype(f32)).astype(h).astype(f32) / f32(steps - 1)).astype(h).astype(f32)
            lo = (a.astype(f32) + (step * lo_i.astype(f32)).astype(h).astype(f32)).astype(h)
            hi = (b.astype(f32) - (step * hi_i.astype(f32)).astype(h).astype(f32)).astype(h)
            return np.concatenate([lo, hi])
        calc = npdt if dtype.is_floating_point else np.float64
        step = float((b.astype(calc) - a.astype(calc)) / np.asarray(steps - 1).astype(calc))
        out_dt = npdt if dtype.is_floating_point else np.float64
        lo = _fma_round(np.full(half, step), lo_i, np.full(half, float(a)), out_dt)
        hi = _fma_round(np.full(steps - half, -step), hi_i, np.full(steps - half, float(b)), out_dt)
        out = np.concatenate([lo, hi])
    if not dtype.is_floating_point:
        out = np.trunc(out)
    return out.astype(npdt, copy=False)


LINSPACE = register("linspace", infer=lambda *, start, end, steps, dtype: AVal((steps,), dtype),
                    impl=_linspace_impl, differentiable=False, family="creation")


@api
def linspace(start, end, steps: int, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive.

    >>> import danlu as dl
    >>> dl.linspace(0, 1, 5)
    tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000])
    """
    if steps < 0:
        raise RuntimeError(f"linspace: number of steps must be non-negative, got {steps}")
    dt = _dt.as_dtype(dtype)
    start, end = (v.item() if isinstance(v, Tensor) else v for v in (start, end))
    return _finish(apply(LINSPACE, start=float(start), end=float(end), steps=int(steps), dtype=dt), requires_grad)


@api
def logspace(start, end, steps: int, base: float = 10.0, *, dtype=None, requires_grad: bool = False) -> Tensor:
    """``base ** linspace(start, end, steps)``.

    >>> import danlu as dl
    >>> dl.logspace(0, 2, 3)
    tensor([  1.,  10., 100.])
    """
    lin = linspace(start, end, steps, dtype=_dt.float64)
    out = (base ** lin).to(_dt.as_dtype(dtype))
    return _finish(out, requires_grad)


EYE = register("eye", infer=lambda *, n, m, dtype: AVal((n, m), dtype),
               impl=lambda *, n, m, dtype: np.eye(n, m, dtype=dtype.np), differentiable=False, family="creation")


@api
def eye(n: int, m: int | None = None, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """An ``n x m`` identity matrix.

    >>> import danlu as dl
    >>> dl.eye(2)
    tensor([[1., 0.],
            [0., 1.]])
    """
    m = n if m is None else m
    if n < 0 or m < 0:
        raise RuntimeError(f"eye: n and m must be non-negative, got n={n}, m={m}")
    return _finish(apply(EYE, n=int(n), m=int(m), dtype=_dt.as_dtype(dtype)), requires_grad)


@tensor_method("new_zeros")
def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
    return zeros(*size, dtype=dtype or self.dtype, requires_grad=requires_grad)


@tensor_method("new_ones")
def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
    return ones(*size, dtype=dtype or self.dtype, requires_grad=requires_grad)


@tensor_method("new_empty")
def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
    return empty(*size, dtype=dtype or self.dtype, requires_grad=requires_grad)


@tensor_method("new_full")
def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
    return full(size, fill_value, dtype=dtype or self.dtype, requires_grad=requires_grad)


@tensor_method("new_tensor")
def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
    from ..core.creation import tensor

    return tensor(data, dtype=dtype or self.dtype, requires_grad=requires_grad)
