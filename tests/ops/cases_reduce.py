"""OpCases for reductions and scans (sum, mean, prod, amax/amin, max/min, arg*, var/std, logsumexp, norm,
cumsum/cumprod, all/any/count_nonzero), plus plain tests for their error paths."""

import math

import numpy as np
import pytest
import torch

import danlu as dl

from .harness import Arg, OpCase

INF = math.inf


def both(name, f, samples, **kw):
    """A case whose call is the same for both libraries: ``f(lib, *tensors)``."""
    return OpCase(name, lambda *a: f(dl, *a), lambda *a: f(torch, *a), samples, **kw)


def fixed(values, dtype=None):
    """An Arg filled with exactly ``values`` (its shape taken from them)."""
    a = np.asarray(values)
    return Arg(a.shape, "custom", fill=lambda r, s: a, dtype=dtype)


# The harness's "bool"/"int" kinds give NumPy scalars (not 0-d arrays) for shape (); 0-d samples use fixed().


def ties(rng, shape):
    """Small integers as floats: many exact ties along every dimension."""
    return rng.integers(0, 3, shape).astype(np.float64)


def distinct(rng, shape):
    """Distinct values, at least 0.1 apart (no ties, so the arg-extremum is unique)."""
    n = math.prod(shape)
    return (rng.permutation(n).reshape(shape) * 0.1 - 0.05 * n).astype(np.float64)


def second(name, f, samples, **kw):
    """A double-backward case: the output is d f(x) / dx applied to a cotangent v (an input too), so the
    harness compares second derivatives with PyTorch's (and their numerical differences)."""
    def run(m, x, v):
        with m.enable_grad():  # numerical checks call this under no_grad
            if not x.requires_grad:  # forward-only checks pass plain inputs
                x = x.detach().requires_grad_(True)
            (g,) = m.autograd.grad(f(m, x), x, v, create_graph=True)
        return g
    return OpCase(name, lambda x, v: run(dl, x, v), lambda x, v: run(torch, x, v), samples, **kw)


def _vi(r):
    """(values, indices) of a max/min namedtuple, by field name."""
    return r.values, r.indices


# Inputs with zeros along dim 1: row 0 none, row 1 one zero, row 2 two zeros, row 3 a zero first and last.
ZEROS_2D = [[1.5, -2.0, 0.5, 3.0], [0.7, 0.0, -1.2, 2.0], [0.0, 1.3, 0.0, -0.4], [0.0, 0.9, 1.1, 0.0]]
ZEROS_3D = np.array([[[1.0, 0.0, 2.0], [0.5, -1.0, 3.0]], [[0.0, 0.0, 1.5], [2.0, 0.25, -1.0]]])

