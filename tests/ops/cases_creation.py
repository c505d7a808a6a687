"""OpCases for creation ops (full/zeros/ones/empty, arange, linspace/logspace, eye, *_like, new_*) and dtype
conversions; plain tests for tensor()/as_tensor()/from_numpy() dtype inference and memory sharing.

Creation functions take no tensor inputs, so their samples are plain Python values; the harness still runs
them through the recording interpreter, which is how the coverage test sees the creation primitives."""

import math

import numpy as np
import pytest
import torch

import danlu as dl

from .harness import Arg, OpCase


def both(name, f, samples, **kw):
    """A case whose call is the same for both libraries: ``f(lib, *args)``."""
    return OpCase(name, lambda *a: f(dl, *a), lambda *a: f(torch, *a), samples, **kw)


def make(name, f, samples, exact=False, **kw):
    """A creation case (no tensor inputs, nothing to differentiate); ``exact`` compares bit for bit."""
    if exact:
        kw.update(atol=0.0, rtol=0.0)
    return both(name, f, samples, grad=False, dtypes=("float32",), noncontig=False, **kw)


def dtypes_of(m):
    return [m.float32, m.float64, m.int64, m.int32, m.int16, m.int8, m.uint8, m.bool, m.float16]


CASES = [
    # -- full / zeros / ones / empty ---------------------------------------------------------------------
    make("full", lambda m, size, value: m.full(size, value),
         [[(2, 3), 1.5], [(2,), 7], [(), True], [(0, 3), -1], [[2, 2], -0.25], [(1, 1, 2), False], [(3,), 2**40]]),
    make("full_dtype", lambda m, size, value: (m.full(size, value, dtype=m.float64), m.full(size, value, dtype=m.int32),
                                               m.full(size, value, dtype=m.bool)),
         [[(2, 3), 3], [(2,), 0]]),
    make("zeros_ones", lambda m, *size: (m.zeros(*size), m.ones(*size), m.zeros(size), m.ones(size, dtype=m.int64),
                                         m.zeros(*size, dtype=m.bool)),
         [[2, 3], [4], [0, 2], [1, 1, 1]]),
    make("zeros_ones_0d", lambda m: (m.zeros(()), m.ones([]), m.zeros((), dtype=m.int64)), [[]]),
    # empty's contents are unspecified in PyTorch (danlu gives zeros): compare shape and dtype only.
    make("empty", lambda m, *size: (m.empty(*size).shape == size, m.empty(*size, dtype=m.int32).dtype == m.int32),
         [[2, 3], [0]]),
    make("full_like_family", lambda m, x: (m.zeros_like(x), m.ones_like(x), m.full_like(x, 2.5), m.full_like(x, 7),
                                           m.zeros_like(x, dtype=m.int64), m.ones_like(x, dtype=m.float64),
                                           m.empty_like(x).shape == x.shape),
         [[Arg((2, 3))], [Arg(())], [Arg((0, 2))], [Arg((3,), "int", low=-5, high=5)], [Arg((2,), "bool")]]),
    make("full_like_int_truncates", lambda m, x: (m.full_like(x, 2.7), m.full_like(x, -1.5), m.full_like(x, True)),
         [[Arg((3,), "int", low=-5, high=5)]]),
    make("new_methods", lambda m, x: (x.new_zeros(2, 3), x.new_ones((2,)), x.new_full((2, 2), 3), x.new_full((1,), 2.5),
                                      x.new_empty(3).shape, x.new_tensor([1, 2]), x.new_tensor([1.5]),
                                      x.new_zeros(2, dtype=m.int64), x.new_ones(1, dtype=m.bool)),
         [[Arg((2,))], [Arg((2,), "int", low=0, high=3)], [Arg((2,), dtype="float64")]]),
    # -- arange ------------------------------------------------------------------------------------------
    # Integer aranges are exact; float ones agree to rounding: PyTorch's float kernel adds steps to a
    # rounded block base in 8-wide vector blocks, danlu computes start + i * step in float64 and rounds once.
    make("arange", lambda m, *a: m.arange(*a),
         [[5], [0], [1, 7, 2], [0, 1, 0.25], [5, 0, -1.5], [-3, 3], [0, 10, 3], [1.0, 2.5, 0.5], [10, 2, -3], [0, 0],
          [-1.0, 1.0, 0.1], [0, 1, 0.1], [2.5], [1, 2.5], [-5, -20, -4], [0, 1, 1 / 3], [0.3, 2.9, 0.2]],
         atol=1e-7),
    make("arange_dtype", lambda m, *a: (m.arange(*a, dtype=m.float64), m.arange(*a, dtype=m.float32),
                                        m.arange(*a, dtype=m.int32), m.arange(*a, dtype=m.float16)),
         [[5], [1, 7, 2], [10, 2, -3], [-2, 2]], exact=True),
    make("arange_float_dtype_int_args", lambda m, *a: m.arange(*a, dtype=m.float64),
         [[0, 1, 0.1], [-1.0, 1.0, 0.1], [0.0, 3.3, 0.3], [1e3, 1e3 + 1, 0.125]], atol=1e-15, rtol=1e-15),
    make("arange_tensor_args", lambda m: (m.arange(m.tensor(3)), m.arange(m.tensor(1), m.tensor(4.0))), [[]]),
    # -- linspace / logspace (linspace is bit-exact with PyTorch's CPU kernel, in every dtype) -----------
    make("linspace", lambda m, a, b, n: m.linspace(a, b, n),
         [[0, 1, 5], [-3, 7, 6], [0.1, 0.9, 9], [2, 3, 1], [2, 3, 0], [1, -1, 2], [5, 5, 4], [-1.3, 10.7, 100],
          [1e-3, 3e4, 37], [0, 1, 10], [0, 1, 11], [-2.5, 2.5, 1], [3.3, -7.1, 33]], exact=True),
    make("linspace_dtypes", lambda m, a, b, n: tuple(m.linspace(a, b, n, dtype=d) for d in dtypes_of(m)[:-1]
                                                     if d not in (m.bool, m.uint8)),
         [[0, 1, 5], [-3.7, 7.2, 6], [0.1, 90.9, 9], [2, 3, 1], [-100, 100, 17], [0.5, 3.7, 5]], exact=True),
    make("linspace_float16", lambda m, a, b, n: m.linspace(a, b, n, dtype=m.float16),
         [[0, 1, 5], [-3.7, 7.2, 6], [0.1, 90.9, 40], [9, -3, 24]], exact=True),
    make("linspace_tensor_args", lambda m: m.linspace(m.tensor(0.5), m.tensor(2), 4), [[]], exact=True),
    make("logspace", lambda m, a, b, n, base: (m.logspace(a, b, n, base), m.logspace(a, b, n, base, dtype=m.float64)),
         [[0, 2, 3, 10.0], [-2, 2, 9, 2.0], [1, -1, 5, 2.5], [0, 3, 1, 10.0], [0, 3, 0, 10.0], [-1.5, 1.5, 7, math.e]],
         rtol=1e-6),
    make("logspace_int", lambda m, a, b, n: m.logspace(a, b, n, dtype=m.int64), [[0, 3, 4], [0, 10, 11]]),
    # -- eye -----------------------------------------------------------------------------------------------
    make("eye", lambda m, *a: (m.eye(*a), m.eye(*a, dtype=m.int64), m.eye(*a, dtype=m.bool)),
         [[3], [2, 4], [4, 2], [0], [3, 0], [1]], exact=True),
    # -- dtype conversions ---------------------------------------------------------------------------------
    both("convert_methods", lambda m, x: (x.float(), x.double(), x.half(), x.long(), x.int(), x.short(), x.char(),
                                          x.bool()),
         [[Arg((3, 4), "float", low=-100, high=100)], [Arg((2,), "custom", fill=lambda r, s: np.array([0.0, -0.0]))],
          [Arg((3,), "custom", fill=lambda r, s: np.array([2.7, -2.7, 0.5]))]], grad=False),
    both("convert_byte", lambda m, x: x.byte(), [[Arg((3, 4), "float", low=0, high=200)]], grad=False),
    both("convert_from_int_bool", lambda m, x: (x.float(), x.double(), x.long(), x.int(), x.bool(), x.byte(), x.half()),
         [[Arg((3, 4), "int", low=0, high=9)], [Arg((3, 4), "bool")],
          [Arg((3,), "int", low=-9, high=9, dtype="int32")]], grad=False),
    both("to_dtype", lambda m, x: (x.to(m.float64), x.to(dtype=m.float32), x.to(m.int64), x.to("cpu"),
                                   x.to("cpu", m.float64), x.to(torch_like(m, x)), x.to(m.float32, copy=True),
                                   x.type(m.float64), x.type_as(m.zeros(1, dtype=m.int32))),
         [[Arg((3, 4))]], grad=False),
    both("to_grad", lambda m, x: x.to(m.float64) * 2 + x.to(m.float64).to(x.dtype) * x, [[Arg((3, 4))], [Arg(())]]),
    # A float32/float16 round trip is a step function to finite differences: compare with PyTorch only.
    both("to_round_trip_grad", lambda m, x: (x.half().float() * x, x.float().double() * x),
         [[Arg((3,), "custom", fill=lambda r, s: np.array([0.5, 1.25, -2.0]))]], numeric_grad=False),
]


