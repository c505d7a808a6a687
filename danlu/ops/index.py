"""Indexing: basic slicing (a view), NumPy-style advanced indexing, ``__setitem__`` (correct under
autograd: the written tensor's history is rebased onto an index_put node), gather/scatter,
index_select/index_add, masks, nonzero and one_hot."""

from __future__ import annotations

import math

import numpy as np

from ..core import dtypes as _dt
from ..core.dispatch import CONVERT, apply, apply_inplace
from ..core.errors import DTypeError, ShapeError, api, describe, reraise_filtered
from ..core.registry import AVal, register
from ..core.tensor import Tensor
from ._public import exporter
from ._util import broadcast_shapes, norm_dim

__all__ = []


_export = exporter(globals(), __all__)


# == index specs ====================================================================================
# A spec is a hashable tuple, one entry per index item after Ellipsis expansion:
#   ("s", start, stop, step)  a slice, already resolved against the dimension's size
#   ("i", k)                  an integer (removes the dimension)
#   ("n",)                    None (inserts a size-1 dimension)
#   ("t",)                    an integer index tensor (advanced indexing; the tensors are inputs)

def _is_index_tensor(k):
    return isinstance(k, (Tensor, np.ndarray, list)) and not isinstance(k, bool)


def _parse(x, key):
    """Turn a Python index into (spec, index tensors). Bool masks become integer index tensors."""
    from ..core.creation import as_tensor

    if not isinstance(key, tuple):
        key = (key,)
    items = []
    for k in key:
        if isinstance(k, (list, np.ndarray)):
            k = as_tensor(np.asarray(k) if isinstance(k, list) and k and not isinstance(k[0], Tensor) else k)
        elif isinstance(k, np.integer):
            k = int(k)
        elif isinstance(k, Tensor) and k.ndim == 0 and k.dtype.category == 1:
            k = int(k)  # PyTorch selects with a 0-d integer tensor, as with an int
        elif isinstance(k, np.bool_):
            k = bool(k)
        if isinstance(k, bool) or isinstance(k, Tensor) and k.ndim == 0 and k.dtype is _dt.bool_:
            raise IndexError("indexing with a 0-d bool (x[True]) inside a tuple index is not supported; use "
                             "unsqueeze() instead")
        items.append(k)
    consumed = 0
    for k in items:
        if isinstance(k, Tensor):
            consumed += k.ndim if k.dtype is _dt.bool_ else 1
        elif k is not None and k is not Ellipsis:
            consumed += 1
    if sum(1 for k in items if k is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    nd = x.ndim
    if consumed > nd:
        raise IndexError(f"too many indices for tensor of dimension {nd} ({describe(x)}): the index uses "
                         f"{consumed} dimensions")
    expanded = []
    for k in items:
        if k is Ellipsis:
            expanded.extend([slice(None)] * (nd - consumed))
        else:
            expanded.append(k)
    if Ellipsis not in items:
        expanded.extend([slice(None)] * (nd - consumed))
    spec, tensors = [], []
    dim = 0
    shape = tuple(x.shape)
    for k in expanded:
        if k is None:
            spec.append(("n",))
        elif isinstance(k, slice):
            if k.step is not None and _int(k.step) <= 0:
                raise ValueError(f"step must be greater than zero (got a slice with step {k.step}); use "
                                 "flip() to reverse a dimension")
            spec.append(_slice_spec(k, shape[dim]))
            dim += 1
        elif isinstance(k, int):
            size = shape[dim]
            if not -size <= k < size:
                raise IndexError(f"index {k} is out of bounds for dimension {dim} with size {size} "
                                 f"(indexing {describe(x)})")
            spec.append(("i", k % size))
            dim += 1
        elif isinstance(k, Tensor):
            if k.dtype is _dt.bool_:
                if tuple(k.shape) != shape[dim:dim + k.ndim]:
                    raise IndexError(f"the shape of the mask {list(k.shape)} at index {dim} does not match the "
                                     f"shape of the indexed tensor {list(shape)}")
                for t in nonzero(k, as_tuple=True):
                    spec.append(("t",))
                    tensors.append(t)
                dim += k.ndim
            else:
                if k.dtype.category != 1:
                    raise IndexError(f"tensors used as indices must be long, int, byte or bool tensors, got "
                                     f"{describe(k)}")
                spec.append(("t",))
                tensors.append(k)
                dim += 1
        else:
            raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), None and long or bool tensors are "
                             f"valid indices (got {type(k).__name__})")
    return tuple(spec), tensors


def _int(v):
    if v is None or isinstance(v, int):
        return v  # ints stay as they are (symbolic sizes included)
    return int(v)


