"""backward / autograd.grad semantics against PyTorch: accumulation, errors, retain_graph, higher
order gradients, a Hessian-vector product, allow_unused, inputs=, grad modes, detach, hooks and
retain_grad."""

import threading

import numpy as np
import pytest
import torch

import danlu as dl


def arr(x):
    if x is None:
        return None
    if isinstance(x, (list, tuple)):
        return [arr(v) for v in x]
    return x.detach().numpy() if hasattr(x, "detach") else np.asarray(x)


def assert_close(d, t, rtol=1e-6, atol=1e-8):
    d, t = arr(d), arr(t)
    if isinstance(t, list):
        assert isinstance(d, list) and len(d) == len(t)
        for a, b in zip(d, t, strict=True):
            assert_close(a, b, rtol, atol)
        return
    if t is None:
        assert d is None
        return
    assert d is not None and d.shape == t.shape and d.dtype == t.dtype
    np.testing.assert_allclose(d, t, rtol=rtol, atol=atol)


def same(fn, **kw):
    """fn(module) -> results; danlu's must equal torch's."""
    assert_close(fn(dl), fn(torch), **kw)


DATA = np.array([[0.3, -1.2, 2.0], [1.5, 0.7, -0.4]])


def leaf(m, a=DATA, dtype="float64"):
    return m.tensor(np.asarray(a), dtype=getattr(m, dtype), requires_grad=True)


# -- backward and accumulation ---------------------------------------------------------------------

def test_backward_accumulates_across_calls():
    def f(m):
        x = leaf(m)
        seen = []
        for k in range(3):
            ((x * x).sum() * (k + 1)).backward()
            seen.append(x.grad.clone())
        x.grad = None
        (x.sin().sum()).backward()
        seen.append(x.grad.clone())
        x.grad.zero_()
        x.exp().sum().backward()
        seen.append(x.grad)
        return seen
    same(f)


def test_grad_accumulation_does_not_alias_user_gradient():
    for m in (dl, torch):
        x = leaf(m)
        g = m.ones(2, 3, dtype=m.float64)
        (x * 1).backward(g)
        x.grad.add_(5)  # must not write into g
        assert g.sum().item() == 6
        (x * 1).backward(g)
        assert g.sum().item() == 6


def test_backward_with_gradient_argument():
    def f(m):
        x = leaf(m)
        y = x.exp() * x
        y.backward(m.tensor(DATA[::-1].copy()))
        return x.grad
    same(f)


def test_backward_gradient_shape_must_match():
    x = leaf(dl)
    with pytest.raises(RuntimeError, match=r"\[3\].*\[2, 3\]|\[2, 3\].*\[3\]"):
        (x * 2).backward(dl.ones(3, dtype=dl.float64))


def test_backward_of_many_outputs():
    def f(m):
        x = leaf(m)
        a, b = x.sin(), x.cos().sum()
        m.autograd.backward([a, b], [m.ones_like(a), None])
        return x.grad
    same(f)


def test_non_scalar_backward_error_names_shape_and_fix():
    x = leaf(dl)
    y = x * 2
    with pytest.raises(RuntimeError) as e:
        y.backward()
    msg = str(e.value)
    assert "[2, 3]" in msg and "scalar" in msg
    assert "gradient=" in msg and "sum()" in msg
    with pytest.raises(RuntimeError):
        (leaf(torch) * 2).backward()


def test_backward_of_tensor_without_grad_errors():
    for m in (dl, torch):
        with pytest.raises(RuntimeError, match="does not require grad"):
            m.ones(2).sum().backward()
        with pytest.raises(RuntimeError, match="does not require grad"):
            m.autograd.grad(m.ones(2).sum(), [leaf(m)])


def test_backward_twice_errors_and_retain_graph_works():
    for m in (dl, torch):
        x = leaf(m)
        y = (x.exp() * x).sum()
        y.backward()
        with pytest.raises(RuntimeError, match="second time") as e:
            y.backward()
        assert "retain_graph" in str(e.value)

    def f(m):
        x = leaf(m)
        y = (x.exp() * x).sum()
        y.backward(retain_graph=True)
        first = x.grad.clone()
        y.backward(retain_graph=True)
        y.backward()
        return first, x.grad
    same(f)


def test_shared_subgraph_second_backward_errors():
    x = leaf(dl)
    h = x.tanh() * x
    h.sum().backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        (h * 2).sum().backward()  # the h subgraph was freed


