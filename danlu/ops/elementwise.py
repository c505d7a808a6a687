# ruff: noqa: F821 - the public functions (exp, sin, ...) are generated from the tables below
"""Elementwise primitives: unary math, binary arithmetic with broadcasting, comparisons, logic,
``where`` and ``clamp``. Each entry's VJP is written with danlu ops, so it differentiates again."""

from __future__ import annotations

import math

import numpy as np

from ..core import dtypes as _dt
from ..core.dispatch import CONVERT, apply, apply_inplace
from ..core.errors import DTypeError, api, describe, reraise_filtered
from ..core.registry import AVal, get_op, register
from ..core.tensor import Tensor, tensor_method
from ._public import binary_fn, exporter, inplace_method, unary_fn
from ._util import broadcast_shapes, promote_float, promote_group, same_as, shape_of

__all__ = []  # filled by _export

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_2_SQRTPI = 2.0 / math.sqrt(math.pi)


_export = exporter(globals(), __all__)


# == unary ==========================================================================================

def _no_bool(name):
    def promote(args):
        a = args[0]
        if a.dtype is _dt.bool_:
            raise DTypeError(f"{name}: not supported for bool tensors ({describe(a)}); convert with .int() "
                             "or .float() first" + (", or use ~x / logical_not() to invert a mask"
                                                    if name == "neg" else ""))
        return None
    return promote


def _zero_grad(ctx, g):
    return (zeros_like(g),)


# name -> (kernel, vjp, promote, save_in, save_out, example, result)
_UNARY = {
    "neg": (np.negative, lambda c, g: (-g,), _no_bool("neg"), (), False,
            "dl.neg(dl.tensor([1.0, -2.0]))", "tensor([-1.,  2.])"),
    "abs": (np.abs, lambda c, g: (g * sign(c.inputs[0]),), None, (0,), False,
            "dl.abs(dl.tensor([-1.5, 2.0]))", "tensor([1.5000, 2.0000])"),
    "exp": (np.exp, lambda c, g: (g * c.out,), promote_float, (), True,
            "dl.exp(dl.tensor([0.0, 1.0]))", "tensor([1.0000, 2.7183])"),
    "exp2": (np.exp2, lambda c, g: (g * c.out * _LN2,), promote_float, (), True,
             "dl.exp2(dl.tensor([3.0]))", "tensor([8.])"),
    "log": (np.log, lambda c, g: (g / c.inputs[0],), promote_float, (0,), False,
            "dl.log(dl.tensor([1.0, 4.0]))", "tensor([0.0000, 1.3863])"),
    "log2": (np.log2, lambda c, g: (g / (c.inputs[0] * _LN2),), promote_float, (0,), False,
             "dl.log2(dl.tensor([8.0]))", "tensor([3.])"),
    "log10": (np.log10, lambda c, g: (g / (c.inputs[0] * _LN10),), promote_float, (0,), False,
              "dl.log10(dl.tensor([100.0]))", "tensor([2.])"),
    "log1p": (np.log1p, lambda c, g: (g / (c.inputs[0] + 1),), promote_float, (0,), False,
              "dl.log1p(dl.tensor([0.0]))", "tensor([0.])"),
    "expm1": (np.expm1, lambda c, g: (g * (c.out + 1),), promote_float, (), True,
              "dl.expm1(dl.tensor([0.0]))", "tensor([0.])"),
    "sqrt": (np.sqrt, lambda c, g: (g / (c.out * 2),), promote_float, (), True,
             "dl.sqrt(dl.tensor([4.0, 9.0]))", "tensor([2., 3.])"),
    "rsqrt": (lambda x: np.reciprocal(np.sqrt(x)), lambda c, g: (g * c.out ** 3 * -0.5,), promote_float,
              (), True, "dl.rsqrt(dl.tensor([4.0]))", "tensor([0.5000])"),
    "sin": (np.sin, lambda c, g: (g * cos(c.inputs[0]),), promote_float, (0,), False,
            "dl.sin(dl.tensor([0.0]))", "tensor([0.])"),
    "cos": (np.cos, lambda c, g: (g * -sin(c.inputs[0]),), promote_float, (0,), False,
            "dl.cos(dl.tensor([0.0]))", "tensor([1.])"),
    "tan": (np.tan, lambda c, g: (g * (c.out * c.out + 1),), promote_float, (), True,
            "dl.tan(dl.tensor([0.0]))", "tensor([0.])"),
    "asin": (np.arcsin, lambda c, g: (g * rsqrt(1 - c.inputs[0] * c.inputs[0]),), promote_float, (0,),
             False, "dl.asin(dl.tensor([0.0]))", "tensor([0.])"),
    "acos": (np.arccos, lambda c, g: (-g * rsqrt(1 - c.inputs[0] * c.inputs[0]),), promote_float, (0,),
             False, "dl.acos(dl.tensor([1.0]))", "tensor([0.])"),
    "atan": (np.arctan, lambda c, g: (g / (c.inputs[0] * c.inputs[0] + 1),), promote_float, (0,), False,
             "dl.atan(dl.tensor([0.0]))", "tensor([0.])"),
    "sinh": (np.sinh, lambda c, g: (g * cosh(c.inputs[0]),), promote_float, (0,), False,
             "dl.sinh(dl.tensor([0.0]))", "tensor([0.])"),
    "cosh": (np.cosh, lambda c, g: (g * sinh(c.inputs[0]),), promote_float, (0,), False,
             "dl.cosh(dl.tensor([0.0]))", "tensor([1.])"),
    "tanh": (np.tanh, lambda c, g: (apply(TANH_BACKWARD, g, c.out),), promote_float, (), True,
             "dl.tanh(dl.tensor([0.0]))", "tensor([0.])"),
    "sigmoid": (None, lambda c, g: (apply(SIGMOID_BACKWARD, g, c.out),), promote_float, (), True,
                "dl.sigmoid(dl.tensor([0.0]))", "tensor([0.5000])"),
    "relu": (None, lambda c, g: (apply(RELU_BACKWARD, g, c.out),), None, (), True,
             "dl.relu(dl.tensor([-1.0, 2.0]))", "tensor([0., 2.])"),
    "erf": (None, lambda c, g: (g * exp(-(c.inputs[0] * c.inputs[0])) * _2_SQRTPI,), promote_float, (0,),
            False, "dl.erf(dl.tensor([0.0]))", "tensor([0.])"),
    "reciprocal": (np.reciprocal, lambda c, g: (-g * c.out * c.out,), promote_float, (), True,
                   "dl.reciprocal(dl.tensor([2.0]))", "tensor([0.5000])"),
    "sign": (np.sign, _zero_grad, None, (), False, "dl.sign(dl.tensor([-2.0, 0.0, 3.0]))",
             "tensor([-1.,  0.,  1.])"),
    "floor": (np.floor, _zero_grad, None, (), False, "dl.floor(dl.tensor([1.5, -1.5]))", "tensor([ 1., -2.])"),
    "ceil": (np.ceil, _zero_grad, None, (), False, "dl.ceil(dl.tensor([1.5, -1.5]))", "tensor([ 2., -1.])"),
    "trunc": (np.trunc, _zero_grad, None, (), False, "dl.trunc(dl.tensor([1.5, -1.5]))", "tensor([ 1., -1.])"),
    "frac": (lambda x: x - np.trunc(x), lambda c, g: (g,), None, (), False,
             "dl.frac(dl.tensor([1.5, -1.25]))", "tensor([ 0.5000, -0.2500])"),
}


