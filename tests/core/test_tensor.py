"""Tensor properties, conversions, memory sharing (NumPy, DLPack with NumPy and PyTorch), Python
protocols, operators with scalars and arrays, and the version counter, each against PyTorch."""

import operator

import numpy as np
import pytest
import torch

import danlu as dl


def both(fn):
    """fn(module) for danlu and torch."""
    return fn(dl), fn(torch)


def raises_like_torch(fn, match=None):
    """fn(module) raises the same exception class in danlu as in torch; returns danlu's message."""
    with pytest.raises(Exception) as texc:
        fn(torch)
    with pytest.raises(texc.type, match=match) as dexc:
        fn(dl)
    return str(dexc.value)


# -- properties ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (2, 0, 4), (1, 1, 1, 5)], ids=str)
def test_shape_properties(shape):
    x, t = dl.zeros(shape), torch.zeros(shape)
    assert tuple(x.shape) == tuple(t.shape) and tuple(x.size()) == tuple(t.size())
    assert isinstance(x.shape, tuple) and isinstance(x.shape, dl.Size)
    assert x.shape.numel() == t.shape.numel()
    assert x.ndim == t.ndim == x.dim() == x.ndimension()
    assert x.numel() == t.numel() == dl.numel(x)
    for d in range(-t.ndim, t.ndim):
        assert x.size(d) == t.size(d)
        assert x.shape[d] == t.shape[d]
    if x.numel():  # NumPy and torch choose different (meaningless) strides for size-0 tensors
        assert x.stride() == t.stride()
    assert x.element_size() == t.element_size()
    assert x.is_contiguous() and x.is_floating_point()
    assert repr(x.shape) == repr(t.shape).replace("torch.", "danlu.")


def test_size_dim_out_of_range():
    msg = raises_like_torch(lambda m: m.zeros(2, 3).size(2), match=r"\[-2, 1\].*2")
    assert "size" in msg
    raises_like_torch(lambda m: m.zeros(2, 3).size(-3))


def test_size_slicing_is_size():
    s = dl.zeros(2, 3, 4).shape
    assert isinstance(s[1:], dl.Size) and s[1:] == (3, 4)
    assert s == torch.Size([2, 3, 4])


def test_dtype_and_device():
    x = dl.tensor([1.0, 2.0])
    assert x.dtype is dl.float32 and dl.tensor([1, 2]).dtype is dl.int64 and dl.tensor([True]).dtype is dl.bool
    assert x.device == dl.device("cpu") and x.device == "cpu" and str(x.device) == "cpu"
    assert x.is_cpu and not x.is_cuda
    assert x.cpu() is x
    with pytest.raises(RuntimeError, match="cpu"):
        dl.device("cuda")
    with pytest.raises(RuntimeError):
        x.cuda()


def test_leaf_and_grad_fn_rules():
    for m in (dl, torch):
        a = m.tensor([1.0, 2.0])
        assert a.is_leaf and a.grad_fn is None and not a.requires_grad
        w = m.tensor([1.0, 2.0], requires_grad=True)
        assert w.is_leaf and w.grad_fn is None and w.requires_grad
        y = w * 2
        assert not y.is_leaf and y.requires_grad
        assert type(y.grad_fn).__name__.endswith("Backward0") or y.grad_fn.name() == "MulBackward0"
        z = a * 2  # no input requires grad: a leaf without history
        assert z.is_leaf and z.grad_fn is None and not z.requires_grad
        with m.no_grad():
            n = w * 2
        assert n.is_leaf and n.grad_fn is None and not n.requires_grad
    assert (dl.tensor([1.0], requires_grad=True) * 2).grad_fn.name() == "MulBackward0"


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "bool"])
def test_requires_grad_needs_floating_dtype(dtype):
    msg = raises_like_torch(lambda m: m.zeros(2, dtype=getattr(m, dtype)).requires_grad_(), match="floating")
    assert dtype in msg
    raises_like_torch(lambda m: m.zeros(2, dtype=getattr(m, dtype), requires_grad=True), match="floating")

    def assign(m):
        t = m.zeros(2, dtype=getattr(m, dtype))
        t.requires_grad = True
    raises_like_torch(assign, match="floating")
    # Turning it off is always allowed.
    assert not dl.zeros(2, dtype=getattr(dl, dtype)).requires_grad_(False).requires_grad


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_requires_grad_floating(dtype):
    x = dl.zeros(2, dtype=getattr(dl, dtype))
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad = False
    assert not x.requires_grad


