"""Data types and PyTorch's type-promotion rules.

A :class:`DType` is a small immutable object (``danlu.float32``); tensors carry one. Promotion
follows PyTorch: categories bool < integer < floating, and within one operation dimensioned
tensors outrank zero-dimensional tensors, which outrank Python scalars, unless a lower-priority
operand belongs to a higher category.
"""

from __future__ import annotations

import builtins

import numpy as np

__all__ = [
    "DType", "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool_",
    "half", "float", "double", "short", "int", "long", "get_default_dtype", "set_default_dtype",
    "promote_types", "result_type", "can_cast", "as_dtype", "is_floating_point", "finfo", "iinfo",
]


class DType:
    """A tensor element type.

    >>> import danlu as dl
    >>> dl.float32, dl.float32.itemsize, dl.float32.is_floating_point
    (danlu.float32, 4, True)
    """

    __slots__ = ("name", "np", "itemsize", "is_floating_point", "is_signed", "category", "__weakref__")

    def __init__(self, name: str, np_dtype: np.dtype, category: int):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.itemsize = self.np.itemsize
        self.is_floating_point = category == 2
        self.is_signed = self.np.kind in "if"
        self.category = category  # 0 bool, 1 integer, 2 floating

    @property
    def is_complex(self) -> bool:
        return False

    def to_real(self) -> DType:
        return self

    def __repr__(self) -> str:
        return f"danlu.{self.name}"

    def __reduce__(self):
        return (as_dtype, (self.name,))


float16 = DType("float16", np.float16, 2)
float32 = DType("float32", np.float32, 2)
float64 = DType("float64", np.float64, 2)
int8 = DType("int8", np.int8, 1)
int16 = DType("int16", np.int16, 1)
int32 = DType("int32", np.int32, 1)
int64 = DType("int64", np.int64, 1)
uint8 = DType("uint8", np.uint8, 1)
bool_ = DType("bool", np.bool_, 0)

half, float, double = float16, float32, float64  # noqa: A001 - PyTorch's aliases
short, int, long = int16, int32, int64  # noqa: A001

ALL = (float16, float32, float64, int8, int16, int32, int64, uint8, bool_)
FLOATING = (float16, float32, float64)
INTEGRAL = (int8, int16, int32, int64, uint8)

_FROM_NP = {d.np: d for d in ALL}
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update({"half": float16, "float": float32, "double": float64, "short": int16,
                 "int": int32, "long": int64, "bool_": bool_})

_default = [float32]


def get_default_dtype() -> DType:
    """The floating dtype that new float tensors and Python floats get (float32 unless changed).

    >>> import danlu as dl
    >>> dl.get_default_dtype()
    danlu.float32
    """
    return _default[0]


def set_default_dtype(dtype: DType) -> None:
    """Set the default floating dtype (float16, float32 or float64), as ``torch.set_default_dtype``.

    >>> import danlu as dl
    >>> dl.set_default_dtype(dl.float64); dl.tensor([1.0]).dtype
    danlu.float64
    >>> dl.set_default_dtype(dl.float32)
    """
    dtype = as_dtype(dtype)
    if not dtype.is_floating_point:
        raise TypeError(f"set_default_dtype: only floating dtypes are allowed, got {dtype}; "
                        "pass danlu.float16, danlu.float32 or danlu.float64")
    if dtype is _default[0]:
        return
    _default[0] = dtype
    _result_cache.clear()
    # Dispatch caches each op's promotion per input signature, and a signature with a Python float
    # or an integer input of a float op resolves to the default dtype: those entries are now stale.
    from .registry import REGISTRY

    for op in REGISTRY.values():
        op.cache.clear()


def as_dtype(d) -> DType:
    """Turn a DType, NumPy dtype, Python type or name into a :class:`DType`."""
    if isinstance(d, DType):
        return d
    if d is None:
        return _default[0]
    if isinstance(d, str):
        try:
            return _BY_NAME[d]
        except KeyError:
            raise TypeError(f"unknown dtype name {d!r}; expected one of {sorted(_BY_NAME)}") from None
    if d is _pyfloat:
        return _default[0]
    if d is _pyint:
        return int64
    if d is _pybool:
        return bool_
    try:
        return _FROM_NP[np.dtype(d)]
    except (KeyError, TypeError):
        raise TypeError(f"danlu does not support dtype {d!r}; supported: "
                        f"{', '.join(x.name for x in ALL)}") from None


_pyfloat, _pyint, _pybool = (1.0).__class__, (1).__class__, True.__class__