def _sigmoid_kernel(x):
    """Stable on both tails (exp of a non-positive number only): with e = exp(-|x|), sigmoid is
    1 / (1 + e) for x >= 0 and e / (1 + e) below. The numerator max(e, x >= 0) picks 1 or e without
    np.where, which costs more than the rest of the kernel together; nan propagates through max."""
    x = np.asarray(x)
    e = np.abs(x, out=np.empty_like(x))
    np.negative(e, out=e)
    np.exp(e, out=e)
    d = e + 1
    num = np.maximum(e, x >= 0, out=e)
    np.divide(num, d, out=num)
    return num.astype(x.dtype, copy=False)


def _relu_kernel(x):
    return np.maximum(x, 0) if x.dtype != np.bool_ else x.copy()


def _erf_kernel(x):
    return _erf(x).astype(x.dtype, copy=False)


def _erf(x):
    try:
        from scipy.special import erf as _scipy_erf  # exact to the last bit where SciPy is installed
        return _scipy_erf(x)
    except ImportError:
        return _erf_numpy(x)


def _erf_numpy(x):
    """erf to float64 accuracy: Taylor series near 0, continued fraction erfc in the tails."""
    x64 = np.asarray(x, np.float64)
    a = np.abs(x64)
    out = np.empty_like(x64)
    small = a < 2.0
    # Taylor series: erf(x) = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
    xs = x64[small]
    term = xs.copy()
    acc = xs.copy()
    x2 = xs * xs
    for n in range(1, 60):
        term = term * -x2 / n
        acc = acc + term / (2 * n + 1)
    out[small] = acc * _2_SQRTPI
    # Lentz continued fraction for erfc in the tails (|x| >= 2)
    xl = a[~small]
    if xl.size:
        f = np.zeros_like(xl)
        for k in range(80, 0, -1):
            f = (k / 2.0) / (xl + f)
        erfc = np.exp(-xl * xl) / np.sqrt(np.pi) / (xl + f)
        out[~small] = np.sign(x64[~small]) * (1.0 - erfc)
    return out


_KERNELS = {"sigmoid": _sigmoid_kernel, "relu": _relu_kernel, "erf": _erf_kernel}

for _name, (_k, _vjp, _prom, _save_in, _save_out, _ex, _res) in _UNARY.items():
    _op = register(_name, infer=same_as, impl=_k or _KERNELS[_name], vjp=_vjp, promote=_prom,
                   save_in=_save_in, save_out=_save_out, elementwise=True, family="elementwise")
    _fn = unary_fn(_op, _name, f"Elementwise {_name}, as ``torch.{_name}``.\n\n"
                   f"    >>> import danlu as dl\n    >>> {_ex}\n    {_res}\n")
    _export(_fn, _name)
    setattr(Tensor, _name + "_", inplace_method(_op, _name + "_"))

# Backward kernels of the common activations: one primitive instead of three elementwise calls in
# the backward pass (speed); each has its own VJP in danlu ops, so double backward still works.

def _tanh_bw_vjp(c, gg):
    g, y = c.inputs
    return gg * (1 - y * y), gg * g * y * -2.0


def _sigmoid_bw_vjp(c, gg):
    g, y = c.inputs
    return gg * y * (1 - y), gg * g * (1 - 2.0 * y)


def _relu_bw_vjp(c, gg):
    g, y = c.inputs
    return apply(RELU_BACKWARD, gg, y), zeros_like(y)


def _bw_infer(g, y):
    return AVal(broadcast_shapes("activation_backward", g.shape, y.shape), g.dtype)


TANH_BACKWARD = register("tanh_backward", infer=_bw_infer, impl=lambda g, y: g * (1 - y * y),
                         vjp=_tanh_bw_vjp, save_in=(0, 1), elementwise=True, family="elementwise")
SIGMOID_BACKWARD = register("sigmoid_backward", infer=_bw_infer, impl=lambda g, y: g * y * (1 - y),
                            vjp=_sigmoid_bw_vjp, save_in=(0, 1), elementwise=True, family="elementwise")
def _relu_backward_kernel(g, y):
    """``g`` where ``y > 0``, else exactly 0 (also where ``g`` is nan, as PyTorch). A multiply by the
    mask is several times faster than np.where; a sum screens for the rare non-finite case."""
    m = y > 0
    r = g * m
    if not np.isfinite(np.add.reduce(r, axis=None)):
        r = np.where(m, g, 0)
    return r.astype(g.dtype, copy=False)


RELU_BACKWARD = register("relu_backward", infer=_bw_infer, impl=_relu_backward_kernel,
                         vjp=_relu_bw_vjp, save_in=(0, 1), elementwise=True, family="elementwise")