def test_requires_grad_of_non_leaf():
    def set_false(m):
        y = m.ones(2, requires_grad=True) * 2
        y.requires_grad_(False)

    def assign_false(m):
        y = m.ones(2, requires_grad=True) * 2
        y.requires_grad = False
    msg = raises_like_torch(set_false, match="leaf")
    assert "detach" in msg
    raises_like_torch(assign_false, match="leaf")
    # Asking a non-leaf to require grad (it already does) is a no-op, as in torch.
    y = dl.ones(2, requires_grad=True) * 2
    assert y.requires_grad_(True) is y and not y.is_leaf


# -- item, tolist ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [3, -2.5, True, 0.1], ids=repr)
@pytest.mark.parametrize("shape", [(), (1,), (1, 1)], ids=str)
def test_item(value, shape):
    d, t = dl.tensor(value).reshape(shape), torch.tensor(value).reshape(shape)
    assert d.item() == t.item()
    assert type(d.item()) is type(t.item())


def test_item_many_elements_errors():
    with pytest.raises(RuntimeError) as e:
        dl.zeros(2, 3).item()
    msg = str(e.value)
    assert "item" in msg and "6 elements" in msg and "[2, 3]" in msg
    raises_like_torch(lambda m: m.zeros(2, 3).item())
    raises_like_torch(lambda m: m.zeros(0).item())


@pytest.mark.parametrize("data", [5, 2.5, [1, 2], [[1.5, 2.0], [3.0, 4.0]], [[True], [False]], [], [[], []]],
                         ids=repr)
def test_tolist(data):
    d, t = dl.tensor(data), torch.tensor(data)
    assert d.tolist() == t.tolist()
    assert type(d.tolist()) is type(t.tolist())


def test_tolist_float32_values_match_torch():
    d, t = both(lambda m: m.tensor([0.1, 1 / 3]))
    assert d.tolist() == t.tolist()


# -- NumPy ----------------------------------------------------------------------------------------

def test_numpy_shares_memory():
    x = dl.tensor([1.0, 2.0, 3.0])
    a = x.numpy()
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    a[0] = 10.0
    assert x.tolist() == [10.0, 2.0, 3.0]
    x.add_(1)
    assert a.tolist() == [11.0, 3.0, 4.0]


def test_numpy_requires_grad_errors():
    msg = raises_like_torch(lambda m: m.ones(2, requires_grad=True).numpy(), match="detach")
    assert "requires grad" in msg
    x = dl.ones(2, requires_grad=True)
    a = x.detach().numpy()
    a[0] = 5
    assert x.tolist() == [5.0, 1.0]  # detach shares memory
    b = x.numpy(force=True)  # torch's force=True copies
    b[1] = 7
    assert x.tolist() == [5.0, 1.0]


def test_array_protocol():
    x = dl.tensor([[1, 2], [3, 4]], dtype=dl.int32)
    a = np.asarray(x)
    assert a.dtype == np.int32 and a.shape == (2, 2)
    a[0, 0] = 9
    assert x[0, 0].item() == 9  # np.asarray shares memory
    b = np.array(x)  # np.array copies
    b[0, 1] = 8
    assert x[0, 1].item() == 2
    c = np.asarray(x, dtype=np.float64)
    assert c.dtype == np.float64 and c.tolist() == [[9.0, 2.0], [3.0, 4.0]]
    assert np.asarray(dl.tensor(2.5)).shape == ()


@pytest.mark.parametrize("np_dtype", [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
                                      np.uint8, np.bool_])
def test_from_numpy_shares_memory(np_dtype):
    a = np.arange(6).reshape(2, 3).astype(np_dtype)
    x = dl.from_numpy(a)
    assert x.dtype.name == str(torch.from_numpy(a).dtype).split(".")[-1]
    a[0, 0] = 1
    assert x[0, 0].item() == a[0, 0]
    x.zero_()
    assert not a.any()


