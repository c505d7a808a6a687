"""OpCases for indexing: basic and advanced __getitem__, __setitem__ under autograd, index_put, gather/scatter,
index_select/index_add, masks, take/take_along_dim, narrow/select, nonzero/argwhere, one_hot; plus plain tests
for out-of-range errors (type, and a message naming the bad index and the size)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import danlu as dl
from danlu.ops.index import one_hot

from .harness import Arg, OpCase


def both(name, f, samples, **kw):
    """A case whose call is the same for both libraries: ``f(lib, *tensors)``."""
    return OpCase(name, lambda *a: f(dl, *a), lambda *a: f(torch, *a), samples, **kw)


def fixed(values, dtype=None):
    """An Arg filled with exactly ``values`` (shape from them); integer or bool values are not differentiated."""
    a = np.asarray(values)
    return Arg(a.shape, "custom", fill=lambda r, s: a, dtype=dtype, grad=a.dtype.kind == "f")


def idx(shape, size, negative=False):
    """Random int64 indices into a dimension of ``size`` (with negative ones when asked)."""
    lo = -size if negative else 0
    return Arg(shape, "custom", fill=lambda r, s: r.integers(lo, size, s), dtype="int64")


def perm(size, n=None):
    """Distinct int64 indices (a permutation prefix): no duplicate writes, so results are deterministic."""
    return Arg((n or size,), "custom", fill=lambda r, s: r.permutation(size)[:s[0]], dtype="int64")


def perm_along(shape, dim, size):
    """An index tensor for scatter: along ``dim`` each line holds distinct values < size."""
    def fill(r, s):
        lines = np.moveaxis(np.zeros(s, np.int64), dim, -1)
        flat = lines.reshape(-1, s[dim])
        for k in range(flat.shape[0]):
            flat[k] = r.permutation(size)[:s[dim]]
        return np.moveaxis(flat.reshape(lines.shape), -1, dim)
    return Arg(shape, "custom", fill=fill, dtype="int64")


def mask(shape):
    """A random bool mask (an ndarray also for 0-d shapes)."""
    return Arg(shape, "custom", fill=lambda r, s: np.asarray(r.random(s) < 0.5), grad=False)


def setitem(key):
    """``y = x.clone(); y[key(*index_tensors)] = v``: the write goes into a non-leaf, so autograd
    must rebase y's history and send gradients to both x (outside the written region) and v."""
    def f(m, x, v, *ix):
        y = x.clone()
        y[key(*ix)] = v
        return y
    return f


def setitem_scalar(key, value):
    def f(m, x, *ix):
        y = x.clone()
        y[key(*ix)] = value
        return y
    return f


X = (3, 4, 5)