def from_numpy_dtype(npd: np.dtype) -> DType:
    try:
        return _FROM_NP[npd]
    except KeyError:
        raise TypeError(f"NumPy dtype {npd} has no danlu equivalent; supported: "
                        f"{', '.join(x.name for x in ALL)}") from None


def is_floating_point(x) -> bool:
    return x.dtype.is_floating_point


def promote_types(a: DType, b: DType) -> DType:
    """PyTorch's ``promote_types``: the smallest dtype both can be converted to.

    Unlike NumPy, an integer and a float promote to that float (int32 + float16 -> float16).

    >>> import danlu as dl
    >>> dl.promote_types(dl.int32, dl.float16), dl.promote_types(dl.uint8, dl.int8)
    (danlu.float16, danlu.int16)
    """
    if a is b:
        return a
    if a.category != b.category:
        hi, lo = (a, b) if a.category > b.category else (b, a)
        if hi.category == 2 or lo.category == 0:
            return hi
        return hi  # integer vs bool
    if a.category == 0:
        return a
    return _FROM_NP[np.promote_types(a.np, b.np)]


def _combine_categories(higher: DType | None, lower: DType | None) -> DType | None:
    # c10's combine_categories: a lower-priority operand only counts when its category is higher.
    if higher is None:
        return lower
    if lower is None:
        return higher
    if higher.category == 2:
        return higher
    if higher is bool_ or lower.category == 2:
        return promote_types(higher, lower)
    return higher


_result_cache: dict = {}


def _operand_class(x):
    """(priority, dtype): 2 for tensors with dims, 1 for 0-d tensors, 0 for Python scalars."""
    dt = getattr(x, "dtype", None)
    if isinstance(dt, DType):
        return (2 if x.ndim else 1), dt
    if isinstance(x, bool):
        return 0, bool_
    if isinstance(x, (_pyint, np.integer)):
        return 0, int64
    if isinstance(x, (_pyfloat, np.floating)):
        return 0, _default[0]
    raise TypeError(f"expected a Tensor or a Python number, got {type(x).__name__}")


def result_type(*operands) -> DType:
    """The dtype PyTorch would compute ``operands`` in (tensors and Python scalars).

    >>> import danlu as dl
    >>> dl.result_type(dl.ones(2, dtype=dl.int32), 2.5), dl.result_type(dl.ones(2), dl.tensor(1.0, dtype=dl.float64))
    (danlu.float32, danlu.float32)
    """
    dims = zero = wrapped = None
    for x in operands:
        prio, dt = _operand_class(x)
        if prio == 2:
            dims = dt if dims is None else promote_types(dims, dt)
        elif prio == 1:
            zero = dt if zero is None else promote_types(zero, dt)
        else:
            wrapped = dt if wrapped is None else promote_types(wrapped, dt)
    out = _combine_categories(dims, _combine_categories(zero, wrapped))
    if out is None:
        raise TypeError("result_type needs at least one operand")
    return out


def can_cast(from_: DType, to: DType) -> bool:
    """PyTorch's same-kind rule for writing a result into an existing tensor (in-place ops)."""
    return from_.category <= to.category


class finfo:
    """Machine limits of a floating dtype, as ``torch.finfo``.

    >>> import danlu as dl
    >>> dl.finfo(dl.float32).eps
    1.1920928955078125e-07
    """

    def __init__(self, dtype: DType | None = None):
        dtype = as_dtype(dtype)
        if not dtype.is_floating_point:
            raise TypeError(f"finfo: {dtype} is not a floating dtype; use danlu.iinfo for integers")
        fi = np.finfo(dtype.np)
        pyfloat = builtins.float  # the module-level name ``float`` is danlu.float32
        self.dtype, self.bits = dtype, fi.bits
        self.eps, self.max, self.min = pyfloat(fi.eps), pyfloat(fi.max), pyfloat(fi.min)
        self.tiny = self.smallest_normal = pyfloat(fi.tiny)
        self.resolution = 10.0 ** -fi.precision  # exact, as torch (NumPy's is rounded to the dtype)


class iinfo:
    """Limits of an integer dtype, as ``torch.iinfo``.

    >>> import danlu as dl
    >>> dl.iinfo(dl.int8).max
    127
    """

    def __init__(self, dtype: DType):
        dtype = as_dtype(dtype)
        if dtype.category != 1:
            raise TypeError(f"iinfo: {dtype} is not an integer dtype; use danlu.finfo for floats")
        ii = np.iinfo(dtype.np)
        pyint = builtins.int  # the module-level name ``int`` is danlu.int32
        self.dtype, self.bits, self.max, self.min = dtype, ii.bits, pyint(ii.max), pyint(ii.min)