Tensor.__neg__ = lambda self: neg(self)  # noqa: E731
Tensor.__abs__ = lambda self: abs(self)  # noqa: E731 (danlu.abs, not the builtin)
Tensor.__pos__ = lambda self: self  # noqa: E731
Tensor.negative = neg
Tensor.absolute = abs
arcsin, arccos, arctan = asin, acos, atan  # noqa: F821
negative, absolute, fix = neg, abs, trunc  # noqa: F821
__all__ += ["arcsin", "arccos", "arctan", "negative", "absolute", "fix"]


def _round_kernel(x, *, decimals=0):
    return np.round(x, decimals) if x.dtype.kind == "f" else x.copy()


ROUND = register("round", infer=same_as, impl=_round_kernel, vjp=_zero_grad, elementwise=True,
                 family="elementwise")


@api
def round(input, *, decimals: int = 0):  # noqa: A001 - PyTorch's name
    """Round half to even, as ``torch.round``.

    >>> import danlu as dl
    >>> dl.round(dl.tensor([0.5, 1.5, 2.345]), decimals=0)
    tensor([0., 2., 2.])
    """
    return apply(ROUND, input, decimals=int(decimals))


_export(round, "round")


def _nondiff_unary(name, kernel, out_dtype, doc):
    op = register(name, infer=lambda x: AVal(x.shape, out_dtype), impl=kernel, differentiable=False,
                  elementwise=True, family="elementwise")
    return op, _export(unary_fn(op, name, doc), name)


def _logical_not_k(x):
    return np.logical_not(x)


LOGICAL_NOT, _ = _nondiff_unary("logical_not", _logical_not_k, _dt.bool_,
                                "Elementwise logical NOT (bool result).\n\n    >>> import danlu as dl\n"
                                "    >>> dl.logical_not(dl.tensor([0, 2]))\n    tensor([ True, False])\n")
ISNAN, _ = _nondiff_unary("isnan", np.isnan, _dt.bool_,
                          "True where NaN.\n\n    >>> import danlu as dl\n"
                          "    >>> dl.isnan(dl.tensor([1.0, float('nan')]))\n    tensor([False,  True])\n")
ISINF, _ = _nondiff_unary("isinf", np.isinf, _dt.bool_,
                          "True where +-inf.\n\n    >>> import danlu as dl\n"
                          "    >>> dl.isinf(dl.tensor([1.0, float('inf')]))\n    tensor([False,  True])\n")
ISFINITE, _ = _nondiff_unary("isfinite", np.isfinite, _dt.bool_,
                             "True where finite.\n\n    >>> import danlu as dl\n"
                             "    >>> dl.isfinite(dl.tensor([1.0, float('inf')]))\n    tensor([ True, False])\n")


def _bitwise_not_infer(x):
    if x.dtype.is_floating_point:
        raise DTypeError(f"bitwise_not: only integer and bool tensors are supported, got {describe(x)}; "
                         "use logical_not() or neg() for float tensors")
    return AVal(x.shape, x.dtype)


BITWISE_NOT = register("bitwise_not", infer=_bitwise_not_infer, impl=np.invert, differentiable=False,
                       elementwise=True, family="elementwise")
_export(unary_fn(BITWISE_NOT, "bitwise_not", "Bitwise NOT (``~``) of integer or bool tensors.\n\n"
                 "    >>> import danlu as dl\n    >>> ~dl.tensor([True, False])\n    tensor([False,  True])\n"),
        "bitwise_not")
Tensor.__invert__ = lambda self: bitwise_not(self)  # noqa: E731, F821


# == binary =========================================================================================

def _binary_infer(name, out_dtype=None):
    def infer(x, y, **_):
        shape = broadcast_shapes(name, shape_of(x), shape_of(y))
        if out_dtype is not None:
            return AVal(shape, out_dtype)
        dt = x.dtype if hasattr(x, "shape") else y.dtype if hasattr(y, "shape") else _dt.result_type(x, y)
        return AVal(shape, dt)
    return infer


def _pos(x):
    return x


def _mul_vjp(c, g):
    x, y = c.inputs
    return (g * y if c.edges[0] is not None else None, g * x if c.edges[1] is not None else None)


def _div_vjp(c, g):
    x, y = c.inputs
    gx = g / y if c.edges[0] is not None else None
    gy = -g * x / (y * y) if c.edges[1] is not None else None
    return gx, gy


def _pow_vjp(c, g):
    x, y = c.inputs
    gx = gy = None
    if c.edges[0] is not None:
        if isinstance(y, Tensor):
            gx = where(y == 0, 0.0, g * y * pow(x, y - 1))
        else:
            gx = g * 0.0 if y == 0 else g * y * pow(x, y - 1)
    if c.edges[1] is not None:
        if isinstance(x, Tensor):
            gy = g * where((x == 0) & (y >= 0), 0.0, c.out * log(x))
        else:
            gy = g * c.out * math.log(x) if x > 0 else g * where(y >= 0, 0.0, c.out * math.log(x) if x else math.nan)
    return gx, gy


def _minmax_vjp(is_max):
    def vjp(c, g):
        x, y = c.inputs
        tie = x == y
        half = where(tie, g / 2, g)
        xbig = x > y if is_max else x < y
        ybig = y > x if is_max else y < x
        return where(ybig, 0.0, half), where(xbig, 0.0, half)
    return vjp


def _remainder_vjp(c, g):
    x, y = c.inputs
    return g, (-g * floor_divide(x, y) if c.edges[1] is not None else None)


def _fmod_vjp(c, g):
    x, y = c.inputs
    return g, (-g * trunc(x / y) if c.edges[1] is not None else None)


def _atan2_vjp(c, g):
    x, y = c.inputs
    d = x * x + y * y
    return g * y / d, -g * x / d


def _true_div_kernel(x, y):
    return np.true_divide(x, y)


def _floor_div_kernel(x, y):
    if isinstance(x, np.ndarray) and x.dtype.kind in "iu" or isinstance(y, np.ndarray) and y.dtype.kind in "iu":
        if np.any(np.asarray(y) == 0):
            raise ZeroDivisionError("floor_divide: integer division by zero")
    return np.floor_divide(x, y)


