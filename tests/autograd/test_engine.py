"""The backward engine: deep graphs without recursion, memory released during backward, anomaly
detection, and the gradcheck / gradgradcheck API."""

import gc
import sys
import time
import tracemalloc
import weakref

import numpy as np
import pytest
import torch

import danlu as dl
from danlu.autograd import GradcheckError, gradcheck, gradgradcheck


def _source_line(marker: str) -> str:
    """The stripped text of this file's line containing ``marker`` (the user's forward call)."""
    with open(__file__) as f:
        for line in f:
            if marker in line and "_source_line" not in line:
                return line.strip()
    raise AssertionError(marker)


# -- deep graphs ----------------------------------------------------------------------------------

def test_chain_of_100k_ops_backpropagates():
    n = 100_000
    x = dl.tensor(1.0, dtype=dl.float64, requires_grad=True)
    start = time.perf_counter()
    y = x
    for _ in range(n):
        y = y * 1.000001
    y.backward()
    elapsed = time.perf_counter() - start
    assert n > sys.getrecursionlimit() * 10  # a recursive engine could not have done this
    np.testing.assert_allclose(x.grad.item(), 1.000001 ** n, rtol=1e-9)
    assert elapsed < 20, f"100k-op forward+backward took {elapsed:.1f}s"


def test_deep_chain_with_two_paths_and_autograd_grad():
    n = 10_000
    x = dl.tensor([0.5, -0.25], dtype=dl.float64, requires_grad=True)
    y = x
    for _ in range(n):
        y = y + 0.0001 * y.sin()  # every step uses y twice
    (g,) = dl.autograd.grad(y.sum(), x)
    # The same derivative by the chain rule, computed in NumPy.
    v, d = x.detach().numpy().copy(), np.ones(2)
    for _ in range(n):
        d = d * (1 + 0.0001 * np.cos(v))
        v = v + 0.0001 * np.sin(v)
    np.testing.assert_allclose(y.detach().numpy(), v, rtol=1e-12)
    np.testing.assert_allclose(g.numpy(), d, rtol=1e-9)


