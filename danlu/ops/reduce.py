"""Reductions (``dim`` an int or tuple, ``keepdim``) and scans. Gradients are expanded back to the
input's shape; ties in max/min share the gradient as PyTorch does."""

from __future__ import annotations

import collections
import math

import numpy as np

from ..core import dtypes as _dt
from ..core.dispatch import CONVERT, apply
from ..core.errors import DTypeError, api, describe, reraise_filtered
from ..core.registry import AVal, register
from ..core.tensor import Tensor
from ._public import exporter
from ._util import norm_dim, norm_dims

__all__ = []

_max_ret = collections.namedtuple("max", ["values", "indices"])
_min_ret = collections.namedtuple("min", ["values", "indices"])


_export = exporter(globals(), __all__)


def _reduced(shape, dims, keepdim):
    if keepdim:
        return tuple(1 if i in dims else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in dims)


def _keep_shape(shape, dims):
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


def _expand_back(g, in_shape, dims, keepdim):
    """Broadcast a reduced cotangent back over the reduced dimensions."""
    from .shape import expand, reshape

    if not keepdim:
        g = reshape(g, _keep_shape(in_shape, dims))
    return expand(g, *in_shape)


_ALL_DIMS = [tuple(range(n)) for n in range(33)]


def _dims_of(name, x, dim):
    nd = len(x._data.shape)
    if dim is None and nd < 33:
        return _ALL_DIMS[nd]
    if dim.__class__ is int and nd and -nd <= dim < nd:
        return (dim % nd,)
    if isinstance(dim, (tuple, list)) and len(dim) == 0:
        dim = None
    dims = norm_dims(name, dim, len(x.shape))
    # A 0-d tensor accepts dim 0 / -1 (as PyTorch) but has no axis to reduce.
    return dims if x.shape else ()


def _acc_dtype(dt):
    return _dt.int64 if dt.category < 2 else dt


# == sum / mean / prod ==============================================================================

def _sum_infer(x, *, dims, keepdim):
    return AVal(_reduced(tuple(x.shape), dims, keepdim), _acc_dtype(x.dtype))


_add_reduce = np.add.reduce


def _sum_impl(x, *, dims, keepdim):
    k = x.dtype.kind
    if k == "f" and x.dtype.itemsize > 2:
        return _add_reduce(x, axis=dims, keepdims=keepdim)  # the ufunc method: no Python-level wrapper
    if k in "biu":
        return _add_reduce(x, axis=dims, keepdims=keepdim, dtype=np.int64)
    return _add_reduce(x, axis=dims, keepdims=keepdim, dtype=np.float32).astype(np.float16)


SUM = register("sum", infer=_sum_infer, impl=_sum_impl, reduction=True, family="reduce",
               vjp=lambda c, g: (_expand_back(g, c.in_meta[0][0], c.attrs["dims"], c.attrs["keepdim"]),))


def _maybe_cast(input, dtype):
    if dtype is not None and _dt.as_dtype(dtype) is not input.dtype:
        return apply(CONVERT, input, dtype=_dt.as_dtype(dtype))
    return input


def sum(input, dim=None, keepdim: bool = False, *, dtype=None):  # noqa: A001 - PyTorch's name
    """Sum over ``dim`` (all dims when None); integers and bools sum to int64.

    >>> import danlu as dl
    >>> x = dl.tensor([[1, 2], [3, 4]])
    >>> x.sum(), x.sum(0), x.sum(1, keepdim=True).shape
    (tensor(10), tensor([4, 6]), danlu.Size([2, 1]))
    """
    try:  # inline error boundary: sum is hot
        if dtype is not None:
            input = _maybe_cast(input, dtype)
        return apply(SUM, input, dims=_dims_of("sum", input, dim), keepdim=keepdim is True or bool(keepdim))
    except Exception as e:
        reraise_filtered(e)
        raise