def torch_like(m, x):
    """A tensor of another dtype, to convert ``x`` into with ``x.to(other)``."""
    return m.zeros(1, dtype=m.float64)


# -- tensor() / as_tensor() / from_numpy() ------------------------------------------------------------------

TENSOR_DATA = [
    1, 2.5, True, -7, [1, 2, 3], [1.0, 2, 3], [True, False], [True, 1], [True, 1.5], [[1, 2], [3, 4]],
    [[1.0, 2.0], [3, 4]], [], [[]], [[], []], (1, 2), ((1, 2.0), (3, 4)), [[[1], [2]], [[3], [4]]], 2**40,
    [np.float64(1.5)], [np.int32(3), 4], np.float32(2.5), np.int64(7), np.bool_(True), [0.1, 1e-30, 1e30],
    # NumPy scalars inside lists keep their dtype and promote (strongly) with the rest, as in PyTorch:
    [np.float64(1.5), 2], [np.float32(1.5), 2.0], [np.int32(3)], [np.int16(3), np.int8(2)], [np.int8(3), 2.5],
    [np.float16(1.0), 1], [np.uint8(3), np.int8(-1)], [[np.float32(1.0)], [2.0]],
]

@pytest.mark.parametrize("k", range(len(TENSOR_DATA)))
def test_tensor_dtype_inference(k):
    data = TENSOR_DATA[k]
    want = torch.tensor(data)
    got = dl.tensor(data)
    assert got.dtype.name == str(want.dtype).replace("torch.", ""), f"{data!r}: {got.dtype} vs {want.dtype}"
    assert tuple(got.shape) == tuple(want.shape)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