def test_deep_create_graph_and_freeing_an_unused_deep_graph():
    x = dl.tensor(2.0, dtype=dl.float64, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0
    y = y * y
    (g,) = dl.autograd.grad(y, x, create_graph=True)
    (gg,) = dl.autograd.grad(g, x)
    assert (g.item(), gg.item()) == (4.0, 2.0)
    z = x
    for _ in range(100_000):
        z = z + 1.0
    del z  # dropping a deep graph without backward must not overflow the C stack
    gc.collect()


# -- memory ---------------------------------------------------------------------------------------

def test_saved_values_are_released_during_backward():
    x = dl.randn(50, dtype=dl.float64, requires_grad=True)
    hs = []
    h = x
    for _ in range(20):
        h = (h * 1.1).tanh()  # tanh keeps its output array for backward; mul keeps its input
        hs.append(h)
    saved = [weakref.ref(t._data) for t in hs]
    nodes = [t.grad_fn for t in hs]
    alive_when_first_reached = []

    def probe(g):
        gc.collect()
        alive_when_first_reached.append([r() is not None for r in saved])

    hs[0].register_hook(probe)  # runs when backward reaches the first step, i.e. last
    loss = hs[-1].sum()
    del hs, h
    loss.backward()
    # Every later step had run and dropped what it saved; the first step had not run yet.
    assert alive_when_first_reached == [[True] + [False] * 19]
    gc.collect()
    assert all(r() is None for r in saved)
    assert all(n.saved is None and n.out_data is None for n in nodes)


def test_retain_graph_keeps_saved_values():
    x = dl.randn(5, dtype=dl.float64, requires_grad=True)
    y = x.exp()
    ref = weakref.ref(y.grad_fn.out_data)
    out = (y * x).sum()
    out.backward(retain_graph=True)
    del y
    gc.collect()
    assert ref() is not None
    out.backward()
    gc.collect()
    assert ref() is None


def test_long_chain_peak_memory_is_bounded():
    n, k = 100, 12_500  # 100 tensors of 100 KB
    x = dl.randn(k, dtype=dl.float64, requires_grad=True)
    tensor_bytes = k * 8
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        y = x
        for _ in range(n):
            y = (y * 0.99).tanh()
        forward = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        y.sum().backward()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Sanity: the forward pass really holds one saved tensor per step (and tracemalloc sees NumPy).
    assert forward > 0.9 * n * tensor_bytes
    # Backward frees as it goes: its peak is a few tensors above where it started, not O(n)...
    assert peak - start < 10 * tensor_bytes, (peak - start) / tensor_bytes
    # ...and afterwards (y still alive) only y, x.grad and small objects remain.
    assert current - base < 5 * tensor_bytes, (current - base) / tensor_bytes


def test_graph_is_collected_after_backward():
    x = dl.randn(3, requires_grad=True)
    y = x.exp().sin() * 2
    node = weakref.ref(y.grad_fn.edges[0][0])
    y.sum().backward()
    del y
    gc.collect()
    assert node() is None


# -- anomaly detection ----------------------------------------------------------------------------

def test_anomaly_nan_names_op_and_forward_line():
    x = dl.tensor([0.0, 4.0], requires_grad=True)
    with dl.autograd.detect_anomaly():
        y = x.sqrt()  # anomaly-marker-sqrt
        z = (y * 0).sum()
        with pytest.raises(RuntimeError) as e:
            z.backward()
    msg = str(e.value)
    assert "SqrtBackward0" in msg and "'sqrt'" in msg and "nan" in msg
    assert _source_line("anomaly-marker-sqrt") in msg
    assert __file__ in msg
    # torch names the same node
    tx = torch.tensor([0.0, 4.0], requires_grad=True)
    with pytest.warns(UserWarning), torch.autograd.detect_anomaly():
        with pytest.raises(RuntimeError, match="SqrtBackward0"):
            (tx.sqrt() * 0).sum().backward()


def _helper_that_logs(t):
    return dl.log(t)  # anomaly-marker-helper


def test_anomaly_inf_points_at_the_innermost_user_line():
    x = dl.tensor([0.0, 1.0], requires_grad=True)
    with dl.autograd.detect_anomaly():
        y = _helper_that_logs(x)
        with pytest.raises(RuntimeError) as e:
            y.sum().backward()
    msg = str(e.value)
    assert "LogBackward0" in msg and "inf" in msg
    assert _source_line("anomaly-marker-helper") in msg and "_helper_that_logs" in msg


def test_anomaly_error_traceback_ends_in_user_code():
    x = dl.tensor([0.0], requires_grad=True)
    with dl.autograd.detect_anomaly():
        y = x.sqrt()
        with pytest.raises(RuntimeError) as e:
            y.backward()
    import traceback

    assert traceback.extract_tb(e.tb)[-1].filename == __file__


def test_anomaly_off_and_check_nan_false_do_not_raise():
    x = dl.tensor([0.0, 4.0], requires_grad=True)
    (x.sqrt() * 0).sum().backward()
    assert np.isnan(x.grad.numpy()[0])
    x.grad = None
    with dl.autograd.detect_anomaly(check_nan=False):
        (x.sqrt() * 0).sum().backward()
    assert np.isnan(x.grad.numpy()[0])


def test_anomaly_finite_gradients_pass():
    x = dl.tensor([1.0, 4.0], requires_grad=True)
    with dl.autograd.detect_anomaly():
        (x.sqrt() * x.exp()).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 0.5 / np.sqrt([1, 4]) * np.exp([1, 4]) + np.sqrt([1, 4]) *
                               np.exp([1, 4]), rtol=1e-6)


def test_anomaly_forward_recorded_outside():
    x = dl.tensor([0.0], requires_grad=True)
    y = x.sqrt()
    with dl.autograd.detect_anomaly():
        with pytest.raises(RuntimeError, match="not recorded"):
            y.backward()


def test_anomaly_modes_and_decorator():
    assert not dl.autograd.is_anomaly_enabled()
    with dl.autograd.detect_anomaly():
        assert dl.autograd.is_anomaly_enabled()
    assert not dl.autograd.is_anomaly_enabled()
    dl.autograd.set_detect_anomaly(True)
    try:
        assert dl.autograd.is_anomaly_enabled()
    finally:
        dl.autograd.set_detect_anomaly(False)
    assert not dl.autograd.is_anomaly_enabled()
    with dl.autograd.set_detect_anomaly(True):
        assert dl.autograd.is_anomaly_enabled()
    assert not dl.autograd.is_anomaly_enabled()

    @dl.autograd.detect_anomaly()
    def f(t):
        assert dl.autograd.is_anomaly_enabled()
        return (t.sqrt() * 0).sum()  # anomaly-marker-decorated

    x = dl.tensor([0.0], requires_grad=True)
    y = f(x)
    assert not dl.autograd.is_anomaly_enabled()
    with dl.autograd.detect_anomaly(), pytest.raises(RuntimeError) as e:
        y.backward()
    assert _source_line("anomaly-marker-decorated") in str(e.value)