def _mean_infer(x, *, dims, keepdim):
    if not x.dtype.is_floating_point:
        raise DTypeError(f"mean(): could not infer output dtype. Input dtype must be either a floating point "
                         f"or complex dtype. Got: {x.dtype.name} ({describe(x)}); pass dtype=danlu.float32 "
                         "or convert with .float()")
    return AVal(_reduced(tuple(x.shape), dims, keepdim), x.dtype)


def _mean_impl(x, *, dims, keepdim):
    n = 1
    for d in dims:
        n *= x.shape[d]
    if x.dtype == np.float16:
        return (_add_reduce(x, axis=dims, keepdims=keepdim, dtype=np.float32) / np.float32(n)).astype(np.float16)
    s = _add_reduce(x, axis=dims, keepdims=keepdim)
    return s / x.dtype.type(n) if n else s * x.dtype.type(np.nan)


def _count(shape, dims):
    n = 1
    for d in dims:
        n *= shape[d]
    return n


def _mean_vjp(c, g):
    in_shape, dims = c.in_meta[0][0], c.attrs["dims"]
    ge = _expand_back(g, in_shape, dims, c.attrs["keepdim"])
    n = _count(in_shape, dims)
    return (ge / n if n else ge,)


MEAN = register("mean", infer=_mean_infer, impl=_mean_impl, vjp=_mean_vjp, reduction=True, family="reduce")


def mean(input, dim=None, keepdim: bool = False, *, dtype=None):
    """Mean over ``dim`` (floating point only, as PyTorch).

    >>> import danlu as dl
    >>> dl.tensor([[1.0, 2.0], [3.0, 4.0]]).mean(0)
    tensor([2., 3.])
    """
    try:
        if dtype is not None:
            input = _maybe_cast(input, dtype)
        return apply(MEAN, input, dims=_dims_of("mean", input, dim), keepdim=keepdim is True or bool(keepdim))
    except Exception as e:
        reraise_filtered(e)
        raise


def _prod_impl(x, *, dims, keepdim):
    dt = np.int64 if x.dtype.kind in "biu" else x.dtype
    return np.prod(x, axis=dims, keepdims=keepdim, dtype=dt)


def _exclusive_cumprod(x, d):
    """prod of x[..., :i] along d (1 at i = 0)."""
    from .shape import pad_constant

    n = x.shape[d]
    c = cumprod(x, d)
    pads = [0, 0] * (x.ndim - 1 - d) + [1, -1]
    return pad_constant(c, pads, 1.0) if n else c


def _prod_others(x, d):
    """For each i along d: the product of all other elements (exact where x has zeros)."""
    left = _exclusive_cumprod(x, d)
    right = _exclusive_cumprod(x.flip(d), d).flip(d)
    return left * right


def _prod_vjp(c, g):
    from .shape import flatten, reshape

    x = c.inputs[0]
    in_shape = c.in_meta[0][0]
    dims = c.attrs["dims"]
    ge = _expand_back(g, in_shape, dims, c.attrs["keepdim"])
    if len(in_shape) == 0:
        return (ge,)
    # Move the reduced dims to the end, flatten them to one, take products of the others there.
    from .shape import permute

    keep = [i for i in range(len(in_shape)) if i not in dims]
    order = keep + list(dims)
    xp = permute(x, *order)
    flat = flatten(xp, len(keep)) if dims else reshape(xp, tuple(xp.shape) + (1,))
    others = _prod_others(flat, flat.ndim - 1)
    others = reshape(others, tuple(xp.shape))
    inv = [0] * len(order)
    for i, o in enumerate(order):
        inv[o] = i
    return (ge * permute(others, *inv),)


PROD = register("prod", infer=_sum_infer, impl=_prod_impl, vjp=_prod_vjp, save_in=(0,), reduction=True,
                family="reduce")