def _remainder_kernel(x, y):
    if (isinstance(x, np.ndarray) and x.dtype.kind in "iu") and np.any(np.asarray(y) == 0):
        raise ZeroDivisionError("remainder: integer division by zero (ZeroDivisionError)")
    return np.remainder(x, y)


def _pow_scalar_float(x, y):
    """Float base, Python-number exponent. NumPy's pow is very slow for negative bases, so integral
    exponents take the shortcuts PyTorch takes (3, -1, -2) or ``|x| ** y`` with the sign restored
    (IEEE pow is odd/even in the base for odd/even integral exponents). None: use np.power."""
    if y != y or y in (0, 1, 2) or not -2 ** 53 < y < 2 ** 53 or y != int(y):
        return None
    if x.dtype == np.float16:   # as PyTorch: half precision computes in float32 and rounds once
        r = _pow_scalar_float(x.astype(np.float32), y)
        return r.astype(np.float16)
    if y == 3:
        out = np.multiply(x, x)
        return np.multiply(out, x, out=out)
    if y == -1:
        return np.reciprocal(x)
    if y == -2:
        out = np.multiply(x, x)
        return np.reciprocal(out, out=out)
    out = np.power(np.abs(x), y)
    return np.copysign(out, x, out=out) if int(y) % 2 else out


def _pow_kernel(x, y):
    if (y.__class__ is int or y.__class__ is float) and isinstance(x, np.ndarray) and x.dtype.kind == "f" \
            and x.ndim:
        r = _pow_scalar_float(x, y)
        if r is not None:
            return r
    if y.__class__ is int and y < 0 and isinstance(x, np.ndarray) and x.dtype.kind in "iu":
        raise RuntimeError("pow: integers to negative integer powers are not allowed; convert the base "
                           "to float first, e.g. x.float() ** -1")
    rt = np.result_type(x, y)
    if rt.kind in "iu":
        ya = np.asarray(y)
        if np.any(ya < 0):
            # integer semantics for negative exponents (as PyTorch): 1 for base 1, +-1 for base -1, else 0
            xa = np.asarray(x).astype(rt)
            pos = np.power(xa, np.where(ya < 0, 0, ya).astype(rt))
            neg = np.where(xa == 1, 1, np.where(xa == -1, np.where(ya % 2 == 0, 1, -1), 0))
            return np.where(ya < 0, neg, pos).astype(rt)
    return np.power(x, y)


def _arith_promote(name, to_float=False):
    pg = promote_group((0, 1), to_float=to_float)

    def promote(args):
        if name == "sub" and any(a.__class__ is bool or getattr(a, "dtype", None) is _dt.bool_ for a in args):
            raise DTypeError(f"sub: subtraction, the `-` operator, with a bool tensor is not supported "
                             f"({', '.join(describe(a) for a in args)}). If you are trying to invert a mask, "
                             "use the `~` or `logical_not()` operator instead")
        return pg(args)
    return promote


# name -> (kernel, vjp, save_in, save_out, to_float, example, result)
_BINARY = {
    "add": (np.add, lambda c, g: (g, g), (), False, False,
            "dl.add(dl.tensor([1, 2]), dl.tensor([10, 20]))", "tensor([11, 22])"),
    "sub": (np.subtract, lambda c, g: (g, -g), (), False, False,
            "dl.sub(dl.tensor([1.0]), 3)", "tensor([-2.])"),
    "mul": (np.multiply, _mul_vjp, (0, 1), False, False,
            "dl.mul(dl.tensor([1.0, 2.0]), 3)", "tensor([3., 6.])"),
    "div": (_true_div_kernel, _div_vjp, (0, 1), False, True,
            "dl.div(dl.tensor([1, 3]), 2)", "tensor([0.5000, 1.5000])"),
    "pow": (_pow_kernel, _pow_vjp, (0, 1), True, False,
            "dl.pow(dl.tensor([2.0, 3.0]), 2)", "tensor([4., 9.])"),
    "maximum": (np.maximum, _minmax_vjp(True), (0, 1), False, False,
                "dl.maximum(dl.tensor([1.0, 5.0]), dl.tensor([3.0, 2.0]))", "tensor([3., 5.])"),
    "minimum": (np.minimum, _minmax_vjp(False), (0, 1), False, False,
                "dl.minimum(dl.tensor([1.0, 5.0]), dl.tensor([3.0, 2.0]))", "tensor([1., 2.])"),
    "floor_divide": (_floor_div_kernel, lambda c, g: (zeros_like(g), zeros_like(g)), (), False, False,
                     "dl.floor_divide(dl.tensor([7, -7]), 2)", "tensor([ 3, -4])"),
    "remainder": (_remainder_kernel, _remainder_vjp, (0, 1), False, False,
                  "dl.remainder(dl.tensor([7, -7]), 3)", "tensor([1, 2])"),
    "fmod": (np.fmod, _fmod_vjp, (0, 1), False, False,
             "dl.fmod(dl.tensor([7, -7]), 3)", "tensor([ 1, -1])"),
    "atan2": (np.arctan2, _atan2_vjp, (0, 1), False, True,
              "dl.atan2(dl.tensor([1.0]), dl.tensor([1.0]))", "tensor([0.7854])"),
}

# Which saved input each input's gradient needs (see Op.save_for): mul's x is only needed for y's grad.
_SAVE_FOR = {"mul": {0: (1,), 1: (0,)}, "div": {0: (1,), 1: (0, 1)},
             "remainder": {0: (1,), 1: (1,)}, "fmod": {0: (1,), 1: (1,)}}

for _name, (_k, _vjp, _save_in, _save_out, _tf, _ex, _res) in _BINARY.items():
    _op = register(_name, infer=_binary_infer(_name), impl=_k, vjp=_vjp, promote=_arith_promote(_name, _tf),
                   save_in=_save_in, save_out=_save_out, elementwise=True, family="elementwise",
                   save_for=_SAVE_FOR.get(_name))
    globals()[_name.upper()] = _op
    _export(binary_fn(_op, _name, f"Elementwise {_name} with broadcasting, as ``torch.{_name}``.\n\n"
                      f"    >>> import danlu as dl\n    >>> {_ex}\n    {_res}\n"))
    setattr(Tensor, _name + "_", inplace_method(_op, _name + "_"))

