"""Property tests (hypothesis) against PyTorch: random broadcastable shapes for binary/ternary elementwise ops,
random shapes + dims + keepdim for reductions, random basic/advanced index keys. Derandomized, small sizes,
a few hundred examples in all, so the run is fast and repeatable."""


import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import danlu as dl

FAST = settings(derandomize=True, deadline=None, max_examples=40, database=None)


def _values(shape, seed, kind="float"):
    rng = np.random.default_rng(seed)
    if kind == "bool":
        return rng.random(shape) < 0.5
    return rng.uniform(-2.0, 2.0, shape).astype(np.float64)


def _close(got, want, what, atol=1e-12, rtol=1e-10):
    g = got.detach().numpy() if isinstance(got, dl.Tensor) else np.asarray(got)
    w = want.detach().numpy()
    assert g.shape == w.shape, f"{what}: shape {g.shape} vs torch {w.shape}"
    assert g.dtype == w.dtype, f"{what}: dtype {g.dtype} vs torch {w.dtype}"
    np.testing.assert_allclose(g, w, atol=atol, rtol=rtol, equal_nan=True, err_msg=what)


def _grads_match(dl_fn, torch_fn, arrays, what):
    """Forward and gradients (with a random cotangent) of fn over float64 inputs, danlu vs PyTorch."""
    d_in = [dl.tensor(a, requires_grad=True) for a in arrays]
    t_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    d_out, t_out = dl_fn(*d_in), torch_fn(*t_in)
    _close(d_out, t_out, f"{what} forward")
    cot = np.random.default_rng(1).standard_normal(tuple(t_out.shape))
    t_g = torch.autograd.grad(t_out, t_in, torch.tensor(cot))
    d_g = dl.autograd.grad(d_out, d_in, dl.tensor(cot))
    for i, (a, b) in enumerate(zip(d_g, t_g)):
        _close(a, b, f"{what} grad {i}")


BINARY = {"add": lambda m, a, b: m.add(a, b), "mul": lambda m, a, b: m.mul(a, b),
          "maximum": lambda m, a, b: m.maximum(a, b), "sub_alpha": lambda m, a, b: m.sub(a, b, alpha=2)}


@FAST
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=3),
       op=st.sampled_from(sorted(BINARY)), seed=st.integers(0, 2**16))
def test_binary_broadcast_vs_torch(shapes, op, seed):
    (sa, sb), f = shapes.input_shapes, BINARY[op]
    a, b = _values(sa, seed), _values(sb, seed + 1)
    _grads_match(lambda x, y: f(dl, x, y), lambda x, y: f(torch, x, y), [a, b], f"{op}{sa}{sb}")


@FAST
@given(shapes=mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, min_side=0, max_side=3),
       seed=st.integers(0, 2**16))
def test_where_broadcast_vs_torch(shapes, seed):
    sc, sa, sb = shapes.input_shapes
    cond = _values(sc, seed, "bool")
    a, b = _values(sa, seed + 1), _values(sb, seed + 2)
    _grads_match(lambda x, y: dl.where(dl.tensor(cond), x, y), lambda x, y: torch.where(torch.tensor(cond), x, y),
                 [a, b], f"where{sc}{sa}{sb}")


@st.composite
def _shape_and_dims(draw, min_side=0):
    shape = draw(array_shapes(min_dims=0, max_dims=4, min_side=min_side, max_side=4))
    nd = len(shape)
    if draw(st.booleans()) or nd == 0:
        dims = None if nd == 0 or draw(st.booleans()) else draw(st.integers(-nd, nd - 1))
    else:
        picked = draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
        dims = tuple(d - nd if draw(st.booleans()) else d for d in picked)
    return shape, dims, draw(st.booleans())


def _reduce_call(name, dims, keepdim):
    def call(m, x):
        fn = getattr(m, name)
        return fn(x) if dims is None else fn(x, dims, keepdim=keepdim)
    return call


@FAST
@given(sdk=_shape_and_dims(), name=st.sampled_from(["sum", "mean", "var"]), seed=st.integers(0, 2**16))
def test_reductions_vs_torch(sdk, name, seed):
    shape, dims, keepdim = sdk
    x = _values(shape, seed)
    n_reduced = int(np.prod([shape[d] for d in (range(len(shape)) if dims is None else np.atleast_1d(dims))]))
    if name == "var" and n_reduced <= 1:
        return  # no degrees of freedom: nan values and gradients (checked in the OpCase tables)
    if name == "mean" and n_reduced == 0:
        return  # mean of nothing is nan and its gradient is empty; the tables cover it
    call = _reduce_call(name, dims, keepdim)
    _grads_match(lambda t: call(dl, t), lambda t: call(torch, t), [x], f"{name}{shape} dims={dims} keepdim={keepdim}")


