# ruff: noqa: A002 - PyTorch's argument names (input)
"""Linear-algebra primitives (matmul, einsum, diagonal, inv, solve, det, slogdet, svd, svdvals) and the
products built on them (mm, bmm, mv, dot, outer, addmm, tensordot, trace, diag, ...).

Kernels call NumPy (``np.matmul``, ``np.einsum``, ``np.linalg``) directly; every VJP is written with
danlu ops, so gradients differentiate again. ``danlu.linalg`` adds the norms and ``multi_dot``.
"""

from __future__ import annotations

import collections
import math

import numpy as np

from ..core import dtypes as _dt
from ..core.dispatch import CONVERT, apply
from ..core.errors import DanluError, DTypeError, ShapeError, api, describe, reraise_filtered
from ..core.registry import AVal, register
from ..core.tensor import Tensor
from ._public import exporter
from ._util import broadcast_shapes, norm_dim
from .creation import eye, ones
from .elementwise import FULL_LIKE
from .reduce import sum as _sum
from .shape import clone, reshape, squeeze, transpose, unsqueeze

__all__ = []


class LinAlgError(DanluError):
    """A matrix has no inverse/solution (``torch.linalg.LinAlgError``); a RuntimeError."""


_slogdet_ret = collections.namedtuple("slogdet", ["sign", "logabsdet"])
_svd_ret = collections.namedtuple("svd", ["U", "S", "Vh"])


_export = exporter(globals(), __all__)


def _mT(x):
    return transpose(x, -2, -1)


def _need_tensor(name, **named):
    for k, v in named.items():
        if not isinstance(v, Tensor):
            raise TypeError(f"{name}(): argument '{k}' must be Tensor, not {type(v).__name__}")


# == matmul =========================================================================================

def _matmul_infer(a, b):
    for x in (a, b):
        if not hasattr(x, "shape"):
            raise TypeError(f"matmul: both arguments must be tensors, got {describe(a)} and {describe(b)}")
    if a.dtype is not b.dtype:
        raise DTypeError(f"matmul: expected both inputs to have the same dtype, but got {describe(a)} and "
                         f"{describe(b)}; matmul does not promote, convert one with .to(dtype)")
    if a.dtype is _dt.bool_:
        raise DTypeError(f"matmul: not implemented for bool tensors ({describe(a)}, {describe(b)}); convert "
                         "them with .int() or .float() first")
    na, nb = len(a.shape), len(b.shape)
    if na == 0 or nb == 0:
        raise ShapeError(f"matmul: both arguments to matmul need to be at least 1D, but they are {na}D and {nb}D "
                         f"({describe(a)} @ {describe(b)}); use mul() for scalars")
    sa = tuple(a.shape) if na > 1 else (1,) + tuple(a.shape)
    sb = tuple(b.shape) if nb > 1 else tuple(b.shape) + (1,)
    if sa[-1] != sb[-2]:
        raise ShapeError(f"matmul: {describe(a)} @ {describe(b)}: shapes cannot be multiplied "
                         f"({sa[-2]}x{sa[-1]} and {sb[-2]}x{sb[-1]}); the last dim of the first input must equal "
                         "the second-to-last dim (or only dim) of the second")
    batch = broadcast_shapes("matmul (batch dims)", sa[:-2], sb[:-2])
    return AVal(batch + ((sa[-2],) if na > 1 else ()) + ((sb[-1],) if nb > 1 else ()), a.dtype)


def _matmul_impl(a, b):
    if a.dtype == np.float16:  # NumPy has no half GEMM; accumulate in float32 as PyTorch does
        return np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(np.float16)
    return np.matmul(a, b)


def _matmul_vjp(c, g):
    a, b = c.inputs  # only the one the other's gradient needs is saved (Op.save_for)
    na, nb = len(c.in_meta[0][0]), len(c.in_meta[1][0])
    need_a, need_b = c.edges[0] is not None, c.edges[1] is not None
    ga = gb = None
    if na == 1 and nb == 1:
        return (g * b if need_a else None, g * a if need_b else None)
    if na == 1:  # (k) @ (..., k, m) -> (..., m)
        if need_a:
            ga = squeeze(matmul(b, unsqueeze(g, -1)), -1)
        if need_b:
            gb = unsqueeze(a, -1) * unsqueeze(g, -2)
    elif nb == 1:  # (..., n, k) @ (k) -> (..., n); b has no batch dims, so a's batch is the output's
        if need_a:
            ga = unsqueeze(g, -1) * b
        if need_b:
            k = a.shape[-1]
            gb = matmul(reshape(g, (math.prod(g.shape),)), reshape(a, (math.prod(a.shape[:-1]), k)))
    else:
        if need_a:
            ga = matmul(g, _mT(b))
        if need_b:
            if nb == 2 and na > 2:  # a batched against one matrix (a linear layer): fold the batch into rows
                k, m = a.shape[-1], g.shape[-1]
                rows = math.prod(a.shape[:-1])
                gb = matmul(_mT(reshape(a, (rows, k))), reshape(g, (rows, m)))
            else:
                gb = matmul(_mT(a), g)
    return ga, gb


MATMUL = register("matmul", infer=_matmul_infer, impl=_matmul_impl, vjp=_matmul_vjp, save_in=(0, 1),
                  save_for={0: (1,), 1: (0,)}, family="linalg")