@api
def prod(input, dim=None, keepdim: bool = False, *, dtype=None):
    """Product over ``dim`` (all elements when None); exact gradients even with zeros.

    >>> import danlu as dl
    >>> dl.tensor([[1.0, 2.0], [3.0, 4.0]]).prod(1)
    tensor([ 2., 12.])
    """
    input = _maybe_cast(input, dtype)
    if dim is not None and not isinstance(dim, int):
        raise TypeError(f"prod: dim must be an int or None, got {dim!r}")
    return apply(PROD, input, dims=_dims_of("prod", input, dim), keepdim=bool(keepdim))


for _f in (sum, mean, prod):
    _export(_f, _f.__name__)


# == amax / amin / max / min ========================================================================

def _minmax_infer(name):
    def infer(x, *, dims, keepdim):
        for d in dims:
            if x.shape[d] == 0:
                raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size "
                                 f"({describe(x)}); reduce over another dim or check the input is not empty")
        return AVal(_reduced(tuple(x.shape), dims, keepdim), x.dtype)
    return infer


def _amax_vjp(c, g):
    x = c.inputs[0]
    in_shape, dims, keepdim = c.in_meta[0][0], c.attrs["dims"], c.attrs["keepdim"]
    out = _expand_back(c.out, in_shape, dims, keepdim)
    mask = (x == out).to(g.dtype)
    count = sum(mask, dims, keepdim=True)
    return (_expand_back(g, in_shape, dims, keepdim) * mask / count,)


AMAX = register("amax", infer=_minmax_infer("amax"),
                impl=lambda x, *, dims, keepdim: np.amax(x, dims, keepdims=keepdim),
                vjp=_amax_vjp, save_in=(0,), save_out=True, reduction=True, family="reduce")
AMIN = register("amin", infer=_minmax_infer("amin"),
                impl=lambda x, *, dims, keepdim: np.amin(x, dims, keepdims=keepdim),
                vjp=_amax_vjp, save_in=(0,), save_out=True, reduction=True, family="reduce")


@api
def amax(input, dim=(), keepdim: bool = False):
    """Maximum over ``dim`` (all dims for ``()``); tied maxima share the gradient evenly.

    >>> import danlu as dl
    >>> dl.tensor([[1.0, 5.0], [3.0, 2.0]]).amax(1)
    tensor([5., 3.])
    """
    return apply(AMAX, input, dims=_dims_of("amax", input, dim), keepdim=bool(keepdim))


@api
def amin(input, dim=(), keepdim: bool = False):
    """Minimum over ``dim`` (all dims for ``()``).

    >>> import danlu as dl
    >>> dl.tensor([[1.0, 5.0], [3.0, 2.0]]).amin(1)
    tensor([1., 2.])
    """
    return apply(AMIN, input, dims=_dims_of("amin", input, dim), keepdim=bool(keepdim))


def _argext_infer(name):
    def infer(x, *, dim, keepdim):
        if dim is None:
            if math.prod(x.shape) == 0:
                raise IndexError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0")
            return AVal((1,) * len(x.shape) if keepdim else (), _dt.int64)
        if x.shape and x.shape[dim] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {dim} to have non-zero size ({describe(x)})")
        return AVal(_reduced(tuple(x.shape), (dim,) if x.shape else (), keepdim), _dt.int64)
    return infer


def _argext_impl(fn):
    def impl(x, *, dim, keepdim):
        if dim is None:
            r = np.asarray(fn(x.reshape(-1)), dtype=np.int64)
            return r.reshape((1,) * x.ndim) if keepdim else r
        if x.ndim == 0:
            return np.zeros((), np.int64)
        return fn(x, axis=dim, keepdims=keepdim).astype(np.int64)
    return impl


ARGMAX = register("argmax", infer=_argext_infer("argmax"), impl=_argext_impl(np.argmax), differentiable=False,
                  reduction=True, family="reduce")
ARGMIN = register("argmin", infer=_argext_infer("argmin"), impl=_argext_impl(np.argmin), differentiable=False,
                  reduction=True, family="reduce")