def _slice_spec(k: slice, size) -> tuple:
    """("s", start, stop, step) resolved against ``size``. A symbolic size (a dynamic dimension) stays
    symbolic for the common forms (``:``, ``a:``, ``:b``, ``a:b`` with non-negative bounds, step 1)."""
    start, stop, step = k.start, k.stop, k.step
    if size.__class__ is int and (start is None or start.__class__ is int) and \
            (stop is None or stop.__class__ is int) and (step is None or step.__class__ is int):
        start, stop, step = k.indices(size)
        return ("s", start, stop if stop > start else start, step)
    start, stop, step = _int(start), _int(stop), _int(step)
    if size.__class__ is not int and isinstance(size, int) and (step in (None, 1)) and \
            (start is None or start >= 0) and (stop is None or stop >= 0):
        lo = 0 if start is None else start
        hi = size if stop is None else stop
        if stop is not None and stop > size:  # records a guard on the symbolic size
            hi = size
        if lo > hi:
            lo = hi
        return ("s", lo, hi, 1)
    start, stop, step = slice(start, stop, step).indices(size)
    return ("s", start, max(stop, start), step)


_BASIC_KEYS: dict = {}


def _np_key(spec, arrays):
    if not arrays:
        key = _BASIC_KEYS.get(spec)
        if key is None:
            key = _np_key_build(spec, ())
            if len(_BASIC_KEYS) > 4096:
                _BASIC_KEYS.clear()
            _BASIC_KEYS[spec] = key
        return key
    return _np_key_build(spec, arrays)


def _np_key_build(spec, arrays):
    key, it = [], iter(arrays)
    for e in spec:
        tag = e[0]
        if tag == "s":
            key.append(slice(e[1], e[2], e[3]))
        elif tag == "i":
            key.append(e[1])
        elif tag == "n":
            key.append(None)
        else:
            key.append(next(it))
    return tuple(key)


def _span(e) -> int:
    """Length of a slice spec entry; stop - start for step 1 keeps symbolic sizes symbolic."""
    return e[2] - e[1] if e[3] == 1 else len(range(e[1], e[2], e[3]))


def _basic_shape(shape, spec):
    out, dim = [], 0
    for e in spec:
        if e[0] == "s":
            out.append(_span(e))
            dim += 1
        elif e[0] == "i":
            dim += 1
        elif e[0] == "n":
            out.append(1)
    return tuple(out) + tuple(shape[dim:])


def _advanced_key(spec, arrays):
    """PyTorch's two steps: integers, slices and None index first (a view); then the index tensors
    index that view, the other dimensions taking full slices. Unlike NumPy, an integer is not an
    advanced index, so it never separates two index tensors."""
    basic, adv, it = [], [], iter(arrays)
    for e in spec:
        tag = e[0]
        if tag == "s":
            basic.append(slice(e[1], e[2], e[3]))
            adv.append(slice(None))
        elif tag == "i":
            basic.append(e[1])
        elif tag == "n":
            basic.append(None)
            adv.append(slice(None))
        else:
            basic.append(slice(None))
            adv.append(next(it))
    return tuple(basic), tuple(adv)


def _advanced_shape(shape, spec, idx_shapes):
    """PyTorch's rule: index tensors adjacent in the view left after integer indexing put their
    broadcast shape in place; separated ones (by a slice or None) put it first."""
    bshape = broadcast_shapes("index", *idx_shapes) if idx_shapes else ()
    positions = [i for i, e in enumerate(e for e in spec if e[0] != "i") if e[0] == "t"]
    adjacent = positions == list(range(positions[0], positions[-1] + 1)) if positions else True
    out, dim, placed = [], 0, False
    for e in spec:
        if e[0] == "t":
            if adjacent and not placed:
                out.extend(bshape)
                placed = True
            dim += 1
        elif e[0] == "s":
            out.append(_span(e))
            dim += 1
        elif e[0] == "i":
            dim += 1
        else:
            out.append(1)
    out.extend(shape[dim:])
    if not adjacent:
        out = list(bshape) + out
    return tuple(out)


# == getitem (basic: a view) ========================================================================

GETITEM = register("getitem", infer=lambda x, *, spec: AVal(_basic_shape(tuple(x.shape), spec), x.dtype),
                   impl=lambda x, *, spec: x[_np_key(spec, ())],
                   vjp=lambda c, g: (apply(SLICE_SCATTER, _zeros(c, 0, g), g, spec=c.attrs["spec"]),),
                   view=True, family="index")


def _zeros(c, i, like):
    from .creation import zeros

    return zeros(c.in_meta[i][0], dtype=like.dtype)


def _slice_scatter_infer(x, v, *, spec):
    region = _basic_shape(tuple(x.shape), spec)
    _check_value(x, v, region)
    return AVal(tuple(x.shape), x.dtype)


def _check_value(x, v, region):
    vs = tuple(getattr(v, "shape", ()))
    try:
        b = broadcast_shapes("setitem", vs, region)
    except ShapeError:
        b = None
    if b != tuple(region):
        # PyTorch also accepts values with extra leading size-1 dimensions
        stripped = vs
        while len(stripped) > len(region) and stripped[0] == 1:
            stripped = stripped[1:]
        try:
            if broadcast_shapes("setitem", stripped, region) == tuple(region):
                return
        except ShapeError:
            pass
        raise ShapeError(f"setitem: shape mismatch: value tensor of shape {list(vs)} cannot be broadcast to "
                         f"indexing result of shape {list(region)} (target {describe(x)})")