for _name in ("maximum", "minimum", "floor_divide", "remainder", "fmod", "atan2", "pow"):
    setattr(Tensor, _name, globals()[_name])
arctan2 = atan2  # noqa: F821
__all__.append("arctan2")


@api
def add(input, other, *, alpha=1):
    """``input + alpha * other`` with broadcasting, as ``torch.add``.

    >>> import danlu as dl
    >>> dl.add(dl.tensor([1.0, 2.0]), dl.tensor([1.0, 1.0]), alpha=10)
    tensor([11., 12.])
    """
    if alpha != 1:
        other = other * alpha if not isinstance(other, Tensor) else apply(MUL, other, alpha)  # noqa: F821
    return apply(ADD, input, other)  # noqa: F821


@api
def sub(input, other, *, alpha=1):
    """``input - alpha * other`` with broadcasting, as ``torch.sub``.

    >>> import danlu as dl
    >>> dl.sub(dl.tensor([5.0]), dl.tensor([1.0]), alpha=2)
    tensor([3.])
    """
    if alpha != 1:
        other = other * alpha if not isinstance(other, Tensor) else apply(MUL, other, alpha)  # noqa: F821
    return apply(SUB, input, other)  # noqa: F821


@api
def div(input, other, *, rounding_mode=None):
    """True division, or with ``rounding_mode`` 'floor' / 'trunc', as ``torch.div``.

    >>> import danlu as dl
    >>> dl.div(dl.tensor([-7.0, 7.0]), 2, rounding_mode="trunc")
    tensor([-3.,  3.])
    """
    if rounding_mode is None:
        return apply(DIV, input, other)  # noqa: F821
    if rounding_mode == "floor":
        return apply(FLOOR_DIVIDE, input, other)  # noqa: F821
    if rounding_mode == "trunc":
        q = apply(DIV, input, other)  # noqa: F821
        dt = _dt.result_type(input, other)
        q = trunc(q)  # noqa: F821
        return q if dt.is_floating_point else apply(CONVERT, q, dtype=dt)
    raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")


for _fn in (add, sub, div):
    _export(_fn, _fn.__name__)
true_divide = divide = div
multiply, subtract = mul, sub  # noqa: F821
__all__ += ["true_divide", "divide", "multiply", "subtract"]


def _add_inplace(self, other, *, alpha=1):
    try:
        if alpha != 1:
            other = other * alpha if not isinstance(other, Tensor) else apply(MUL, other, alpha)  # noqa: F821
        return apply_inplace(ADD, self, other)  # noqa: F821
    except Exception as e:
        reraise_filtered(e)
        raise


def _sub_inplace(self, other, *, alpha=1):
    try:
        if alpha != 1:
            other = other * alpha if not isinstance(other, Tensor) else apply(MUL, other, alpha)  # noqa: F821
        return apply_inplace(SUB, self, other)  # noqa: F821
    except Exception as e:
        reraise_filtered(e)
        raise


Tensor.add_ = _add_inplace
Tensor.sub_ = _sub_inplace


def _div_inplace(self, other, *, rounding_mode=None):
    try:
        if rounding_mode is None:
            return apply_inplace(DIV, self, other)  # noqa: F821
        return self.copy_(div(self, other, rounding_mode=rounding_mode)) if not self._rg else \
            apply_inplace(ASSIGN, self, div(self, other, rounding_mode=rounding_mode), _method="div_")
    except Exception as e:
        reraise_filtered(e)
        raise


Tensor.div_ = _div_inplace


def _dunder(op, reflected=False):
    if reflected:
        def method(self, other):
            try:
                return apply(op, other, self)
            except Exception as e:
                reraise_filtered(e)
                raise
    else:
        def method(self, other):
            try:
                return apply(op, self, other)
            except Exception as e:
                reraise_filtered(e)
                raise
    return method


Tensor.__add__ = _dunder(ADD)  # noqa: F821
Tensor.__radd__ = _dunder(ADD, True)  # noqa: F821
Tensor.__sub__ = _dunder(SUB)  # noqa: F821
Tensor.__rsub__ = _dunder(SUB, True)  # noqa: F821
Tensor.__mul__ = _dunder(MUL)  # noqa: F821
Tensor.__rmul__ = _dunder(MUL, True)  # noqa: F821
Tensor.__truediv__ = _dunder(DIV)  # noqa: F821
Tensor.__rtruediv__ = _dunder(DIV, True)  # noqa: F821
Tensor.__floordiv__ = _dunder(FLOOR_DIVIDE)  # noqa: F821
Tensor.__rfloordiv__ = _dunder(FLOOR_DIVIDE, True)  # noqa: F821
Tensor.__mod__ = _dunder(REMAINDER)  # noqa: F821
Tensor.__rmod__ = _dunder(REMAINDER, True)  # noqa: F821
Tensor.__pow__ = _dunder(POW)  # noqa: F821
Tensor.__rpow__ = _dunder(POW, True)  # noqa: F821
Tensor.__iadd__ = Tensor.add_
Tensor.__isub__ = Tensor.sub_
Tensor.__imul__ = Tensor.mul_
Tensor.__itruediv__ = Tensor.div_
Tensor.__ipow__ = Tensor.pow_
Tensor.__ifloordiv__ = Tensor.floor_divide_
Tensor.__imod__ = Tensor.remainder_
Tensor.mul = mul  # noqa: F821
Tensor.div = div
Tensor.add = add
Tensor.sub = sub
Tensor.true_divide = div
Tensor.multiply = mul  # noqa: F821
Tensor.subtract = sub


# == comparisons and logic ==========================================================================

def _cmp_kernel(ufunc):
    return lambda x, y: ufunc(x, y)


_CMP = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
        "ge": np.greater_equal}