CASES = [
    # -- sum --------------------------------------------------------------------------------------------
    both("sum_all", lambda m, x: m.sum(x), [[Arg((3, 4))], [Arg(())], [Arg((0, 3))], [Arg((1,))], [Arg((2, 1, 3))]]),
    both("sum_dim", lambda m, x: x.sum(1), [[Arg((3, 4))], [Arg((2, 3, 4))], [Arg((0, 3))], [Arg((3, 0))]]),
    both("sum_dim_neg", lambda m, x: x.sum(-1), [[Arg((3, 4))], [Arg((2, 1, 3))], [Arg((5,))]]),
    both("sum_dim_0d", lambda m, x: x.sum(0), [[Arg(())]]),
    both("sum_dim_0d_neg_keepdim", lambda m, x: x.sum(-1, keepdim=True), [[Arg(())]]),
    both("sum_tuple", lambda m, x: m.sum(x, (0, 2)), [[Arg((2, 3, 4))], [Arg((2, 0, 1))]]),
    both("sum_tuple_neg_keepdim", lambda m, x: x.sum((-1, 0), keepdim=True), [[Arg((2, 3, 4))], [Arg((3, 4))]]),
    both("sum_keepdim", lambda m, x: x.sum(0, keepdim=True), [[Arg((3, 4))], [Arg((1, 4))], [Arg((0, 2))]]),
    both("sum_empty_dim_list", lambda m, x: x.sum(dim=()), [[Arg((3, 4))], [Arg(())]]),
    both("sum_dtype_kwarg", lambda m, x: x.sum(1, dtype=m.float64), [[Arg((3, 4))]], dtypes=("float32",)),
    both("sum_int", lambda m, x: (x.sum(), x.sum(0), x.sum(1, keepdim=True)),
         [[Arg((3, 4), "int", low=-9, high=9)], [Arg((3, 4), "int", low=-9, high=9, dtype="int32")],
          [Arg((3, 4), "int", low=0, high=9, dtype="uint8")], [Arg((3, 4), "int", low=-9, high=9, dtype="int8")]],
         grad=False),
    both("sum_bool", lambda m, x: (x.sum(), x.sum(0), x.sum(dim=(0, 1), keepdim=True)),
         [[Arg((3, 4), "bool")], [Arg((0, 4), "bool")]], grad=False),
    both("sum_int_dtype_float", lambda m, x: x.sum(0, dtype=m.float32), [[Arg((3, 4), "int", low=-9, high=9)]],
         grad=False, dtypes=("float32",)),
    # -- mean --------------------------------------------------------------------------------------------
    both("mean_all", lambda m, x: x.mean(), [[Arg((3, 4))], [Arg(())], [Arg((1,))], [Arg((2, 1, 3))]]),
    both("mean_dims", lambda m, x: (x.mean(1), x.mean(-1, keepdim=True), x.mean((0, -1))),
         [[Arg((2, 3, 4))], [Arg((3, 1, 2))]]),
    both("mean_empty", lambda m, x: x.mean(0), [[Arg((0, 3))]]),  # nan, as PyTorch
    both("mean_dtype_of_int", lambda m, x: m.mean(x, 1, dtype=m.float64), [[Arg((3, 4), "int", low=-9, high=9)]],
         grad=False),
    # -- prod --------------------------------------------------------------------------------------------
    both("prod_all", lambda m, x: x.prod(), [[Arg((3, 4), "nonzero")], [Arg(())], [Arg((0, 3))], [Arg((1,))]]),
    both("prod_dim", lambda m, x: (x.prod(1), x.prod(0, keepdim=True), x.prod(-1)),
         [[Arg((3, 4), "nonzero")], [Arg((2, 3, 2), "nonzero")], [Arg((0, 2))], [Arg((3, 1))]]),
    both("prod_dim_0d", lambda m, x: x.prod(0), [[Arg(())]]),
    both("prod_zeros_dim", lambda m, x: (x.prod(1), x.prod(0, keepdim=True)), [[fixed(ZEROS_2D)]]),
    both("prod_zeros_all", lambda m, x: x.prod(), [[fixed(ZEROS_2D[1])], [fixed(ZEROS_2D[2])], [fixed(ZEROS_2D[3])],
                                                   [fixed([[0.5, 2.0], [0.0, 3.0]])]]),
    both("prod_zeros_3d", lambda m, x: (x.prod(1), x.prod(2), x.prod(-3)), [[fixed(ZEROS_3D)]]),
    both("prod_int", lambda m, x: (x.prod(), x.prod(1)), [[Arg((3, 4), "int", low=-3, high=3)],
                                                          [Arg((2, 3), "int", low=0, high=3, dtype="int32")],
                                                          [Arg((2, 3), "bool")]], grad=False),
    both("prod_dtype_kwarg", lambda m, x: x.prod(1, dtype=m.float64), [[Arg((3, 4), "nonzero")]], dtypes=("float32",)),
    # -- amax / amin -------------------------------------------------------------------------------------
    both("amax", lambda m, x: (m.amax(x, 1), x.amax(), x.amax((0, 1), keepdim=True)),
         [[Arg((3, 4), "custom", fill=distinct)], [Arg((2, 3, 2), "custom", fill=distinct)]]),
    both("amin", lambda m, x: (m.amin(x, -1), x.amin(), x.amin(0, keepdim=True)),
         [[Arg((3, 4), "custom", fill=distinct)], [Arg((2, 3, 2), "custom", fill=distinct)]]),
    both("amax_amin_0d_size1", lambda m, x: (x.amax(), x.amin(0), x.amax(-1, keepdim=True)),
         [[Arg(())], [Arg((1,))]]),
    both("amax_nonempty_dim_of_empty", lambda m, x: (x.amax(1), x.amin(1)), [[Arg((0, 3))]]),
    # Deliberate ties: the gradient is shared evenly among the tied maxima (finite differences are ill-posed).
    both("amax_ties", lambda m, x: (x.amax(1), x.amax(), x.amax((0, -1))),
         [[Arg((4, 5), "custom", fill=ties)], [Arg((3, 4, 2), "custom", fill=ties)]], numeric_grad=False),
    both("amin_ties", lambda m, x: (x.amin(0), x.amin(), x.amin((1, 2), keepdim=True)),
         [[Arg((4, 5, 1), "custom", fill=ties)], [Arg((3, 4, 2), "custom", fill=ties)]], numeric_grad=False),
    both("amax_int", lambda m, x: (x.amax(0), x.amin()), [[Arg((3, 4), "int", low=-9, high=9)]], grad=False),
    # -- max / min ---------------------------------------------------------------------------------------
    both("max_all", lambda m, x: (x.max(), m.min(x)), [[Arg((3, 4), "custom", fill=distinct)], [Arg(())], [Arg((1,))]]),
    both("max_all_ties", lambda m, x: (x.max(), x.min()), [[Arg((4, 5), "custom", fill=ties)]], numeric_grad=False),
    both("max_dim", lambda m, x: _vi(m.max(x, 1)) + _vi(x.max(0, keepdim=True)) + _vi(x.max(dim=-1)),
         [[Arg((3, 4), "custom", fill=distinct)], [Arg((2, 3, 2), "custom", fill=distinct)],
          [Arg((3, 1), "custom", fill=distinct)]]),
    both("min_dim", lambda m, x: _vi(m.min(x, 1)) + _vi(x.min(0, keepdim=True)) + _vi(x.min(dim=-1)),
         [[Arg((3, 4), "custom", fill=distinct)], [Arg((2, 3, 2), "custom", fill=distinct)]]),
    both("max_min_dim_0d", lambda m, x: _vi(x.max(0)) + _vi(x.min(-1, keepdim=True)), [[Arg(())]]),
    both("max_min_dim_empty_other", lambda m, x: _vi(x.max(1)) + _vi(x.min(1)), [[Arg((0, 3))]]),
    both("max_dim_int", lambda m, x: _vi(x.max(1)) + _vi(x.min(0)),
         [[Arg((3, 4), "custom", fill=distinct, dtype="int64")]], grad=False),
    both("max_binary", lambda m, a, b: (m.max(a, b), m.min(a, b), a.max(b)),
         [[Arg((3, 4)), Arg((3, 4))], [Arg((3, 1)), Arg((4,))], [Arg(()), Arg((2,))]]),
    # -- argmax / argmin ---------------------------------------------------------------------------------
    both("argmax_argmin", lambda m, x: (x.argmax(), m.argmin(x), x.argmax(1), x.argmin(0, keepdim=True),
                                        x.argmax(-1, keepdim=True), x.argmin(dim=None, keepdim=True)),
         [[Arg((3, 4), "custom", fill=distinct)], [Arg((2, 3, 2), "custom", fill=distinct)], [Arg((1, 3))]],
         grad=False),
    both("argmax_argmin_ties_first", lambda m, x: (x.argmax(), x.argmin(), x.argmax(1), x.argmin(0)),
         [[Arg((4, 5), "custom", fill=ties)], [Arg((3, 4), "int", low=0, high=2)]], grad=False),
    both("argmax_0d", lambda m, x: (x.argmax(), x.argmin(0), x.argmax(0, keepdim=True), x.argmax(keepdim=True)),
         [[Arg(())]], grad=False),
    both("argmax_empty_other_dim", lambda m, x: (x.argmax(1), x.argmin(1, keepdim=True)), [[Arg((0, 3))]], grad=False),
    # -- var / std ---------------------------------------------------------------------------------------
    both("var_default", lambda m, x: (x.var(), m.var(x, 1), x.var(0, keepdim=True)),
         [[Arg((3, 4))], [Arg((2, 3, 2))]]),
    both("var_correction", lambda m, x: (x.var(1, correction=0), x.var(1, correction=2), x.var(correction=0),
                                         m.var(x, (0, 1), correction=2, keepdim=True)),
         [[Arg((3, 4))], [Arg((4, 3, 2))]]),
    both("var_unbiased", lambda m, x: (x.var(unbiased=False), x.var(1, unbiased=False), m.var(x, 0, True, True),
                                       m.var(x, False), x.var(-1, unbiased=True)),
         [[Arg((3, 4))]]),
    both("var_0d", lambda m, x: x.var(correction=0), [[Arg(())]]),
    # No degrees of freedom left: nan/inf values, and nan gradients, as PyTorch.
    both("var_too_few", lambda m, x: (x.var(1), x.var(correction=3), x.var(0, correction=4)), [[Arg((3, 1))]],
         numeric_grad=False),
    both("var_0d_default", lambda m, x: x.var(), [[Arg(())]], numeric_grad=False),
    both("std_default", lambda m, x: (x.std(), m.std(x, 1), x.std(0, keepdim=True), x.std(-1, correction=0),
                                      x.std(1, unbiased=False), m.std(x, (0, 1), correction=2)),
         [[Arg((3, 4))], [Arg((4, 3, 2))]]),
    both("var_mean", lambda m, x: m.var_mean(x) + m.var_mean(x, 1) + m.var_mean(x, (0, 1), correction=0, keepdim=True)
         + m.var_mean(x, 1, unbiased=False), [[Arg((3, 4))], [Arg((2, 3, 2))]]),
    both("std_mean", lambda m, x: m.std_mean(x) + m.std_mean(x, -1, keepdim=True) + m.std_mean(x, 0, correction=2),
         [[Arg((3, 4))], [Arg((4, 3))]]),
    both("var_size1_correction0", lambda m, x: (x.var(1, correction=0), x.std(1, unbiased=False)),
         [[Arg((3, 1))]], numeric_grad=False),  # std's derivative at zero spread is nan in both
    # -- logsumexp ---------------------------------------------------------------------------------------
    both("logsumexp", lambda m, x: (m.logsumexp(x, 1), x.logsumexp(0, keepdim=True), x.logsumexp((0, 1)),
                                    x.logsumexp(-1)),
         [[Arg((3, 4))], [Arg((2, 3, 2))], [Arg((1, 1))]]),
    both("logsumexp_0d", lambda m, x: (x.logsumexp(0), x.logsumexp(())), [[Arg(())]]),
    both("logsumexp_large", lambda m, x: (x.logsumexp(1), x.logsumexp(0)),
         [[Arg((3, 4), "float", low=800, high=900)], [Arg((3, 4), "float", low=-900, high=-800)],
          [fixed([[1000.0, 1000.0, -1000.0], [-1e4, 0.0, 1e4]])]]),
    both("logsumexp_inf", lambda m, x: (x.logsumexp(1), x.logsumexp(0)),
         [[fixed([[-INF, 1.0, 2.0], [-INF, -INF, -INF], [INF, 0.0, -INF]])]], grad=False),
    both("logsumexp_empty", lambda m, x: (x.logsumexp(0), x.logsumexp(1)), [[Arg((0, 3))]]),
    # Integer inputs give float32 outputs: checked once, with float32 tolerances.
    both("logsumexp_int", lambda m, x: m.logsumexp(x, 1), [[Arg((3, 4), "int", low=-5, high=5)]], grad=False,
         dtypes=("float32",)),
    # -- norm --------------------------------------------------------------------------------------------
    both("norm_p2", lambda m, x: (x.norm(), m.norm(x, 2, 1), x.norm(dim=0, keepdim=True), x.norm(p="fro"),
                                  m.norm(x, "fro", (0, 1))),
         [[Arg((3, 4))], [Arg((2, 3, 2))]]),
    both("norm_p1", lambda m, x: (x.norm(1), m.norm(x, 1, -1), x.norm(1, (0, 1), keepdim=True)),
         [[Arg((3, 4), "nonzero")]]),
    both("norm_inf", lambda m, x: (x.norm(INF), m.norm(x, INF, 1), x.norm(-INF), x.norm(-INF, 0, keepdim=True)),
         [[Arg((3, 4), "custom", fill=lambda r, s: distinct(r, s) + 0.03)]]),
    both("norm_inf_ties", lambda m, x: (x.norm(INF, 1), x.norm(-INF, 0), x.norm(INF)),
         [[fixed([[1.0, -2.0, 2.0, 0.5], [-3.0, 3.0, 1.0, -3.0], [0.5, -0.5, 0.25, 0.5]])]], numeric_grad=False),
    both("norm_p0", lambda m, x: (x.norm(0), m.norm(x, 0, 1)),
         [[fixed([[1.0, 0.0, 2.0, -0.5], [0.0, 0.0, 0.0, 0.0], [0.5, -0.5, 0.25, 0.5]])]], numeric_grad=False),
    both("norm_p3", lambda m, x: (x.norm(3), m.norm(x, 3, 1), x.norm(3, 0, keepdim=True)), [[Arg((3, 4), "nonzero")]]),
    both("norm_p_frac_neg", lambda m, x: (x.norm(0.5, 1), x.norm(-1, 1), x.norm(-2)), [[Arg((3, 4), "nonzero")]]),
    both("norm_0d", lambda m, x: (x.norm(), x.norm(1), x.norm(INF), x.norm(3)), [[Arg((), "nonzero")]]),
    both("norm_empty", lambda m, x: (x.norm(), x.norm(2, 0), x.norm(1, 0), x.norm(INF, 1)), [[Arg((0, 3))]]),
    # Gradient at an all-zero row: PyTorch's subgradient is 0 for p=2 and p=3, sign(0)=0 for p=1.
    both("norm_zero_row", lambda m, x: (x.norm(2, 1), x.norm(3, 1), x.norm(1, 1), x.norm(2, (0, 1))),
         [[fixed([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]])]], numeric_grad=False),
    both("norm_zero_all", lambda m, x: x.norm(), [[fixed([[0.0, 0.0], [0.0, 0.0]])]], numeric_grad=False),
    both("norm_dtype_kwarg", lambda m, x: m.norm(x, 2, 1, dtype=m.float64), [[Arg((3, 4))]], dtypes=("float32",)),
    # -- cumsum / cumprod --------------------------------------------------------------------------------
    both("cumsum", lambda m, x: (x.cumsum(0), m.cumsum(x, 1), x.cumsum(-1)),
         [[Arg((3, 4))], [Arg((2, 3, 2))], [Arg((0, 3))], [Arg((1, 1))]]),
    both("cumsum_0d", lambda m, x: (x.cumsum(0), x.cumsum(-1)), [[Arg(())]]),
    both("cumsum_int", lambda m, x: (x.cumsum(0), x.cumsum(1)),
         [[Arg((3, 4), "int", low=-9, high=9, dtype="int32")], [Arg((3, 4), "bool")]], grad=False),
    both("cumsum_dtype", lambda m, x: x.cumsum(1, dtype=m.float64), [[Arg((3, 4))]], dtypes=("float32",)),
    both("cumprod", lambda m, x: (x.cumprod(0), m.cumprod(x, 1), x.cumprod(-1)),
         [[Arg((3, 4), "nonzero")], [Arg((2, 3, 2), "nonzero")], [Arg((0, 3))], [Arg((1, 1))]]),
    both("cumprod_0d", lambda m, x: x.cumprod(0), [[Arg(())]]),
    both("cumprod_zeros", lambda m, x: (x.cumprod(1), x.cumprod(0)), [[fixed(ZEROS_2D)], [fixed(ZEROS_3D[0])]]),
    both("cumprod_zeros_3d", lambda m, x: (x.cumprod(2), x.cumprod(1)), [[fixed(ZEROS_3D)]]),
    both("cumprod_int", lambda m, x: (x.cumprod(0), x.cumprod(1)),
         [[Arg((3, 4), "int", low=-3, high=3, dtype="int32")]], grad=False),
    both("cumprod_dtype", lambda m, x: x.cumprod(0, dtype=m.float64), [[Arg((3, 4), "nonzero")]], dtypes=("float32",)),
    # -- all / any / count_nonzero -----------------------------------------------------------------------
    both("all_any", lambda m, x: (x.all(), x.any(), m.all(x, 1), m.any(x, 0), x.all(-1, keepdim=True),
                                  x.any(0, keepdim=True)),
         [[Arg((3, 4), "bool")], [Arg((3, 4), "int", low=0, high=1)], [Arg((3, 4), "custom", fill=ties)],
          [Arg((0, 3), "bool")], [fixed([[True, True], [False, False]])]], grad=False),
    both("all_any_0d", lambda m, x: (x.all(), x.any(0), x.all(-1, keepdim=True)),
         [[fixed(True)], [fixed(False)], [Arg(())]], grad=False),
    both("all_any_dims", lambda m, x: (x.all((0, 2)), x.any((1, -1), keepdim=True)),
         [[Arg((2, 3, 2), "bool")]], grad=False),
    both("count_nonzero", lambda m, x: (m.count_nonzero(x), m.count_nonzero(x, 1), x.count_nonzero((0, 1)),
                                        x.count_nonzero(dim=-1)),
         [[Arg((3, 4), "custom", fill=ties)], [Arg((3, 4), "int", low=-1, high=1)], [Arg((3, 4), "bool")],
          [Arg((0, 2))]], grad=False),
]


