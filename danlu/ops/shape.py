"""Shape primitives: reshape, permute, expand, cat, split, flip, roll, tril/triu, clone, pad; and the
composites built on them (view, squeeze, unsqueeze, flatten, stack, chunk, unbind, repeat, tile...).
View ops (flag ``view``) share memory and the version counter with their input."""

from __future__ import annotations

import math

import numpy as np

from ..core import dtypes as _dt
from ..core.dispatch import apply
from ..core.errors import ShapeError, api, describe, fmt_shape, reraise_filtered
from ..core.registry import AVal, register
from ..core.tensor import Tensor
from ._public import exporter
from ._util import norm_dim, promote_group

__all__ = []


_export = exporter(globals(), __all__)


def _shape_args(shape, opname):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    out = []
    for s in shape:
        if isinstance(s, Tensor):
            s = int(s)
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"{opname}: sizes must be ints, got {s!r} in {tuple(shape)}")
        out.append(s if isinstance(s, int) else int(s))  # keeps symbolic sizes (int subclasses)
    return tuple(out)


def _numel(shape) -> int:
    return math.prod(shape)


def resolve_shape(opname, shape, in_shape) -> tuple:
    """Replace one -1 by the inferred size; check the element count."""
    n = _numel(in_shape)
    if shape.count(-1) > 1:
        raise RuntimeError(f"{opname}: only one dimension can be inferred (-1), got {fmt_shape(shape)}")
    if any(s < -1 for s in shape):
        raise RuntimeError(f"{opname}: invalid shape dimension in {fmt_shape(shape)}")
    if -1 in shape:
        known = _numel([s for s in shape if s != -1])
        if known == 0 or n % known:
            raise ShapeError(f"{opname}: shape {fmt_shape(shape)} is invalid for input of size {n} "
                             f"(shape {fmt_shape(in_shape)})")
        shape = tuple(n // known if s == -1 else s for s in shape)
    if _numel(shape) != n:
        raise ShapeError(f"{opname}: shape {fmt_shape(shape)} is invalid for input of size {n} (input shape "
                         f"{fmt_shape(in_shape)}); the number of elements must stay the same")
    return tuple(shape)


# == reshape / permute / expand =====================================================================

def _reshape_infer(x, *, shape):
    return AVal(resolve_shape("reshape", shape, x.shape), x.dtype)


RESHAPE = register("reshape", infer=_reshape_infer, impl=lambda x, *, shape: x.reshape(shape),
                   vjp=lambda c, g: (reshape(g, c.in_meta[0][0]),), view=True, family="shape")


def reshape(input, *shape):
    """The same data with a new shape (a view when possible, else a copy); -1 infers one size.

    >>> import danlu as dl
    >>> dl.arange(6).reshape(2, -1)
    tensor([[0, 1, 2],
            [3, 4, 5]])
    """
    try:  # inline error boundary: reshape is hot
        in_shape = input._data.shape
        key = (shape, in_shape)
        out = _RESHAPE_CACHE.get(key) if shape.__class__ is tuple and _plain(shape) else None
        if out is None:
            out = resolve_shape("reshape", _shape_args(shape, "reshape"), tuple(in_shape))
            if _plain(shape) and _plain(in_shape) and len(_RESHAPE_CACHE) < 4096:
                _RESHAPE_CACHE[key] = out
        return apply(RESHAPE, input, shape=out)
    except Exception as e:
        reraise_filtered(e)
        raise


_RESHAPE_CACHE: dict = {}


def _plain(shape) -> bool:
    """All exact ints (no symbolic sizes, no nested tuples): safe to cache."""
    for s in shape:
        if s.__class__ is not int:
            return False
    return True


def _alias(x):
    """A view of ``x`` with the same shape (a new tensor object, as PyTorch returns)."""
    return apply(RESHAPE, x, shape=tuple(x.shape))


_export(reshape, "reshape")


@api
def view(input, *shape):
    """Like reshape, but only as a view: fails where the data's layout would need a copy, as PyTorch.

    >>> import danlu as dl
    >>> dl.zeros(4).view(2, 2).shape
    danlu.Size([2, 2])
    """
    if len(shape) == 1 and isinstance(shape[0], _dt.DType):
        raise RuntimeError("view(dtype): reinterpreting the bytes of a tensor is not supported by danlu; "
                           "use .to(dtype) to convert values")
    shape = resolve_shape("view", _shape_args(shape, "view"), tuple(input.shape))
    data = input._data
    if isinstance(data, np.ndarray):
        probe = data.view()
        try:
            probe.shape = shape
        except AttributeError:
            raise RuntimeError(
                f"view: size {fmt_shape(shape)} is not compatible with input tensor's size and stride "
                f"({describe(input)}, strides {list(input.stride())}); at least one dimension spans across "
                "two contiguous subspaces. Use .reshape(...) instead.") from None
    return apply(RESHAPE, input, shape=shape)


Tensor.view = view
__all__.append("view")


def _view_as(self, other):
    return view(self, tuple(other.shape))


def _reshape_as(self, other):
    return reshape(self, tuple(other.shape))


Tensor.view_as = _view_as
Tensor.reshape_as = _reshape_as


def _permute_infer(x, *, dims):
    if sorted(dims) != list(range(len(x.shape))):
        raise RuntimeError(f"permute: dims {list(dims)} must be a permutation of the {len(x.shape)} dimensions "
                           f"of {describe(x)}")
    return AVal(tuple(x.shape[d] for d in dims), x.dtype)


def _permute_vjp(c, g):
    dims = c.attrs["dims"]
    inv = [0] * len(dims)
    for i, d in enumerate(dims):
        inv[d] = i
    return (permute(g, tuple(inv)),)


PERMUTE = register("permute", infer=_permute_infer, impl=lambda x, *, dims: x.transpose(dims),
                   vjp=_permute_vjp, view=True, family="shape")


@api
def permute(input, *dims):
    """Reorder dimensions (a view).

    >>> import danlu as dl
    >>> dl.zeros(2, 3, 4).permute(2, 0, 1).shape
    danlu.Size([4, 2, 3])
    """
    dims = _shape_args(dims, "permute")
    nd = input.ndim
    if len(dims) != nd:
        raise RuntimeError(f"permute: number of dims don't match: got {len(dims)} dims {list(dims)} for "
                           f"{describe(input)}")
    dims = tuple(norm_dim("permute", d, nd) for d in dims)
    return apply(PERMUTE, input, dims=dims)


_export(permute, "permute")


@api
def transpose(input, dim0: int, dim1: int):
    """Swap two dimensions (a view).

    >>> import danlu as dl
    >>> dl.zeros(2, 3).transpose(0, 1).shape
    danlu.Size([3, 2])
    """
    nd = input.ndim
    if nd == 0:
        return _alias(input)
    d0, d1 = norm_dim("transpose", dim0, nd), norm_dim("transpose", dim1, nd)
    dims = list(range(nd))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return apply(PERMUTE, input, dims=tuple(dims))


_export(transpose, "transpose", "swapaxes", "swapdims")
swapaxes = swapdims = transpose
__all__ += ["swapaxes", "swapdims"]


@api
def t(input):
    """Transpose a tensor of at most 2 dimensions.

    >>> import danlu as dl
    >>> dl.zeros(2, 3).t().shape
    danlu.Size([3, 2])
    """
    if input.ndim > 2:
        raise RuntimeError(f"t: expects a tensor with <= 2 dimensions, but got {describe(input)}; use "
                           "transpose(dim0, dim1) or .mT")
    return transpose(input, 0, 1) if input.ndim == 2 else _alias(input)


_export(t, "t")
Tensor.T = property(lambda self: permute(self, *reversed(range(self.ndim))) if self.ndim >= 2 else _alias(self))
Tensor.mT = property(lambda self: transpose(self, -2, -1))
Tensor.H = Tensor.T
Tensor.mH = Tensor.mT


@api
def movedim(input, source, destination):
    """Move dimension(s) ``source`` to position(s) ``destination``.

    >>> import danlu as dl
    >>> dl.zeros(2, 3, 4).movedim(0, -1).shape
    danlu.Size([3, 4, 2])
    """
    nd = input.ndim
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({src} dims) should contain "
                           f"the same number of dims as destination ({dst} dims)")
    src = [norm_dim("movedim", d, nd) for d in src]
    dst = [norm_dim("movedim", d, nd) for d in dst]
    order = [d for d in range(nd) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return apply(PERMUTE, input, dims=tuple(order))


_export(movedim, "movedim", "moveaxis")
moveaxis = movedim
__all__.append("moveaxis")


def _expand_infer(x, *, shape):
    xs = tuple(x.shape)
    if len(shape) < len(xs):
        raise ShapeError(f"expand: the number of sizes provided ({len(shape)}) must be greater or equal to the "
                         f"number of dimensions in the tensor ({len(xs)}), for {describe(x)} -> {fmt_shape(shape)}")
    off = len(shape) - len(xs)
    for i, d in enumerate(xs):
        if d != shape[off + i] and d != 1:
            raise ShapeError(f"expand: the expanded size of the tensor ({shape[off + i]}) must match the existing "
                             f"size ({d}) at non-singleton dimension {off + i}. Target sizes: {list(shape)}. "
                             f"Tensor sizes: {list(xs)}")
    return AVal(shape, x.dtype)


EXPAND = register("expand", infer=_expand_infer, impl=lambda x, *, shape: np.broadcast_to(x, shape),
                  vjp=lambda c, g: (g,), view=True, family="shape")


@api
def expand(input, *sizes):
    """Broadcast to a larger shape without copying (-1 keeps a size).

    >>> import danlu as dl
    >>> dl.tensor([[1], [2]]).expand(2, 3)
    tensor([[1, 1, 1],
            [2, 2, 2]])
    """
    sizes = _shape_args(sizes, "expand")
    xs = tuple(input.shape)
    off = len(sizes) - len(xs)
    shape = tuple(xs[i - off] if s == -1 and i >= off else s for i, s in enumerate(sizes))
    if any(s < 0 for s in shape):
        raise RuntimeError(f"expand: -1 is not allowed in a leading, non-existing dimension: {list(sizes)}")
    if shape == xs:
        return _alias(input)
    return apply(EXPAND, input, shape=shape)


@api
def broadcast_to(input, shape):
    """``input.expand(shape)``.

    >>> import danlu as dl
    >>> dl.broadcast_to(dl.tensor([1, 2]), (2, 2)).shape
    danlu.Size([2, 2])
    """
    return expand(input, *_shape_args((shape,), "broadcast_to"))


_export(expand, "expand")
_export(broadcast_to, "broadcast_to")
Tensor.expand_as = lambda self, other: expand(self, *other.shape)  # noqa: E731


@api
def broadcast_tensors(*tensors):
    """Expand tensors to their common broadcast shape.

    >>> import danlu as dl
    >>> [t.shape for t in dl.broadcast_tensors(dl.zeros(2, 1), dl.zeros(3))]
    [danlu.Size([2, 3]), danlu.Size([2, 3])]
    """
    from ._util import broadcast_shapes

    shape = broadcast_shapes("broadcast_tensors", *(t.shape for t in tensors))
    return tuple(expand(t, *shape) for t in tensors)


_export(broadcast_tensors)


# == squeeze / unsqueeze / flatten ==================================================================

@api
def squeeze(input, dim=None):
    """Remove size-1 dimensions (all, or those in ``dim`` that are size 1).

    >>> import danlu as dl
    >>> dl.zeros(1, 2, 1).squeeze().shape, dl.zeros(1, 2).squeeze(1).shape
    (danlu.Size([2]), danlu.Size([1, 2]))
    """
    shape = tuple(input.shape)
    if dim is None:
        new = tuple(s for s in shape if s != 1)
    else:
        dims = {norm_dim("squeeze", d, len(shape)) for d in ((dim,) if isinstance(dim, int) else dim)}
        new = tuple(s for i, s in enumerate(shape) if not (i in dims and s == 1))
    return apply(RESHAPE, input, shape=new)


@api
def unsqueeze(input, dim: int):
    """Insert a size-1 dimension at ``dim``.

    >>> import danlu as dl
    >>> dl.zeros(2).unsqueeze(0).shape
    danlu.Size([1, 2])
    """
    shape = list(input.shape)
    d = norm_dim("unsqueeze", dim, len(shape) + 1)
    shape.insert(d, 1)
    return apply(RESHAPE, input, shape=tuple(shape))


@api
def flatten(input, start_dim: int = 0, end_dim: int = -1):
    """Merge dimensions ``start_dim..end_dim`` into one.

    >>> import danlu as dl
    >>> dl.zeros(2, 3, 4).flatten(1).shape
    danlu.Size([2, 12])
    """
    shape = tuple(input.shape)
    if not shape:
        return apply(RESHAPE, input, shape=(1,))
    s, e = norm_dim("flatten", start_dim, len(shape)), norm_dim("flatten", end_dim, len(shape))
    if s > e:
        raise RuntimeError(f"flatten: start_dim ({start_dim}) cannot come after end_dim ({end_dim})")
    new = shape[:s] + (_numel(shape[s:e + 1]),) + shape[e + 1:]
    return apply(RESHAPE, input, shape=new)


@api
def unflatten(input, dim: int, sizes):
    """Split dimension ``dim`` into ``sizes`` (one may be -1).

    >>> import danlu as dl
    >>> dl.zeros(2, 12).unflatten(1, (3, -1)).shape
    danlu.Size([2, 3, 4])
    """
    shape = list(input.shape)
    d = norm_dim("unflatten", dim, len(shape))
    sizes = resolve_shape("unflatten", tuple(sizes), (shape[d],))
    return apply(RESHAPE, input, shape=tuple(shape[:d]) + sizes + tuple(shape[d + 1:]))


@api
def ravel(input):
    """Flatten to 1-D.

    >>> import danlu as dl
    >>> dl.zeros(2, 2).ravel().shape
    danlu.Size([4])
    """
    return flatten(input)


for _f in (squeeze, unsqueeze, flatten, unflatten, ravel):
    _export(_f, _f.__name__)


# == clone / contiguous =============================================================================

def _clone_impl(x, *, contiguous=False):
    # clone keeps a dense layout's strides (PyTorch's preserve_format); contiguous() must give row-major.
    return np.array(x, copy=True, order="C" if contiguous else "K")


CLONE = register("clone", infer=lambda x, *, contiguous=False: AVal(x.shape, x.dtype), impl=_clone_impl,
                 vjp=lambda c, g: (g,), family="shape")


@api
def clone(input, *, memory_format=None):
    """A copy that owns its data (differentiable).

    >>> import danlu as dl
    >>> a = dl.zeros(2); b = a.clone(); b[0] = 1; a
    tensor([0., 0.])
    """
    return apply(CLONE, input)


def _contiguous(self, memory_format=None):
    d = self._data
    if isinstance(d, np.ndarray) and d.flags.c_contiguous:
        return self
    return apply(CLONE, self, contiguous=True)


_export(clone, "clone")
Tensor.contiguous = _contiguous


# == cat / stack / split ============================================================================

def _cat_infer(*xs, dim):
    if not xs:
        raise RuntimeError("cat: expected a non-empty list of Tensors")
    ref = next((x for x in xs if not (len(x.shape) == 1 and x.shape[0] == 0)), xs[0])
    nd = len(ref.shape)
    d = norm_dim("cat", dim, nd)
    total = 0
    for i, x in enumerate(xs):
        if len(x.shape) == 1 and x.shape[0] == 0 and nd != 1:
            continue  # PyTorch skips legacy empty 1-D tensors
        if len(x.shape) != nd:
            raise ShapeError(f"cat: tensors must have the same number of dimensions: got {nd} and "
                             f"{len(x.shape)} (tensor {i}: {describe(x)}); unsqueeze one of them")
        for k in range(nd):
            if k != d and x.shape[k] != ref.shape[k]:
                raise ShapeError(f"cat: sizes of tensors must match except in dimension {d}. Expected size "
                                 f"{ref.shape[k]} but got size {x.shape[k]} for tensor number {i} "
                                 f"({describe(x)}) in dimension {k}")
        total += x.shape[d]
    out = list(ref.shape)
    out[d] = total
    return AVal(tuple(out), xs[0].dtype)


def _cat_impl(*xs, dim):
    nd = max(x.ndim for x in xs)
    xs = [x for x in xs if not (x.ndim == 1 and x.shape[0] == 0 and nd != 1)] or list(xs[:1])
    return np.concatenate(xs, axis=dim % max(xs[0].ndim, 1))


def _cat_vjp(c, g):
    d = c.attrs["dim"]
    shapes = [m[0] for m in c.in_meta]
    nd = len(g.shape)
    d = d % nd
    sizes = tuple(s[d] if len(s) == nd else 0 for s in shapes)
    parts = split(g, list(sizes), d)
    # Legacy empty 1-D inputs were skipped; like PyTorch, they still get an (empty) gradient.
    return tuple(p if len(s) == nd else _empty_grad(c, i, g) for i, (p, s) in enumerate(zip(parts, shapes)))


def _empty_grad(c, i, g):
    if c.edges[i] is None:
        return None
    from .creation import zeros

    return zeros(c.in_meta[i][0], dtype=g.dtype)


CAT = register("cat", infer=_cat_infer, impl=_cat_impl, vjp=_cat_vjp, promote=promote_group(), family="shape")


@api
def cat(tensors, dim: int = 0):
    """Concatenate tensors along an existing dimension (dtypes promote, as PyTorch).

    >>> import danlu as dl
    >>> dl.cat([dl.zeros(1, 2), dl.ones(2, 2)]).shape
    danlu.Size([3, 2])
    """
    tensors = tuple(tensors)
    if not tensors:
        raise RuntimeError("cat: expected a non-empty list of Tensors")
    return apply(CAT, *tensors, dim=dim)


concat = concatenate = cat
_export(cat)
__all__ += ["concat", "concatenate"]


@api
def stack(tensors, dim: int = 0):
    """Join tensors of equal shape along a new dimension.

    >>> import danlu as dl
    >>> dl.stack([dl.zeros(2), dl.ones(2)], dim=1).shape
    danlu.Size([2, 2])
    """
    tensors = tuple(tensors)
    if not tensors:
        raise RuntimeError("stack: expected a non-empty list of Tensors")
    s0 = tuple(tensors[0].shape)
    for i, x in enumerate(tensors):
        if tuple(x.shape) != s0:
            raise ShapeError(f"stack: expects each tensor to be equal size, but got {list(s0)} at entry 0 and "
                             f"{list(x.shape)} at entry {i}")
    d = norm_dim("stack", dim, len(s0) + 1)
    return cat([unsqueeze(x, d) for x in tensors], d)


@api
def hstack(tensors):
    """Stack horizontally (cat along dim 1, or 0 for 1-D).

    >>> import danlu as dl
    >>> dl.hstack([dl.zeros(2), dl.ones(2)]).shape
    danlu.Size([4])
    """
    tensors = [atleast_1d(x) for x in tensors]
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


@api
def vstack(tensors):
    """Stack vertically (rows).

    >>> import danlu as dl
    >>> dl.vstack([dl.zeros(2), dl.ones(2)]).shape
    danlu.Size([2, 2])
    """
    return cat([atleast_2d(x) for x in tensors], 0)


def atleast_1d(x):
    return reshape(x, 1) if x.ndim == 0 else x


def atleast_2d(x):
    return reshape(x, 1, -1) if x.ndim < 2 else x


for _f in (stack, hstack, vstack):
    _export(_f)


def _split_infer(x, *, sizes, dim):
    d = norm_dim("split", dim, len(x.shape))
    if sum(sizes) != x.shape[d]:
        raise ShapeError(f"split: split sizes {list(sizes)} must sum to the size {x.shape[d]} of dimension {d} "
                         f"of {describe(x)}")
    outs = []
    for s in sizes:
        sh = list(x.shape)
        sh[d] = s
        outs.append(AVal(tuple(sh), x.dtype))
    return tuple(outs)


def _split_impl(x, *, sizes, dim):
    idx = np.cumsum(sizes)[:-1]
    return tuple(np.split(x, idx, axis=dim))


SPLIT = register("split", infer=_split_infer, impl=_split_impl, vjp=lambda c, *gs: (cat(gs, c.attrs["dim"]),),
                 view=True, multi_out=True, family="shape")


@api
def split(tensor, split_size_or_sections, dim: int = 0):
    """Split into chunks of ``split_size`` (the last may be smaller) or of the given sizes (views).

    >>> import danlu as dl
    >>> [p.shape[0] for p in dl.arange(5).split(2)]
    [2, 2, 1]
    """
    d = norm_dim("split", dim, tensor.ndim)
    n = tensor.shape[d]
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        if s <= 0 and n:
            raise RuntimeError(f"split: split_size must be positive, got {s}")
        sizes = [s] * (n // s) + ([n % s] if n % s else []) if s else [0]
        if not sizes:
            sizes = [0]
    else:
        sizes = [int(v) for v in split_size_or_sections]
    return apply(SPLIT, tensor, sizes=tuple(sizes), dim=d)


@api
def chunk(input, chunks: int, dim: int = 0):
    """Split into ``chunks`` pieces of size ``ceil(n / chunks)`` (fewer if they run out).

    >>> import danlu as dl
    >>> [p.shape[0] for p in dl.arange(5).chunk(3)]
    [2, 2, 1]
    """
    if chunks <= 0:
        raise RuntimeError(f"chunk: chunk expects `chunks` to be greater than 0, got: {chunks}")
    d = norm_dim("chunk", dim, input.ndim)
    n = input.shape[d]
    if n == 0:  # PyTorch returns `chunks` empty pieces here
        return apply(SPLIT, input, sizes=(0,) * chunks, dim=d)
    return split(input, -(-n // chunks), d)


@api
def tensor_split(input, indices_or_sections, dim: int = 0):
    """Split into ``n`` nearly equal parts, or at the given indices, as ``torch.tensor_split``.

    >>> import danlu as dl
    >>> [p.shape[0] for p in dl.arange(7).tensor_split(3)]
    [3, 2, 2]
    """
    d = norm_dim("tensor_split", dim, input.ndim)
    n = input.shape[d]
    ios = indices_or_sections
    if isinstance(ios, Tensor):
        if ios.dtype.category != 1 or ios.ndim > 1:
            raise RuntimeError(f"tensor_split: expected indices_or_sections to be a 0-d or 1-d integer tensor, "
                               f"got {describe(ios)}")
        ios = int(ios) if ios.ndim == 0 else ios.tolist()
    if isinstance(ios, (int, np.integer)):
        k = int(ios)
        if k <= 0:
            raise RuntimeError(f"tensor_split: number of sections must be larger than 0, got {k}")
        sizes = [n // k + 1] * (n % k) + [n // k] * (k - n % k)
        return apply(SPLIT, input, sizes=tuple(sizes), dim=d)
    # Each piece is the Python slice [a:b] of consecutive bounds (negative ones count from the end).
    bounds = [0] + [min(max(int(i) + n if int(i) < 0 else int(i), 0), n) for i in ios] + [n]
    if all(a <= b for a, b in zip(bounds[:-1], bounds[1:])):
        return apply(SPLIT, input, sizes=tuple(b - a for a, b in zip(bounds[:-1], bounds[1:])), dim=d)
    from .index import narrow  # unordered indices: the pieces overlap, so they are slices, not a split

    return tuple(narrow(input, d, a, max(0, b - a)) for a, b in zip(bounds[:-1], bounds[1:]))


@api
def unbind(input, dim: int = 0):
    """Remove dimension ``dim``, returning the slices along it.

    >>> import danlu as dl
    >>> [t.tolist() for t in dl.tensor([[1, 2], [3, 4]]).unbind(1)]
    [[1, 3], [2, 4]]
    """
    d = norm_dim("unbind", dim, input.ndim)
    if input.shape[d] == 0:
        return ()
    parts = apply(SPLIT, input, sizes=(1,) * input.shape[d], dim=d)
    return tuple(squeeze(p, d) for p in parts)


for _f in (split, chunk, tensor_split, unbind):
    _export(_f, _f.__name__)
Tensor.__iter__ = lambda self: iter(unbind(self, 0)) if self.ndim else _iter_0d()  # noqa: E731


def _iter_0d():
    raise TypeError("iteration over a 0-d tensor")


# == flip / roll / tril / triu ======================================================================

FLIP = register("flip", infer=lambda x, *, dims: AVal(x.shape, x.dtype),
                impl=lambda x, *, dims: np.flip(x, dims).copy(), vjp=lambda c, g: (flip(g, c.attrs["dims"]),),
                family="shape")


@api
def flip(input, dims):
    """Reverse the order of elements along ``dims`` (a copy, as PyTorch).

    >>> import danlu as dl
    >>> dl.arange(3).flip(0)
    tensor([2, 1, 0])
    """
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    norm = [norm_dim("flip", d, input.ndim) for d in dims]
    if len(set(norm)) != len(norm):
        raise RuntimeError(f"flip: dims {list(dims)} has a dim appearing multiple times")
    # A 0-d tensor accepts dim 0 / -1 (as PyTorch) but has no axis to flip.
    return apply(FLIP, input, dims=tuple(sorted(norm)) if input.ndim else ())


def _flip_method(self, *dims):
    return flip(self, dims[0] if len(dims) == 1 else dims)


_export(flip)
Tensor.flip = _flip_method
fliplr = lambda x: flip(x, 1)  # noqa: E731
flipud = lambda x: flip(x, 0)  # noqa: E731
__all__ += ["fliplr", "flipud"]


def _roll_vjp(c, g):
    shifts = tuple(-s for s in c.attrs["shifts"])
    return (apply(ROLL, g, shifts=shifts, dims=c.attrs["dims"]),)


def _roll_impl(x, *, shifts, dims):
    if dims is None:
        return np.roll(x.reshape(-1), shifts[0]).reshape(x.shape)
    return np.roll(x, shifts, dims)


ROLL = register("roll", infer=lambda x, **_: AVal(x.shape, x.dtype), impl=_roll_impl, vjp=_roll_vjp,
                family="shape")


@api
def roll(input, shifts, dims=None):
    """Shift elements cyclically along ``dims`` (or the flattened tensor).

    >>> import danlu as dl
    >>> dl.arange(4).roll(1)
    tensor([3, 0, 1, 2])
    """
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError("roll: without dims, shifts must be a single int")
        return apply(ROLL, input, shifts=shifts, dims=None)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if input.ndim == 0 and dims:
        raise IndexError(f"roll: dimension specified as {dims[0]} but tensor has no dimensions ({describe(input)})")
    if len(dims) != len(shifts):
        raise RuntimeError(f"roll: shifts and dimensions must align. shifts: {len(shifts)}, dims: {len(dims)}")
    dims = tuple(norm_dim("roll", d, input.ndim) for d in dims)
    return apply(ROLL, input, shifts=shifts, dims=dims)


_export(roll, "roll")


def _tri_infer(name):
    def infer(x, *, diagonal):
        if len(x.shape) < 2:
            raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions, got {describe(x)}")
        return AVal(x.shape, x.dtype)
    return infer


TRIL = register("tril", infer=_tri_infer("tril"), impl=lambda x, *, diagonal: np.tril(x, diagonal),
                vjp=lambda c, g: (tril(g, c.attrs["diagonal"]),), family="shape")
TRIU = register("triu", infer=_tri_infer("triu"), impl=lambda x, *, diagonal: np.triu(x, diagonal),
                vjp=lambda c, g: (triu(g, c.attrs["diagonal"]),), family="shape")


@api
def tril(input, diagonal: int = 0):
    """Lower triangle (elements above ``diagonal`` set to zero).

    >>> import danlu as dl
    >>> dl.ones(2, 2).tril()
    tensor([[1., 0.],
            [1., 1.]])
    """
    return apply(TRIL, input, diagonal=int(diagonal))


@api
def triu(input, diagonal: int = 0):
    """Upper triangle (elements below ``diagonal`` set to zero).

    >>> import danlu as dl
    >>> dl.ones(2, 2).triu(1)
    tensor([[0., 1.],
            [0., 0.]])
    """
    return apply(TRIU, input, diagonal=int(diagonal))


_export(tril, "tril")
_export(triu, "triu")


# == repeat / tile ==================================================================================

@api
def repeat(input, *sizes):
    """Tile the tensor ``sizes`` times along each dimension (a copy), as ``Tensor.repeat``.

    >>> import danlu as dl
    >>> dl.tensor([1, 2]).repeat(2, 2)
    tensor([[1, 2, 1, 2],
            [1, 2, 1, 2]])
    """
    sizes = _shape_args(sizes, "repeat")
    if len(sizes) < input.ndim:
        raise RuntimeError(f"repeat: number of repeat dims ({len(sizes)}) can not be smaller than number of "
                           f"tensor dims ({input.ndim})")
    shape = (1,) * (len(sizes) - input.ndim) + tuple(input.shape)
    x = apply(RESHAPE, input, shape=tuple(v for s in shape for v in (1, s)))
    x = expand(x, *[v for r, s in zip(sizes, shape) for v in (r, s)])
    return reshape(x, *[r * s for r, s in zip(sizes, shape)]).contiguous()


@api
def tile(input, dims):
    """Like ``repeat``, padding ``dims`` with leading 1s, as ``torch.tile``.

    >>> import danlu as dl
    >>> dl.tensor([[1, 2]]).tile((2,)).shape
    danlu.Size([1, 4])
    """
    dims = tuple(dims) if not isinstance(dims, int) else (dims,)
    dims = (1,) * (input.ndim - len(dims)) + dims
    return repeat(input, *dims)


_export(repeat, "repeat")
_export(tile, "tile")


@api
def repeat_interleave(input, repeats, dim=None):
    """Repeat each element ``repeats`` times (an int) along ``dim`` (flattened when None).

    >>> import danlu as dl
    >>> dl.tensor([1, 2]).repeat_interleave(2)
    tensor([1, 1, 2, 2])
    """
    if not isinstance(repeats, int):
        from .index import index_select
        from ..core.creation import tensor as _tensor

        reps = repeats.tolist() if isinstance(repeats, Tensor) else list(repeats)
        x = flatten(input) if dim is None else input
        d = 0 if dim is None else norm_dim("repeat_interleave", dim, x.ndim)
        idx = _tensor(np.repeat(np.arange(len(reps)), reps))
        return index_select(x, d, idx)
    if dim is None:
        input, dim = flatten(input), 0
    d = norm_dim("repeat_interleave", dim, input.ndim)
    x = unsqueeze(input, d + 1)
    shape = list(x.shape)
    shape[d + 1] = repeats
    x = expand(x, *shape)
    return flatten(x, d, d + 1).contiguous()


_export(repeat_interleave, "repeat_interleave")


# == constant pad ===================================================================================

def _pad_shape(shape, pad):
    out = list(shape)
    for i in range(len(pad) // 2):
        d = len(shape) - 1 - i
        out[d] = shape[d] + pad[2 * i] + pad[2 * i + 1]
        if out[d] < 0:
            raise RuntimeError(f"pad: the input size {shape[d]} at dimension {d}, plus negative padding "
                               f"{pad[2 * i]} and {pad[2 * i + 1]}, resulted in a negative output size")
    return tuple(out)


def _pad_infer(x, *, pad, value):
    if len(pad) % 2 or len(pad) // 2 > len(x.shape):
        raise RuntimeError(f"pad: padding length must be divisible by 2 and at most twice the number of "
                           f"dimensions of the input; got {len(pad)} for {describe(x)}")
    return AVal(_pad_shape(tuple(x.shape), pad), x.dtype)


def _pad_impl(x, *, pad, value):
    shape = _pad_shape(x.shape, pad)
    out = np.full(shape, value, dtype=x.dtype)
    src = [slice(None)] * x.ndim
    dst = [slice(None)] * x.ndim
    for i in range(len(pad) // 2):
        d = x.ndim - 1 - i
        lo, hi = pad[2 * i], pad[2 * i + 1]
        src[d] = slice(max(0, -lo), x.shape[d] - max(0, -hi))
        dst[d] = slice(max(0, lo), shape[d] - max(0, hi))
    out[tuple(dst)] = x[tuple(src)]
    return out


PAD = register("pad", infer=_pad_infer, impl=_pad_impl,
               vjp=lambda c, g: (apply(PAD, g, pad=tuple(-p for p in c.attrs["pad"]), value=0),),
               family="shape")


def pad_constant(input, pad, value=0.0):
    return apply(PAD, input, pad=tuple(int(p) for p in pad), value=value)


# == algebraic simplification rules (read by danlu.graph's simplification pass) =====================

def _same_aval(out, x):
    return hasattr(x, "shape") and not isinstance(x, Tensor) and tuple(out.shape) == tuple(x.shape) \
        and out.dtype == x.dtype


def _reshape_rule(ins, attrs, out, producer):
    x = ins[0]
    if _same_aval(out, x):
        return x  # reshape to its own shape
    p = producer(x)
    if p is not None and p.op is RESHAPE:  # reshape(reshape(y)) is one reshape of y
        return [(RESHAPE, (p.inputs[0],), dict(attrs))]
    return None


def _expand_rule(ins, attrs, out, producer):
    return ins[0] if _same_aval(out, ins[0]) else None


def _permute_rule(ins, attrs, out, producer):
    x = ins[0]
    dims = tuple(attrs["dims"])
    p = producer(x)
    if p is not None and p.op is PERMUTE:  # two transposes compose into one (or none)
        inner = tuple(p.attrs["dims"])
        dims = tuple(inner[d] for d in dims)
        x = p.inputs[0]
    if dims == tuple(range(len(dims))):
        return x
    if x is not ins[0]:
        return [(PERMUTE, (x,), {"dims": dims})]
    return None


RESHAPE.extra["simplify"] = _reshape_rule
EXPAND.extra["simplify"] = _expand_rule
PERMUTE.extra["simplify"] = _permute_rule


# == view inverses: scatter a new view value back into its parent (in-place on views under autograd) ==

def _reshape_inverse(parent, child, attrs, idx):
    return apply(RESHAPE, child, shape=tuple(parent.shape))


def _permute_inverse(parent, child, attrs, idx):
    dims = attrs["dims"]
    inv = [0] * len(dims)
    for i, d in enumerate(dims):
        inv[d] = i
    return apply(PERMUTE, child, dims=tuple(inv))


def _split_inverse(parent, child, attrs, idx):
    from .index import SLICE_SCATTER

    dim, sizes = attrs["dim"], attrs["sizes"]
    start = sum(sizes[:idx])
    spec = tuple(("s", 0, s, 1) for s in parent.shape[:dim]) + (("s", start, start + sizes[idx], 1),)
    return apply(SLICE_SCATTER, parent, child, spec=spec)


RESHAPE.extra["view_inverse"] = _reshape_inverse
PERMUTE.extra["view_inverse"] = _permute_inverse
SPLIT.extra["view_inverse"] = _split_inverse