def _slice_scatter_impl(x, v, *, spec):
    out = x.copy()
    key = _np_key(spec, ())
    region = out[key]
    v = np.asarray(v)
    while v.ndim > region.ndim and v.shape[0] == 1:
        v = v[0]
    out[key] = v
    return out


def _slice_scatter_vjp(c, g):
    spec = c.attrs["spec"]
    gx = apply(SLICE_SCATTER, g, 0, spec=spec) if c.edges[0] is not None else None
    gv = None
    if c.edges[1] is not None:
        gv = apply(GETITEM, g, spec=spec)
        vshape = c.in_meta[1][0]
        if len(vshape) > gv.ndim:
            gv = gv.reshape((1,) * (len(vshape) - gv.ndim) + tuple(gv.shape))
    return gx, gv


SLICE_SCATTER = register("slice_scatter", infer=_slice_scatter_infer, impl=_slice_scatter_impl,
                         vjp=_slice_scatter_vjp, family="index")


# == advanced indexing ==============================================================================

def _index_infer(x, *idx, spec):
    return AVal(_advanced_shape(tuple(x.shape), spec, [tuple(i.shape) for i in idx]), x.dtype)


def _index_impl(x, *idx, spec):
    basic, adv = _advanced_key(spec, idx)
    try:
        return x[basic][adv]
    except IndexError as e:
        raise IndexError(f"index: {e} (indexing a tensor of shape {list(x.shape)})") from None


def _index_vjp(c, g):
    idx = c.inputs[1:]
    base = _zeros(c, 0, g)
    return (apply(INDEX_PUT, base, g, *idx, spec=c.attrs["spec"], accumulate=True),) + (None,) * len(idx)


# save_in lists every position an index tensor may take; positions past the call's inputs are skipped.
INDEX = register("index", infer=_index_infer, impl=_index_impl, vjp=_index_vjp, save_in=range(1, 64),
                 family="index")


def _index_put_infer(x, v, *idx, spec, accumulate):
    region = _advanced_shape(tuple(x.shape), spec, [tuple(i.shape) for i in idx])
    _check_value(x, v, region)
    return AVal(tuple(x.shape), x.dtype)


def _index_put_impl(x, v, *idx, spec, accumulate):
    out = x.copy()
    basic, key = _advanced_key(spec, idx)
    view = out[basic + (Ellipsis,)]  # a view even when every index is an int: writes land in out
    v = np.asarray(v)
    try:
        region_nd = view[key].ndim if v.ndim else 0
        while v.ndim > region_nd and v.shape[0] == 1:
            v = v[0]
        if accumulate:
            np.add.at(view, key, v)
        else:
            view[key] = v
    except IndexError as e:
        raise IndexError(f"index_put: {e} (indexing a tensor of shape {list(x.shape)})") from None
    return out


def _index_put_vjp(c, g):
    idx = c.inputs[2:]
    spec, acc = c.attrs["spec"], c.attrs["accumulate"]
    gx = None
    if c.edges[0] is not None:
        gx = g if acc else apply(INDEX_PUT, g, 0, *idx, spec=spec, accumulate=False)
    gv = None
    if c.edges[1] is not None:
        gv = apply(INDEX, g, *idx, spec=spec)
        vshape = c.in_meta[1][0]
        if len(vshape) > gv.ndim:
            gv = gv.reshape((1,) * (len(vshape) - gv.ndim) + tuple(gv.shape))
    return (gx, gv) + (None,) * len(idx)


INDEX_PUT = register("index_put", infer=_index_put_infer, impl=_index_put_impl, vjp=_index_put_vjp,
                     save_in=range(2, 64), family="index")


def _getitem(self, key):
    try:
        if isinstance(key, bool) or isinstance(key, Tensor) and key.ndim == 0 and key.dtype is _dt.bool_:
            from .shape import unsqueeze

            u = unsqueeze(self, 0)
            return u if bool(key) else apply(GETITEM, u, spec=(("s", 0, 0, 1),))
        spec = _fast_spec(self._data.shape, key)
        if spec is not None:
            return apply(GETITEM, self, spec=spec)
        spec, tensors = _parse(self, key)
        if not tensors:
            return apply(GETITEM, self, spec=spec)
        return apply(INDEX, self, *tensors, spec=spec)
    except Exception as e:
        reraise_filtered(e)
        raise


