# ruff: noqa: A002 - PyTorch's argument names (ord)
"""Linear algebra, as ``torch.linalg``: norms, inverses, solves, determinants, singular values.

The primitives live in ``danlu.ops.linalg``; this namespace adds the composites (vector and matrix
norms over the ``norm`` reduction and ``svdvals``, ``multi_dot``).

>>> import danlu as dl
>>> dl.linalg.norm(dl.tensor([[3.0, 0.0], [0.0, 4.0]]), 2)
tensor(4.)
"""

from __future__ import annotations

import math

from .core import dtypes as _dt
from .core.errors import DTypeError, ShapeError, api, describe
from .core.tensor import Tensor
from .ops._util import norm_dim
from .ops.linalg import (  # noqa: F401  (re-exported as danlu.linalg.*)
    LinAlgError, det, diagonal as _diagonal, inv, matmul, slogdet, solve, svd, svdvals,
)
from .ops.reduce import amin, norm as _norm, sum as _sum
from .ops.shape import movedim, squeeze, unsqueeze

__all__ = ["norm", "vector_norm", "matrix_norm", "inv", "solve", "det", "slogdet", "svd", "svdvals", "matmul",
           "multi_dot", "diagonal", "LinAlgError"]

_INF = math.inf


def _float_input(name, x, dtype):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}(): argument 'input' must be Tensor, not {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise DTypeError(f"{name}: expected a floating point tensor as input, got {describe(x)}; convert it with "
                         ".float()")
    if dtype is not None:
        dt = _dt.as_dtype(dtype)
        if not dt.is_floating_point or _dt.promote_types(x.dtype, dt) is not dt:
            raise DTypeError(f"{name}: the dtype of the input ({describe(x)}) should be convertible without "
                             f"narrowing to the specified dtype ({dt.name})")
        x = x.to(dt)
    return x


@api
def vector_norm(x, ord=2, dim=None, keepdim: bool = False, *, dtype=None):
    """Vector ``ord``-norm over ``dim`` (all elements when None), as ``torch.linalg.vector_norm``.

    >>> import danlu as dl
    >>> dl.linalg.vector_norm(dl.tensor([[3.0, 4.0], [0.0, 0.0]]), dim=1)
    tensor([5., 0.])
    """
    if isinstance(ord, str):
        raise TypeError(f"linalg.vector_norm: ord must be a number, not {ord!r}; use matrix_norm for 'fro'/'nuc'")
    x = _float_input("linalg.vector_norm", x, dtype)
    ord = float(ord)  # noqa: A001
    if isinstance(dim, int):
        dim = (dim,)
    dims = tuple(range(x.ndim)) if not dim else tuple(norm_dim("linalg.vector_norm", d, x.ndim) for d in dim)
    if ord < 0 or ord == _INF:
        for d in dims:
            if x.ndim and x.shape[d] == 0:
                raise RuntimeError(f"linalg.vector_norm cannot compute the {ord:g} norm on the empty dimension {d} "
                                   f"of {describe(x)} because the operation does not have an identity")
    return _norm(x, ord, dim if dim else None, keepdim)


_MATRIX_ORDS = ("fro", "nuc", 1, -1, 2, -2, _INF, -_INF)


@api
def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim: bool = False, *, dtype=None):
    """Matrix norm over the two dims ``dim``: 'fro', 'nuc' (sum of singular values), 2/-2 (largest/smallest
    singular value), 1/-1 (max/min column sum), inf/-inf (max/min row sum), as ``torch.linalg.matrix_norm``.

    >>> import danlu as dl
    >>> A = dl.tensor([[1.0, -2.0], [3.0, 4.0]])
    >>> dl.linalg.matrix_norm(A, 1), dl.linalg.matrix_norm(A, float("inf"))
    (tensor(6.), tensor(7.))
    """
    A = _float_input("linalg.matrix_norm", A, dtype)
    if A.ndim < 2:
        raise ShapeError(f"linalg.matrix_norm: the input tensor A must have at least 2 dimensions, got {describe(A)}")
    if isinstance(dim, int) or len(tuple(dim)) != 2:
        raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple, got {dim}")
    d0, d1 = (norm_dim("linalg.matrix_norm", d, A.ndim) for d in dim)
    if d0 == d1:
        raise RuntimeError(f"linalg.matrix_norm: dims must be different, got {tuple(dim)}")
    if ord not in _MATRIX_ORDS:
        raise RuntimeError(f"linalg.matrix_norm: order {ord} not supported; use one of 'fro', 'nuc', 1, -1, 2, -2, "
                           "inf, -inf")
    if ord == "fro":
        return _norm(A, 2, (d0, d1), keepdim)
    if ord in ("nuc", 2, -2):
        if A.dtype is _dt.float16:
            raise DTypeError(f"linalg.matrix_norm: low precision dtypes are not supported for ord={ord}, got "
                             f"{describe(A)}; use .float()")
        sv = svdvals(movedim(A, (d0, d1), (-2, -1)))
        # singular values are >= 0: the inf-norm is their max, and (unlike amax) gives 0 for empty matrices
        r = _sum(sv, -1) if ord == "nuc" else _norm(sv, _INF, -1) if ord == 2 else amin(sv, -1)
        if keepdim:
            for d in sorted((d0, d1)):
                r = unsqueeze(r, d)
        return r
    # 1/-1 sum over rows then extremes over columns; inf/-inf the other way round
    inner_dim, outer_dim = (d0, d1) if abs(ord) == 1 else (d1, d0)
    s = _sum(A.abs(), inner_dim, keepdim=True)
    r = _norm(s, _INF, outer_dim, True) if ord > 0 else amin(s, outer_dim, True)
    return r if keepdim else squeeze(r, (d0, d1))


