"""dtypes and type promotion against PyTorch: promote_types, result_type, the dtypes real ops produce,
the default dtype, finfo and iinfo."""

import itertools

import numpy as np
import pytest
import torch

import danlu as dl

NAMES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]
PAIRS = list(itertools.product(NAMES, NAMES))
SCALARS = [True, 3, -2, 2.5]


def dld(name):
    return getattr(dl, name)


def thd(name):
    return getattr(torch, name)


def name_of(dtype) -> str:
    return str(dtype).split(".")[-1]


def make(name, shape):
    """A danlu tensor and the equal torch tensor of dtype ``name`` (values valid for every dtype)."""
    a = (np.arange(int(np.prod(shape))) % 2 + 1).reshape(shape)
    a = a.astype(np.bool_ if name == "bool" else name)
    return dl.tensor(a), torch.tensor(a)


@pytest.fixture
def torch_default_dtype():
    prev = torch.get_default_dtype()
    yield
    torch.set_default_dtype(prev)


# -- promote_types --------------------------------------------------------------------------------

@pytest.mark.parametrize("a,b", PAIRS)
def test_promote_types_matches_torch(a, b):
    assert dl.promote_types(dld(a), dld(b)).name == name_of(torch.promote_types(thd(a), thd(b)))


def test_promote_types_is_symmetric_and_idempotent():
    for a, b in PAIRS:
        assert dl.promote_types(dld(a), dld(b)) is dl.promote_types(dld(b), dld(a))
    for a in NAMES:
        assert dl.promote_types(dld(a), dld(a)) is dld(a)


# -- result_type ------------------------------------------------------------------------------------

@pytest.mark.parametrize("a,b", PAIRS)
@pytest.mark.parametrize("shapes", [((2,), (2,)), ((2,), ()), ((), (2,)), ((), ())], ids=str)
def test_result_type_tensor_tensor(a, b, shapes):
    x, tx = make(a, shapes[0])
    y, ty = make(b, shapes[1])
    assert dl.result_type(x, y).name == name_of(torch.result_type(tx, ty))


@pytest.mark.parametrize("a", NAMES)
@pytest.mark.parametrize("s", SCALARS, ids=repr)
@pytest.mark.parametrize("shape", [(2,), ()], ids=str)
def test_result_type_tensor_scalar(a, s, shape):
    x, tx = make(a, shape)
    expected = name_of(torch.result_type(tx, s))
    assert dl.result_type(x, s).name == expected
    assert dl.result_type(s, x).name == expected


@pytest.mark.parametrize("a,b", PAIRS)
@pytest.mark.parametrize("s", SCALARS, ids=repr)
def test_result_type_three_operands(a, b, s):
    # torch.result_type takes two operands. Its rule keeps three priority classes (dim tensors, 0-d
    # tensors, Python scalars) and lets a lower class count only when its category is higher, so the
    # three-operand answer is: combine the 0-d tensor with the scalar, then that (as a 0-d tensor)
    # with the dim tensor. Both steps are asked of torch.
    x, tx = make(a, (2,))
    z, tz = make(b, ())
    zs = torch.result_type(tz, s)
    expected = torch.result_type(tx, torch.zeros((), dtype=zs))
    assert dl.result_type(x, z, s).name == name_of(expected)
    assert dl.result_type(s, z, x).name == name_of(expected)


@pytest.mark.parametrize("s,t", list(itertools.product(SCALARS, SCALARS)))
def test_result_type_scalars_only(s, t):
    # With no tensors, Python scalars keep their own categories: bool < int64 < default float.
    expected = name_of(torch.result_type(torch.tensor(s), t))
    assert dl.result_type(s, t).name == expected


def test_result_type_needs_an_operand():
    with pytest.raises(TypeError):
        dl.result_type()
    with pytest.raises(TypeError):
        dl.result_type("x")


# -- the dtypes real ops produce ------------------------------------------------------------------

@pytest.mark.parametrize("a,b", PAIRS)
def test_add_mul_dtype_matches_torch(a, b):
    x, tx = make(a, (3,))
    y, ty = make(b, ())
    fns = [lambda p, q: p + q, lambda p, q: p * q]
    if "bool" not in (a, b):  # torch refuses bool subtraction
        fns.append(lambda p, q: p - q)
    for f in fns:
        r, tr = f(x, y), f(tx, ty)
        assert r.dtype.name == name_of(tr.dtype)
        np.testing.assert_array_equal(r.numpy(), tr.numpy())
        assert f(y, x).dtype.name == name_of(f(ty, tx).dtype)


@pytest.mark.parametrize("a", NAMES)
@pytest.mark.parametrize("s", SCALARS, ids=repr)
def test_scalar_ops_dtype_matches_torch(a, s):
    x, tx = make(a, (3,))
    r, tr = x * s, tx * s
    assert r.dtype.name == name_of(tr.dtype)
    assert (s * x).dtype.name == name_of((s * tx).dtype)
    np.testing.assert_allclose(r.numpy().astype(np.float64), tr.numpy().astype(np.float64))
    assert (x * 2.5).dtype.name == name_of((tx * 2.5).dtype)


@pytest.mark.parametrize("name,s", [("uint8", -2), ("int8", 300), ("uint8", 256), ("int16", 70000), ("int32", -1)])
def test_int_scalar_outside_dtype_range_wraps_like_torch(name, s):
    # A Python int is weakly typed: the result keeps the tensor's dtype and wraps around, as in torch
    # (NumPy 2 instead raises OverflowError for an out-of-range Python int).
    x, tx = make(name, (3,))
    for f in (lambda p: p * s, lambda p: p + s, lambda p: s - p):
        r, tr = f(x), f(tx)
        assert r.dtype.name == name_of(tr.dtype)
        assert r.tolist() == tr.tolist()