def _fast_spec(shape, key):
    """The spec of the common keys (ints and slices only), or None to take the general path."""
    if key.__class__ is int:
        if not shape:
            return None
        size = shape[0]
        if not -size <= key < size:
            raise IndexError(f"index {key} is out of bounds for dimension 0 with size {size}")
        return (("i", key % size),)
    if key.__class__ is slice:
        if not shape or (key.step is not None and key.step.__class__ is not int):
            return None
        if key.step is not None and key.step <= 0:
            return None
        return (_slice_spec(key, shape[0]),)
    if key.__class__ is tuple and len(key) <= len(shape):
        spec = []
        for d, k in enumerate(key):
            if k.__class__ is int:
                size = shape[d]
                if not -size <= k < size:
                    return None  # the general path raises the full error
                spec.append(("i", k % size))
            elif k.__class__ is slice and (k.step is None or (k.step.__class__ is int and k.step > 0)):
                spec.append(_slice_spec(k, shape[d]))
            else:
                return None
        return tuple(spec)
    return None


def _setitem(self, key, value):
    try:
        spec, tensors = _parse(self, key)
        if isinstance(value, Tensor):
            if value.dtype is not self.dtype:
                value = apply(CONVERT, value, dtype=self.dtype)
        elif isinstance(value, (np.ndarray, list, tuple)):
            from ..core.creation import tensor as _tensor

            value = _tensor(value, dtype=self.dtype)
        elif not isinstance(value, (int, float, bool)):
            raise TypeError(f"setitem: can't assign a {type(value).__name__} to a tensor; use a number or a "
                            "Tensor")
        elif isinstance(value, float) and not self.dtype.is_floating_point:
            value = int(value)
        if not tensors:
            apply_inplace(SLICE_SCATTER, self, value, spec=spec)
        else:
            apply_inplace(INDEX_PUT, self, value, *tensors, spec=spec, accumulate=False)
    except Exception as e:
        reraise_filtered(e)
        raise


Tensor.__getitem__ = _getitem
Tensor.__setitem__ = _setitem


@api
def index_put(input, indices, values, accumulate: bool = False):
    """Out-of-place ``input[indices] = values`` (or ``+=`` with ``accumulate``), as ``torch.index_put``.

    >>> import danlu as dl
    >>> dl.index_put(dl.zeros(3), (dl.tensor([0, 0]),), dl.tensor(1.0), accumulate=True)
    tensor([2., 0., 0.])
    """
    spec, tensors = _parse(input, tuple(indices))
    if isinstance(values, Tensor) and values.dtype is not input.dtype:
        values = apply(CONVERT, values, dtype=input.dtype)
    return apply(INDEX_PUT, input, values, *tensors, spec=spec, accumulate=bool(accumulate))


def _index_put_(self, indices, values, accumulate=False):
    try:
        spec, tensors = _parse(self, tuple(indices))
        if isinstance(values, Tensor) and values.dtype is not self.dtype:
            values = apply(CONVERT, values, dtype=self.dtype)
        return apply_inplace(INDEX_PUT, self, values, *tensors, spec=spec, accumulate=bool(accumulate))
    except Exception as e:
        reraise_filtered(e)
        raise


_export(index_put, "index_put")
Tensor.index_put_ = _index_put_


@api
def narrow(input, dim: int, start: int, length: int):
    """The slice ``start:start+length`` along ``dim`` (a view).

    >>> import danlu as dl
    >>> dl.arange(5).narrow(0, 1, 2)
    tensor([1, 2])
    """
    d = norm_dim("narrow", dim, input.ndim)
    size = input.shape[d]
    start, length = int(start), int(length)
    if not -size <= start <= size:
        raise IndexError(f"narrow: start out of range (expected to be in range of [{-size}, {size}], but got "
                         f"{start}) for dimension {d} of {describe(input)}")
    if start < 0:
        start += size
    if length < 0:
        raise RuntimeError(f"narrow: length must be non-negative, got {length}")
    if start + length > size:
        raise RuntimeError(f"narrow: start ({start}) + length ({length}) exceeds dimension size ({size}) of "
                           f"dimension {d} of {describe(input)}")
    key = (slice(None),) * d + (slice(start, start + length),)
    return _getitem(input, key)


@api
def select(input, dim: int, index: int):
    """The slice at ``index`` along ``dim``, with that dimension removed (a view).

    >>> import danlu as dl
    >>> dl.tensor([[1, 2], [3, 4]]).select(1, 0)
    tensor([1, 3])
    """
    d = norm_dim("select", dim, input.ndim)
    size = input.shape[d]
    index = int(index)
    if not -size <= index < size:
        raise IndexError(f"select(): index {index} is out of bounds for dimension {d} with size {size} "
                         f"(tensor of size {list(input.shape)})")
    return _getitem(input, (slice(None),) * d + (index,))


_export(narrow, "narrow")
_export(select, "select")


# == gather / scatter ===============================================================================