@api
def norm(A, ord=None, dim=None, keepdim: bool = False, *, dtype=None):
    """A vector norm (``dim`` an int or 1-tuple, or a 1-D input) or matrix norm (``dim`` a 2-tuple, or a 2-D
    input), as ``torch.linalg.norm``. With ``ord`` and ``dim`` both None: the 2-norm of all elements.

    >>> import danlu as dl
    >>> A = dl.tensor([[3.0, 0.0], [0.0, 4.0]])
    >>> dl.linalg.norm(A), dl.linalg.norm(A, "nuc"), dl.linalg.norm(A, dim=0)
    (tensor(5.), tensor(7.), tensor([3., 4.]))
    """
    if isinstance(ord, str):  # 'fro' / 'nuc' are matrix norms whatever dim says
        return matrix_norm(A, ord, (-2, -1) if dim is None else dim, keepdim, dtype=dtype)
    if dim is not None:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        if len(dims) == 1:
            return vector_norm(A, 2 if ord is None else ord, dims, keepdim, dtype=dtype)
        if len(dims) == 2:
            return matrix_norm(A, "fro" if ord is None else ord, dims, keepdim, dtype=dtype)
        raise RuntimeError(f"linalg.norm: if dim is specified, it must be of length 1 or 2, got {list(dims)}")
    if ord is None:
        return vector_norm(A, 2, None, keepdim, dtype=dtype)
    if A.ndim == 2:
        return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
    if A.ndim != 1:
        raise RuntimeError(f"linalg.norm: if dim is not specified but ord is, the input must be 1D or 2D, got "
                           f"{A.ndim}D ({describe(A)}); pass dim")
    return vector_norm(A, ord, None, keepdim, dtype=dtype)


def _chain_order(dims):
    """Cheapest parenthesization of a matrix chain (dims p0..pn): split[i][j] for the product i..j."""
    n = len(dims) - 1
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = math.inf
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k
    return split


def _chain_product(ts, split, i, j):
    if i == j:
        return ts[i]
    k = split[i][j]
    return matmul(_chain_product(ts, split, i, k), _chain_product(ts, split, k + 1, j))


@api
def multi_dot(tensors):
    """Product of a chain of matrices in the cheapest order; the first and last may be 1-D, as
    ``torch.linalg.multi_dot``.

    >>> import danlu as dl
    >>> dl.linalg.multi_dot([dl.ones(3), dl.ones(3, 4), dl.ones(4, 2)])
    tensor([12., 12.])
    """
    ts = list(tensors)
    if len(ts) < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {len(ts)}")
    for i, t in enumerate(ts):
        if not isinstance(t, Tensor):
            raise TypeError(f"multi_dot(): expected Tensors, got {type(t).__name__} at position {i}")
        if t.dtype is not ts[0].dtype:
            raise DTypeError(f"multi_dot(): all tensors must have the same dtype, but tensor 0 is "
                             f"{describe(ts[0])} and tensor {i} is {describe(t)}")
        allowed = (1, 2) if i in (0, len(ts) - 1) else (2,)
        if t.ndim not in allowed:
            where = "first" if i == 0 else "last" if i == len(ts) - 1 else "middle"
            raise ShapeError(f"multi_dot(): the {where} tensor must be {' or '.join(f'{a}D' for a in allowed)} but "
                             f"got {describe(t)}")
    first_vec, last_vec = ts[0].ndim == 1, ts[-1].ndim == 1
    if first_vec:
        ts[0] = unsqueeze(ts[0], 0)
    if last_vec:
        ts[-1] = unsqueeze(ts[-1], -1)
    for i in range(len(ts) - 1):
        if ts[i].shape[1] != ts[i + 1].shape[0]:
            raise ShapeError(f"multi_dot(): tensors {i} and {i + 1} with shapes {list(ts[i].shape)} and "
                             f"{list(ts[i + 1].shape)} cannot be multiplied")
    split = _chain_order([t.shape[0] for t in ts] + [ts[-1].shape[1]])

    out = _chain_product(ts, split, 0, len(ts) - 1)
    if last_vec:
        out = squeeze(out, -1)
    if first_vec:
        out = squeeze(out, 0)
    return out


@api
def diagonal(A, *, offset: int = 0, dim1: int = -2, dim2: int = -1):
    """``danlu.diagonal`` with the matrix dims last by default, as ``torch.linalg.diagonal``.

    >>> import danlu as dl
    >>> dl.linalg.diagonal(dl.eye(2).expand(3, 2, 2)).shape
    danlu.Size([3, 2])
    """
    return _diagonal(A, offset, dim1, dim2)