def test_from_numpy_keeps_strides():
    a = np.arange(12.0).reshape(3, 4)[:, ::2]
    x, t = dl.from_numpy(a), torch.from_numpy(a)
    assert x.stride() == t.stride() and not x.is_contiguous()
    a[1, 1] = -1
    assert x[1, 1].item() == -1


def test_from_numpy_errors():
    with pytest.raises(TypeError, match="from_numpy"):
        dl.from_numpy([1, 2])
    with pytest.raises(TypeError, match="complex"):
        dl.from_numpy(np.zeros(2, np.complex64))


def test_as_tensor_sharing():
    a = np.zeros(3)
    x = dl.as_tensor(a)
    a[0] = 1
    assert x.dtype is dl.float64 and x[0].item() == 1
    b = dl.as_tensor(a, dtype=dl.float32)  # a conversion must copy
    a[1] = 2
    assert b.tolist() == [1.0, 0.0, 0.0]
    t = dl.tensor([1.0, 2.0])
    assert dl.as_tensor(t) is t and dl.asarray(t) is t
    assert dl.as_tensor(t, dtype=dl.float64).dtype is dl.float64
    # tensor() always copies
    c = dl.tensor(a)
    a[2] = 3
    assert c.tolist() == [1.0, 2.0, 0.0]
    assert dl.as_tensor([1, 2]).dtype is dl.int64


# -- DLPack -----------------------------------------------------------------------------------------

DLPACK_DTYPES = [("float32", np.float32), ("int64", np.int64), ("bool", np.bool_)]


@pytest.mark.parametrize("name,np_dtype", DLPACK_DTYPES)
def test_dlpack_danlu_to_torch_shares_memory(name, np_dtype):
    x = dl.tensor(np.array([[1, 0, 1], [0, 1, 1]], dtype=np_dtype))
    t = torch.from_dlpack(x)
    assert str(t.dtype) == f"torch.{name}" and tuple(t.shape) == (2, 3)
    assert t.tolist() == x.tolist()
    assert t.data_ptr() == x.data_ptr()
    t[0, 1] = 1
    assert x[0, 1].item() == 1
    x.zero_()
    assert not t.any()


@pytest.mark.parametrize("name,np_dtype", DLPACK_DTYPES)
def test_dlpack_torch_to_danlu_shares_memory(name, np_dtype):
    t = torch.tensor(np.array([[1, 0, 1], [0, 1, 1]], dtype=np_dtype))
    x = dl.from_dlpack(t)
    assert x.dtype.name == name and x.tolist() == t.tolist()
    assert x.data_ptr() == t.data_ptr()
    x[0, 1] = 1
    assert t[0, 1].item() == 1
    t.zero_()
    assert not x.any().item()


@pytest.mark.parametrize("name,np_dtype", DLPACK_DTYPES)
def test_dlpack_numpy_round_trips(name, np_dtype):
    a = np.array([1, 0, 1], dtype=np_dtype)
    x = dl.from_dlpack(a)
    assert x.dtype.name == name
    b = np.from_dlpack(x)
    assert b.dtype == np_dtype
    b[1] = 1
    assert a[1] == 1 and x[1].item() == 1
    y = dl.from_dlpack(dl.from_dlpack(x))  # danlu to danlu
    assert y.data_ptr() == x.data_ptr()


def test_dlpack_round_trip_through_torch_and_back():
    x = dl.arange(6.0).reshape(2, 3)
    y = dl.from_dlpack(torch.from_dlpack(x))
    assert y.data_ptr() == x.data_ptr() and y.tolist() == x.tolist()


def test_dlpack_non_contiguous_and_0d():
    t = torch.arange(6.0).reshape(2, 3).T
    x = dl.from_dlpack(t)
    assert x.stride() == t.stride() and x.tolist() == t.tolist()
    xd = dl.arange(6.0).reshape(2, 3).T
    td = torch.from_dlpack(xd)
    assert td.stride() == xd.stride() and td.tolist() == xd.tolist()
    assert dl.from_dlpack(torch.tensor(3.0)).shape == ()
    assert torch.from_dlpack(dl.tensor(3.0)).item() == 3.0