def test_autograd_grad_retain_graph():
    def f(m):
        x = leaf(m)
        y = (x * x.sin()).sum()
        (g1,) = m.autograd.grad(y, x, retain_graph=True)
        (g2,) = m.autograd.grad(y, x)
        return g1, g2, x.grad
    same(f)
    x = leaf(dl)
    y = (x * x.sin()).sum()
    dl.autograd.grad(y, x)
    with pytest.raises(RuntimeError, match="retain_graph"):
        dl.autograd.grad(y, x)


def test_autograd_grad_does_not_touch_dot_grad():
    x = leaf(dl)
    dl.autograd.grad((x * x).sum(), x)
    assert x.grad is None


# -- higher order -----------------------------------------------------------------------------------

FUNCS = {
    "cube": lambda m, x: x ** 3,
    "sin": lambda m, x: m.sin(x),
    "exp-mul": lambda m, x: m.exp(x) * x,
    "tanh": lambda m, x: m.tanh(x),
    "sigmoid": lambda m, x: m.sigmoid(x),
    "log-abs": lambda m, x: m.log(x.abs() + 1),
    "div": lambda m, x: 1 / (x * x + 1),
    "sqrt": lambda m, x: m.sqrt(x * x + 0.5),
    "pow-x-x": lambda m, x: (x.abs() + 0.5) ** x,
    "softmax": lambda m, x: m.softmax(x, dim=1) * m.arange(3.0, dtype=m.float64),
    "sum-mean": lambda m, x: x.sum(1, keepdim=True) * x.mean(),
    "max-prod": lambda m, x: x.amax(1, keepdim=True) * x.prod(0),
    "where": lambda m, x: m.where(x > 0, x ** 2, m.cos(x)),
    "broadcast": lambda m, x: x * x[:1] + x.t()[:1].t(),
}


@pytest.mark.parametrize("name", list(FUNCS))
def test_grad_of_grad_matches_torch(name):
    fn = FUNCS[name]

    def f(m):
        x = leaf(m)
        y = fn(m, x).sum()
        (g1,) = m.autograd.grad(y, x, create_graph=True)
        assert g1.requires_grad
        (g2,) = m.autograd.grad((g1 * g1.detach().cos()).sum(), x, create_graph=True)
        # For a quadratic the second derivative is constant: torch gives it no graph, and so must we.
        if not g2.requires_grad:
            return g1, g2, None, False
        (g3,) = m.autograd.grad(g2.sum(), x, allow_unused=True, materialize_grads=True)
        return g1, g2, g3, True
    d, t = f(dl), f(torch)
    assert d[3] == t[3]
    assert_close(d[:3], t[:3], rtol=1e-6, atol=1e-9)


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph")  # torch's reference-cycle note
def test_create_graph_backward_builds_differentiable_grad():
    def f(m):
        x = leaf(m)
        (x ** 3).sum().backward(create_graph=True)
        g = x.grad
        assert g.requires_grad and g.grad_fn is not None
        (gg,) = m.autograd.grad(g.sum(), x)
        return g, gg
    same(f)


def test_second_derivative_of_two_inputs():
    def f(m):
        x, y = leaf(m), leaf(m, DATA[::-1].copy())
        z = (x * y.exp() + x.sin() * y).sum()
        gx, gy = m.autograd.grad(z, (x, y), create_graph=True)
        return m.autograd.grad((gx * gy).sum(), (x, y))
    same(f)


def _mlp_loss(m, params, X):
    W1, b1, W2, b2 = params
    # Dense layers as broadcast-multiply-and-sum (the same arithmetic as X @ W.T), so this test
    # depends only on elementwise and reduction ops.
    h = m.tanh((X.unsqueeze(1) * W1.unsqueeze(0)).sum(-1) + b1)
    out = (h.unsqueeze(1) * W2.unsqueeze(0)).sum(-1) + b2
    return ((out - 0.5) ** 2).mean()


def test_hessian_vector_product_of_mlp():
    rng = np.random.default_rng(1)
    shapes = [(4, 3), (4,), (2, 4), (2,)]
    values = [rng.standard_normal(s) for s in shapes]
    vecs = [rng.standard_normal(s) for s in shapes]
    X = rng.standard_normal((5, 3))

    def f(m):
        params = [m.tensor(v, requires_grad=True) for v in values]
        loss = _mlp_loss(m, params, m.tensor(X))
        grads = m.autograd.grad(loss, params, create_graph=True)
        gv = sum((g * m.tensor(v)).sum() for g, v in zip(grads, vecs, strict=True))
        hv = m.autograd.grad(gv, params)
        return [loss] + list(grads) + list(hv)
    same(f, rtol=1e-9, atol=1e-12)