CASES = [
    # -- basic getitem: a view ---------------------------------------------------------------------------
    both("getitem_int", lambda m, x: (x[1], x[-1], x[0, 2], x[-1, -1, -1], x[2][1]), [[Arg(X)]]),
    both("getitem_slice", lambda m, x: (x[1:3], x[::2], x[1::2, :, 3:], x[:, -3:-1], x[:, 1:100], x[5:], x[:, 3:1]),
         [[Arg(X)]]),
    both("getitem_slice_steps", lambda m, x: (x[::3, 1::2, ::4], x[-2::2], x[:, ::5]), [[Arg(X)]]),
    both("getitem_ellipsis_none", lambda m, x: (x[..., 1], x[None], x[:, None, 1], x[1, ..., None], x[..., None, :],
                                                x[None, ..., None], x[...], x[1, None, ..., 2]),
         [[Arg(X)]]),
    both("getitem_combined", lambda m, x: (x[1, 1:3, ::2], x[-1, ..., 1:2], x[None, 1::2, None, -1]), [[Arg(X)]]),
    both("getitem_0d", lambda m, x: (x[...], x[None], x[..., None], x[()]), [[Arg(())]]),
    both("getitem_size0", lambda m, x: (x[:, 1:1], x[0], x[..., 0:0]), [[Arg((2, 0, 3))], [Arg((2, 3, 3))]]),
    both("getitem_bool_scalar", lambda m, x: (x[True], x[False]), [[Arg((2, 3))], [Arg(())]]),
    both("getitem_int_dtypes", lambda m, x: (x[1], x[:, ::2], x[..., None]),
         [[Arg((3, 4), "int", low=-9, high=9)], [Arg((3, 4), "bool")]], grad=False),
    # -- advanced indexing -------------------------------------------------------------------------------
    both("index_tensor_1d", lambda m, x, i: (x[i], x[:, i], x[..., i]), [[Arg((4, 4, 4)), idx((5,), 4)]]),
    both("index_tensor_nd", lambda m, x, i: (x[i], x[1, i], x[:, :, i]), [[Arg((3, 3, 3)), idx((2, 3), 3)]]),
    both("index_negative", lambda m, x, i: (x[i], x[:, i]), [[Arg((4, 4)), idx((5,), 4, negative=True)]]),
    both("index_list", lambda m, x: (x[[0, 2]], x[:, [1, 1, -1]], x[[0, 1], [2, 3]], x[[[0], [2]], [1, 3]]),
         [[Arg((3, 4))]]),
    both("index_0d_tensor", lambda m, x, i: (x[i], x[:, i], x[i, 1:]), [[Arg((3, 3)), fixed(2)]]),
    # Adjacent index tensors keep their place; tensors separated by a slice (or None) move their broadcast
    # shape to the front. Integers index first and never separate tensors (PyTorch; NumPy differs).
    both("index_adjacent", lambda m, x, i, j: (x[i, j], x[:, i, j], x[i, j, 1:3], x[..., i, j]),
         [[Arg((3, 4, 5, 6)), idx((2, 1), 3), idx((3,), 4)], [Arg((4, 4, 5, 6)), idx((2,), 4), idx((2,), 4)]]),
    both("index_separated", lambda m, x, i, j: (x[i, :, j], x[i, 1:3, :, j], x[:, i, None, j], x[i, ..., j]),
         [[Arg((4, 4, 5, 6)), idx((2, 3), 4), idx((3,), 5)]]),
    both("index_int_between", lambda m, x, i, j: (x[:, i, 1, j], x[i, 0, j], x[1, i, 2, j], x[:, i, :, 1]),
         [[Arg((4, 4, 4, 4)), idx((2, 3), 4), idx((3,), 4)]]),
    both("index_three_tensors", lambda m, x, i, j, k: (x[i, j, k], x[i, j, :, k]),
         [[Arg((3, 4, 5, 3)), idx((2, 1), 3), idx((1, 4), 4), idx((4,), 3)]]),
    both("index_empty", lambda m, x, i: (x[i], x[:, i]), [[Arg((3, 3)), Arg((0,), "index", high=3)]]),
    both("index_empty_input", lambda m, x, i: x[:, i], [[Arg((0, 3)), idx((2,), 3)]]),
    both("index_int_input", lambda m, x, i: (x[i], x[:, i]), [[Arg((3, 4), "int", low=-9, high=9), idx((2, 2), 3)]],
         grad=False),
    both("index_duplicates_grad", lambda m, x, i: x[i] * 2, [[Arg((4, 3)), fixed([0, 0, 3, 0, 1])]]),
    # -- bool masks --------------------------------------------------------------------------------------
    both("mask_full", lambda m, x, k: x[k], [[Arg((3, 4)), mask((3, 4))], [Arg((2, 3, 2)), mask((2, 3, 2))],
                                             [Arg((0, 2)), mask((0, 2))]]),
    both("mask_leading", lambda m, x, k: (x[k], x[k, 1], x[k, ..., ::2]), [[Arg((4, 3, 2)), mask((4,))]]),
    both("mask_partial", lambda m, x, k: (x[:, k], x[1, k], x[..., k[0]]), [[Arg((2, 3, 4)), mask((3, 4))]]),
    both("mask_and_tensor", lambda m, x, k, i: (x[i, k], x[:, k, i], x[i, k, 1]),
         [[Arg((2, 3, 2)), fixed([True, False, True]), fixed([1, 0])]]),
    both("mask_list", lambda m, x: (x[[True, False, True]], x[:, [False, True, True, False]]), [[Arg((3, 4))]]),
    both("mask_all_false", lambda m, x: x[x > 100], [[Arg((3, 4))]]),
    # -- __setitem__ under autograd ----------------------------------------------------------------------
    both("setitem_basic", setitem(lambda: (1,)), [[Arg(X), Arg((4, 5))], [Arg(X), Arg((5,))], [Arg(X), Arg(())],
                                                  [Arg(X), Arg((1, 4, 5))]]),
    both("setitem_slice", setitem(lambda: (slice(None), slice(1, 3))),
         [[Arg(X), Arg((3, 2, 5))], [Arg(X), Arg((2, 1))]]),
    both("setitem_steps_ellipsis", setitem(lambda: (Ellipsis, slice(None, None, 2))),
         [[Arg(X), Arg((3, 4, 3))], [Arg(X), Arg((3,))]]),
    both("setitem_none_int", setitem(lambda: (None, -1, 2)), [[Arg(X), Arg((1, 5))], [Arg(X), Arg(())]]),
    both("setitem_advanced", setitem(lambda i: (i,)), [[Arg(X), Arg((2, 4, 5)), perm(3, 2)],
                                                       [Arg(X), Arg((5,)), perm(3, 3)]]),
    both("setitem_advanced_2", setitem(lambda i, j: (i, slice(None), j)),
         [[Arg(X), Arg((3, 4)), perm(3), perm(5, 3)], [Arg(X), Arg((4,)), perm(3), perm(5, 3)]]),
    both("setitem_advanced_adjacent", setitem(lambda i, j: (slice(None), i, j)),
         [[Arg(X), Arg((3, 2)), perm(4, 2), perm(5, 2)]]),
    both("setitem_int_between", setitem(lambda i, j: (i, 1, j)), [[Arg(X), Arg((2,)), perm(3, 2), perm(5, 2)]]),
    both("setitem_mask", setitem(lambda k: k), [[Arg((3, 4)), Arg(()), mask((3, 4))]]),
    both("setitem_mask_rows", setitem(lambda k: (k,)), [[Arg((3, 4)), Arg((4,)), fixed([True, False, True])]]),
    both("setitem_scalar_value", setitem_scalar(lambda i: (i, slice(1, None)), 2.5), [[Arg(X), perm(3, 2)]]),
    both("setitem_scalar_basic", setitem_scalar(lambda: (Ellipsis, 0), -1.0), [[Arg(X)]]),
    both("setitem_int_target", setitem_scalar(lambda: (slice(None), 1), 7), [[Arg((3, 4), "int", low=-9, high=9)]],
         grad=False),
    both("setitem_dtype_cast", lambda m, x, v: _set_cast(x, v), [[Arg((3, 4), dtype="float64"), Arg((4,))]]),
    # -- index_put ---------------------------------------------------------------------------------------
    both("index_put", lambda m, x, v, i: (m.index_put(x, (i,), v), x.index_put((i,), v, accumulate=True)),
         [[Arg((4, 3)), Arg((3,)), perm(4, 2)], [Arg((4, 3)), Arg((2, 3)), perm(4, 2)],
          [Arg((4, 3)), Arg(()), perm(4, 3)]]),
    both("index_put_accumulate_dups", lambda m, x, v, i: x.index_put((i,), v, accumulate=True),
         [[Arg((4, 3)), Arg((5, 3)), fixed([0, 2, 0, 0, 3])], [Arg((4,)), Arg((5,)), fixed([1, 1, 1, 0, 3])]]),
    both("index_put_two", lambda m, x, v, i, j: (m.index_put(x, (i, j), v), m.index_put(x, (i, j), v, True)),
         [[Arg((3, 4)), Arg((3,)), perm(3), perm(4, 3)]]),
    both("index_put_mask", lambda m, x, v, k: m.index_put(x, (k,), v), [[Arg((3, 4)), Arg(()), mask((3, 4))]]),
    both("index_put_", lambda m, x, v, i: x.clone().index_put_((i,), v, accumulate=True),
         [[Arg((4, 3)), Arg((3,)), fixed([0, 3, 0])]]),
    # -- gather / scatter / scatter_add ------------------------------------------------------------------
    both("gather", lambda m, x, i: (m.gather(x, 1, i), x.gather(-1, i)), [[Arg((3, 4)), idx((3, 6), 4)],
                                                                           [Arg((3, 4)), idx((2, 2), 4)]]),
    both("gather_dim0", lambda m, x, i: x.gather(0, i),
         [[Arg((3, 4)), idx((5, 4), 3)], [Arg((2, 3, 2)), idx((2, 1, 2), 2)],
          [Arg((3, 4)), Arg((0, 4), "index", high=3)]]),
    both("gather_0d", lambda m, x, i: x.gather(0, i), [[Arg(()), fixed(0)], [Arg(()), fixed([0, 0])]]),
    both("scatter_src", lambda m, x, i, src: (m.scatter(x, 1, i, src), x.scatter(-1, i, src)),
         [[Arg((3, 5)), perm_along((3, 2), 1, 5), Arg((3, 2))], [Arg((3, 5)), perm_along((2, 3), 1, 5), Arg((2, 3))]]),
    both("scatter_src_dim0", lambda m, x, i, src: x.scatter(0, i, src),
         [[Arg((4, 3)), perm_along((2, 3), 0, 4), Arg((2, 3))],
          [Arg((4, 3, 2)), perm_along((3, 2, 1), 0, 4), Arg((3, 2, 1))]]),
    # src larger than index: only its leading block is read. PyTorch's own backward rejects this shape
    # (ScatterBackward0 returns a gradient of index's shape), so only the forward is compared.
    both("scatter_src_larger", lambda m, x, i, src: (x.scatter(1, i, src), x.scatter_add(1, i, src)),
         [[Arg((3, 5)), perm_along((2, 3), 1, 5), Arg((3, 4))]], grad=False),
    both("scatter_value", lambda m, x, i: (m.scatter(x, 1, i, 1.5), x.scatter(0, i, value=-2.0)),
         [[Arg((3, 4)), idx((2, 3), 3)]]),
    both("scatter_int", lambda m, x, i, src: (x.scatter(1, i, src), x.scatter(1, i, 5)),
         [[Arg((3, 4), "int", low=-9, high=9), perm_along((3, 2), 1, 4), Arg((3, 2), "int", low=-9, high=9)]],
         grad=False),
    both("scatter_add", lambda m, x, i, src: (m.scatter_add(x, 0, i, src),
                                              x.scatter_add(1, i.t()[:3, :3] % 4, src[:3, :3])),
         [[Arg((3, 4)), idx((5, 3), 3), Arg((5, 3))], [Arg((3, 4)), idx((3, 4), 3), Arg((3, 4))]]),
    both("scatter_add_dups", lambda m, x, i, src: x.scatter_add(1, i, src),
         [[Arg((2, 3)), fixed([[0, 0, 2, 0], [1, 1, 1, 1]]), Arg((2, 4))]]),
    both("scatter_inplace", lambda m, x, i, src: (x.clone().scatter_(1, i, src), x.clone().scatter_add_(1, i, src)),
         [[Arg((3, 4)), perm_along((3, 2), 1, 4), Arg((3, 2))]]),
    both("scatter_reduce_add", lambda m, x, i, src: x.scatter(1, i, src, reduce="add"),
         [[Arg((3, 4)), idx((3, 2), 4), Arg((3, 2))]], grad=False),  # PyTorch: no gradient through reduce=
    # -- index_select / index_add ------------------------------------------------------------------------
    both("index_select", lambda m, x, i: (m.index_select(x, 0, i), x.index_select(1, i), x.index_select(-1, i)),
         [[Arg((4, 4)), idx((6,), 4)], [Arg((3, 3, 3)), idx((2,), 3)], [Arg((3, 3)), Arg((0,), "index", high=3)]]),
    both("index_select_0d_index", lambda m, x, i: x.index_select(1, i), [[Arg((3, 4)), fixed(2)]]),
    both("index_select_0d_input", lambda m, x, i: x.index_select(0, i), [[Arg(()), fixed([0])], [Arg(()), fixed(0)]]),
    both("index_add", lambda m, x, i, src: (m.index_add(x, 0, i, src), x.index_add(0, i, src, alpha=2.5)),
         [[Arg((4, 3)), fixed([0, 3, 0, 1, 0]), Arg((5, 3))], [Arg((4,)), idx((3,), 4), Arg((3,))]]),
    both("index_add_dim1", lambda m, x, i, src: x.index_add(1, i, src),
         [[Arg((2, 4, 3)), idx((5,), 4), Arg((2, 5, 3))]]),
    both("index_add_dimneg", lambda m, x, i, src: x.index_add(-1, i, src, alpha=-1),
         [[Arg((2, 4, 3)), idx((5,), 3), Arg((2, 4, 5))]]),
    both("index_add_", lambda m, x, i, src: x.clone().index_add_(0, i, src, alpha=2),
         [[Arg((4, 3)), idx((2,), 4), Arg((2, 3))]]),
    both("index_add_int", lambda m, x, i, src: x.index_add(0, i, src, alpha=3),
         [[Arg((4,), "int", low=-9, high=9), idx((3,), 4), Arg((3,), "int", low=-9, high=9)]], grad=False),
    # -- masked_fill / masked_select ---------------------------------------------------------------------
    both("masked_fill_scalar", lambda m, x, k: (m.masked_fill(x, k, -1.5), x.masked_fill(k, 0)),
         [[Arg((3, 4)), mask((3, 4))], [Arg((3, 4)), mask((4,))], [Arg((2, 3)), mask(())], [Arg(()), mask(())]]),
    both("masked_fill_tensor_value", lambda m, x, k, v: x.masked_fill(k, v),
         [[Arg((3, 4)), mask((3, 4)), Arg(())], [Arg((3, 4)), mask((3, 1)), Arg(())]]),
    both("masked_fill_int", lambda m, x, k: (x.masked_fill(k, 2.7), x.masked_fill(k, m.tensor(5))),
         [[Arg((3, 4), "int", low=-9, high=9), mask((3, 4))]], grad=False),
    both("masked_fill_", lambda m, x, k: x.clone().masked_fill_(k, 3.0), [[Arg((3, 4)), mask((4,))]]),
    both("masked_select", lambda m, x, k: (m.masked_select(x, k), x.masked_select(k)),
         [[Arg((3, 4)), mask((3, 4))], [Arg((3, 4)), mask((4,))], [Arg((3, 1)), mask((3, 4))], [Arg(()), mask(())]]),
    # -- take_along_dim / take ---------------------------------------------------------------------------
    both("take_along_dim", lambda m, x, i: (m.take_along_dim(x, i, 1), x.take_along_dim(i, -1)),
         [[Arg((3, 4)), idx((3, 2), 4)], [Arg((3, 4)), idx((1, 5), 4)]]),
    both("take_along_dim_broadcast", lambda m, x, i: x.take_along_dim(i, -1), [[Arg((2, 1, 4)), idx((1, 3, 2), 4)]]),
    both("take_along_dim_none", lambda m, x, i: m.take_along_dim(x, i), [[Arg((3, 4)), idx((5,), 12)],
                                                                        [Arg((3, 4)), idx((2, 2), 12)]]),
    both("take_along_dim_argmax", lambda m, x: x.take_along_dim(x.argmax(1, keepdim=True), 1), [[Arg((3, 4))]]),
    both("take", lambda m, x, i: (m.take(x, i), x.take(i)),
         [[Arg((3, 4)), idx((5,), 12)], [Arg((3, 4)), idx((2, 3), 12)], [Arg((3, 4)), idx((4,), 12, negative=True)],
          [Arg(()), fixed([0, 0])]]),
    # -- narrow / select ---------------------------------------------------------------------------------
    both("narrow", lambda m, x: (x.narrow(0, 1, 2), m.narrow(x, -1, 2, 3), x.narrow(1, -2, 2), x.narrow(0, 3, 0)),
         [[Arg((3, 5))]]),
    both("select", lambda m, x: (x.select(0, 1), m.select(x, -1, -2), x.select(1, 0)),
         [[Arg((3, 4))], [Arg((2, 3, 4))]]),
    # -- nonzero / argwhere / one_hot --------------------------------------------------------------------
    both("nonzero", lambda m, x: (m.nonzero(x), x.nonzero(), m.argwhere(x), x.argwhere()),
         [[Arg((3, 4), "int", low=0, high=1)], [mask((2, 3, 2))], [Arg((0, 3), "int", low=0, high=1)],
          [Arg((4,), "custom", fill=lambda r, s: np.array([0.0, 1.5, 0.0, -2.0]))], [fixed(3)], [fixed(0)]],
         grad=False),
    both("nonzero_as_tuple", lambda m, x: m.nonzero(x, as_tuple=True) + x.nonzero(as_tuple=True),
         [[Arg((3, 4), "int", low=0, high=1)], [mask((2, 3, 2))], [Arg((0, 2), "int", low=0, high=1)], [fixed(2)],
          [fixed(0)]], grad=False),
    OpCase("one_hot", lambda i: (dl.nn.functional.one_hot(i, 5), one_hot(i)),
           lambda i: (TF.one_hot(i, 5), TF.one_hot(i)),
           [[idx((4,), 5)], [idx((2, 3), 4)], [fixed(2)]], grad=False),
    OpCase("one_hot_empty", lambda i: one_hot(i, 3), lambda i: TF.one_hot(i, 3), [[Arg((0,), "index", high=3)]],
           grad=False),
]