@api
def argmax(input, dim=None, keepdim: bool = False):
    """Index of the maximum (of the flattened tensor when ``dim`` is None).

    >>> import danlu as dl
    >>> dl.tensor([[1, 5], [3, 2]]).argmax(1)
    tensor([1, 0])
    """
    d = None if dim is None else norm_dim("argmax", dim, input.ndim)
    return apply(ARGMAX, input, dim=d, keepdim=bool(keepdim))


@api
def argmin(input, dim=None, keepdim: bool = False):
    """Index of the minimum (of the flattened tensor when ``dim`` is None).

    >>> import danlu as dl
    >>> dl.tensor([[1, 5], [3, 2]]).argmin(1)
    tensor([0, 1])
    """
    d = None if dim is None else norm_dim("argmin", dim, input.ndim)
    return apply(ARGMIN, input, dim=d, keepdim=bool(keepdim))


def _maxdim_infer(name):
    def infer(x, *, dim, keepdim):
        if x.shape and x.shape[dim] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {dim} to have non-zero size ({describe(x)})")
        shape = _reduced(tuple(x.shape), (dim,) if x.shape else (), keepdim)
        return AVal(shape, x.dtype), AVal(shape, _dt.int64)
    return infer


def _maxdim_impl(fn):
    def impl(x, *, dim, keepdim):
        if x.ndim == 0:
            return x.copy(), np.zeros((), np.int64)
        idx = fn(x, axis=dim, keepdims=True)
        vals = np.take_along_axis(x, idx, axis=dim)
        if not keepdim:
            idx, vals = idx.squeeze(dim), vals.squeeze(dim)
        return vals, idx.astype(np.int64)
    return impl


def _maxdim_vjp(c, gv, gi):
    from .index import scatter
    from .shape import unsqueeze

    in_shape = c.in_meta[0][0]
    if not in_shape:
        return (gv,)
    dim, keepdim = c.attrs["dim"], c.attrs["keepdim"]
    idx = c.outs[1]
    if not keepdim:
        gv, idx = unsqueeze(gv, dim), unsqueeze(idx, dim)
    from .creation import zeros

    return (scatter(zeros(in_shape, dtype=gv.dtype), dim, idx, gv),)


MAX_DIM = register("max_dim", infer=_maxdim_infer("max"), impl=_maxdim_impl(np.argmax), vjp=_maxdim_vjp,
                   save_out=True, multi_out=True, reduction=True, family="reduce")
MIN_DIM = register("min_dim", infer=_maxdim_infer("min"), impl=_maxdim_impl(np.argmin), vjp=_maxdim_vjp,
                   save_out=True, multi_out=True, reduction=True, family="reduce")


@api
def max(input, dim=None, keepdim: bool = False):  # noqa: A001 - PyTorch's name
    """Maximum: of all elements; ``(values, indices)`` along ``dim``; or ``maximum`` with a tensor.

    >>> import danlu as dl
    >>> x = dl.tensor([[1.0, 5.0], [3.0, 2.0]])
    >>> x.max(), x.max(1).indices
    (tensor(5.), tensor([1, 0]))
    """
    if isinstance(dim, Tensor):
        from .elementwise import maximum

        return maximum(input, dim)
    if dim is None:
        return apply(AMAX, input, dims=tuple(range(input.ndim)), keepdim=False)
    v, i = apply(MAX_DIM, input, dim=norm_dim("max", dim, input.ndim), keepdim=bool(keepdim))
    return _max_ret(v, i)


@api
def min(input, dim=None, keepdim: bool = False):  # noqa: A001 - PyTorch's name
    """Minimum: of all elements; ``(values, indices)`` along ``dim``; or ``minimum`` with a tensor.

    >>> import danlu as dl
    >>> dl.tensor([[1.0, 5.0], [3.0, 2.0]]).min(0).values
    tensor([1., 2.])
    """
    if isinstance(dim, Tensor):
        from .elementwise import minimum

        return minimum(input, dim)
    if dim is None:
        return apply(AMIN, input, dims=tuple(range(input.ndim)), keepdim=False)
    v, i = apply(MIN_DIM, input, dim=norm_dim("min", dim, input.ndim), keepdim=bool(keepdim))
    return _min_ret(v, i)