_CMP_SYM = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_CMP_RES = {"eq": "tensor([False,  True, False])", "ne": "tensor([ True, False,  True])",
            "lt": "tensor([ True, False, False])", "le": "tensor([ True,  True, False])",
            "gt": "tensor([False, False,  True])", "ge": "tensor([False,  True,  True])"}

for _name, _uf in _CMP.items():
    _op = register(_name, infer=_binary_infer(_name, _dt.bool_), impl=_uf, promote=promote_group((0, 1)),
                   differentiable=False, elementwise=True, family="elementwise")
    globals()[_name.upper()] = _op
    _fn = binary_fn(_op, _name, f"Elementwise ``{_CMP_SYM[_name]}`` (bool result), as ``torch.{_name}``.\n\n"
                    f"    >>> import danlu as dl\n    >>> dl.{_name}(dl.tensor([1, 2, 3]), 2)\n"
                    f"    {_CMP_RES[_name]}\n")
    _export(_fn, _name)


def _cmp_dunder(op):
    def method(self, other):
        if not isinstance(other, (Tensor, int, float, bool, np.ndarray, np.generic)):
            return NotImplemented
        try:
            return apply(op, self, other)
        except Exception as e:
            reraise_filtered(e)
            raise
    return method


Tensor.__eq__ = _cmp_dunder(EQ)  # noqa: F821
Tensor.__ne__ = _cmp_dunder(NE)  # noqa: F821
Tensor.__lt__ = _cmp_dunder(LT)  # noqa: F821
Tensor.__le__ = _cmp_dunder(LE)  # noqa: F821
Tensor.__gt__ = _cmp_dunder(GT)  # noqa: F821
Tensor.__ge__ = _cmp_dunder(GE)  # noqa: F821
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne  # noqa: F821
__all__ += ["greater", "greater_equal", "less", "less_equal", "not_equal"]
Tensor.greater, Tensor.less, Tensor.not_equal = gt, lt, ne  # noqa: F821


def _logical_infer(name):
    def infer(x, y):
        return AVal(broadcast_shapes(name, shape_of(x), shape_of(y)), _dt.bool_)
    return infer


_LOGICAL_RES = dict(logical_and="tensor([ True, False])", logical_or="tensor([True, True])",
                    logical_xor="tensor([False,  True])")

for _name, _uf in (("logical_and", np.logical_and), ("logical_or", np.logical_or),
                   ("logical_xor", np.logical_xor)):
    _op = register(_name, infer=_logical_infer(_name), impl=_uf, differentiable=False, elementwise=True,
                   family="elementwise")
    globals()[_name.upper()] = _op
    _export(binary_fn(_op, _name, f"Elementwise {_name[8:]} of truth values (bool result).\n\n"
                      f"    >>> import danlu as dl\n"
                      f"    >>> dl.{_name}(dl.tensor([True, False]), dl.tensor([True, True]))\n"
                      f"    {_LOGICAL_RES[_name]}\n"),
            _name)


def _bitwise_promote(name):
    pg = promote_group((0, 1))

    def promote(args):
        casts = pg(args)
        for i, a in enumerate(args):
            dt = casts[i] or (a.dtype if hasattr(a, "shape") else _dt.result_type(a))
            if dt.is_floating_point:
                raise DTypeError(f"{name}: only integer and bool inputs are supported, got "
                                 f"{', '.join(describe(x) for x in args)}; use logical_* ops for truth "
                                 "values of floats")
        return casts
    return promote


for _name, _uf, _sym in (("bitwise_and", np.bitwise_and, "&"), ("bitwise_or", np.bitwise_or, "|"),
                         ("bitwise_xor", np.bitwise_xor, "^")):
    _op = register(_name, infer=_binary_infer(_name), impl=_uf, promote=_bitwise_promote(_name),
                   differentiable=False, elementwise=True, family="elementwise")
    globals()[_name.upper()] = _op
    _export(binary_fn(_op, _name, f"Elementwise ``{_sym}`` of integer or bool tensors.\n\n"
                      f"    >>> import danlu as dl\n    >>> dl.{_name}(dl.tensor([12]), dl.tensor([10]))\n"
                      f"    tensor([{eval('12' + _sym + '10')}])\n"), _name)
    setattr(Tensor, _name + "_", inplace_method(_op, _name + "_"))

for _name, _uf, _sym in (("bitwise_left_shift", np.left_shift, "<<"), ("bitwise_right_shift", np.right_shift, ">>")):
    _op = register(_name, infer=_binary_infer(_name), impl=_uf, promote=_bitwise_promote(_name),
                   differentiable=False, elementwise=True, family="elementwise")
    globals()[_name.upper()] = _op
    _export(binary_fn(_op, _name, f"Elementwise ``{_sym}`` of integer tensors.\n\n"
                      f"    >>> import danlu as dl\n    >>> dl.{_name}(dl.tensor([8]), 2)\n"
                      f"    tensor([{eval('8' + _sym + '2')}])\n"), _name)
    setattr(Tensor, _name + "_", inplace_method(_op, _name + "_"))

Tensor.__lshift__ = _dunder(BITWISE_LEFT_SHIFT)  # noqa: F821
Tensor.__rlshift__ = _dunder(BITWISE_LEFT_SHIFT, True)  # noqa: F821
Tensor.__rshift__ = _dunder(BITWISE_RIGHT_SHIFT)  # noqa: F821
Tensor.__rrshift__ = _dunder(BITWISE_RIGHT_SHIFT, True)  # noqa: F821
Tensor.__ilshift__ = Tensor.bitwise_left_shift_
Tensor.__irshift__ = Tensor.bitwise_right_shift_
Tensor.__and__ = _dunder(BITWISE_AND)  # noqa: F821
Tensor.__rand__ = _dunder(BITWISE_AND, True)  # noqa: F821
Tensor.__or__ = _dunder(BITWISE_OR)  # noqa: F821
Tensor.__ror__ = _dunder(BITWISE_OR, True)  # noqa: F821
Tensor.__xor__ = _dunder(BITWISE_XOR)  # noqa: F821
Tensor.__rxor__ = _dunder(BITWISE_XOR, True)  # noqa: F821
Tensor.__iand__ = Tensor.bitwise_and_
Tensor.__ior__ = Tensor.bitwise_or_
Tensor.__ixor__ = Tensor.bitwise_xor_