def _set_cast(x, v):
    """Setting float32 values into a float64 tensor casts them (and casts their gradient back)."""
    y = x.clone()
    y[1] = v
    return y


# -- second derivatives through index ops ---------------------------------------------------------------

def _second(f):
    def run(m, x, v, *rest):
        with m.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            (g,) = m.autograd.grad(f(m, x, *rest), x, v, create_graph=True)
        return g
    return run


def _index_chain(m, x, i, k):
    y = x[i] ** 2                                                     # (2, 3)
    y = m.index_put(x * x[0], (i,), y * x[1:3], accumulate=True)      # (3, 3)
    z = y.gather(1, i.reshape(1, 2).expand(3, 2)) * y.index_select(1, i).sum(0)
    w = m.zeros(4, 3, dtype=x.dtype).index_add(0, i, x[:2] * x[2]).masked_fill(k, 0.5)
    y2 = y.clone()
    y2[i, 1] = x[0, :2] ** 3
    return (z.sum() + (w * w).sum() + m.scatter_add(x, 0, i.reshape(2, 1).expand(2, 3), y[:2] ** 2)
            + y2[k] .sum() * x[2, 2])


CASES += [
    OpCase("index_ops_double_backward", lambda x, v, i, k: _second(_index_chain)(dl, x, v, i, k),
           lambda x, v, i, k: _second(_index_chain)(torch, x, v, i, k),
           [[Arg((3, 3)), Arg((3, 3)), fixed([2, 0]), fixed([True, False, True])]]),
]


