"""Shared shape/dtype rules and promotion policies used by the op families."""

from __future__ import annotations

from ..core import dtypes as _dt
from ..core.errors import DTypeError, ShapeError, describe, fmt_shape
from ..core.registry import AVal
from ..core.tensor import Tensor

__all__ = ["broadcast_shapes", "promote_group", "promote_float", "same_as", "norm_dim", "norm_dims",
           "aval_dtype", "is_tensor_like"]


def aval_dtype(x) -> _dt.DType:
    """dtype of a Tensor/AVal, or the weak dtype of a Python scalar."""
    d = getattr(x, "dtype", None)
    if d is not None:
        return d
    return _dt.result_type(x)


def shape_of(x) -> tuple:
    return tuple(getattr(x, "shape", ()))


def is_tensor_like(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def broadcast_shapes(opname: str, *shapes) -> tuple:
    """NumPy/PyTorch broadcasting, with an error that names the op and the mismatching dimension."""
    shapes = [tuple(s) for s in shapes]
    nd = max((len(s) for s in shapes), default=0)
    out = [1] * nd
    for s in shapes:
        off = nd - len(s)
        for i, d in enumerate(s):
            j = off + i
            o = out[j]
            if o == 1:
                out[j] = d
            elif d != 1 and d != o:
                desc = " and ".join(fmt_shape(x) for x in shapes)
                raise ShapeError(
                    f"{opname}: shapes {desc} cannot be broadcast together: at dimension {j - nd} the sizes "
                    f"are {o} and {d} (each must match or be 1). Reshape or unsqueeze an input so that "
                    "trailing dimensions line up.")
    return tuple(out)


def promote_group(group=None, to_float: bool = False, allow_bool: bool = True, opname: str = ""):
    """A promotion policy: the ``group`` inputs are cast to their PyTorch result type."""

    def promote(args):
        idx = range(len(args)) if group is None else [i for i in group if i < len(args)]
        grp = [args[i] for i in idx]
        dt = _dt.result_type(*grp)
        if to_float and not dt.is_floating_point:
            dt = _dt.get_default_dtype()
        if not allow_bool and dt is _dt.bool_:
            raise DTypeError(f"{opname}: not supported for bool tensors ({', '.join(describe(a) for a in grp)}); "
                             "convert with .int() or .float() first, or use the logical_* ops")
        any_tensor = any(isinstance(a, Tensor) or hasattr(a, "shape") for a in grp)
        casts = [None] * len(args)
        for i in idx:
            a = args[i]
            if hasattr(a, "shape"):
                if a.dtype is not dt:
                    casts[i] = dt
            elif not any_tensor:
                casts[i] = dt
        return casts

    return promote


def promote_float(args):
    """Unary float ops (exp, sin, ...): integer and bool inputs compute in the default float dtype."""
    a = args[0]
    if not a.dtype.is_floating_point:
        return (_dt.get_default_dtype(),) + (None,) * (len(args) - 1)
    return None


def same_as(x, **_):
    return AVal(x.shape, x.dtype)


def norm_dim(opname: str, dim: int, ndim: int) -> int:
    n = max(ndim, 1)
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{opname}: dim must be an int, got {type(dim).__name__}")
    if not -n <= dim < n:
        raise IndexError(f"{opname}: dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim % n if ndim else 0


def norm_dims(opname: str, dim, ndim: int) -> tuple:
    """None -> all dims; int or sequence -> sorted tuple of non-negative dims (no repeats)."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    out = tuple(norm_dim(opname, d, ndim) for d in dim)
    if len(set(out)) != len(out):
        raise RuntimeError(f"{opname}: dim {list(dim)} appears multiple times in the list of dims")
    return tuple(sorted(out))