def _check_gs(name, x, dim, index, src=None):
    if index.dtype is not _dt.int64 and index.dtype.category != 1:
        raise DTypeError(f"{name}(): Expected dtype int64 for index, got {describe(index)}")
    nd = len(x.shape)
    if len(index.shape) != nd and not (nd == 0 and len(index.shape) <= 1):
        raise RuntimeError(f"{name}(): Index tensor must have the same number of dimensions as the input "
                           f"tensor ({describe(index)} vs {describe(x)})")
    for d in range(len(index.shape)):
        if d != dim and index.shape[d] > (x.shape[d] if nd else 1):
            raise RuntimeError(f"{name}(): Size does not match at dimension {d}: expected index {list(index.shape)} "
                               f"to be smaller than self {list(x.shape)} apart from dimension {dim}")
        if src is not None and hasattr(src, "shape") and index.shape[d] > src.shape[d]:
            raise RuntimeError(f"{name}(): Expected index {list(index.shape)} to be smaller than src "
                               f"{list(src.shape)} in every dimension")


def _along(index, dim):
    """The fancy-index tuple that addresses ``a[..., index[...], ...]`` elementwise along ``dim``."""
    nd = index.ndim
    key = []
    for d in range(nd):
        if d == dim:
            key.append(index)
        else:
            shape = [1] * nd
            shape[d] = index.shape[d]
            key.append(np.arange(index.shape[d]).reshape(shape))
    return tuple(key)


def _check_range(name, index, size, dim, exc=RuntimeError):
    """PyTorch's gather/scatter/index_* accept no negative indices; the error names index, dim and size."""
    if index.size and (index.min() < 0 or index.max() >= size):
        bad = index[(index < 0) | (index >= size)].reshape(-1)[0]
        raise exc(f"{name}(): index {bad} is out of bounds for dimension {dim} with size {size}")


def _gather_infer(x, index, *, dim):
    _check_gs("gather", x, dim, index)
    return AVal(tuple(index.shape), x.dtype)


def _gather_impl(x, index, *, dim):
    if x.ndim == 0:
        _check_range("gather", index, 1, 0)
        return np.broadcast_to(x, index.shape).copy()
    _check_range("gather", index, x.shape[dim], dim)
    return x[_along(index, dim)]


def _gather_vjp(c, g):
    from .creation import zeros

    index = c.inputs[1]
    return apply(SCATTER_ADD, zeros(c.in_meta[0][0], dtype=g.dtype), index, g, dim=c.attrs["dim"]), None


GATHER = register("gather", infer=_gather_infer, impl=_gather_impl, vjp=_gather_vjp, save_in=(1,), family="index")


def _scatter_infer(name):
    def infer(x, index, src, *, dim):
        _check_gs(name, x, dim, index, src)
        return AVal(tuple(x.shape), x.dtype)
    return infer


def _src_part(src, index):
    if isinstance(src, np.ndarray) and src.ndim:
        return src[tuple(slice(0, s) for s in index.shape)]
    return src


def _scatter_target(out, index, src):
    """A 0-d input takes a 0-d or 1-D index (PyTorch): write through a 1-element view of it."""
    if out.ndim == 0:
        s = _src_part(src, index)
        return out.reshape(1), (index.reshape(-1),), (s.reshape(-1) if isinstance(s, np.ndarray) else s)
    return None


def _scatter_impl(x, index, src, *, dim):
    out = x.copy()
    if index.size:
        _check_range("scatter", index, x.shape[dim] if x.ndim else 1, dim)
        t = _scatter_target(out, index, src)
        if t is not None:
            t[0][t[1]] = t[2]
        else:
            out[_along(index, dim)] = _src_part(src, index)
    return out


def _scatter_add_impl(x, index, src, *, dim):
    out = x.copy()
    if index.size:
        _check_range("scatter_add", index, x.shape[dim] if x.ndim else 1, dim)
        t = _scatter_target(out, index, src)
        if t is not None:
            np.add.at(*t)
        else:
            np.add.at(out, _along(index, dim), _src_part(src, index))
    return out


def _src_grad(c, g, index):
    """Gradient for ``src``: gathered where scattered, zero elsewhere (src may be larger than index)."""
    gs = apply(GATHER, g, index, dim=c.attrs["dim"])
    sshape = c.in_meta[2][0]
    if tuple(gs.shape) != tuple(sshape):
        from .shape import pad_constant

        pads = []
        for d in reversed(range(len(sshape))):
            pads += [0, sshape[d] - gs.shape[d]]
        gs = pad_constant(gs, pads, 0.0)
    return gs


def _scatter_vjp(c, g):
    index = c.inputs[1]
    gx = apply(SCATTER, g, index, 0.0, dim=c.attrs["dim"]) if c.edges[0] is not None else None
    gs = _src_grad(c, g, index) if c.edges[2] is not None else None
    return gx, None, gs


def _scatter_add_vjp(c, g):
    index = c.inputs[1]
    gs = _src_grad(c, g, index) if c.edges[2] is not None else None
    return g, None, gs


SCATTER = register("scatter", infer=_scatter_infer("scatter"), impl=_scatter_impl, vjp=_scatter_vjp,
                   save_in=(1,), family="index")
