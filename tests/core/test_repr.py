"""repr of tensors equals PyTorch's (with 'danlu.' for 'torch.') over many layouts and values."""

import re

import numpy as np
import pytest
import torch

import danlu as dl

# Data built with NumPy so both libraries get bit-identical values.
_rng = np.random.default_rng(0)
CASES = {
    "int-1d": np.array([1, 2, 3]),
    "int-negative": np.array([-1, 20, -300, 4000]),
    "int-0d": np.array(7),
    "int-big": np.array([123456789012, -5]),
    "int32": np.array([1, -2], dtype=np.int32),
    "int16": np.array([[1, 2], [3, 4]], dtype=np.int16),
    "int8": np.array([-128, 127], dtype=np.int8),
    "uint8": np.array([0, 255], dtype=np.uint8),
    "float-simple": np.array([1.5, 2.25, -3.0], dtype=np.float32),
    "float-int-valued": np.array([1.0, 2.0, -3.0], dtype=np.float32),
    "float-int-valued-large": np.array([1.0, 2000.0], dtype=np.float32),
    "float-int-valued-huge": np.array([1.0, 1e9], dtype=np.float32),
    "float-zeros": np.zeros(4, dtype=np.float32),
    "float-negative-zero": np.array([-0.0, 1.0], dtype=np.float32),
    "float-sci-small": np.array([1e-5, 1.0], dtype=np.float32),
    "float-sci-range": np.array([0.001, 12345.678], dtype=np.float32),
    "float-sci-large": np.array([1.5e10, 2.0], dtype=np.float32),
    "float-tiny-only": np.array([1e-8, -3e-9], dtype=np.float32),
    "float-0d": np.array(3.14159, dtype=np.float32),
    "float-0d-int-valued": np.array(2.0, dtype=np.float32),
    "float-0d-negative": np.array(-0.5, dtype=np.float32),
    "nan-inf": np.array([np.nan, np.inf, -np.inf, 1.5], dtype=np.float32),
    "nan-inf-int-valued": np.array([np.nan, 2.0, -np.inf], dtype=np.float32),
    "only-nan": np.array([np.nan, np.nan], dtype=np.float32),
    "nan-0d": np.array(np.nan, dtype=np.float32),
    "inf-sci": np.array([np.inf, 1e-6, 3.0], dtype=np.float32),
    "bool": np.array([True, False, True]),
    "bool-2d": np.array([[True], [False]]),
    "bool-0d": np.array(False),
    "float16": np.array([1.5, -2.0, 0.1], dtype=np.float16),
    "float16-0d": np.array(0.25, dtype=np.float16),
    "float64": np.array([1.0 / 3, 2.5]),
    "float64-int-valued": np.array([1.0, 2.0]),
    "float64-sci": np.array([1e-12, 1e12]),
    "2d": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
    "3d": np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 10,
    "4d": np.arange(16).reshape(2, 2, 2, 2),
    "wide-floats": (_rng.standard_normal(30) * 3).astype(np.float32),
    "wide-ints": np.arange(-40, 40, 3),
    "wide-2d": _rng.standard_normal((3, 25)).astype(np.float32),
    "wide-sci": (_rng.standard_normal(20) * 1e6).astype(np.float32),
    "summarised-1d": np.arange(2000, dtype=np.float32) / 3,
    "summarised-2d": np.arange(1200).reshape(40, 30),
    "summarised-3d": np.arange(3000, dtype=np.float32).reshape(10, 15, 20) * 0.5,
    "summarised-short-rows": np.arange(1001).reshape(1001, 1),
    "summarised-int-valued-float": np.arange(1500, dtype=np.float32),
    "exactly-threshold": np.arange(1000, dtype=np.float32),
    "mixed-magnitudes": np.array([[0.0001, 1.0], [100.0, -0.5]], dtype=np.float32),
    "negative-floats": np.array([-1.25, -100.5, 3.0], dtype=np.float32),
    "large-float": np.array([99999999.0, 1.5], dtype=np.float32),
    "one-element-2d": np.array([[5.5]], dtype=np.float32),
}
EMPTY_SHAPES = [(0,), (0, 3), (2, 0), (2, 0, 4), (0, 0)]


def danlu_style(s: str) -> str:
    return s.replace("torch.", "danlu.")


def check(d, t):
    assert repr(d) == danlu_style(repr(t))
    assert str(d) == danlu_style(str(t))


@pytest.mark.parametrize("name", list(CASES))
def test_repr_matches_torch(name):
    a = CASES[name]
    check(dl.tensor(a), torch.tensor(a))