def test_hvp_matches_finite_differences_of_gradient():
    rng = np.random.default_rng(2)
    shapes = [(4, 3), (4,), (2, 4), (2,)]
    values = [rng.standard_normal(s) for s in shapes]
    vecs = [rng.standard_normal(s) for s in shapes]
    X = dl.tensor(rng.standard_normal((5, 3)))

    def grad_at(eps):
        ps = [dl.tensor(v + eps * u, requires_grad=True) for v, u in zip(values, vecs, strict=True)]
        return [g.numpy() for g in dl.autograd.grad(_mlp_loss(dl, ps, X), ps)]

    params = [dl.tensor(v, requires_grad=True) for v in values]
    grads = dl.autograd.grad(_mlp_loss(dl, params, X), params, create_graph=True)
    hv = dl.autograd.grad(sum((g * dl.tensor(v)).sum() for g, v in zip(grads, vecs, strict=True)), params)
    eps = 1e-6
    # central differences in float64: truncation error ~eps**2 and rounding ~1e-16/eps = 1e-10 relative
    # to the gradients' size, so 1e-5 leaves room without hiding a wrong Hessian-vector product
    for h, gp, gm in zip(hv, grad_at(eps), grad_at(-eps), strict=True):
        np.testing.assert_allclose(h.numpy(), (gp - gm) / (2 * eps), rtol=1e-5, atol=1e-8)


# -- allow_unused, inputs= ------------------------------------------------------------------------

def test_allow_unused():
    def f(m):
        a, b, c = leaf(m), leaf(m), leaf(m)
        y = (a * 2).sum() + (c.detach() * 3).sum()
        return (m.autograd.grad(y, [a, b, c], allow_unused=True, retain_graph=True)
                + m.autograd.grad(y, [a, b, c], allow_unused=True, materialize_grads=True))
    same(f)
    a, b = leaf(dl), leaf(dl)
    with pytest.raises(RuntimeError, match="allow_unused") as e:
        dl.autograd.grad((a * 2).sum(), [a, b])
    assert "1" in str(e.value)


def test_grad_with_respect_to_intermediate():
    def f(m):
        x = leaf(m)
        h = x.exp()
        y = (h * x).sum()
        return m.autograd.grad(y, [h, x])
    same(f)


def test_grad_outputs_argument():
    def f(m):
        x = leaf(m)
        y = x.sin()
        return m.autograd.grad(y, x, grad_outputs=m.tensor(DATA * 2))
    same(f)


def test_backward_inputs_argument():
    def f(m):
        a, b = leaf(m), leaf(m, DATA * 2)
        y = (a * b).sum() + (a.exp() * 2).sum()
        y.backward(inputs=[a], retain_graph=True)
        first = (a.grad.clone(), b.grad)
        y.backward(inputs=b)
        return first, a.grad, b.grad
    same(f)


def test_backward_inputs_non_leaf():
    def f(m):
        a = leaf(m)
        h = a * 3
        (h.sin()).sum().backward(inputs=[h])
        return h.grad, a.grad
    same(f)


def test_backward_inputs_empty_errors():
    for m in (dl, torch):
        a = leaf(m)
        with pytest.raises(RuntimeError, match="empty"):
            (a * 2).sum().backward(inputs=[])


# -- grad modes -------------------------------------------------------------------------------------

MODES = {
    "no_grad": (lambda m: m.no_grad(), False),
    "enable_grad": (lambda m: m.enable_grad(), True),
    "set_grad_enabled-False": (lambda m: m.set_grad_enabled(False), False),
    "set_grad_enabled-True": (lambda m: m.set_grad_enabled(True), True),
    "inference_mode": (lambda m: m.inference_mode(), False),
    "inference_mode-False": (lambda m: m.inference_mode(False), True),
}


@pytest.mark.parametrize("name", list(MODES))
@pytest.mark.parametrize("outer", [True, False])
def test_grad_mode_context_managers(name, outer):
    make, inside = MODES[name]
    x = dl.ones(2, requires_grad=True)
    with dl.set_grad_enabled(outer):
        with make(dl):
            assert dl.is_grad_enabled() is inside
            assert (x * 2).requires_grad is inside
        assert dl.is_grad_enabled() is outer
    assert dl.is_grad_enabled()


@pytest.mark.parametrize("name", list(MODES))
def test_grad_mode_decorators(name):
    make, inside = MODES[name]
    x = dl.ones(2, requires_grad=True)

    @make(dl)
    def f(a, scale=2):
        """doc"""
        return a * scale, dl.is_grad_enabled()

    with dl.set_grad_enabled(not inside):
        y, mode = f(x, scale=3)
        assert mode is inside and y.requires_grad is inside and y.tolist() == [3.0, 3.0]
        assert dl.is_grad_enabled() is (not inside)
    assert f.__name__ == "f" and f.__doc__ == "doc"