SCATTER_ADD = register("scatter_add", infer=_scatter_infer("scatter_add"), impl=_scatter_add_impl,
                       vjp=_scatter_add_vjp, save_in=(1,), family="index")


def _src_value(input, src, value):
    s = src if src is not None else value
    if s is None:
        raise TypeError("scatter: give src (a tensor) or value (a number)")
    if isinstance(s, Tensor):
        if s.dtype is not input.dtype:
            s = apply(CONVERT, s, dtype=input.dtype)
        return s
    return s if input.dtype.is_floating_point or not isinstance(s, float) else int(s)


@api
def gather(input, dim: int, index, *, sparse_grad: bool = False):
    """``out[i][j] = input[index[i][j]][j]`` (for dim 0), as ``torch.gather``.

    >>> import danlu as dl
    >>> dl.gather(dl.tensor([[1, 2], [3, 4]]), 1, dl.tensor([[0, 0], [1, 0]]))
    tensor([[1, 1],
            [4, 3]])
    """
    return apply(GATHER, input, index, dim=norm_dim("gather", dim, input.ndim))


@api
def scatter(input, dim: int, index, src=None, *, value=None, reduce=None):
    """Out-of-place scatter: ``out[index[i][j]][j] = src[i][j]`` (for dim 0), as ``torch.scatter``.

    >>> import danlu as dl
    >>> dl.scatter(dl.zeros(3), 0, dl.tensor([2]), dl.tensor([5.0]))
    tensor([0., 0., 5.])
    """
    if reduce is not None:
        if reduce == "add":
            return scatter_add(input, dim, index, src if src is not None else full_like_idx(input, index, value))
        raise RuntimeError(f"scatter: reduce={reduce!r} is not supported; use scatter_add for 'add'")
    return apply(SCATTER, input, index, _src_value(input, src, value), dim=norm_dim("scatter", dim, input.ndim))


def full_like_idx(input, index, value):
    from .creation import full

    return full(tuple(index.shape), value, dtype=input.dtype)


@api
def scatter_add(input, dim: int, index, src):
    """Out-of-place ``out[index[i][j]][j] += src[i][j]`` (for dim 0), as ``torch.scatter_add``.

    >>> import danlu as dl
    >>> dl.scatter_add(dl.zeros(2), 0, dl.tensor([1, 1, 0]), dl.tensor([1.0, 2.0, 3.0]))
    tensor([3., 3.])
    """
    return apply(SCATTER_ADD, input, index, _src_value(input, src, None), dim=norm_dim("scatter_add", dim, input.ndim))


def _scatter_(self, dim, index, src=None, *, value=None, reduce=None):
    try:
        if reduce is not None:
            return self.copy_(scatter(self, dim, index, src, value=value, reduce=reduce))
        return apply_inplace(SCATTER, self, index, _src_value(self, src, value),
                             dim=norm_dim("scatter_", dim, self.ndim))
    except Exception as e:
        reraise_filtered(e)
        raise


def _scatter_add_(self, dim, index, src):
    try:
        return apply_inplace(SCATTER_ADD, self, index, _src_value(self, src, None),
                             dim=norm_dim("scatter_add_", dim, self.ndim))
    except Exception as e:
        reraise_filtered(e)
        raise


_export(gather, "gather")
_export(scatter, "scatter")
_export(scatter_add, "scatter_add")
Tensor.scatter_ = _scatter_
Tensor.scatter_add_ = _scatter_add_


# == index_select / index_add =======================================================================

def _index_select_infer(x, index, *, dim):
    if len(index.shape) > 1:
        raise IndexError(f"index_select(): Index is supposed to be a vector, got {describe(index)}")
    if index.dtype.category != 1:
        raise DTypeError(f"index_select(): Expected dtype int32/int64 for index, got {describe(index)}")
    if not x.shape and math.prod(index.shape) != 1:
        raise RuntimeError(f"index_select(): Index to scalar can have only 1 value, got {math.prod(index.shape)} "
                           f"value(s) ({describe(index)})")
    if not x.shape:  # a 0-d input stays 0-d (its one index was checked above)
        return AVal((), x.dtype)
    shape = list(x.shape)
    shape[dim] = index.shape[0] if index.shape else 1
    return AVal(tuple(shape), x.dtype)


def _index_select_impl(x, index, *, dim):
    if x.ndim == 0:
        _check_range("index_select", index, 1, 0, IndexError)
        return x.copy()
    _check_range("index_select", index, x.shape[dim], dim, IndexError)
    return np.take(x, index.reshape(-1), axis=dim)


def _index_select_vjp(c, g):
    from .creation import zeros

    index = c.inputs[1]
    return apply(INDEX_ADD, zeros(c.in_meta[0][0], dtype=g.dtype), index, g, dim=c.attrs["dim"]), None


INDEX_SELECT = register("index_select", infer=_index_select_infer, impl=_index_select_impl,
                        vjp=_index_select_vjp, save_in=(1,), family="index")