def test_dlpack_requires_grad_refused():
    with pytest.raises(RuntimeError, match="detach"):
        torch.from_dlpack(dl.ones(2, requires_grad=True))
    t = torch.from_dlpack(dl.ones(2, requires_grad=True).detach())
    assert t.tolist() == [1.0, 1.0]


def test_dlpack_unsupported_dtype():
    with pytest.raises(TypeError, match="complex64"):
        dl.from_dlpack(torch.zeros(2, dtype=torch.complex64))


# -- Python number protocols ------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0.0, 2.7, -2.7, 3, True, False], ids=repr)
@pytest.mark.parametrize("shape", [(), (1,), (1, 1)], ids=str)
def test_number_protocols_single_element(value, shape):
    d, t = dl.tensor(value).reshape(shape), torch.tensor(value).reshape(shape)
    assert bool(d) == bool(t)
    assert float(d) == float(t)
    assert int(d) == int(t)


@pytest.mark.parametrize("shape", [(0,), (2,), (2, 3)], ids=str)
def test_bool_of_many_or_no_elements_errors(shape):
    msg = raises_like_torch(lambda m: bool(m.zeros(shape)), match="ambiguous")
    assert str(list(shape)) in msg
    raises_like_torch(lambda m: m.zeros(shape) if m.zeros(shape) else None)


@pytest.mark.parametrize("conv", [float, int], ids=["float", "int"])
def test_float_int_of_many_elements_errors(conv):
    raises_like_torch(lambda m: conv(m.zeros(2)))


@pytest.mark.parametrize("value,dtype", [(3, "int64"), (-1, "int32"), (2, "uint8"), (True, "bool")])
def test_index_of_integer_tensors(value, dtype):
    d = dl.tensor(value, dtype=getattr(dl, dtype))
    t = torch.tensor(value, dtype=getattr(torch, dtype))
    assert operator.index(d) == operator.index(t)
    assert [10, 20, 30, 40][d] == [10, 20, 30, 40][t]
    assert operator.index(d.reshape(1)) == operator.index(t.reshape(1))


@pytest.mark.parametrize("make", [lambda m: m.tensor(2.0), lambda m: m.tensor([3, 4])],
                         ids=["float", "two-elements"])
def test_index_errors(make):
    raises_like_torch(lambda m: operator.index(make(m)), match="index")
    raises_like_torch(lambda m: [1, 2, 3][make(m)])


def test_len_and_iter():
    x, t = dl.tensor([[1, 2], [3, 4], [5, 6]]), torch.tensor([[1, 2], [3, 4], [5, 6]])
    assert len(x) == len(t) == 3
    rows = list(x)
    assert len(rows) == 3 and all(isinstance(r, dl.Tensor) for r in rows)
    assert [r.tolist() for r in rows] == [r.tolist() for r in t]
    assert [v.item() for v in dl.tensor([7, 8])] == [7, 8]
    raises_like_torch(lambda m: len(m.tensor(1.0)), match="0-d")
    raises_like_torch(lambda m: iter(m.tensor(1.0)), match="0-d")


def test_iter_over_empty_first_dim():
    assert len(dl.zeros(0, 2)) == 0
    assert list(dl.zeros(0, 2)) == list(torch.zeros(0, 2)) == []
    assert [r.shape for r in dl.zeros(2, 0)] == [(0,), (0,)]


def test_iter_rows_are_views_and_carry_grad():
    x = dl.zeros(2, 3)
    for r in x:
        r.add_(1)
    assert x.sum().item() == 6
    w = dl.ones(2, 2, requires_grad=True)
    sum(r.sum() * (i + 1) for i, r in enumerate(w)).backward()
    assert w.grad.tolist() == [[1.0, 1.0], [2.0, 2.0]]


def test_format_0d():
    assert f"{dl.tensor(2.5):.2f}" == f"{torch.tensor(2.5):.2f}"
    assert f"{dl.tensor(3):d}" == "3"


# -- operators ------------------------------------------------------------------------------------