for _f in (amax, amin, argmax, argmin, max, min):
    _export(_f, _f.__name__)


# == var / std ======================================================================================

def _var_infer(x, *, dims, correction, keepdim):
    if not x.dtype.is_floating_point:
        raise DTypeError(f"var: input dtype should be a floating point type, got {describe(x)}; convert with "
                         ".float() first")
    return AVal(_reduced(tuple(x.shape), dims, keepdim), x.dtype)


def _var_impl(x, *, dims, correction, keepdim):
    n = _count(x.shape, dims)
    with np.errstate(invalid="ignore", divide="ignore"):
        if n == 0:  # NumPy would warn "Mean of empty slice"; PyTorch gives nan silently
            return np.full(_reduced(x.shape, dims, keepdim), np.nan, dtype=x.dtype)
        if n - correction <= 0:
            # PyTorch clamps the degrees of freedom at 0 (so the result is inf or nan, never negative).
            m = _add_reduce(x, axis=dims, keepdims=True) / x.dtype.type(n)
            s = _add_reduce((x - m) ** 2, axis=dims, keepdims=keepdim)
            return (s / np.asarray(0, dtype=x.dtype)).astype(x.dtype)
        m = _add_reduce(x, axis=dims, keepdims=True) / x.dtype.type(n)
        d = x - m
        return (_add_reduce(d * d, axis=dims, keepdims=keepdim) / x.dtype.type(n - correction)).astype(x.dtype)


def _var_vjp(c, g):
    x = c.inputs[0]
    in_shape, dims, keepdim = c.in_meta[0][0], c.attrs["dims"], c.attrs["keepdim"]
    dof = _count(in_shape, dims) - c.attrs["correction"]
    m = mean(x, dims, keepdim=True)
    # No degrees of freedom: 2 / 0 is inf (so 0 * inf gives nan, as PyTorch), not a Python ZeroDivisionError.
    scale = 2.0 / dof if dof else math.inf
    return (_expand_back(g, in_shape, dims, keepdim) * (x - m) * scale,)


VAR = register("var", infer=_var_infer, impl=_var_impl, vjp=_var_vjp, save_in=(0,), reduction=True,
               family="reduce")


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    if unbiased is None:
        return 1
    return 1 if unbiased else 0