# == where, clamp, full_like, assign ===============================================================

def _where_infer(cond, x, y):
    if cond.dtype is not _dt.bool_:
        raise DTypeError(f"where: the condition must be a bool tensor, got {describe(cond)}; compare it "
                         "first, e.g. where(c != 0, x, y)")
    shape = broadcast_shapes("where", shape_of(cond), shape_of(x), shape_of(y))
    dt = x.dtype if hasattr(x, "shape") else y.dtype if hasattr(y, "shape") else _dt.result_type(x, y)
    return AVal(shape, dt)


def _where_vjp(c, g):
    cond = c.inputs[0]
    return (None, where(cond, g, 0.0) if c.edges[1] is not None else None,
            where(cond, 0.0, g) if c.edges[2] is not None else None)


WHERE = register("where", infer=_where_infer, impl=np.where, vjp=_where_vjp, promote=promote_group((1, 2)),
                 save_in=(0,), elementwise=True, family="elementwise")


@api
def where(condition, input=None, other=None):
    """Pick from ``input`` where ``condition`` holds, else from ``other`` (broadcast), as ``torch.where``.

    With only a condition it returns ``nonzero(condition, as_tuple=True)``.

    >>> import danlu as dl
    >>> dl.where(dl.tensor([True, False]), dl.tensor([1.0, 2.0]), 0.0)
    tensor([1., 0.])
    """
    if input is None and other is None:
        from .index import nonzero
        return nonzero(condition, as_tuple=True)
    return apply(WHERE, condition, input, other)


_export(where)
Tensor.where = lambda self, condition, other: where(condition, self, other)  # noqa: E731


def _clamp_infer(x, *, min=None, max=None):  # noqa: A002
    if min is None and max is None:
        raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
    if x.dtype is _dt.bool_:
        raise DTypeError(f"clamp: not supported for bool tensors ({describe(x)})")
    return AVal(x.shape, x.dtype)


def _clamp_kernel(x, *, min=None, max=None):  # noqa: A002
    if min is not None and max is not None:
        out = np.minimum(np.maximum(x, min), max)
    elif min is not None:
        out = np.maximum(x, min)
    else:
        out = np.minimum(x, max)
    return out.astype(x.dtype, copy=False)


def _clamp_vjp(c, g):
    x = c.inputs[0]
    lo, hi = c.attrs.get("min"), c.attrs.get("max")
    if lo is not None and hi is not None:
        keep = (x >= lo) & (x <= hi)
    elif lo is not None:
        keep = x >= lo
    else:
        keep = x <= hi
    return (where(keep, g, 0.0),)


def _clamp_promote(args, **_):
    return None


CLAMP = register("clamp", infer=_clamp_infer, impl=_clamp_kernel, vjp=_clamp_vjp, save_in=(0,),
                 elementwise=True, family="elementwise")


def _scalar_bound(b):
    if isinstance(b, Tensor) and b.ndim == 0 and not b._rg and isinstance(b._data, np.ndarray):
        return b.item()
    return b


@api
def clamp(input, min=None, max=None):  # noqa: A002 - PyTorch's names
    """Limit values to ``[min, max]`` (either may be None or a tensor), as ``torch.clamp``.

    >>> import danlu as dl
    >>> dl.clamp(dl.tensor([-2.0, 0.5, 3.0]), min=-1, max=1)
    tensor([-1.0000,  0.5000,  1.0000])
    """
    min, max = _scalar_bound(min), _scalar_bound(max)  # noqa: A001
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = input
        if min is not None:
            out = where(out < min, min, out)
        if max is not None:
            out = where(out > max, max, out)
        return out
    if not input.dtype.is_floating_point:
        for b in (min, max):
            if isinstance(b, float):
                input = apply(CONVERT, input, dtype=_dt.get_default_dtype())
                break
    return apply(CLAMP, input, min=min, max=max)


def clamp_(self, min=None, max=None):  # noqa: A002
    try:
        min, max = _scalar_bound(min), _scalar_bound(max)  # noqa: A001
        if isinstance(min, Tensor) or isinstance(max, Tensor):
            return apply_inplace(ASSIGN, self, clamp(self, min, max), _method="clamp_")
        return apply_inplace(CLAMP, self, min=min, max=max, _method="clamp_")
    except Exception as e:
        reraise_filtered(e)
        raise


_export(clamp, "clamp", "clip")
clip = clamp
__all__.append("clip")
Tensor.clamp_ = Tensor.clip_ = clamp_
Tensor.clamp_min = lambda self, min: clamp(self, min=min)  # noqa: E731, A002
Tensor.clamp_max = lambda self, max: clamp(self, max=max)  # noqa: E731, A002


def _full_like_kernel(x, *, value):
    return np.full(x.shape, value, dtype=x.dtype)


# The overwritten input gets a zero gradient (not None), as in PyTorch.
FULL_LIKE = register("full_like", infer=same_as, impl=_full_like_kernel,
                     vjp=lambda c, g: (zeros_like(g),), elementwise=True, family="elementwise")


def _assign_infer(x, src):
    broadcast_shapes("copy_", shape_of(src), shape_of(x))
    if tuple(broadcast_shapes("copy_", shape_of(src), shape_of(x))) != tuple(shape_of(x)):
        raise RuntimeError(f"copy_: the source {describe(src)} can't be broadcast to the destination "
                           f"{describe(x)}")
    return AVal(x.shape, x.dtype)


def _assign_kernel(x, src):
    out = np.empty_like(x)
    np.copyto(out, src, casting="unsafe")
    return out


def _assign_vjp(c, g):
    src_dt = c.in_meta[1][1] if c.in_meta[1] is not None else None
    gs = g if src_dt is None or src_dt is g.dtype else apply(CONVERT, g, dtype=src_dt)
    return (zeros_like(g) if c.edges[0] is not None else None), gs