def matmul(input, other):
    """Matrix product with PyTorch's rules for 1-D operands and batch broadcasting, as ``torch.matmul``.

    Both inputs must have the same dtype (no promotion, as in PyTorch).

    >>> import danlu as dl
    >>> a = dl.ones(2, 3, 4); b = dl.ones(4)
    >>> (a @ b).shape, dl.matmul(dl.tensor([1.0, 2.0]), dl.tensor([3.0, 4.0]))
    (danlu.Size([2, 3]), tensor(11.))
    """
    try:
        if not isinstance(input, Tensor) or not isinstance(other, Tensor):
            _need_tensor("matmul", input=input, other=other)
        return apply(MATMUL, input, other)
    except Exception as e:
        reraise_filtered(e)
        raise


def _dunder_matmul(self, other):
    if isinstance(other, np.ndarray):  # as PyTorch, a NumPy array operand is accepted
        from ..core.tensor import _from_np

        other = _from_np(other)
    if not isinstance(other, Tensor):
        return NotImplemented
    try:
        return apply(MATMUL, self, other)
    except Exception as e:
        reraise_filtered(e)
        raise


def _rmatmul(self, other):
    if isinstance(other, np.ndarray):
        from ..core.tensor import _from_np

        other = _from_np(other)
    if not isinstance(other, Tensor):
        return NotImplemented
    try:
        return apply(MATMUL, other, self)
    except Exception as e:
        reraise_filtered(e)
        raise


_export(matmul, "matmul")
Tensor.__matmul__ = _dunder_matmul
Tensor.__rmatmul__ = _rmatmul


def _same_dtype(name, *xs):
    if any(x.dtype is not xs[0].dtype for x in xs[1:]):
        raise DTypeError(f"{name}: expected all inputs to have the same dtype, but got "
                         f"{', '.join(describe(x) for x in xs)}; convert them with .to(dtype)")


def _need_ndim(name, what, x, nd):
    if x.ndim != nd:
        raise ShapeError(f"{name}: {what} must be a {nd}-D tensor, but got {describe(x)}")


@api
def mm(input, mat2):
    """Product of two matrices (2-D only, no broadcasting), as ``torch.mm``.

    >>> import danlu as dl
    >>> dl.mm(dl.ones(2, 3), dl.ones(3, 4)).shape
    danlu.Size([2, 4])
    """
    _need_tensor("mm", input=input, mat2=mat2)
    _need_ndim("mm", "self", input, 2)
    _need_ndim("mm", "mat2", mat2, 2)
    return apply(MATMUL, input, mat2)


@api
def bmm(input, mat2):
    """Batched product of 3-D tensors with equal batch sizes (no broadcasting), as ``torch.bmm``.

    >>> import danlu as dl
    >>> dl.bmm(dl.ones(5, 2, 3), dl.ones(5, 3, 4)).shape
    danlu.Size([5, 2, 4])
    """
    _need_tensor("bmm", input=input, mat2=mat2)
    _need_ndim("bmm", "batch1", input, 3)
    _need_ndim("bmm", "batch2", mat2, 3)
    b, _, k = input.shape
    if tuple(mat2.shape[:2]) != (b, k):
        raise ShapeError(f"bmm: expected size for first two dimensions of batch2 tensor to be: [{b}, {k}] but got: "
                         f"[{mat2.shape[0]}, {mat2.shape[1]}] ({describe(input)} @ {describe(mat2)})")
    return apply(MATMUL, input, mat2)


@api
def mv(input, vec):
    """Matrix-vector product, as ``torch.mv``.

    >>> import danlu as dl
    >>> dl.mv(dl.ones(2, 3), dl.tensor([1.0, 2.0, 3.0]))
    tensor([6., 6.])
    """
    _need_tensor("mv", input=input, vec=vec)
    _need_ndim("mv", "mat", input, 2)
    _need_ndim("mv", "vec", vec, 1)
    return apply(MATMUL, input, vec)


def _vectors(name, a, b):
    _need_tensor(name, input=a, other=b)
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError(f"{name}: 1D tensors expected, but got {a.ndim}D and {b.ndim}D tensors "
                         f"({describe(a)}, {describe(b)})")


@api
def dot(input, other):
    """Inner product of two 1-D tensors of the same dtype, as ``torch.dot``.

    >>> import danlu as dl
    >>> dl.dot(dl.tensor([1.0, 2.0]), dl.tensor([3.0, 4.0]))
    tensor(11.)
    """
    _vectors("dot", input, other)
    if input.shape[0] != other.shape[0]:
        raise ShapeError(f"dot: inconsistent tensor size: {describe(input)} and {describe(other)} must have the "
                         "same number of elements")
    return apply(MATMUL, input, other)


@api
def vdot(input, other):
    """``dot`` with the first argument conjugated; for real tensors it equals ``dot``.

    >>> import danlu as dl
    >>> dl.vdot(dl.tensor([1.0, 2.0]), dl.tensor([3.0, 4.0]))
    tensor(11.)
    """
    return dot(input, other)


@api
def outer(input, vec2):
    """Outer product of two 1-D tensors (dtypes promote, as in PyTorch), as ``torch.outer``.

    >>> import danlu as dl
    >>> dl.outer(dl.tensor([1.0, 2.0]), dl.tensor([1.0, 10.0]))
    tensor([[ 1., 10.],
            [ 2., 20.]])
    """
    _need_tensor("outer", input=input, vec2=vec2)
    for what, x in (("self", input), ("vec2", vec2)):
        if x.ndim != 1:
            raise ShapeError(f"outer: expected 1-D argument {what}, but got {describe(x)}")
    return unsqueeze(input, 1) * vec2