# Second derivatives, checked against PyTorch directly (the exact zero handling of prod/cumprod matters here).
CASES += [
    second("prod_zeros_double_backward", lambda m, x: x.prod(1), [[fixed(ZEROS_2D), Arg((4,))]]),
    second("prod_all_zeros_double_backward", lambda m, x: x.prod(), [[fixed(ZEROS_2D[1]), Arg(())],
                                                                      [fixed(ZEROS_2D[2]), Arg(())]]),
    second("cumprod_zeros_double_backward", lambda m, x: x.cumprod(1),
           [[fixed(ZEROS_2D), Arg((4, 4))], [Arg((3, 4), "nonzero"), Arg((3, 4))]]),
    second("cumprod_zeros_double_backward_dim0", lambda m, x: x.cumprod(0), [[fixed(ZEROS_3D), Arg((2, 2, 3))]]),
    second("var_double_backward", lambda m, x: x.var(1, correction=0), [[Arg((3, 4)), Arg((3,))]]),
    second("std_double_backward", lambda m, x: x.std(0), [[Arg((3, 4)), Arg((4,))]]),
    second("logsumexp_double_backward", lambda m, x: x.logsumexp(1), [[Arg((3, 4)), Arg((3,))]]),
    second("norm_double_backward", lambda m, x: (x.norm(2, 1), x.norm(3, 1))[0] + x.norm(3, 1),
           [[Arg((3, 4), "nonzero"), Arg((3,))]]),
    # At a zero row the second derivative in x is 0 (as PyTorch); the one in v is left out: PyTorch's is nan.
    second("norm_zero_row_double_backward", lambda m, x: x.norm(3, 1),
           [[fixed([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]]), Arg((2,), grad=False)]], numeric_grad=False),
    second("amax_double_backward", lambda m, x: x.amax(1) * x.amax(1),
           [[Arg((3, 4), "custom", fill=distinct), Arg((3,))]]),
    second("cumsum_double_backward", lambda m, x: x.cumsum(1) ** 2, [[Arg((3, 4)), Arg((3, 4))]]),
    second("mean_sum_double_backward", lambda m, x: x.mean(0) * x.sum(0), [[Arg((3, 4)), Arg((4,))]]),
]