@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32", "bool", "float16"])
def test_repr_empty(shape, dtype):
    check(dl.zeros(shape, dtype=getattr(dl, dtype)), torch.zeros(shape, dtype=getattr(torch, dtype)))


@pytest.mark.parametrize("name", ["float-simple", "float-0d", "2d", "3d", "nan-inf", "wide-floats", "float64",
                                  "float16", "summarised-3d"])
def test_repr_requires_grad(name):
    a = CASES[name]
    d = dl.tensor(a, requires_grad=True)
    t = torch.tensor(a, requires_grad=True)
    check(d, t)


def _grad_fn_name(t: torch.Tensor) -> str:
    return type(t.grad_fn).__name__


GRAD_FN_CASES = {
    "mul": lambda m, x: x * 2,
    "add": lambda m, x: x + 1,
    "neg": lambda m, x: -x,
    "exp": lambda m, x: m.exp(x),
    "sum": lambda m, x: x.sum(),
    "sum-dim": lambda m, x: x.sum(0),
    "mean": lambda m, x: x.mean(),
    "transpose": lambda m, x: x.t(),
    "float64": lambda m, x: x.double() * 3,
    "float16": lambda m, x: x.half() + 1,
    "int-valued": lambda m, x: x * 0 + 1,
    "sci": lambda m, x: x * 1e-6,
}


@pytest.mark.parametrize("name", list(GRAD_FN_CASES))
def test_repr_grad_fn_suffix(name):
    a = np.arange(6, dtype=np.float32).reshape(2, 3) / 4 - 0.5
    d = GRAD_FN_CASES[name](dl, dl.tensor(a, requires_grad=True))
    t = GRAD_FN_CASES[name](torch, torch.tensor(a, requires_grad=True))
    # The value and layout must match exactly; the grad_fn name is danlu's primitive's name.
    dn = d.grad_fn.name()
    expected = danlu_style(repr(t)).replace(f"grad_fn=<{_grad_fn_name(t)}>", f"grad_fn=<{dn}>")
    assert repr(d) == expected
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]*Backward0", dn)


@pytest.mark.parametrize("name", ["mul", "add", "neg", "exp", "sum", "mean"])
def test_grad_fn_names_match_torch(name):
    # Where danlu's primitive is torch's op, the node name is torch's too.
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    d = GRAD_FN_CASES[name](dl, dl.tensor(x, requires_grad=True))
    t = GRAD_FN_CASES[name](torch, torch.tensor(x, requires_grad=True))
    assert d.grad_fn.name() == _grad_fn_name(t)


def test_repr_grad_fn_wraps_at_80_columns():
    a = np.arange(7, dtype=np.float32) + 0.5
    d = dl.tensor(a, requires_grad=True) * 1
    t = torch.tensor(a, requires_grad=True) * 1
    assert repr(d) == danlu_style(repr(t))
    a64 = np.arange(7) + 0.5
    d = dl.tensor(a64, requires_grad=True) * 1
    t = torch.tensor(a64, requires_grad=True) * 1
    assert repr(d) == danlu_style(repr(t))
    assert "\n" in repr(d)


def test_repr_under_float64_default():
    prev = torch.get_default_dtype()
    try:
        dl.set_default_dtype(dl.float64)
        torch.set_default_dtype(torch.float64)
        for a in (np.array([1.5, 2.0]), np.array([1.5, 2.0], dtype=np.float32), np.zeros((0, 2))):
            check(dl.tensor(a), torch.tensor(a))
        check(dl.zeros(0, dtype=dl.float32), torch.zeros(0, dtype=torch.float32))
    finally:
        torch.set_default_dtype(prev)
        dl.set_default_dtype(dl.float32)


def test_repr_non_contiguous():
    a = np.arange(12, dtype=np.float32).reshape(3, 4) / 3
    check(dl.tensor(a).t(), torch.tensor(a).t())
    check(dl.tensor(a)[:, ::2], torch.tensor(a)[:, ::2])


@pytest.mark.parametrize("opts", [dict(precision=2), dict(sci_mode=True), dict(sci_mode=False),
                                  dict(linewidth=40), dict(threshold=5, edgeitems=2), dict(profile="short")],
                         ids=str)
def test_set_printoptions(opts):
    arrays = [CASES["wide-floats"], CASES["float-sci-small"], CASES["2d"], CASES["summarised-2d"]]
    try:
        dl.set_printoptions(**opts)
        torch.set_printoptions(**opts)
        for a in arrays:
            check(dl.tensor(a), torch.tensor(a))
    finally:
        dl.set_printoptions(profile="default")
        torch.set_printoptions(profile="default")
