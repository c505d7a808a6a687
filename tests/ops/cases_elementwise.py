"""OpCases for elementwise ops."""

import math

import torch
import torch.nn.functional as TF

import danlu as dl

from .harness import Arg, OpCase

UNARY_SHAPES = [(3, 4), (), (0, 3), (1,), (2, 1, 3)]
BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((), (2, 3)), ((0, 3), (1, 3)),
                 ((1,), ()), ((5,), (1,))]


def unary(name, kind="float", dl_fn=None, torch_fn=None, **kw):
    samples = [[Arg(s, kind)] for s in UNARY_SHAPES]
    return OpCase(name, dl_fn or getattr(dl, name), torch_fn or getattr(torch, name), samples, **kw)


def binary(name, kind_a="float", kind_b="float", dl_fn=None, torch_fn=None, **kw):
    samples = [[Arg(a, kind_a), Arg(b, kind_b)] for a, b in BINARY_SHAPES]
    return OpCase(name, dl_fn or getattr(dl, name), torch_fn or getattr(torch, name), samples, **kw)


def _away_from_ints(rng, shape):
    """Values whose fractional part is in [0.1, 0.9]: floor/round are smooth there."""
    return rng.integers(-3, 3, shape) + rng.uniform(0.1, 0.9, shape)


def _away_from_zero(rng, shape):
    return rng.uniform(0.2, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


CASES = [
    unary("neg"), unary("abs", "nonzero"), unary("exp"), unary("exp2"), unary("log", "pos"), unary("log2", "pos"),
    unary("log10", "pos"), unary("log1p", "pos"), unary("expm1"), unary("sqrt", "pos"), unary("rsqrt", "pos"),
    unary("sin"), unary("cos"), unary("tan", "unit"), unary("asin", "unit"), unary("acos", "unit"),
    unary("atan"), unary("sinh"), unary("cosh"), unary("tanh"), unary("sigmoid"), unary("erf"),
    unary("reciprocal", "nonzero"), unary("square"),
    unary("relu", "nonzero", torch_fn=torch.relu),
    unary("sign", "nonzero"),
    OpCase("frac", dl.frac, torch.frac, [[Arg(s, "custom", fill=_away_from_ints)] for s in UNARY_SHAPES]),
    OpCase("floor", dl.floor, torch.floor, [[Arg(s, "custom", fill=_away_from_ints)] for s in UNARY_SHAPES]),
    OpCase("ceil", dl.ceil, torch.ceil, [[Arg(s, "custom", fill=_away_from_ints)] for s in UNARY_SHAPES]),
    OpCase("trunc", dl.trunc, torch.trunc, [[Arg(s, "custom", fill=_away_from_ints)] for s in UNARY_SHAPES]),
    OpCase("round", dl.round, torch.round, [[Arg(s, "custom", fill=_away_from_ints)] for s in UNARY_SHAPES]),
    OpCase("round_decimals", lambda x: dl.round(x, decimals=2), lambda x: torch.round(x, decimals=2),
           [[Arg((3, 4), "custom", fill=lambda r, s: r.integers(-300, 300, s) / 100 + 0.003)]]),
    binary("add"), binary("sub"), binary("mul"), binary("div", "float", "nonzero"),
    binary("pow", "pos", "float"), binary("maximum"), binary("minimum"),
    binary("atan2", "nonzero", "nonzero"),
    OpCase("remainder", dl.remainder, torch.remainder,
           [[Arg(a, "custom", fill=lambda r, s: r.uniform(-3, 3, s)), Arg(b, "custom", fill=_away_from_zero)]
            for a, b in BINARY_SHAPES], numeric_grad=False),
    OpCase("fmod", dl.fmod, torch.fmod,
           [[Arg(a), Arg(b, "custom", fill=_away_from_zero)] for a, b in BINARY_SHAPES], numeric_grad=False),
    OpCase("floor_divide", dl.floor_divide, torch.floor_divide,
           [[Arg((3, 4), "custom", fill=_away_from_ints),
             Arg((3, 4), "custom", fill=lambda r, s: r.uniform(0.7, 0.9, s))]],
           grad=False),  # PyTorch defines no derivative for floor_divide
    OpCase("div_floor", lambda a, b: dl.div(a, b, rounding_mode="floor"),
           lambda a, b: torch.div(a, b, rounding_mode="floor"),
           [[Arg((3, 4), "custom", fill=_away_from_ints),
             Arg((3, 4), "custom", fill=lambda r, s: r.uniform(0.7, 0.9, s))]],
           numeric_grad=False),
    OpCase("add_alpha", lambda a, b: dl.add(a, b, alpha=2.5), lambda a, b: torch.add(a, b, alpha=2.5),
           [[Arg((3, 4)), Arg((4,))]]),
    OpCase("sub_alpha", lambda a, b: dl.sub(a, b, alpha=-2), lambda a, b: torch.sub(a, b, alpha=-2),
           [[Arg((3, 4)), Arg((4,))]]),
    OpCase("div_trunc", lambda a, b: dl.div(a, b, rounding_mode="trunc"),
           lambda a, b: torch.div(a, b, rounding_mode="trunc"),
           [[Arg((3, 4), "float", low=-9, high=9), Arg((3, 4), "custom", fill=lambda r, s: r.uniform(0.7, 0.9, s))]],
           numeric_grad=False),
    OpCase("pow_scalar_exp", lambda a: a ** 3, lambda a: a ** 3, [[Arg(s)] for s in UNARY_SHAPES]),
    # integral exponents take shortcuts (negative bases are slow in pow): signs, zeros, infs and NaN
    OpCase("pow_integral_exps", lambda a: tuple(a ** e for e in (3, -1, -2, 4, 5, -3, 6.0)),
           lambda a: tuple(a ** e for e in (3, -1, -2, 4, 5, -3, 6.0)),
           [[Arg((4, 5), "custom", fill=_away_from_zero)],
            [Arg((7,), "custom", fill=lambda r, s: [0.0, -0.0, math.inf, -math.inf, math.nan, -1.5, 2.0])]],
           numeric_grad=False),
    OpCase("pow_integral_exps_half", lambda a: tuple(a.half() ** e for e in (3, -1, -2, 5)),
           lambda a: tuple(a.half() ** e for e in (3, -1, -2, 5)),
           [[Arg((4, 5), "custom", fill=_away_from_zero)]], dtypes=("float32",), grad=False),
    OpCase("pow_scalar_base", lambda a: 2.0 ** a, lambda a: 2.0 ** a, [[Arg(s)] for s in UNARY_SHAPES]),
    OpCase("rsub_scalar", lambda a: 1 - a, lambda a: 1 - a, [[Arg((3,))]]),
    OpCase("rdiv_scalar", lambda a: 2 / a, lambda a: 2 / a, [[Arg((3,), "nonzero")]]),
    OpCase("mul_int_float_promote", lambda a, b: a * b, lambda a, b: a * b,
           [[Arg((3,), "int", low=-5, high=5), Arg((3,))]]),
    OpCase("add_0d_no_widen", lambda a, b: a + b, lambda a, b: a + b,
           [[Arg((3,)), Arg((), dtype="float64")]], dtypes=("float32",)),
    OpCase("div_int", lambda a, b: a / b, lambda a, b: a / b,
           [[Arg((4,), "int", low=-9, high=9), Arg((4,), "int", low=1, high=4)]], dtypes=("int64",), grad=False),
    OpCase("int_ops", lambda a, b: (a + b, a * b, a - b, a // b, a % b, a ** 2),
           lambda a, b: (a + b, a * b, a - b, a // b, a % b, a ** 2),
           [[Arg((4,), "int", low=-9, high=9), Arg((4,), "int", low=1, high=4)]], dtypes=("int64", "int32"),
           grad=False),
    OpCase("comparisons", lambda a, b: (a == b, a != b, a < b, a <= b, a > b, a >= b),
           lambda a, b: (a == b, a != b, a < b, a <= b, a > b, a >= b),
           [[Arg((3, 4), "int", low=0, high=3), Arg((4,), "int", low=0, high=3)],
            [Arg((2, 3)), Arg((2, 3))], [Arg(()), Arg((2,))]], dtypes=("float32", "int64"), grad=False),
    OpCase("comparisons_fn",
           lambda a, b: (dl.eq(a, b), dl.ne(a, b), dl.lt(a, b), dl.le(a, b), dl.gt(a, b), dl.ge(a, b)),
           lambda a, b: (torch.eq(a, b), torch.ne(a, b), torch.lt(a, b), torch.le(a, b), torch.gt(a, b),
                         torch.ge(a, b)),
           [[Arg((3, 4), "int", low=0, high=3), Arg((3, 4), "int", low=0, high=3)]], grad=False),
    OpCase("logical",
           lambda a, b: (dl.logical_and(a, b), dl.logical_or(a, b), dl.logical_xor(a, b), dl.logical_not(a)),
           lambda a, b: (torch.logical_and(a, b), torch.logical_or(a, b), torch.logical_xor(a, b),
                         torch.logical_not(a)),
           [[Arg((3, 4), "bool"), Arg((4,), "bool")], [Arg((3,), "int", low=0, high=2), Arg((3,))]], grad=False),
    OpCase("bitwise", lambda a, b: (a & b, a | b, a ^ b, ~a), lambda a, b: (a & b, a | b, a ^ b, ~a),
           [[Arg((3, 4), "int", low=0, high=100), Arg((4,), "int", low=0, high=100)],
            [Arg((3,), "bool"), Arg((3,), "bool")]], dtypes=("int64",), grad=False),
    OpCase("isnan_isinf_isfinite", lambda a: (dl.isnan(a), dl.isinf(a), dl.isfinite(a)),
           lambda a: (torch.isnan(a), torch.isinf(a), torch.isfinite(a)),
           [[Arg((6,), "custom", fill=lambda r, s: [0.0, math.nan, math.inf, -math.inf, 1.0, -2.0])]], grad=False),
    OpCase("where", dl.where, torch.where,
           [[Arg((3, 4), "bool"), Arg((3, 4)), Arg((3, 4))], [Arg((3, 1), "bool"), Arg((4,)), Arg(())],
            [Arg((0, 2), "bool"), Arg((1, 2)), Arg((2,))]]),
    OpCase("where_scalars", lambda c, a: dl.where(c, a, 0.0), lambda c, a: torch.where(c, a, 0.0),
           [[Arg((3, 4), "bool"), Arg((3, 4))]]),
    OpCase("where_two_scalars", lambda c: dl.where(c, 1.0, 0.0), lambda c: torch.where(c, 1.0, 0.0),
           [[Arg((3, 4), "bool")]], grad=False),
    OpCase("clamp", lambda a: dl.clamp(a, -0.5, 0.5), lambda a: torch.clamp(a, -0.5, 0.5),
           [[Arg(s, "custom", fill=lambda r, s: r.uniform(-2, 2, s) + 0.01)] for s in UNARY_SHAPES]),
    OpCase("clamp_min_only", lambda a: a.clamp(min=0.1), lambda a: a.clamp(min=0.1), [[Arg((3, 4))]]),
    OpCase("clamp_max_only", lambda a: dl.clamp(a, max=0.1), lambda a: torch.clamp(a, max=0.1), [[Arg((3, 4))]]),
    OpCase("clamp_tensor", lambda a, lo, hi: dl.clamp(a, lo, hi), lambda a, lo, hi: torch.clamp(a, lo, hi),
           [[Arg((3, 4)), Arg((4,), low=-1, high=-0.2), Arg((3, 1), low=0.2, high=1)]]),
    OpCase("clamp_int", lambda a: dl.clamp(a, 0, 5), lambda a: torch.clamp(a, 0, 5),
           [[Arg((6,), "int", low=-9, high=9)]], dtypes=("int64",), grad=False),
    OpCase("lerp", dl.lerp, torch.lerp, [[Arg((3, 4)), Arg((3, 4)), Arg((4,), "unit")]]),
    OpCase("lerp_scalar", lambda a, b: dl.lerp(a, b, 0.3), lambda a, b: torch.lerp(a, b, 0.3),
           [[Arg((3, 4)), Arg((1, 4))]]),
    OpCase("zeros_ones_full_like", lambda a: (dl.zeros_like(a), dl.ones_like(a), dl.full_like(a, 3.5)),
           lambda a: (torch.zeros_like(a), torch.ones_like(a), torch.full_like(a, 3.5)), [[Arg((2, 3))]], grad=False),
    OpCase("copy_", lambda a, b: a.clone().copy_(b), lambda a, b: a.clone().copy_(b), [[Arg((3, 4)), Arg((4,))]]),
    OpCase("fill_tensor_grad", lambda a, v: a.clone().fill_(v), lambda a, v: a.clone().fill_(v),
           [[Arg((3,)), Arg(())]]),
    OpCase("to_float64", lambda a: a.to(dl.float64) * 2, lambda a: a.to(torch.float64) * 2, [[Arg((3,))]],
           dtypes=("float32",)),
    OpCase("gelu_exact", lambda a: dl.nn.functional.gelu(a), TF.gelu, [[Arg(s)] for s in UNARY_SHAPES], tags=("nn",)),
]

# The activation-backward primitives, reached directly through double backward of the activations.
def _second(fn):
    def run(lib, x, v):
        with lib.enable_grad():  # numerical gradient checks call this under no_grad
            if not x.requires_grad:  # forward-only checks pass plain inputs
                x = x.detach().requires_grad_(True)
            y = fn(lib)(x)
            (g,) = lib.autograd.grad(y, x, v, create_graph=True)
        return g
    return run


CASES += [
    OpCase("tanh_double_backward", lambda x, v: _second(lambda m: m.tanh)(dl, x, v),
           lambda x, v: _second(lambda m: m.tanh)(torch, x, v), [[Arg((3, 4)), Arg((3, 4))]]),
    OpCase("sigmoid_double_backward", lambda x, v: _second(lambda m: m.sigmoid)(dl, x, v),
           lambda x, v: _second(lambda m: m.sigmoid)(torch, x, v), [[Arg((3, 4)), Arg((3, 4))]]),
    OpCase("relu_double_backward", lambda x, v: _second(lambda m: m.relu)(dl, x, v),
           lambda x, v: _second(lambda m: m.relu)(torch, x, v), [[Arg((3, 4), "nonzero"), Arg((3, 4))]]),
]

CASES += [
    OpCase("shifts", lambda a, b: (a << b, a >> b, dl.bitwise_left_shift(a, 2), a.bitwise_right_shift(1)),
           lambda a, b: (a << b, a >> b, torch.bitwise_left_shift(a, 2), a.bitwise_right_shift(1)),
           [[Arg((3, 4), "int", low=0, high=100), Arg((4,), "int", low=0, high=5)]], dtypes=("int64", "int32"),
           grad=False),
]