@api
def var(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    """Variance over ``dim`` with Bessel's ``correction`` (default 1), as ``torch.var``.

    >>> import danlu as dl
    >>> dl.tensor([1.0, 2.0, 3.0, 4.0]).var(), dl.tensor([1.0, 2.0, 3.0, 4.0]).var(correction=0)
    (tensor(1.6667), tensor(1.2500))
    """
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    return apply(VAR, input, dims=_dims_of("var", input, dim), correction=_correction(unbiased, correction),
                 keepdim=bool(keepdim))


@api
def std(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    """Standard deviation: ``sqrt(var(...))``; its gradient is 0 where the spread is 0, as PyTorch.

    >>> import danlu as dl
    >>> dl.tensor([1.0, 3.0]).std()
    tensor(1.4142)
    """
    from .elementwise import sqrt, where

    v = var(input, dim, unbiased, keepdim, correction=correction)
    # sqrt's derivative is infinite at 0; differentiate sqrt at a safe 1 there so the masked branch
    # contributes an exact 0 instead of 0 * inf = nan.
    zero = v == 0
    return where(zero, 0.0, sqrt(where(zero, 1.0, v)))


@api
def var_mean(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    """``(var, mean)`` over ``dim``.

    >>> import danlu as dl
    >>> dl.var_mean(dl.tensor([1.0, 3.0]))
    (tensor(2.), tensor(2.))
    """
    return var(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


@api
def std_mean(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    """``(std, mean)`` over ``dim``.

    >>> import danlu as dl
    >>> dl.std_mean(dl.tensor([1.0, 3.0]))
    (tensor(1.4142), tensor(2.))
    """
    return std(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


for _f in (var, std, var_mean, std_mean):
    _export(_f, _f.__name__)


# == logsumexp / norm ===============================================================================

def _lse_infer(x, *, dims, keepdim):
    dt = x.dtype if x.dtype.is_floating_point else _dt.get_default_dtype()
    return AVal(_reduced(tuple(x.shape), dims, keepdim), dt)


def _lse_impl(x, *, dims, keepdim):
    if x.dtype.kind != "f":
        x = x.astype(_dt.get_default_dtype().np)
    if x.size == 0:
        return np.log(np.sum(np.exp(x), axis=dims, keepdims=keepdim))
    m = np.amax(x, axis=dims, keepdims=True)
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype)
    with np.errstate(divide="ignore"):
        s = np.log(np.sum(np.exp(x - m), axis=dims, keepdims=True)) + m
    return s if keepdim else np.squeeze(s, axis=dims)


def _lse_vjp(c, g):
    from .elementwise import exp

    x = c.inputs[0]
    in_shape, dims, keepdim = c.in_meta[0][0], c.attrs["dims"], c.attrs["keepdim"]
    out = _expand_back(c.out, in_shape, dims, keepdim)
    return (_expand_back(g, in_shape, dims, keepdim) * exp(x - out),)


LOGSUMEXP = register("logsumexp", infer=_lse_infer, impl=_lse_impl, vjp=_lse_vjp, save_in=(0,), save_out=True,
                     reduction=True, family="reduce")


@api
def logsumexp(input, dim, keepdim: bool = False):
    """``log(sum(exp(x)))`` over ``dim``, computed stably.

    >>> import danlu as dl
    >>> dl.logsumexp(dl.tensor([1000.0, 1000.0]), 0)
    tensor(1000.6932)
    """
    return apply(LOGSUMEXP, input, dims=_dims_of("logsumexp", input, dim), keepdim=bool(keepdim))


_export(logsumexp, "logsumexp")


def _norm_infer(x, *, p, dims, keepdim):
    if not x.dtype.is_floating_point:
        raise DTypeError(f"norm: expected a floating point input, got {describe(x)}; convert with .float()")
    return AVal(_reduced(tuple(x.shape), dims, keepdim), x.dtype)


def _norm_impl(x, *, p, dims, keepdim):
    a = np.abs(x)
    if p == math.inf:
        if not a.size:
            return np.zeros(_reduced(x.shape, dims, keepdim), x.dtype)
        return np.amax(a, axis=dims, keepdims=keepdim)
    if p == -math.inf:
        return np.amin(a, axis=dims, keepdims=keepdim)
    if p == 0:
        return np.sum(a != 0, axis=dims, keepdims=keepdim).astype(x.dtype)
    if p == 1:
        return np.sum(a, axis=dims, keepdims=keepdim)
    if p == 2:
        return np.sqrt(np.sum(x * x, axis=dims, keepdims=keepdim))
    with np.errstate(divide="ignore", over="ignore"):
        return (np.sum(a ** p, axis=dims, keepdims=keepdim) ** (1.0 / p)).astype(x.dtype)


def _norm_vjp(c, g):
    from .elementwise import abs as _abs, sign, where

    x = c.inputs[0]
    p = c.attrs["p"]
    in_shape, dims, keepdim = c.in_meta[0][0], c.attrs["dims"], c.attrs["keepdim"]
    ge = _expand_back(g, in_shape, dims, keepdim)
    if p == 0:
        return (ge * 0.0,)
    if p == 1:
        return (ge * sign(x),)
    n = _expand_back(c.out, in_shape, dims, keepdim)
    if p == 2:
        return (where(n == 0, 0.0, ge * x / n),)
    if p in (math.inf, -math.inf):
        mask = (_abs(x) == n).to(g.dtype)
        count = sum(mask, dims, keepdim=True)
        return (ge * sign(x) * mask / count,)
    ax = _abs(x)
    # A zero norm takes a safe divisor, so the masked branch holds no 0/0 that double backward would
    # turn into nan (PyTorch's second derivative there is 0 too).
    zero = n == 0
    return (where(zero, 0.0, ge * sign(x) * ax ** (p - 1) / where(zero, 1.0, n) ** (p - 1)),)


NORM = register("norm", infer=_norm_infer, impl=_norm_impl, vjp=_norm_vjp, save_in=(0,), save_out=True,
                reduction=True, family="reduce")


@api
def norm(input, p="fro", dim=None, keepdim: bool = False, dtype=None):
    """Vector p-norm over ``dim`` ('fro' means 2), as ``torch.norm``; see ``danlu.linalg`` for matrices.

    >>> import danlu as dl
    >>> dl.tensor([3.0, 4.0]).norm(), dl.tensor([3.0, -4.0]).norm(1)
    (tensor(5.), tensor(7.))
    """
    input = _maybe_cast(input, dtype)
    if p == "fro" or p is None:
        p = 2
    if p == "nuc":
        from .. import linalg

        return linalg.matrix_norm(input, "nuc", dim if dim is not None else (-2, -1), keepdim)
    return apply(NORM, input, p=float(p), dims=_dims_of("norm", input, dim), keepdim=bool(keepdim))


_export(norm, "norm")


# == scans ==========================================================================================

def _scan_infer(x, *, dim):
    return AVal(tuple(x.shape), _acc_dtype(x.dtype))


def _cumsum_impl(x, *, dim):
    dt = np.int64 if x.dtype.kind in "biu" else x.dtype
    return np.cumsum(x, axis=dim, dtype=dt) if x.ndim else x.astype(dt)


def _rev_cumsum(g, dim):
    return cumsum(g.flip(dim), dim).flip(dim)


CUMSUM = register("cumsum", infer=_scan_infer, impl=_cumsum_impl, family="reduce",
                  vjp=lambda c, g: (_rev_cumsum(g, c.attrs["dim"]) if g.ndim else g,))


@api
def cumsum(input, dim: int, *, dtype=None):
    """Cumulative sum along ``dim``.

    >>> import danlu as dl
    >>> dl.tensor([1, 2, 3]).cumsum(0)
    tensor([1, 3, 6])
    """
    input = _maybe_cast(input, dtype)
    return apply(CUMSUM, input, dim=norm_dim("cumsum", dim, input.ndim))


def _cumprod_impl(x, *, dim):
    dt = np.int64 if x.dtype.kind in "biu" else x.dtype
    return np.cumprod(x, axis=dim, dtype=dt) if x.ndim else x.astype(dt)


def _cumprod_vjp(c, g):
    """Exact with zeros. d out_j / d x_k = prod of x_i for i <= j, i != k, so
    grad_k = sum_{j >= k} g_j * prod_{i <= j, i != k} x_i.

    First-order backward uses an O(n) form: before the first zero the quotient rule, at the first zero
    the products with that zero replaced by 1, after it zero. That form's own derivative is wrong at the
    zeros (a zero value with a nonzero slope), so when the backward pass is itself recorded
    (``create_graph=True``) the omitted products are built explicitly, O(n^2) along ``dim``, as PyTorch
    also does for double backward."""
    from ..core.dispatch import state

    if g.ndim == 0:
        return (g,)
    x = c.inputs[0]
    d = c.attrs["dim"]
    if state.grad_enabled:
        return (_cumprod_grad_differentiable(x, g, d),)
    from .elementwise import where

    out = c.out
    is_zero = x == 0
    zeros_incl = cumsum(is_zero.to(_dt.int64), d)          # zeros up to and including i
    before = zeros_incl == 0                                 # strictly before the first zero
    first_zero = is_zero & (zeros_incl == 1)
    safe_x = where(before, x, 1.0)
    g_before = _rev_cumsum(g * out, d) / safe_x
    # products with the first zero replaced by 1, for the outputs at or after it
    x1 = where(first_zero, 1.0, x)
    p1 = cumprod(x1, d)
    after = zeros_incl >= 1
    g_zero = sum(where(after, g * p1, 0.0), d, keepdim=True)
    zero = g * 0.0
    return (where(before, g_before, where(first_zero, g_zero + zero, zero)),)


def _cumprod_grad_differentiable(x, g, d):
    """grad_k = sum_{j >= k} g_j * P[k, j] with P[k, j] = prod_{i <= j, i != k} x_i, from one cumprod
    over an (..., n, n) tensor whose row k has x_k replaced by 1. Polynomial in x, so exact to any order."""
    from .creation import arange
    from .elementwise import where
    from .shape import movedim, unsqueeze

    xl, gl = movedim(x, d, -1), movedim(g, d, -1)
    n = xl.shape[-1]
    i = arange(n)
    diag = unsqueeze(i, 1) == unsqueeze(i, 0)                # [k, i]: i == k
    upper = unsqueeze(i, 1) <= unsqueeze(i, 0)               # [k, j]: j >= k
    rows = where(diag, 1.0, unsqueeze(xl, -2))               # (..., n, n)
    omitted = cumprod(rows, -1)
    gl = sum(where(upper, unsqueeze(gl, -2) * omitted, 0.0), -1)
    return movedim(gl, -1, d)


CUMPROD = register("cumprod", infer=_scan_infer, impl=_cumprod_impl, vjp=_cumprod_vjp, save_in=(0,),
                   save_out=True, family="reduce")


@api
def cumprod(input, dim: int, *, dtype=None):
    """Cumulative product along ``dim`` (exact gradients even where the input has zeros).

    >>> import danlu as dl
    >>> dl.tensor([1.0, 2.0, 3.0]).cumprod(0)
    tensor([1., 2., 6.])
    """
    input = _maybe_cast(input, dtype)
    return apply(CUMPROD, input, dim=norm_dim("cumprod", dim, input.ndim))


_export(cumsum, "cumsum")
_export(cumprod, "cumprod")


# == all / any ======================================================================================

def _bool_red_infer(x, *, dims, keepdim):
    return AVal(_reduced(tuple(x.shape), dims, keepdim), _dt.bool_)


ALL = register("all", infer=_bool_red_infer, impl=lambda x, *, dims, keepdim: np.all(x, axis=dims, keepdims=keepdim),
               differentiable=False, reduction=True, family="reduce")
ANY = register("any", infer=_bool_red_infer, impl=lambda x, *, dims, keepdim: np.any(x, axis=dims, keepdims=keepdim),
               differentiable=False, reduction=True, family="reduce")


@api
def all(input, dim=None, keepdim: bool = False):  # noqa: A001 - PyTorch's name
    """True where all elements (along ``dim``) are nonzero.

    >>> import danlu as dl
    >>> dl.tensor([[True, False], [True, True]]).all(1)
    tensor([False,  True])
    """
    return apply(ALL, input, dims=_dims_of("all", input, dim), keepdim=bool(keepdim))


@api
def any(input, dim=None, keepdim: bool = False):  # noqa: A001 - PyTorch's name
    """True where any element (along ``dim``) is nonzero.

    >>> import danlu as dl
    >>> dl.tensor([[True, False], [False, False]]).any(1)
    tensor([ True, False])
    """
    return apply(ANY, input, dims=_dims_of("any", input, dim), keepdim=bool(keepdim))


@api
def count_nonzero(input, dim=None):
    """Number of nonzero elements (along ``dim``).

    >>> import danlu as dl
    >>> dl.count_nonzero(dl.tensor([0, 1, 2]))
    tensor(2)
    """
    return sum(input != 0, dim)


for _f in (all, any, count_nonzero):
    _export(_f, _f.__name__)