NUMPY_ARRAYS = [np.arange(3, dtype=np.float64), np.arange(3, dtype=np.float32), np.arange(3, dtype=np.int32),
                np.arange(3, dtype=np.int16), np.arange(3, dtype=np.int8), np.arange(3, dtype=np.uint8),
                np.array([True, False]), np.float16([1.5]), np.zeros((2, 0)), np.array(3.5), np.array(4)]


@pytest.mark.parametrize("k", range(len(NUMPY_ARRAYS)))
def test_tensor_from_numpy_keeps_dtype(k):
    a = NUMPY_ARRAYS[k]
    for fn_dl, fn_t in [(dl.tensor, torch.tensor), (dl.as_tensor, torch.as_tensor), (dl.from_numpy, torch.from_numpy)]:
        got, want = fn_dl(a), fn_t(a)
        assert got.dtype.name == str(want.dtype).replace("torch.", "")
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_tensor_dtype_argument_and_default_dtype():
    assert dl.tensor([1, 2], dtype=dl.float64).dtype is dl.float64
    assert dl.tensor([1.7, -1.7], dtype=dl.int64).tolist() == torch.tensor([1.7, -1.7], dtype=torch.int64).tolist()
    assert dl.tensor(np.arange(3), dtype=dl.float32).dtype is dl.float32
    dl.set_default_dtype(dl.float64)
    try:
        assert dl.tensor([1.0]).dtype is dl.float64
        assert dl.tensor([1]).dtype is dl.int64
        assert dl.zeros(2).dtype is dl.float64 and dl.full((1,), 0.5).dtype is dl.float64
        assert dl.arange(0, 1, 0.5).dtype is dl.float64 and dl.linspace(0, 1, 3).dtype is dl.float64
    finally:
        dl.set_default_dtype(dl.float32)