BINARY = [
    ("add", operator.add), ("sub", operator.sub), ("mul", operator.mul), ("truediv", operator.truediv),
    ("floordiv", operator.floordiv), ("mod", operator.mod), ("pow", operator.pow),
    ("lt", operator.lt), ("le", operator.le), ("gt", operator.gt), ("ge", operator.ge),
    ("eq", operator.eq), ("ne", operator.ne),
]


def _check_same(d, t):
    assert isinstance(d, dl.Tensor)
    assert d.dtype.name == str(t.dtype).split(".")[-1]
    np.testing.assert_allclose(d.numpy().astype(np.float64), t.numpy().astype(np.float64), rtol=1e-6, atol=1e-6)


def _same_or_same_error(fn):
    """fn(module) gives equal results in danlu and torch, or raises the same exception class."""
    try:
        t = fn(torch)
    except Exception as e:  # torch refuses (bool subtraction, int ** negative int): so must danlu
        with pytest.raises(type(e)):
            fn(dl)
        return
    _check_same(fn(dl), t)


@pytest.mark.parametrize("name,op", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("scalar", [2, -3, 2.5, True], ids=repr)
@pytest.mark.parametrize("data", [[1.5, -2.0, 3.0], [1, -2, 3]], ids=["float", "int"])
def test_operators_with_python_scalars_both_sides(name, op, scalar, data):
    _same_or_same_error(lambda m: op(m.tensor(data), scalar))
    _same_or_same_error(lambda m: op(scalar, m.tensor(data)))


@pytest.mark.parametrize("name,op", BINARY, ids=[b[0] for b in BINARY])
def test_operators_with_numpy_arrays(name, op):
    a = np.array([1.5, 2.0, 3.0])  # float64
    d, t = dl.tensor([2.0, -1.0, 0.5]), torch.tensor([2.0, -1.0, 0.5])
    _check_same(op(d, a), op(t, torch.from_numpy(a)))
    r = op(a, d)  # NumPy defers to the Tensor's reflected operator
    _check_same(r, op(torch.from_numpy(a), t))
    s = op(d, np.float64(2.0))  # a NumPy scalar is a 0-d tensor operand
    _check_same(s, op(t, torch.tensor(2.0, dtype=torch.float64)))


@pytest.mark.parametrize("name,op", [("and", operator.and_), ("or", operator.or_), ("xor", operator.xor),
                                     ("lshift", operator.lshift), ("rshift", operator.rshift)])
def test_bitwise_operators_with_scalars(name, op):
    d, t = dl.tensor([1, 2, 12]), torch.tensor([1, 2, 12])
    _check_same(op(d, 3), op(t, 3))
    _check_same(op(3, d), op(3, t))
    _check_same(op(d, d), op(t, t))


def test_unary_operators():
    d, t = dl.tensor([-1.5, 0.0, 2.0]), torch.tensor([-1.5, 0.0, 2.0])
    _check_same(-d, -t)
    _check_same(+d, +t)
    _check_same(abs(d), abs(t))
    _check_same(~dl.tensor([1, -2]), ~torch.tensor([1, -2]))
    _check_same(~dl.tensor([True, False]), ~torch.tensor([True, False]))


def test_inplace_operators_keep_identity():
    x = dl.tensor([1.0, 2.0])
    y = x
    x += 1
    x *= 3
    x -= 1
    x /= 2
    assert y is x and x.tolist() == [2.5, 4.0]
    i = dl.tensor([4, 5])
    i //= 2
    assert i.tolist() == [2, 2] and i.dtype is dl.int64
    with pytest.raises(TypeError, match="int64"):
        i /= 2  # float result can't be written into an integer tensor (torch raises too)


# -- to(), clone, detach --------------------------------------------------------------------------

def test_to_dtype():
    x = dl.tensor([1.7, -2.2])
    assert x.to(dl.float32) is x
    assert x.to(dl.float32, copy=True) is not x
    assert x.to("cpu") is x
    for name in ("float64", "float16", "int64", "int32", "uint8", "bool"):
        d = x.to(getattr(dl, name))
        t = torch.tensor([1.7, -2.2]).to(getattr(torch, name))
        assert d.dtype.name == name and d.tolist() == t.tolist()
    assert x.to(dtype=dl.float64).dtype is dl.float64
    assert x.to(dl.tensor([1])).dtype is dl.int64
    assert x.double().dtype is dl.float64 and x.long().tolist() == [1, -2] and x.half().dtype is dl.float16
    assert x.bool().tolist() == [True, True] and x.int().dtype is dl.int32


def test_to_dtype_is_differentiable():
    x = dl.tensor([1.5, 2.5], requires_grad=True)
    y = x.to(dl.float64)
    assert y.grad_fn is not None
    (y * y).sum().backward()
    assert x.grad.dtype is dl.float32 and x.grad.tolist() == [3.0, 5.0]
    assert not x.to(dl.int64).requires_grad


def test_clone_copies_memory_and_keeps_graph():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert c.grad_fn is not None and c.grad_fn.name() == "CloneBackward0"
    assert c.data_ptr() != x.data_ptr()
    (c * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]
    y = dl.tensor([1.0, 2.0])
    z = y.clone()
    z.add_(1)
    assert y.tolist() == [1.0, 2.0] and z._version == 1 and y._version == 0


def test_detach_shares_memory_and_version():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert d.is_leaf and not d.requires_grad and d.grad_fn is None
    assert d.data_ptr() == y.data_ptr()
    d.add_(1)
    assert y.tolist() == [3.0, 5.0]
    assert y._version == d._version == 1


def test_detach_in_place():
    x = dl.ones(2, requires_grad=True)
    y = x * 2
    assert y.detach_() is y and y.is_leaf and not y.requires_grad and y.grad_fn is None


def test_data_attribute():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    d = x.data
    assert not d.requires_grad and d.data_ptr() == x.data_ptr()
    x.data = dl.tensor([5.0, 6.0])
    assert x.tolist() == [5.0, 6.0] and x.requires_grad


# -- version counter ------------------------------------------------------------------------------

def _version_trace(m):
    x = m.zeros(3, 4)
    v, d, r = x[0], x.detach(), x.reshape(12)
    out = [(x._version, v._version, d._version, r._version)]
    for step in (lambda: x.add_(1), lambda: v.mul_(2), lambda: x.__setitem__(1, 5.0), lambda: d.zero_(),
                 lambda: r.sub_(1), lambda: x.fill_(2), lambda: x.copy_(m.ones(3, 4)), lambda: x.clamp_(0, 1),
                 lambda: x.t().exp_()):
        step()
        out.append((x._version, v._version, d._version, r._version))
    with m.no_grad():
        x += 1
    out.append((x._version, v._version, d._version, r._version))
    c = x.clone()
    y = x + 1
    out.append((c._version, y._version))
    return out


def test_version_counter_matches_torch():
    assert _version_trace(dl) == _version_trace(torch)


def test_version_counter_out_of_place_and_views():
    x = dl.zeros(2)
    x.add(1)
    x.exp()
    assert x._version == 0
    x.exp_()
    assert x._version == 1


def test_data_mutation_does_not_bump_version():
    # In torch, .data is a new tensor with its own version counter: changing it is invisible to
    # autograd's checks (that is what .data is for).
    for m in (dl, torch):
        x = m.zeros(2)
        x.data.add_(1)
        assert x._version == 0, m.__name__
        x.add_(1)  # now x has a counter of its own
        x.data.add_(1)
        assert x._version == 1, m.__name__
        assert x.tolist() == [3.0, 3.0]


def test_nan_and_inf_results_raise_no_numpy_warnings():
    # torch computes 0/0, log(0), sqrt(-1) silently; NumPy's RuntimeWarnings must not leak to users
    # (with -W error they would even become exceptions).
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z = dl.tensor([0.0, 1.0])
        assert np.isnan((z / 0).numpy()[0]) and np.isinf(dl.log(z).numpy()[0])
        assert np.isnan(dl.sqrt(-z - 1).numpy()).all()
        x = dl.tensor([0.0], requires_grad=True)
        (x.sqrt() * 0).sum().backward()  # 0 * inf in the VJP
        assert np.isnan(x.grad.numpy()[0])