# -- plain tests -----------------------------------------------------------------------------------------

def _assign(x, key, v):
    x[key] = v


OUT_OF_RANGE = [
    # (call, PyTorch's exception type, fragments the message must name: the bad index, the dim, the size)
    (lambda x: x[5], IndexError, ("index 5", "size 3")),
    (lambda x: x[-4], IndexError, ("index -4", "size 3")),
    (lambda x: x[0, 4], IndexError, ("index 4", "dimension 1", "size 4")),
    (lambda x: x[dl.tensor([0, 5])], IndexError, ("5", "size 3")),
    (lambda x: x[:, dl.tensor([4])], IndexError, ("4", "size 4")),
    (lambda x: x[[0, 3]], IndexError, ("3", "size 3")),
    (lambda x: _assign(x, dl.tensor([3]), 1.0), IndexError, ("3", "size 3")),
    (lambda x: _assign(x, 3, 1.0), IndexError, ("3", "size 3")),
    (lambda x: dl.index_put(x, (dl.tensor([3]),), dl.tensor(1.0), accumulate=True), IndexError, ("3", "size 3")),
    # gather/scatter/index_add are RuntimeErrors in PyTorch, and take no negative indices
    (lambda x: x.gather(1, dl.tensor([[4]])), RuntimeError, ("index 4", "dimension 1", "size 4")),
    (lambda x: x.gather(1, dl.tensor([[-1]])), RuntimeError, ("index -1", "size 4")),
    (lambda x: x.scatter(0, dl.tensor([[3]]), 1.0), RuntimeError, ("index 3", "dimension 0", "size 3")),
    (lambda x: x.scatter_add(0, dl.tensor([[3]]), dl.ones(1, 1)), RuntimeError, ("index 3", "size 3")),
    (lambda x: x.index_add(0, dl.tensor([-1]), dl.ones(1, 4)), RuntimeError, ("index -1", "size 3")),
    (lambda x: x.index_select(0, dl.tensor([3])), IndexError, ("index 3", "size 3")),
    (lambda x: x.select(0, 3), IndexError, ("3", "size 3")),
    (lambda x: x.narrow(0, 5, 0), IndexError, ("start", "5")),
    (lambda x: x.narrow(0, 2, 2), RuntimeError, ("exceeds", "(3)")),
    (lambda x: dl.take(x, dl.tensor([12])), IndexError, ("12", "12")),
    (lambda x: one_hot(dl.tensor([-1]), 3), RuntimeError, ("non-negative",)),
    (lambda x: one_hot(dl.tensor([3]), 3), RuntimeError, ("smaller than num_classes",)),
    (lambda x: x[dl.tensor([True, False])], IndexError, ("mask", "[2]", "[3, 4]")),
    (lambda x: x[0, 0, 0], IndexError, ("too many indices",)),
]