@api
def inner(input, other):
    """Sum of products over the last dimension of both inputs, as ``torch.inner``.

    >>> import danlu as dl
    >>> dl.inner(dl.ones(2, 3), dl.ones(4, 3)).shape
    danlu.Size([2, 4])
    """
    _need_tensor("inner", input=input, other=other)
    _same_dtype("inner", input, other)
    if input.ndim == 0 or other.ndim == 0:
        return input * other
    if input.shape[-1] != other.shape[-1]:
        raise ShapeError(f"inner: the last dimension must match on both input tensors but got {describe(input)} "
                         f"and {describe(other)}")
    return tensordot(input, other, ([-1], [-1]))


@api
def tensordot(a, b, dims=2):
    """Contract ``dims`` (an int: last dims of ``a`` with first of ``b``; or two lists) as ``torch.tensordot``.

    >>> import danlu as dl
    >>> dl.tensordot(dl.ones(2, 3, 4), dl.ones(3, 4, 5)).shape
    danlu.Size([2, 5])
    """
    _need_tensor("tensordot", a=a, b=b)
    _same_dtype("tensordot", a, b)
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, int):
        if dims < 0:
            raise RuntimeError(f"tensordot: expects dims >= 0, but got dims={dims}")
        if dims > a.ndim or dims > b.ndim:
            raise ShapeError(f"tensordot: dims={dims} is larger than the dimensions of {describe(a)} or "
                             f"{describe(b)}")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = ([d] if isinstance(d, int) else list(d) for d in dims)
    if len(da) != len(db):
        raise RuntimeError(f"tensordot: both dimension lists should have same length, got {da} and {db}")
    da = [norm_dim("tensordot", d, a.ndim) for d in da]
    db = [norm_dim("tensordot", d, b.ndim) for d in db]
    for x, y in zip(da, db, strict=True):
        if a.shape[x] != b.shape[y]:
            raise ShapeError(f"tensordot: contracted dimensions need to match, but first has size {a.shape[x]} in "
                             f"dim {x} and second has size {b.shape[y]} in dim {y} ({describe(a)}, {describe(b)})")
    fa = [d for d in range(a.ndim) if d not in da]
    fb = [d for d in range(b.ndim) if d not in db]
    csize = math.prod(a.shape[d] for d in da)
    out_shape = tuple(a.shape[d] for d in fa) + tuple(b.shape[d] for d in fb)
    am = reshape(a.permute(*fa, *da), (math.prod(a.shape[d] for d in fa), csize))
    bm = reshape(b.permute(*db, *fb), (csize, math.prod(b.shape[d] for d in fb)))
    return reshape(apply(MATMUL, am, bm), out_shape)


def _scaled(name, base, prod, beta, alpha):
    """``beta * base + alpha * prod`` with PyTorch's rules: beta=0 ignores ``base`` (even NaN in it)."""
    _same_dtype(name, base, prod)
    shape = tuple(prod.shape)
    try:
        ok = broadcast_shapes(name, tuple(base.shape), shape) == shape
    except ShapeError:
        ok = False
    if not ok:
        raise ShapeError(f"{name}: input {describe(base)} cannot be broadcast to the product's shape "
                         f"{list(shape)}")
    out = prod if alpha == 1 else prod * alpha
    if beta != 0:
        out = out + (base if beta == 1 else base * beta)
    else:
        if base.requires_grad:  # input still gets a (zero) gradient, as in PyTorch
            out = out + apply(FULL_LIKE, base, value=0)
        if tuple(out.shape) != shape:
            out = out.expand(*shape)
    if out.dtype is not prod.dtype:  # integer tensors with float alpha/beta keep their dtype, as PyTorch
        out = apply(CONVERT, out, dtype=prod.dtype)
    return out


@api
def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)``, as ``torch.addmm``.

    >>> import danlu as dl
    >>> dl.addmm(dl.ones(3), dl.ones(2, 4), dl.ones(4, 3), alpha=2)
    tensor([[9., 9., 9.],
            [9., 9., 9.]])
    """
    _need_tensor("addmm", input=input)
    return _scaled("addmm", input, mm(mat1, mat2), beta, alpha)


@api
def addmv(input, mat, vec, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat @ vec)``, as ``torch.addmv``.

    >>> import danlu as dl
    >>> dl.addmv(dl.ones(2), dl.ones(2, 3), dl.ones(3), beta=0.5)
    tensor([3.5000, 3.5000])
    """
    _need_tensor("addmv", input=input)
    return _scaled("addmv", input, mv(mat, vec), beta, alpha)


@api
def addr(input, vec1, vec2, *, beta=1, alpha=1):
    """``beta * input + alpha * outer(vec1, vec2)``, as ``torch.addr``.

    >>> import danlu as dl
    >>> dl.addr(dl.zeros(2, 2), dl.tensor([1.0, 2.0]), dl.tensor([1.0, 3.0]))
    tensor([[1., 3.],
            [2., 6.]])
    """
    _need_tensor("addr", input=input)
    return _scaled("addr", input, outer(vec1, vec2), beta, alpha)