def test_tensor_copies_and_as_tensor_shares():
    a = np.zeros(3)
    t = dl.tensor(a)
    a[0] = 1.0
    assert t[0].item() == 0.0  # tensor() copies
    s = dl.as_tensor(a)
    f = dl.from_numpy(a)
    a[1] = 2.0
    assert s[1].item() == 2.0 and f[1].item() == 2.0  # as_tensor / from_numpy share memory
    f[2] = 3.0
    assert a[2] == 3.0  # both ways
    assert dl.as_tensor(a, dtype=dl.float32).dtype is dl.float32  # a dtype change must copy
    x = dl.ones(2)
    assert dl.as_tensor(x) is x and dl.as_tensor(x, dtype=dl.float32) is x
    assert dl.as_tensor([1, 2]).dtype is dl.int64


def test_from_numpy_rejects_non_arrays_and_unsupported_dtypes():
    with pytest.raises(TypeError, match="np.ndarray"):
        dl.from_numpy([1, 2])
    with pytest.raises(TypeError, match="complex128"):
        dl.from_numpy(np.zeros(2, np.complex128))


def test_tensor_ragged_raises():
    with pytest.raises(ValueError, match="ragged"):
        dl.tensor([[1, 2], [3]])
    with pytest.raises(TypeError, match="str"):
        dl.tensor(["a"])


def test_tensor_of_tensors_and_requires_grad():
    t = dl.tensor([dl.tensor(1.0), dl.tensor(2.0)])
    assert t.tolist() == [1.0, 2.0] and t.dtype is dl.float32
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    assert x.requires_grad and x.is_leaf
    y = dl.tensor(x)  # a copy that does not share history (PyTorch warns, then does the same)
    assert not y.requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        dl.tensor([1, 2], requires_grad=True)


# -- creation argument handling -------------------------------------------------------------------------------

def test_full_dtype_inference_matches_torch():
    for v in (1, 1.0, True, -3, 2.5, np.float64(2.0), np.int64(3)):
        assert dl.full((2,), v).dtype.name == str(torch.full((2,), v).dtype).replace("torch.", ""), v


def test_creation_errors():
    with pytest.raises(RuntimeError, match="negative dimension"):
        dl.zeros(2, -1)
    with pytest.raises(TypeError, match="ints"):
        dl.ones(2.5)
    with pytest.raises(RuntimeError, match="step must be nonzero"):
        dl.arange(0, 5, 0)
    with pytest.raises(RuntimeError, match="bound"):
        dl.arange(5, 0, 1)
    with pytest.raises(RuntimeError, match="non-negative"):
        dl.linspace(0, 1, -1)
    with pytest.raises(RuntimeError, match="non-negative"):
        dl.eye(-1)


def test_creation_requires_grad():
    for t in (dl.zeros(2, requires_grad=True), dl.ones(2, requires_grad=True), dl.full((2,), 1.0, requires_grad=True),
              dl.arange(0.0, 2.0, requires_grad=True), dl.linspace(0, 1, 3, requires_grad=True),
              dl.eye(2, requires_grad=True), dl.empty(2, requires_grad=True)):
        assert t.requires_grad and t.is_leaf and t.grad_fn is None


def test_linspace_float32_exact_random():
    """Bit-exact against torch.linspace on random float32 endpoints and step counts (steps=1 included)."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        a, b = (rng.uniform(-1, 1, 2) * 10.0 ** rng.integers(-3, 5)).tolist()
        n = int(rng.integers(0, 200)) if rng.random() < 0.9 else 1
        want = torch.linspace(a, b, n, dtype=torch.float32).numpy()
        got = dl.linspace(a, b, n, dtype=dl.float32).numpy()
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want, err_msg=f"linspace({a}, {b}, {n})")


def test_to_returns_self_or_copies():
    x = dl.zeros(2)
    assert x.to(dl.float32) is x and x.to("cpu") is x and x.float() is x
    c = x.to(dl.float32, copy=True)
    assert c is not x
    c[0] = 1.0
    assert x[0].item() == 0.0
    assert x.type() == "danlu.FloatTensor" and x.long().type() == "danlu.LongTensor"
    with pytest.raises(TypeError, match="to"):
        x.to(3.5)