@pytest.mark.parametrize("a,b", [(a, b) for a, b in PAIRS if a != "bool" or b != "bool"])
def test_true_division_dtype(a, b):
    x, tx = make(a, (3,))
    y, ty = make(b, (3,))
    r, tr = x / y, tx / ty
    assert r.dtype.name == name_of(tr.dtype)
    np.testing.assert_allclose(r.numpy(), tr.numpy(), rtol=1e-3)


def test_int_tensor_div_int_tensor_is_default_float(torch_default_dtype):
    x = dl.tensor([1, 2, 3])
    y = dl.tensor([2, 2, 2])
    assert (x / y).dtype is dl.float32
    assert (x / y).tolist() == [0.5, 1.0, 1.5]
    dl.set_default_dtype(dl.float64)
    assert (x / y).dtype is dl.float64


@pytest.mark.parametrize("a,b", PAIRS)
def test_comparisons_are_bool(a, b):
    x, tx = make(a, (3,))
    y, ty = make(b, (3,))
    for f in (lambda p, q: p < q, lambda p, q: p == q, lambda p, q: p >= q, lambda p, q: p != q):
        r, tr = f(x, y), f(tx, ty)
        assert r.dtype is dl.bool
        assert r.tolist() == tr.tolist()
    assert (x > 2.5).dtype is dl.bool


# -- default dtype --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["float16", "float32", "float64"])
def test_set_default_dtype_effects(name, torch_default_dtype):
    dl.set_default_dtype(dld(name))
    torch.set_default_dtype(thd(name))
    assert dl.get_default_dtype() is dld(name)
    cases = [
        (lambda m: m.tensor(1.5).dtype),
        (lambda m: m.tensor([1, 2.0]).dtype),
        (lambda m: m.tensor([1, 2]).dtype),
        (lambda m: m.zeros(2).dtype),
        (lambda m: m.ones(2, 3).dtype),
        (lambda m: m.arange(3.0).dtype),
        (lambda m: m.full((2,), 1.5).dtype),
        (lambda m: (m.tensor([1, 2]) * 2.5).dtype),
        (lambda m: (m.tensor([1, 2]) / 2).dtype),
        (lambda m: m.tensor([1, 2]).exp().dtype),
        (lambda m: (m.tensor([1.0], dtype=m.float32) * 2.5).dtype),
        (lambda m: (m.tensor([True]) + 0.5).dtype),
    ]
    for c in cases:
        assert c(dl).name == name_of(c(torch))
    assert dl.result_type(dl.tensor([1, 2]), 2.5) is dld(name)


def test_set_default_dtype_rejects_non_float():
    with pytest.raises(TypeError, match="floating"):
        dl.set_default_dtype(dl.int64)
    assert dl.get_default_dtype() is dl.float32


# -- dtype objects, finfo, iinfo ------------------------------------------------------------------

def test_dtype_attributes_match_torch():
    for n in NAMES:
        d, t = dld(n), thd(n)
        assert d.itemsize == t.itemsize
        assert d.is_floating_point == t.is_floating_point
        assert d.is_signed == t.is_signed
        assert repr(d) == repr(t).replace("torch.", "danlu.")
    assert dl.half is dl.float16 and dl.double is dl.float64 and dl.long is dl.int64
    assert dl.float is dl.float32 and dl.int is dl.int32 and dl.short is dl.int16


@pytest.mark.parametrize("name", ["float16", "float32", "float64"])
def test_finfo_matches_torch(name):
    f, t = dl.finfo(dld(name)), torch.finfo(thd(name))
    for attr in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution"):
        assert getattr(f, attr) == getattr(t, attr), attr
    assert f.dtype is dld(name)


def test_finfo_default_and_errors(torch_default_dtype):
    assert dl.finfo().eps == torch.finfo().eps
    dl.set_default_dtype(dl.float64)
    assert dl.finfo().bits == 64
    with pytest.raises(TypeError, match="iinfo"):
        dl.finfo(dl.int32)


@pytest.mark.parametrize("name", ["int8", "int16", "int32", "int64", "uint8"])
def test_iinfo_matches_torch(name):
    i, t = dl.iinfo(dld(name)), torch.iinfo(thd(name))
    assert (i.bits, i.max, i.min) == (t.bits, t.max, t.min)
    assert i.dtype is dld(name)


def test_iinfo_errors():
    with pytest.raises(TypeError, match="finfo"):
        dl.iinfo(dl.float32)
    with pytest.raises(TypeError):
        dl.iinfo(dl.bool)


@pytest.mark.parametrize("s", [np.float64(2.5), np.float32(2.5), np.float16(2.5), np.int64(3), np.int32(3)],
                         ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("a", ["int8", "int64", "float16", "float32", "bool"])
def test_numpy_scalars_promote_like_python_scalars(a, s):
    # torch treats a NumPy scalar operand as a Python number (weakly typed): int8 * np.float64(2.5)
    # is float32, not float64. (np.bool_ is left out: torch reads it as a float, a quirk.)
    x, tx = make(a, (3,))
    expected = name_of(torch.result_type(tx, s))
    assert dl.result_type(x, s).name == expected
    assert (x * s).dtype.name == name_of((tx * s).dtype) == expected
    assert (s * x).dtype.name == expected