@api
def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """``beta * input + alpha * bmm(batch1, batch2)``, as ``torch.baddbmm``.

    >>> import danlu as dl
    >>> dl.baddbmm(dl.zeros(1, 1), dl.ones(2, 1, 3), dl.ones(2, 3, 1)).shape
    danlu.Size([2, 1, 1])
    """
    _need_tensor("baddbmm", input=input)
    return _scaled("baddbmm", input, bmm(batch1, batch2), beta, alpha)


for _f, _m in ((mm, "mm"), (bmm, "bmm"), (mv, "mv"), (dot, "dot"), (vdot, "vdot"), (outer, "outer"),
               (inner, "inner"), (tensordot, None), (addmm, "addmm"), (addmv, "addmv"), (addr, "addr"),
               (baddbmm, "baddbmm")):
    _export(_f, *([_m] if _m else []))
ger = outer
Tensor.ger = outer
__all__.append("ger")


# == einsum =========================================================================================

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _split_eq(eq):
    lhs, out = eq.split("->")
    return lhs.split(","), out


def _einsum_infer(*ops, equation):
    terms, out = _split_eq(equation)
    if len(terms) != len(ops):
        raise RuntimeError(f"einsum(): the equation {equation!r} has {len(terms)} operands, got {len(ops)}")
    for o in ops[1:]:
        if o.dtype is not ops[0].dtype:
            raise DTypeError(f"einsum(): all operands must have the same dtype, but got "
                             f"{', '.join(describe(x) for x in ops)}; convert them with .to(dtype)")
    dt = ops[0].dtype
    if dt is _dt.bool_ and len(ops) > 1:
        raise DTypeError("einsum(): products of bool tensors are not supported; convert them with .int() first")
    sizes = {}
    for i, (t, o) in enumerate(zip(terms, ops, strict=True)):
        if len(t) != len(o.shape):
            raise ShapeError(f"einsum(): subscripts {t!r} do not match the {len(o.shape)} dims of operand {i} "
                             f"({describe(o)})")
        for ch, s in zip(t, o.shape, strict=True):
            if sizes.setdefault(ch, s) != s:
                raise ShapeError(f"einsum(): subscript {ch} has size {s} for operand {i}, but size {sizes[ch]} "
                                 "elsewhere")
    if len(ops) == 1 and set(terms[0]) - set(out) and dt.category < 2:
        dt = _dt.int64  # a one-operand reduction is a sum: integers and bools accumulate in int64
    return AVal(tuple(sizes[ch] for ch in out), dt)


def _einsum_impl(*ops, equation):
    lhs, out = equation.split("->")
    kw = {}
    if len(ops) == 1:
        if ops[0].dtype.kind in "biu" and set(lhs) - set(out):
            kw["dtype"] = np.int64
    elif len(ops) > 2:
        kw["optimize"] = True
    else:
        # NumPy's naive loop costs one step per index combination; past ~1e5 steps the contraction
        # planner (which can call BLAS) pays for its ~100us of overhead.
        sizes = {}
        for t, o in zip(lhs.split(","), ops, strict=True):
            sizes.update(zip(t, o.shape, strict=True))
        kw["optimize"] = math.prod(sizes.values()) > 100_000
    r = np.asarray(np.einsum(equation, *ops, **kw))
    if any(np.may_share_memory(r, o) for o in ops):  # NumPy returns views for 'ii->i', 'ij->ji', ...
        r = r.copy()
    return r


def _einsum_vjp(c, g):
    """The gradient of operand i is an einsum of the cotangent with the other operands. A subscript
    repeated within operand i (a diagonal) gets an identity factor; one summed only inside operand i
    gets a ones factor (a broadcast)."""
    terms, out = _split_eq(c.attrs["equation"])
    ops = c.inputs
    sizes = {}
    for t, m in zip(terms, c.in_meta, strict=True):
        sizes.update(zip(t, m[0], strict=True))
    used = set(c.attrs["equation"])
    fresh = [ch for ch in _LETTERS if ch not in used]
    grads = []
    for i, t in enumerate(terms):
        if c.edges[i] is None:
            grads.append(None)
            continue
        subs = [out] + [s for j, s in enumerate(terms) if j != i]
        args = [g] + [o for j, o in enumerate(ops) if j != i]
        target, seen, k = [], set(), 0
        for ch in t:
            if ch in seen:
                if k >= len(fresh):
                    raise RuntimeError("einsum backward: ran out of subscript letters for a repeated index")
                target.append(fresh[k])
                subs.append(ch + fresh[k])
                args.append(eye(sizes[ch], dtype=g.dtype))
                k += 1
            else:
                seen.add(ch)
                target.append(ch)
        avail = set("".join(subs))
        for ch in t:
            if ch not in avail:
                avail.add(ch)
                subs.append(ch)
                args.append(ones(sizes[ch], dtype=g.dtype))
        grads.append(apply(EINSUM, *args, equation=",".join(subs) + "->" + "".join(target)))
    return tuple(grads)


EINSUM = register("einsum", infer=_einsum_infer, impl=_einsum_impl, vjp=_einsum_vjp, save_in=tuple(range(64)),
                  family="linalg")