def test_anomaly_in_custom_function_backward():
    class BadGrad(dl.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * float("nan")

    x = dl.tensor([1.0], requires_grad=True)
    with dl.autograd.detect_anomaly():
        y = BadGrad.apply(x)  # anomaly-marker-function
        with pytest.raises(RuntimeError) as e:
            y.sum().backward()
    assert "BadGrad" in str(e.value) and _source_line("anomaly-marker-function") in str(e.value)


# -- gradcheck ------------------------------------------------------------------------------------

def _x(*shape, seed=0):
    return dl.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_gradcheck_accepts_correct_functions():
    x, w = _x(2, 3), _x(3, seed=1)
    assert gradcheck(lambda a: a.sin() * a, (x,))
    assert gradcheck(lambda a, b: (a * b).exp().sum(1), (x, w))
    assert gradcheck(lambda a, b: (a.tanh(), b.sum() * a), [x, w])  # several outputs
    assert gradcheck(lambda a, k: a ** k, (x, 3))  # non-tensor argument
    assert gradcheck(lambda a, c: a * c, (x, dl.tensor([1.0, 2.0, 3.0], dtype=dl.float64)))  # constant input
    assert gradcheck(lambda a: a.t().sin(), (_x(3, 2).t(),))  # non-contiguous input
    assert gradcheck(lambda a: a.sum(), x)  # a bare tensor as inputs


def test_gradcheck_leaves_inputs_unchanged():
    x = _x(4)
    before = x.detach().numpy().copy()
    gradcheck(lambda a: a.exp(), (x,))
    assert np.array_equal(x.detach().numpy(), before) and x.grad is None


def _wrong_function(factor):
    class Wrong(dl.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a.sin()

        @staticmethod
        def backward(ctx, g):
            (a,) = ctx.saved_tensors
            return g * a.cos() * factor
    return Wrong


def test_gradcheck_detects_wrong_gradient():
    x = _x(2, 2)
    assert gradcheck(_wrong_function(1.0).apply, (x,))
    with pytest.raises(GradcheckError, match="Jacobian mismatch") as e:
        gradcheck(_wrong_function(1.01).apply, (x,))
    assert "numerical" in str(e.value) and "analytical" in str(e.value)
    assert gradcheck(_wrong_function(1.01).apply, (x,), raise_exception=False) is False
    assert isinstance(e.value, RuntimeError)


def test_gradcheck_detects_missing_gradient_of_one_input():
    class Half(dl.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, g):
            return g * 0 + 1, None  # wrong for a, missing for b

    assert not gradcheck(Half.apply, (_x(3), _x(3, seed=2)), raise_exception=False)


def test_gradcheck_requires_float64():
    with pytest.raises(GradcheckError, match="float64"):
        gradcheck(lambda a: a * 2, (dl.randn(3, requires_grad=True),))


def test_gradgradcheck_accepts_and_detects():
    x = _x(3)
    assert gradgradcheck(lambda a: (a ** 3).sin(), (x,))
    assert gradgradcheck(lambda a, b: a * b.exp(), (x, _x(3, seed=5)))
    assert gradgradcheck(lambda a: a.tanh(), (x,), grad_outputs=(dl.ones(3, dtype=dl.float64),))

    class FirstOrderOnly(dl.autograd.Function):
        """Right first derivative, wrong second: backward uses a detached input."""

        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a ** 3

        @staticmethod
        def backward(ctx, g):
            (a,) = ctx.saved_tensors
            return 3 * a.detach() ** 2 * g

    assert gradcheck(FirstOrderOnly.apply, (x,))
    with pytest.raises(GradcheckError):
        gradgradcheck(FirstOrderOnly.apply, (x,))
    assert gradgradcheck(FirstOrderOnly.apply, (x,), raise_exception=False) is False


def test_gradcheck_matches_torch_on_a_shared_example():
    a = np.random.default_rng(3).standard_normal((2, 3))
    f = lambda m, t: (t.exp() / (1 + t * t)).sum(0)  # noqa: E731
    assert gradcheck(lambda t: f(dl, t), (dl.tensor(a, requires_grad=True),))
    assert torch.autograd.gradcheck(lambda t: f(torch, t), (torch.tensor(a, requires_grad=True),))