def _index_add_infer(x, index, src, *, dim):
    exp = list(x.shape)
    if exp:
        exp[dim] = index.shape[0] if index.shape else 1
    if hasattr(src, "shape") and tuple(src.shape) != tuple(exp) and not (not exp and src.shape in ((), (1,))):
        raise ShapeError(f"index_add(): source {describe(src)} should have shape {exp} (self {describe(x)}, "
                         f"index {describe(index)}, dim {dim})")
    return AVal(tuple(x.shape), x.dtype)


def _index_add_impl(x, index, src, *, dim):
    out = x.copy()
    if x.ndim == 0:
        _check_range("index_add", index, 1, 0)
        return out + np.sum(src)
    _check_range("index_add", index, x.shape[dim], dim)
    np.add.at(out, (slice(None),) * dim + (index.reshape(-1),), src)
    return out


def _index_add_vjp(c, g):
    index = c.inputs[1]
    gs = apply(INDEX_SELECT, g, index, dim=c.attrs["dim"]) if c.edges[2] is not None else None
    return g, None, gs


INDEX_ADD = register("index_add", infer=_index_add_infer, impl=_index_add_impl, vjp=_index_add_vjp,
                     save_in=(1,), family="index")


@api
def index_select(input, dim: int, index):
    """Pick entries ``index`` (1-D) along ``dim``.

    >>> import danlu as dl
    >>> dl.tensor([[1, 2], [3, 4]]).index_select(0, dl.tensor([1, 1]))
    tensor([[3, 4],
            [3, 4]])
    """
    return apply(INDEX_SELECT, input, index, dim=norm_dim("index_select", dim, input.ndim))


@api
def index_add(input, dim: int, index, source, *, alpha=1):
    """Out-of-place: add ``alpha * source`` into the entries ``index`` along ``dim``.

    >>> import danlu as dl
    >>> dl.index_add(dl.zeros(3), 0, dl.tensor([0, 0, 2]), dl.tensor([1.0, 2.0, 3.0]))
    tensor([3., 0., 3.])
    """
    if alpha != 1:
        source = source * alpha
    if isinstance(source, Tensor) and source.dtype is not input.dtype:
        source = apply(CONVERT, source, dtype=input.dtype)
    return apply(INDEX_ADD, input, index, source, dim=norm_dim("index_add", dim, input.ndim))


def _index_add_(self, dim, index, source, *, alpha=1):
    try:
        if alpha != 1:
            source = source * alpha
        if isinstance(source, Tensor) and source.dtype is not self.dtype:
            source = apply(CONVERT, source, dtype=self.dtype)
        return apply_inplace(INDEX_ADD, self, index, source, dim=norm_dim("index_add_", dim, self.ndim))
    except Exception as e:
        reraise_filtered(e)
        raise


_export(index_select, "index_select")
_export(index_add, "index_add")
Tensor.index_add_ = _index_add_


# == masks, take_along_dim, nonzero, one_hot ========================================================

@api
def masked_fill(input, mask, value):
    """``value`` where ``mask`` (broadcast) is True, else ``input``; keeps ``input``'s dtype.

    >>> import danlu as dl
    >>> dl.masked_fill(dl.tensor([1.0, 2.0]), dl.tensor([True, False]), -1.0)
    tensor([-1.,  2.])
    """
    from .elementwise import where

    if not isinstance(mask, Tensor) or mask.dtype is not _dt.bool_:
        raise DTypeError(f"masked_fill: expected a bool mask, got {describe(mask)}; compare first, e.g. x > 0")
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(f"masked_fill: only supports a 0-dimensional value tensor, but got tensor with "
                               f"{value.ndim} dimension(s)")
        if value.dtype is not input.dtype:
            value = apply(CONVERT, value, dtype=input.dtype)
    elif not input.dtype.is_floating_point and input.dtype is not _dt.bool_:
        value = int(value)
    elif input.dtype is _dt.bool_:
        value = bool(value)
    out = where(mask, value, input)
    if tuple(out.shape) != tuple(input.shape):
        raise ShapeError(f"masked_fill: the mask {describe(mask)} must be broadcastable to the input "
                         f"{describe(input)} without growing it")
    return out if out.dtype is input.dtype else apply(CONVERT, out, dtype=input.dtype)


def _masked_fill_(self, mask, value):
    try:
        return self.copy_(masked_fill(self, mask, value)) if not self._rg else _masked_fill_graph(self, mask, value)
    except Exception as e:
        reraise_filtered(e)
        raise


def _masked_fill_graph(self, mask, value):
    from .elementwise import ASSIGN

    return apply_inplace(ASSIGN, self, masked_fill(self, mask, value))


_export(masked_fill, "masked_fill")
Tensor.masked_fill_ = _masked_fill_