ASSIGN = register("assign", infer=_assign_infer, impl=_assign_kernel, vjp=_assign_vjp, elementwise=True,
                  family="elementwise")


@tensor_method("zero_")
def zero_(self):
    """Fill with zeros in place."""
    try:
        return apply_inplace(FULL_LIKE, self, value=0, _method="zero_")
    except Exception as e:
        reraise_filtered(e)
        raise


@tensor_method("fill_")
def fill_(self, value):
    """Fill with ``value`` in place (a number or a 0-d tensor)."""
    try:
        if isinstance(value, Tensor):
            if value.ndim != 0:
                raise RuntimeError(f"fill_: only supports 0-dimension value tensor but got tensor with "
                                   f"{value.ndim} dimensions")
            if value._rg:
                return apply_inplace(ASSIGN, self, value, _method="fill_")
            value = value.item()
        return apply_inplace(FULL_LIKE, self, value=value, _method="fill_")
    except Exception as e:
        reraise_filtered(e)
        raise


@tensor_method("copy_")
def copy_(self, src, non_blocking: bool = False):
    """Copy ``src`` (broadcast, converted to this dtype) into this tensor in place."""
    try:
        if not isinstance(src, Tensor):
            from ..core.creation import as_tensor
            src = as_tensor(src)
        return apply_inplace(ASSIGN, self, src, _method="copy_")
    except Exception as e:
        reraise_filtered(e)
        raise


@api
def zeros_like(input, *, dtype=None, requires_grad: bool = False):
    """Zeros with the shape (and dtype) of ``input``.

    >>> import danlu as dl
    >>> dl.zeros_like(dl.ones(2, dtype=dl.int32))
    tensor([0, 0], dtype=danlu.int32)
    """
    return full_like(input, 0, dtype=dtype, requires_grad=requires_grad)


@api
def ones_like(input, *, dtype=None, requires_grad: bool = False):
    """Ones with the shape (and dtype) of ``input``.

    >>> import danlu as dl
    >>> dl.ones_like(dl.zeros(2))
    tensor([1., 1.])
    """
    return full_like(input, 1, dtype=dtype, requires_grad=requires_grad)


@api
def full_like(input, fill_value, *, dtype=None, requires_grad: bool = False):
    """A tensor of ``fill_value`` with the shape (and dtype) of ``input``.

    >>> import danlu as dl
    >>> dl.full_like(dl.zeros(2), 7)
    tensor([7., 7.])
    """
    from ..core.dispatch import _no_grad

    with _no_grad():
        if dtype is not None and _dt.as_dtype(dtype) is not input.dtype:
            input = apply(CONVERT, input, dtype=_dt.as_dtype(dtype))
        out = apply(FULL_LIKE, input, value=fill_value)
    if requires_grad:
        out.requires_grad_(True)
    return out


@api
def empty_like(input, *, dtype=None, requires_grad: bool = False):
    """Uninitialised values are never exposed: this returns zeros with ``input``'s shape, like
    ``torch.empty_like`` in every way a program may rely on.

    >>> import danlu as dl
    >>> dl.empty_like(dl.ones(2)).shape
    danlu.Size([2])
    """
    return full_like(input, 0, dtype=dtype, requires_grad=requires_grad)


for _fn in (zeros_like, ones_like, full_like, empty_like):
    _export(_fn)


# == composites =====================================================================================

@api
def square(input):
    """``input * input``.

    >>> import danlu as dl
    >>> dl.square(dl.tensor([3.0]))
    tensor([9.])
    """
    return input * input


@api
def lerp(input, end, weight):
    """``input + weight * (end - input)``, as ``torch.lerp``.

    >>> import danlu as dl
    >>> dl.lerp(dl.tensor([0.0]), dl.tensor([10.0]), 0.3)
    tensor([3.])
    """
    return input + weight * (end - input)


Tensor.logical_not_ = inplace_method(LOGICAL_NOT, "logical_not_")
for _fn in (square, lerp):
    _export(_fn, _fn.__name__)
Tensor.square_ = lambda self: self.pow_(2)  # noqa: E731


# == algebraic simplification rules (read by danlu.graph's simplification pass) =====================

def _aval_eq(out, x):
    return hasattr(x, "shape") and not isinstance(x, Tensor) and tuple(out.shape) == tuple(x.shape) \
        and out.dtype == x.dtype


def _num(v, c):
    # exact Python numbers only: a symbolic size (an int subclass) must not be compared by its example value
    return v.__class__ in (int, float) and v == c


def _identity_rule(left=None, right=None):
    def rule(ins, attrs, out, producer):
        a, b = ins
        if right is not None and _num(b, right) and _aval_eq(out, a):
            return a
        if left is not None and _num(a, left) and _aval_eq(out, b):
            return b
        return None
    return rule


def _pow_rule(ins, attrs, out, producer):
    x, e = ins
    if not hasattr(x, "shape"):
        return None
    if _num(e, 1) and _aval_eq(out, x):
        return x
    if _num(e, 2):
        return [(MUL, (x, x), {})]  # noqa: F821
    if _num(e, 3):
        return [(MUL, (x, x), {}), (MUL, (None, x), {})]  # noqa: F821 - None: the previous step's output
    return None


def _neg_rule(ins, attrs, out, producer):
    p = producer(ins[0])
    if p is not None and p.op is _NEG:
        return p.inputs[0]
    return None


def _convert_rule(ins, attrs, out, producer):
    return ins[0] if _aval_eq(out, ins[0]) else None


_NEG = get_op("neg")
ADD.extra["simplify"] = _identity_rule(left=0, right=0)  # noqa: F821
SUB.extra["simplify"] = _identity_rule(right=0)  # noqa: F821
MUL.extra["simplify"] = _identity_rule(left=1, right=1)  # noqa: F821
DIV.extra["simplify"] = _identity_rule(right=1)  # noqa: F821
POW.extra["simplify"] = _pow_rule  # noqa: F821
_NEG.extra["simplify"] = _neg_rule
CONVERT.extra["simplify"] = _convert_rule