def _parse_term(term, where, pos):
    """'ab...c' -> (['a', 'b', '...', 'c']); errors name the offending character's index."""
    toks, i = [], 0
    while i < len(term):
        ch = term[i]
        if ch == ".":
            if term[i:i + 3] != "...":
                raise RuntimeError(f"einsum(): found '.' for {where} that is not part of any ellipsis")
            if "..." in toks:
                raise RuntimeError(f"einsum(): found more than one ellipsis for {where}")
            toks.append("...")
            i += 3
            continue
        if ch not in _LETTERS:
            raise RuntimeError(f"einsum(): invalid subscript given at index {pos + i} in the equation string, "
                               "subscripts must be in [a-zA-Z]")
        toks.append(ch)
        i += 1
    return toks


def _canonical_einsum(equation, operands):
    """Rewrite a PyTorch einsum equation with explicit letters only: ellipses become unused letters,
    the implicit output is made explicit, and size-1 dims that broadcast are squeezed away.
    Returns (equation, operands)."""
    eq = equation.replace(" ", "")
    if eq.count("->") > 1:
        raise RuntimeError("einsum(): more than one '->' found in the equation")
    lhs, arrow, rhs = eq.partition("->")
    raw_terms = lhs.split(",")
    if len(raw_terms) > len(operands):
        raise RuntimeError("einsum(): fewer operands were provided than specified in the equation")
    if len(raw_terms) < len(operands):
        raise RuntimeError("einsum(): more operands were provided than specified in the equation")
    terms, pos, ell = [], 0, 0
    for i, (t, op) in enumerate(zip(raw_terms, operands, strict=True)):
        toks = _parse_term(t, f"operand {i}", pos)
        pos += len(t) + 1
        nlet = len(toks) - ("..." in toks)
        if "..." in toks:
            if nlet > op.ndim:
                raise ShapeError(f"einsum(): the number of subscripts in the equation ({nlet}) is more than the "
                                 f"number of dimensions ({op.ndim}) for operand {i} ({describe(op)})")
            ell = max(ell, op.ndim - nlet)
        elif nlet != op.ndim:
            raise ShapeError(f"einsum(): the number of subscripts in the equation ({nlet}) does not match the number "
                             f"of dimensions ({op.ndim}) for operand {i} ({describe(op)}) and no ellipsis was given")
        terms.append(toks)
    used = set(eq)
    ell_letters = [ch for ch in _LETTERS if ch not in used][:ell]
    if len(ell_letters) < ell:
        raise RuntimeError("einsum(): too many dimensions: ran out of subscript letters for the ellipsis")
    letter_terms = []
    for toks, op in zip(terms, operands, strict=True):
        nlet = len(toks) - ("..." in toks)
        exp = []
        for tk in toks:
            exp.extend(ell_letters[ell - (op.ndim - nlet):] if tk == "..." else [tk])
        letter_terms.append(exp)
    # sizes: a letter repeated in one operand must match exactly; across operands 1 broadcasts
    size = {}
    for i, (t, op) in enumerate(zip(letter_terms, operands, strict=True)):
        mine = {}
        for ch, s in zip(t, op.shape, strict=True):
            if mine.setdefault(ch, s) != s:
                raise ShapeError(f"einsum(): subscript {ch} is repeated for operand {i} but the sizes don't match, "
                                 f"{mine[ch]} != {s}")
        for ch, s in mine.items():
            prev = size.get(ch, 1)
            if s != 1 and prev != 1 and s != prev:
                raise ShapeError(f"einsum(): subscript {ch} has size {s} for operand {i} which does not broadcast "
                                 f"with previously seen size {prev}")
            size[ch] = s if prev == 1 else prev
    if arrow:
        out_toks = _parse_term(rhs, "the output", len(lhs) + 2)
        out = []
        for tk in out_toks:
            if tk == "...":
                out.extend(ell_letters)
                continue
            if tk not in size:
                raise RuntimeError(f"einsum(): output subscript {tk} does not appear in the equation for any "
                                   "input operand")
            if tk in out:
                raise RuntimeError(f"einsum(): output subscript {tk} appears more than once in the output")
            out.append(tk)
    else:
        counts = collections.Counter(ch for t in terms for ch in t if ch != "...")
        out = ell_letters + sorted(ch for ch, n in counts.items() if n == 1)
    new_terms, new_ops = [], []
    for t, op in zip(letter_terms, operands, strict=True):
        drop = {ch for ch, s in zip(t, op.shape, strict=True) if s == 1 and size[ch] != 1}
        if drop:
            op = reshape(op, tuple(s for ch, s in zip(t, op.shape, strict=True) if ch not in drop))
            t = [ch for ch in t if ch not in drop]
        new_terms.append("".join(t))
        new_ops.append(op)
    return ",".join(new_terms) + "->" + "".join(out), new_ops