@pytest.mark.parametrize("k", range(len(OUT_OF_RANGE)))
def test_out_of_range_errors_name_index_and_size(k):
    call, exc, fragments = OUT_OF_RANGE[k]
    with pytest.raises(exc) as info:
        call(dl.zeros(3, 4))
    for f in fragments:
        assert f in str(info.value), f"{f!r} not in error message {str(info.value)!r}"


def test_index_errors_match_torch_types():
    """Each error above has PyTorch's exception type for the same call."""
    x = torch.zeros(3, 4)
    for call, exc in [(lambda: x[5], IndexError), (lambda: x.gather(1, torch.tensor([[4]])), RuntimeError),
                      (lambda: x.index_select(0, torch.tensor([3])), IndexError),
                      (lambda: x.narrow(0, 2, 2), RuntimeError), (lambda: x.select(0, 3), IndexError),
                      (lambda: x[torch.tensor([3])], IndexError)]:
        with pytest.raises(exc):
            call()


def test_getitem_basic_is_a_view_advanced_is_a_copy():
    x = dl.zeros(3, 4)
    v = x[1, ::2]
    v[0] = 5.0
    assert x[1, 0].item() == 5.0
    a = x[dl.tensor([1])]
    a[0, 0] = -1.0
    assert x[1, 0].item() == 5.0


def test_setitem_on_leaf_requiring_grad_raises():
    x = dl.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        x[0] = 1.0
    with dl.no_grad():
        x[0] = 1.0
    assert x.tolist() == [1.0, 0.0, 0.0]


def test_setitem_value_shape_mismatch():
    x = dl.zeros(3, 4)
    with pytest.raises(dl.ShapeError, match=r"\[3\].*\[4\]"):
        x[0] = dl.ones(3)


def test_setitem_grad_to_value_and_leaf():
    leaf = dl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    v = dl.tensor(10.0, requires_grad=True)
    y = leaf.clone()
    y[:, 0] = v * 2
    (y * dl.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    assert leaf.grad.tolist() == [[0.0, 2.0], [0.0, 4.0]]
    assert v.grad.item() == 8.0