@FAST
@given(sdk=_shape_and_dims(min_side=1), seed=st.integers(0, 2**16))
def test_amax_vs_torch(sdk, seed):
    shape, dims, keepdim = sdk
    x = _values(shape, seed)  # continuous values: no ties
    d = () if dims is None else dims
    _grads_match(lambda t: t.amax(d, keepdim=keepdim), lambda t: t.amax(d, keepdim=keepdim), [x],
                 f"amax{shape} dims={dims} keepdim={keepdim}")


@FAST
@given(shape=array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4), dim=st.integers(-3, 2),
       keepdim=st.booleans(), zeros=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_prod_vs_torch(shape, dim, keepdim, zeros, seed):
    """prod over one dim (PyTorch takes a single dim), with up to two zeros planted: exact gradients."""
    x = _values(shape, seed)
    if x.size:
        flat = x.reshape(-1)
        flat[np.random.default_rng(seed).choice(x.size, min(zeros, x.size), replace=False)] = 0.0
    nd = max(len(shape), 1)
    d = dim % nd if -nd <= dim < nd else None
    if d is None:
        _grads_match(lambda t: t.prod(), lambda t: t.prod(), [x], f"prod{shape}")
    else:
        _grads_match(lambda t: t.prod(d, keepdim=keepdim), lambda t: t.prod(d, keepdim=keepdim), [x],
                     f"prod{shape} dim={d} keepdim={keepdim}")


KINDS = ["tensor"] * 3 + ["int"] * 2 + ["slice"] * 2 + ["none", "ellipsis"]


def _random_key(seed):
    """A random shape and key mixing ints, slices (with steps), None, Ellipsis and integer index tensors,
    weighted toward tensors and ints so that adjacent and separated tensor placements come up often.
    Built from a seed with NumPy (uniform coverage; hypothesis's own draws favour the smallest keys)."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(1, 5, rng.integers(1, 5)))
    items, dim, used_ellipsis = [], 0, False
    last = int(rng.integers(max(0, len(shape) - 1), len(shape) + 1))  # index every dim, or leave one implicit
    while dim < last:
        size = shape[dim]
        kind = KINDS[rng.integers(len(KINDS))]
        if kind == "int":
            items.append(int(rng.integers(-size, size)))
        elif kind == "slice":
            bound = lambda: None if rng.random() < 0.3 else int(rng.integers(-size - 1, size + 2))  # noqa: E731
            items.append(slice(bound(), bound(), None if rng.random() < 0.5 else int(rng.integers(1, 4))))
        elif kind == "none":
            items.append(None)
            continue
        elif kind == "ellipsis" and not used_ellipsis:
            used_ellipsis = True
            items.append(Ellipsis)
            dim = len(shape) - (len(shape) - dim) // 2  # the Ellipsis takes some of the remaining dims
            continue
        else:
            ishape = [(2,), (1,), (2, 1), (3,), ()][rng.integers(5)]
            items.append(rng.integers(-size, size, ishape))
        dim += 1
    return shape, tuple(items)


def _key_for(m, key):
    return tuple(m.tensor(k) if isinstance(k, np.ndarray) else k for k in key)


@settings(derandomize=True, deadline=None, max_examples=120, database=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_getitem_setitem_vs_torch(seed):
    """Basic and advanced keys (PyTorch's placement rule for the index dimensions), forward and gradient;
    then the same key written with __setitem__ on a clone, gradients to the base and the value."""
    shape, key = _random_key(seed)
    x = _values(shape, seed)
    try:
        targets = torch.arange(x.size).reshape(shape)[_key_for(torch, key)]
    except (IndexError, RuntimeError):  # e.g. index tensors that do not broadcast together
        return
    _grads_match(lambda t: t[_key_for(dl, key)], lambda t: t[_key_for(torch, key)], [x], f"getitem{shape}{key}")
    if targets.unique().numel() != targets.numel():
        return  # an element written twice: which write wins is unspecified
    v = _values(tuple(targets.shape), seed + 7)

    def put(m):
        def f(base, val):
            y = base.clone()
            y[_key_for(m, key)] = val
            return y * y
        return f
    _grads_match(put(dl), put(torch), [x, v], f"setitem{shape}{key}")