# -- errors -----------------------------------------------------------------------------------------------

def test_reduce_errors():
    x = dl.zeros(3, 4)
    with pytest.raises(IndexError, match="out of range"):
        x.sum(2)
    with pytest.raises(RuntimeError, match="multiple times"):
        x.sum((0, 0))
    with pytest.raises(IndexError, match="non-zero size"):
        dl.zeros(0, 3).amax(0)
    with pytest.raises(IndexError, match="non-zero size"):
        dl.zeros(0, 3).max(0)
    with pytest.raises(IndexError, match="numel"):
        dl.zeros(0, 3).argmax()
    with pytest.raises(dl.DTypeError, match="mean"):
        dl.tensor([1, 2]).mean()
    with pytest.raises(dl.DTypeError, match="var"):
        dl.tensor([1, 2]).var()


def test_max_returns_namedtuple():
    r = dl.tensor([[1.0, 5.0], [3.0, 2.0]]).max(1)
    v, i = r
    assert r.values is v and r.indices is i
    assert i.dtype is dl.int64 and i.tolist() == [1, 0]


def test_logsumexp_stable_grad():
    # float64: in float32 the result's rounding (ulp 6e-5 at 1000) shows in exp(x - out), as in PyTorch.
    x = dl.tensor([1000.0, 1000.0, -1000.0], dtype=dl.float64, requires_grad=True)
    y = x.logsumexp(0)
    y.backward()
    assert abs(y.item() - (1000 + math.log(2))) < 1e-12
    np.testing.assert_allclose(x.grad.numpy(), [0.5, 0.5, 0.0], atol=1e-12)