@pytest.mark.parametrize("name,inside", [("no_grad", False), ("enable_grad", True), ("inference_mode", False)])
def test_grad_mode_bare_class_as_decorator(name, inside):
    # torch accepts @torch.no_grad (no parentheses) as well as @torch.no_grad().
    for m in (dl, torch):
        @getattr(m, name)
        def f():
            return m.is_grad_enabled()

        with m.set_grad_enabled(not inside):
            assert f() is inside
        assert f.__name__ == "f"


@pytest.mark.parametrize("name", ["no_grad", "enable_grad", "set_grad_enabled-False", "inference_mode"])
def test_grad_mode_decorator_on_generators(name):
    make, inside = MODES[name]
    x = dl.ones(2, requires_grad=True)

    @make(dl)
    def gen(n):
        total = 0
        for i in range(n):
            got = yield (x * i).requires_grad, dl.is_grad_enabled()
            total += got or 0
        return total

    outer = not inside
    with dl.set_grad_enabled(outer):
        g = gen(3)
        assert next(g) == (inside, inside)
        assert dl.is_grad_enabled() is outer  # the mode does not leak out between yields
        assert g.send(5) == (inside, inside)
        assert dl.is_grad_enabled() is outer
        assert g.send(7) == (inside, inside)
        with pytest.raises(StopIteration) as stop:
            g.send(1)
        assert stop.value.value == 13
        assert dl.is_grad_enabled() is outer


def test_grad_mode_generator_close_and_throw():
    @dl.no_grad()
    def gen():
        try:
            yield 1
            yield 2
        except ValueError:
            yield dl.is_grad_enabled()

    g = gen()
    next(g)
    assert g.throw(ValueError) is False  # thrown in with the generator's mode active
    assert dl.is_grad_enabled()
    g.close()
    assert dl.is_grad_enabled()


def test_grad_mode_restored_after_exception():
    for make in (lambda: dl.no_grad(), lambda: dl.enable_grad(), lambda: dl.inference_mode()):
        with dl.set_grad_enabled(False):
            with pytest.raises(KeyError):
                with make():
                    raise KeyError
            assert not dl.is_grad_enabled()
    assert dl.is_grad_enabled()

    @dl.no_grad()
    def bad():
        raise KeyError

    with pytest.raises(KeyError):
        bad()
    assert dl.is_grad_enabled()


def test_set_grad_enabled_as_function():
    dl.set_grad_enabled(False)
    try:
        assert not dl.is_grad_enabled()
        assert not (dl.ones(1, requires_grad=True) * 2).requires_grad
    finally:
        dl.set_grad_enabled(True)
    assert dl.is_grad_enabled()


def test_nested_grad_modes():
    x = dl.ones(1, requires_grad=True)
    with dl.no_grad():
        with dl.enable_grad():
            assert (x * 2).requires_grad
            with dl.inference_mode():
                assert not (x * 2).requires_grad
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad


def test_grad_mode_is_thread_local():
    seen = []

    def worker():
        seen.append(dl.is_grad_enabled())

    with dl.no_grad():
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert seen == [True]


def test_no_grad_result_is_leaf_and_can_require_grad():
    x = dl.ones(2, requires_grad=True)
    with dl.no_grad():
        y = x * 2
    assert y.is_leaf and not y.requires_grad
    y.requires_grad_()
    (y * y).sum().backward()
    assert y.grad.tolist() == [4.0, 4.0] and x.grad is None


# -- detach, requires_grad_ --------------------------------------------------------------------------

def test_detach_stops_gradient():
    def f(m):
        x = leaf(m)
        y = x * x.detach() + x.sin().detach() * x
        y.sum().backward()
        return x.grad
    same(f)


def test_requires_grad_on_the_way():
    def f(m):
        x = m.tensor(DATA)
        y = x * 2
        w = m.tensor(DATA).requires_grad_()
        z = (y * w).sum()
        z.backward()
        return w.grad, z.requires_grad, y.requires_grad
    d, t = f(dl), f(torch)
    assert_close(d[0], t[0])
    assert d[1:] == t[1:]


def test_integer_outputs_do_not_require_grad():
    x = dl.tensor([1.5, -2.0], requires_grad=True)
    for y in (x > 0, x.argmax(), x.long(), x.floor_divide(1).long()):
        assert not y.requires_grad and y.grad_fn is None