@api
def masked_select(input, mask):
    """The elements of ``input`` where ``mask`` (broadcast) is True, as a 1-D tensor.

    >>> import danlu as dl
    >>> dl.masked_select(dl.tensor([1, 2, 3]), dl.tensor([True, False, True]))
    tensor([1, 3])
    """
    from .shape import broadcast_tensors

    if not isinstance(mask, Tensor) or mask.dtype is not _dt.bool_:
        raise DTypeError(f"masked_select: expected a bool mask, got {describe(mask)}")
    x, m = broadcast_tensors(input, mask)
    return _getitem(x, m)


_export(masked_select, "masked_select")


@api
def take_along_dim(input, indices, dim=None):
    """Gather along ``dim`` with broadcasting of the other dimensions (flattened when None).

    >>> import danlu as dl
    >>> x = dl.tensor([[10, 30, 20], [60, 40, 50]])
    >>> dl.take_along_dim(x, x.argmax(1, keepdim=True), 1)
    tensor([[30],
            [60]])
    """
    from .shape import expand, flatten

    if dim is None:
        return gather(flatten(input), 0, flatten(indices))
    d = norm_dim("take_along_dim", dim, input.ndim)
    if indices.ndim != input.ndim:
        raise RuntimeError(f"take_along_dim: input and indices should have the same number of dimensions, but "
                           f"got {describe(input)} and {describe(indices)}")
    shp_x, shp_i = list(input.shape), list(indices.shape)
    shp_x[d] = shp_i[d] = 1
    b = broadcast_shapes("take_along_dim", shp_x, shp_i)
    xs = list(b)
    xs[d] = input.shape[d]
    ins = list(b)
    ins[d] = indices.shape[d]
    return gather(expand(input, *xs), d, expand(indices, *ins))


@api
def take(input, index):
    """Elements of the flattened ``input`` at ``index`` (result has ``index``'s shape).

    >>> import danlu as dl
    >>> dl.take(dl.tensor([[1, 2], [3, 4]]), dl.tensor([0, 3]))
    tensor([1, 4])
    """
    from .shape import flatten

    return _getitem(flatten(input), index)


_export(take_along_dim, "take_along_dim")
_export(take, "take")


NONZERO = register("nonzero", infer=lambda x: AVal((None, len(x.shape)), _dt.int64),
                   impl=lambda x: np.argwhere(x).astype(np.int64), differentiable=False, family="index")


@api
def nonzero(input, *, as_tuple: bool = False):
    """Indices of nonzero elements: an ``(n, ndim)`` tensor, or a tuple of 1-D tensors.

    >>> import danlu as dl
    >>> dl.nonzero(dl.tensor([[0, 1], [1, 0]]))
    tensor([[0, 1],
            [1, 0]])
    """
    out = apply(NONZERO, input)
    if not as_tuple:
        return out
    if input.ndim == 0:  # one zero index per match (PyTorch), though there is no dimension to index
        from .creation import zeros

        return (zeros(out.shape[0], dtype=_dt.int64),)
    return tuple(out[:, i] for i in range(input.ndim))


@api
def argwhere(input):
    """``nonzero(input)``.

    >>> import danlu as dl
    >>> dl.argwhere(dl.tensor([0, 3]))
    tensor([[1]])
    """
    return nonzero(input)


_export(nonzero, "nonzero")
_export(argwhere, "argwhere")


def _one_hot_infer(x, *, num_classes):
    if x.dtype is not _dt.int64:
        raise DTypeError(f"one_hot is only applicable to index tensor of type int64, got {describe(x)}")
    return AVal(tuple(x.shape) + (num_classes if num_classes >= 0 else None,), _dt.int64)


def _one_hot_impl(x, *, num_classes):
    if x.size and x.min() < 0:
        raise RuntimeError("one_hot: class values must be non-negative")
    if num_classes < 0 and not x.size:
        raise RuntimeError(f"one_hot: can not infer the total number of classes from an empty tensor (shape "
                           f"{list(x.shape)}); pass num_classes")
    n = num_classes if num_classes >= 0 else (int(x.max()) + 1 if x.size else 0)
    if x.size and x.max() >= n:
        raise RuntimeError(f"one_hot: class values must be smaller than num_classes ({n}), got {int(x.max())}")
    return (x[..., None] == np.arange(n)).astype(np.int64)


ONE_HOT = register("one_hot", infer=_one_hot_infer, impl=_one_hot_impl, differentiable=False, family="index")


@api
def one_hot(tensor, num_classes: int = -1):
    """One-hot encoding of int64 class indices, as ``torch.nn.functional.one_hot``.

    >>> import danlu as dl
    >>> dl.nn.functional.one_hot(dl.tensor([0, 2]), 3)
    tensor([[1, 0, 0],
            [0, 0, 1]])
    """
    return apply(ONE_HOT, tensor, num_classes=int(num_classes))


# in-place on a getitem view under autograd: the new values are scattered back into the parent
GETITEM.extra["view_inverse"] = lambda parent, child, attrs, idx: apply(SLICE_SCATTER, parent, child,
                                                                      spec=attrs["spec"])