@api
def einsum(equation: str, *operands):
    """Einstein summation, as ``torch.einsum``: explicit (``'ij,jk->ik'``) or implicit output, ``...``
    ellipsis, repeated subscripts (diagonals) and broadcasting of size-1 dims.

    >>> import danlu as dl
    >>> dl.einsum("ij,jk->ik", dl.ones(2, 3), dl.ones(3, 4)).shape, dl.einsum("ii", dl.eye(3))
    (danlu.Size([2, 4]), tensor(3.))
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise RuntimeError("einsum(): must provide at least one operand")
    for i, op in enumerate(operands):
        if not isinstance(op, Tensor):
            raise TypeError(f"einsum(): expected Tensor as element {i} of the operands, got {type(op).__name__}")
    eq, ops = _canonical_einsum(equation, operands)
    return apply(EINSUM, *ops, equation=eq)


_export(einsum)


# == diagonal, diag_embed, trace, diag ==============================================================

def _diag_len(s1, s2, offset):
    return max(0, min(s1, s2 - offset) if offset >= 0 else min(s1 + offset, s2))


def _writable_diagonal(x, offset, dim1, dim2):
    d = np.diagonal(x, offset, dim1, dim2)
    if x.flags.writeable:  # NumPy marks diagonal views read-only; PyTorch's are writable views
        d.flags.writeable = True
    return d


def _diagonal_infer(x, *, offset, dim1, dim2):
    shape = tuple(x.shape)
    rest = tuple(s for i, s in enumerate(shape) if i not in (dim1, dim2))
    return AVal(rest + (_diag_len(shape[dim1], shape[dim2], offset),), x.dtype)


DIAGONAL = register("diagonal", infer=_diagonal_infer, impl=_writable_diagonal,
                    vjp=lambda c, g: (apply(DIAG_EMBED, g, size1=c.in_meta[0][0][c.attrs["dim1"]],
                                            size2=c.in_meta[0][0][c.attrs["dim2"]], **c.attrs),),
                    view=True, family="linalg")


def _diag_embed_shape(x, size1, dim1, size2, dim2):
    nd = len(x.shape) + 1
    out, rest = [None] * nd, iter(x.shape[:-1])
    out[dim1], out[dim2] = size1, size2
    return tuple(s if s is not None else next(rest) for s in out)


def _diag_embed_infer(x, *, offset, dim1, dim2, size1, size2):
    if not x.shape or _diag_len(size1, size2, offset) != x.shape[-1]:
        raise ShapeError(f"diag_embed: {describe(x)} does not fit the diagonal {offset} of a {size1}x{size2} matrix")
    return AVal(_diag_embed_shape(x, size1, dim1, size2, dim2), x.dtype)


def _diag_embed_impl(x, *, offset, dim1, dim2, size1, size2):
    out = np.zeros(_diag_embed_shape(x, size1, dim1, size2, dim2), x.dtype)
    _writable_diagonal(out, offset, dim1, dim2)[...] = x
    return out


# The gradient of diagonal (zeros with the cotangent on the diagonal) and torch.diag_embed in one.
DIAG_EMBED = register("diag_embed", infer=_diag_embed_infer, impl=_diag_embed_impl,
                      vjp=lambda c, g: (apply(DIAGONAL, g, offset=c.attrs["offset"], dim1=c.attrs["dim1"],
                                              dim2=c.attrs["dim2"]),),
                      family="linalg")


def _two_dims(name, dim1, dim2, nd):
    d1, d2 = norm_dim(name, dim1, nd), norm_dim(name, dim2, nd)
    if d1 == d2:
        raise RuntimeError(f"{name}: diagonal dimensions cannot be identical {dim1}, {dim2}")
    return d1, d2


@api
def diagonal(input, offset: int = 0, dim1: int = 0, dim2: int = 1):
    """The diagonal ``offset`` of the matrices in dims ``dim1``/``dim2``, appended as the last dim (a view),
    as ``torch.diagonal``.

    >>> import danlu as dl
    >>> dl.arange(9.0).reshape(3, 3).diagonal(1)
    tensor([1., 5.])
    """
    if input.ndim < 2:
        norm_dim("diagonal", 1, input.ndim)  # raises PyTorch's "dimension out of range"
    d1, d2 = _two_dims("diagonal", dim1, dim2, input.ndim)
    return apply(DIAGONAL, input, offset=int(offset), dim1=d1, dim2=d2)


@api
def diag_embed(input, offset: int = 0, dim1: int = -2, dim2: int = -1):
    """Matrices whose diagonal ``offset`` (in dims ``dim1``/``dim2``) holds the last dim of ``input``, as
    ``torch.diag_embed``.

    >>> import danlu as dl
    >>> dl.diag_embed(dl.tensor([1.0, 2.0]))
    tensor([[1., 0.],
            [0., 2.]])
    """
    if input.ndim < 1:
        raise ShapeError(f"diag_embed: expected a tensor with at least 1 dimension, got {describe(input)}")
    n = input.shape[-1] + abs(int(offset))
    d1, d2 = _two_dims("diag_embed", dim1, dim2, input.ndim + 1)
    return apply(DIAG_EMBED, input, offset=int(offset), dim1=d1, dim2=d2, size1=n, size2=n)


@api
def diag(input, diagonal: int = 0):
    """1-D input: a square matrix with it on diagonal ``diagonal``; 2-D input: that diagonal (a copy).

    >>> import danlu as dl
    >>> dl.diag(dl.tensor([1.0, 2.0])), dl.diag(dl.eye(2) * 3)
    (tensor([[1., 0.],
            [0., 2.]]), tensor([3., 3.]))
    """
    if input.ndim == 1:
        n = input.shape[0] + abs(int(diagonal))
        return apply(DIAG_EMBED, input, offset=int(diagonal), dim1=0, dim2=1, size1=n, size2=n)
    if input.ndim == 2:
        return clone(apply(DIAGONAL, input, offset=int(diagonal), dim1=0, dim2=1))
    raise ShapeError(f"diag(): supports 1D or 2D tensors, got {input.ndim}D ({describe(input)}); use "
                     "diagonal() or diag_embed() for batches")


@api
def trace(input):
    """Sum of the main diagonal of a 2-D tensor (integers sum to int64), as ``torch.trace``.

    >>> import danlu as dl
    >>> dl.trace(dl.arange(9.0).reshape(3, 3))
    tensor(12.)
    """
    if input.ndim != 2:
        raise ShapeError(f"trace: expected a matrix, but got tensor with dim {input.ndim} ({describe(input)})")
    if input.dtype is _dt.bool_:
        raise DTypeError(f"trace: not implemented for bool tensors ({describe(input)}); convert with .int() first")
    return _sum(apply(DIAGONAL, input, offset=0, dim1=0, dim2=1), -1)


for _f in (diagonal, diag_embed, diag, trace):
    _export(_f, _f.__name__)


# == inv, solve, det, slogdet =======================================================================

def _check_square(name, A, square=True):
    if not A.dtype.is_floating_point:
        raise DTypeError(f"{name}: expected a floating point tensor as input, got {describe(A)}; convert it "
                         "with .float() or .double()")
    if A.dtype is _dt.float16:
        raise DTypeError(f"{name}: low precision dtypes are not supported, got {describe(A)}; use .float()")
    if len(A.shape) < 2:
        raise ShapeError(f"{name}: the input tensor A must have at least 2 dimensions, got {describe(A)}")
    if square and A.shape[-1] != A.shape[-2]:
        raise ShapeError(f"{name}: A must be batches of square matrices, but they are {A.shape[-2]} by "
                         f"{A.shape[-1]} matrices ({describe(A)})")


def _lapack(name, fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except np.linalg.LinAlgError as e:
        raise LinAlgError(f"{name}: the input matrix is singular ({e}), so the operation could not be "
                          "completed; check the matrix or regularize it (e.g. A + eps * I)") from None


def _inv_infer(A):
    _check_square("linalg.inv", A)
    return AVal(A.shape, A.dtype)


def _inv_vjp(c, g):
    yt = _mT(c.out)
    return (-matmul(matmul(yt, g), yt),)


INV = register("inv", infer=_inv_infer, impl=lambda A: _lapack("linalg.inv", np.linalg.inv, A), vjp=_inv_vjp,
               save_out=True, family="linalg")


def _solve_infer(A, B):
    _check_square("linalg.solve", A)
    if A.dtype is not B.dtype:
        raise DTypeError(f"linalg.solve: expected A and B to have the same dtype, but found {describe(A)} and "
                         f"{describe(B)}; convert one with .to(dtype)")
    if len(B.shape) < 2 or B.shape[-2] != A.shape[-1]:
        raise ShapeError(f"linalg.solve: incompatible shapes of A and B for the equation AX = B "
                         f"({describe(A)} and {describe(B)})")
    batch = broadcast_shapes("linalg.solve (batch dims)", A.shape[:-2], B.shape[:-2])
    return AVal(batch + tuple(B.shape[-2:]), A.dtype)


def _solve_impl(A, B):
    if A.shape[:-2] != B.shape[:-2]:  # NumPy's gufunc broadcasts, but only when both are batched alike
        batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
        A, B = np.broadcast_to(A, batch + A.shape[-2:]), np.broadcast_to(B, batch + B.shape[-2:])
    return _lapack("linalg.solve", np.linalg.solve, A, B)


def _solve_vjp(c, g):
    A = c.inputs[0]
    gB = apply(SOLVE, _mT(A), g)
    gA = -matmul(gB, _mT(c.out)) if c.edges[0] is not None else None
    return gA, gB


SOLVE = register("solve", infer=_solve_infer, impl=_solve_impl, vjp=_solve_vjp, save_in=(0,), save_out=True,
                 family="linalg")


def _det_infer(A):
    _check_square("linalg.det", A)
    return AVal(A.shape[:-2], A.dtype)


def _cofactor_t(A, scale):
    """``scale * det(A) * inv(A)^T`` reshaped for broadcasting (the gradient of det is det * A^-T)."""
    return unsqueeze(unsqueeze(scale, -1), -1) * _mT(apply(INV, A))


DET = register("det", infer=_det_infer, impl=lambda A: np.asarray(np.linalg.det(A)),
               vjp=lambda c, g: (_cofactor_t(c.inputs[0], g * c.out),), save_in=(0,), save_out=True,
               family="linalg")


def _slogdet_infer(A):
    _check_square("linalg.slogdet", A)
    return AVal(A.shape[:-2], A.dtype), AVal(A.shape[:-2], A.dtype)


def _slogdet_impl(A):
    sign, logabs = np.linalg.slogdet(A)
    return np.asarray(sign), np.asarray(logabs)


# A primitive (not log(abs(det))) because det over/underflows for large matrices where logdet does not.
SLOGDET = register("slogdet", infer=_slogdet_infer, impl=_slogdet_impl,
                   vjp=lambda c, gs, gl: (_cofactor_t(c.inputs[0], gl),), save_in=(0,), multi_out=True,
                   family="linalg")


def _svd_infer(A, *, full_matrices):
    _check_square("linalg.svd", A, square=False)
    m, n = A.shape[-2:]
    k = min(m, n)
    b = tuple(A.shape[:-2])
    um, vn = (m, n) if full_matrices else (k, k)
    return AVal(b + (m, um), A.dtype), AVal(b + (k,), A.dtype), AVal(b + (vn, n), A.dtype)


def _svd_vjp(c, gU, gS, gVh):
    """Real SVD backward for distinct nonzero singular values (Townsend, "Differentiating the SVD"):
    gA = U [F*(skew(U'gU)) S + diag(gS) + S F*(skew(V'gV))] V' + (I - UU') gU S^-1 V' + U S^-1 gV' (I - VV'),
    with F_ij = 1 / (s_j^2 - s_i^2). With full_matrices, only the first k singular vectors carry gradient."""
    U, S, Vh = c.outs
    m, n = c.in_meta[0][0][-2:]
    k = min(m, n)
    if U.shape[-1] != k:
        U, gU = U[..., :k], gU[..., :k]
    if Vh.shape[-2] != k:
        Vh, gVh = Vh[..., :k, :], gVh[..., :k, :]
    Sr, Sc = unsqueeze(S, -2), unsqueeze(S, -1)
    S2 = S * S
    E = unsqueeze(S2, -2) - unsqueeze(S2, -1) + eye(k, dtype=S.dtype)  # 1 on the diagonal, never divided by 0
    J = matmul(_mT(U), gU)
    K = matmul(Vh, _mT(gVh))
    inner = (J - _mT(J)) / E * Sr + Sc * ((K - _mT(K)) / E) + diag_embed(gS)
    gA = matmul(matmul(U, inner), Vh)
    if m > k:
        gA = gA + matmul((gU - matmul(U, J)) / Sr, Vh)
    if n > k:
        gA = gA + matmul(U, (gVh - matmul(_mT(K), Vh)) / Sc)
    return (gA,)


SVD = register("svd", infer=_svd_infer, vjp=_svd_vjp, multi_out=True, save_out=True, family="linalg",
               impl=lambda A, *, full_matrices: tuple(_lapack("linalg.svd", np.linalg.svd, A,
                                                               full_matrices=full_matrices)))


def _svdvals_infer(A):
    return _svd_infer(A, full_matrices=False)[1]


def _svdvals_vjp(c, g):
    U, _, Vh = apply(SVD, c.inputs[0], full_matrices=False)
    return (matmul(U * unsqueeze(g, -2), Vh),)


# Its own primitive: without gradients LAPACK skips the singular vectors, which is much cheaper.
SVDVALS = register("svdvals", infer=_svdvals_infer, vjp=_svdvals_vjp, save_in=(0,), family="linalg",
                   impl=lambda A: _lapack("linalg.svdvals", np.linalg.svd, A, compute_uv=False))


@api
def inv(A):
    """Inverse of a (batch of) square matrices, as ``torch.linalg.inv``.

    >>> import danlu as dl
    >>> dl.linalg.inv(dl.tensor([[2.0, 0.0], [0.0, 4.0]]))
    tensor([[0.5000, 0.0000],
            [0.0000, 0.2500]])
    """
    return apply(INV, A)


@api
def solve(A, B, *, left: bool = True):
    """Solve ``A X = B`` (``X A = B`` with ``left=False``), as ``torch.linalg.solve``; ``B`` is a (batch
    of) vector(s) when it is 1-D or has shape ``A.shape[:-1]``.

    >>> import danlu as dl
    >>> dl.linalg.solve(dl.tensor([[2.0, 0.0], [0.0, 4.0]]), dl.tensor([1.0, 1.0]))
    tensor([0.5000, 0.2500])
    """
    _need_tensor("linalg.solve", A=A, B=B)
    if not left:
        if B.ndim < 2:
            raise ShapeError(f"linalg.solve: with left=False, B must have at least 2 dimensions, got {describe(B)}")
        return _mT(apply(SOLVE, _mT(A), _mT(B)))
    vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))
    if vector:
        return squeeze(apply(SOLVE, A, unsqueeze(B, -1)), -1)
    return apply(SOLVE, A, B)


@api
def det(A):
    """Determinant of a (batch of) square matrices, as ``torch.linalg.det``. Its gradient uses ``inv(A)``,
    so it raises ``LinAlgError`` at exactly singular matrices.

    >>> import danlu as dl
    >>> dl.det(dl.tensor([[2.0, 1.0], [1.0, 3.0]]))
    tensor(5.)
    """
    return apply(DET, A)


@api
def slogdet(A):
    """``(sign, logabsdet)`` of the determinant, stable where ``det`` over/underflows, as
    ``torch.linalg.slogdet``.

    >>> import danlu as dl
    >>> dl.slogdet(dl.tensor([[-2.0, 0.0], [0.0, 3.0]]))
    slogdet(sign=tensor(-1.), logabsdet=tensor(1.7918))
    """
    return _slogdet_ret(*apply(SLOGDET, A))


@api
def svd(A, full_matrices: bool = True):
    """``A = U diag(S) Vh`` with singular values in descending order, as ``torch.linalg.svd``. Gradients
    assume distinct singular values and a loss that does not depend on the vectors' signs.

    >>> import danlu as dl
    >>> dl.linalg.svd(dl.tensor([[3.0, 0.0], [0.0, -4.0]])).S
    tensor([4., 3.])
    """
    return _svd_ret(*apply(SVD, A, full_matrices=bool(full_matrices)))


@api
def svdvals(A):
    """Singular values in descending order, as ``torch.linalg.svdvals``.

    >>> import danlu as dl
    >>> dl.linalg.svdvals(dl.tensor([[3.0, 0.0], [0.0, -4.0]]))
    tensor([4., 3.])
    """
    return apply(SVDVALS, A)


inverse = inv
__all__ += ["det", "slogdet", "inverse"]