# -- hooks and retain_grad ---------------------------------------------------------------------------

def test_hook_on_leaf_modifies_grad_and_remove():
    def f(m):
        x = leaf(m)
        calls = []
        h = x.register_hook(lambda g: calls.append(g.clone()) or g * 3)
        (x * x).sum().backward()
        first = x.grad.clone()
        h.remove()
        x.grad = None
        (x * x).sum().backward()
        return first, x.grad, calls
    same(f)


def test_hooks_on_non_leaf():
    def f(m):
        x = leaf(m)
        seen = []
        h = x.exp()
        h.register_hook(lambda g: seen.append(g.clone()))
        h.register_hook(lambda g: g * 2)
        h.register_hook(lambda g: seen.append(g.clone()))
        y = (h * x).sin()
        y.register_hook(lambda g: g + 1)
        y.sum().backward()
        return x.grad, seen
    same(f)


def test_hook_returning_wrong_shape_errors():
    x = leaf(dl)
    x.register_hook(lambda g: g.sum())
    with pytest.raises(RuntimeError, match="shape"):
        (x * 2).sum().backward()


def test_hook_removal_on_non_leaf():
    def f(m):
        x = leaf(m)
        h = x * 2
        handle = h.register_hook(lambda g: g * 100)
        handle.remove()
        (h * h).sum().backward()
        return x.grad
    same(f)


def test_hook_sees_accumulated_gradient_once():
    def f(m):
        x = leaf(m)
        h = x * 2
        calls = []
        h.register_hook(lambda g: calls.append(g.clone()))
        (h * h + h.sin()).sum().backward()
        return calls, x.grad
    d, t = f(dl), f(torch)
    assert len(d[0]) == len(t[0]) == 1
    assert_close(d, t)


def test_retain_grad():
    def f(m):
        x = leaf(m)
        h = x * x
        h.retain_grad()
        h.retain_grad()  # twice is harmless
        k = h.sin()
        k.retain_grad()
        k.sum().backward(retain_graph=True)
        first = h.grad.clone(), k.grad.clone()
        k.sum().backward()  # retained grads accumulate like leaves'
        return first, h.grad, k.grad, x.grad, h.retains_grad, x.retains_grad
    d, t = f(dl), f(torch)
    assert_close(d[:4], t[:4])
    assert d[4:] == t[4:]


def test_retain_grad_sees_hooked_gradient():
    def f(m):
        x = leaf(m)
        h = x * 2
        h.retain_grad()
        h.register_hook(lambda g: g * 10)  # registered after retain_grad, still applies to .grad
        h.sum().backward()
        return h.grad, x.grad
    same(f)


def test_retain_grad_on_leaf_is_noop():
    x = leaf(dl)
    x.retain_grad()
    (x * 2).sum().backward()
    assert x.grad is not None


def test_hook_and_retain_grad_errors():
    for m in (dl, torch):
        with pytest.raises(RuntimeError, match="require"):
            m.ones(2).register_hook(lambda g: g)
        with pytest.raises(RuntimeError, match="requires_grad=False"):
            m.ones(2).retain_grad()


def test_non_leaf_grad_access_warns():
    x = leaf(dl)
    h = x * 2
    with pytest.warns(UserWarning, match="retain_grad"):
        assert h.grad is None


def test_grads_at_intermediate_tensors_match_torch():
    def f(m):
        x = leaf(m)
        w = leaf(m, DATA.T.copy() * 0.5)
        seen = {}

        def rec(name):
            return lambda g: seen.__setitem__(name, g.clone())
        a = x.tanh()
        a.register_hook(rec("a"))
        b = (a.unsqueeze(2) * w.unsqueeze(0)).sum(1)
        b.register_hook(rec("b"))
        c = b.softmax(dim=-1)
        c.register_hook(rec("c"))
        loss = (c * m.tensor([[1.0, 2.0], [3.0, -1.0]])).sum() + (a ** 2).mean()
        loss.backward()
        return [seen["a"], seen["b"], seen["c"], x.grad, w.grad]
    same(f)


def test_grad_setter_validation():
    x = leaf(dl)
    x.grad = dl.ones(2, 3, dtype=dl.float64)
    with pytest.raises(RuntimeError, match="shape"):
        x.grad = dl.ones(3, dtype=dl.float64)
    with pytest.raises(RuntimeError, match="dtype"):
        x.grad = dl.ones(2, 3)
    with pytest.raises(TypeError):
        x.grad = [1.0]
    x.grad = None
    assert x.grad is None
