"""danlu.compile: results equal eager, captured state, mutations, AOT backward, retracing, errors."""

import logging
import traceback

import numpy as np
import pytest

import danlu as dl
from danlu.graph.check import GraphDivergenceError, assert_same_as_eager


def close(a, b, tol=1e-6):
    np.testing.assert_allclose(np.asarray(a.detach()), np.asarray(b.detach()), rtol=tol, atol=tol)


def test_compiled_equals_eager_and_runs_generated_code():
    def f(x, w):
        return ((x @ w).tanh() * 2 + 1).exp().sum(0)

    cf = dl.compile(f)
    x, w = dl.randn(8, 4), dl.randn(4, 3)
    for _ in range(3):
        close(cf(x, w), f(x, w))
    assert cf.compiles == 1
    src = cf.source_for(x, w)
    assert "def forward(" in src and "k_matmul" in src


def test_warmup_then_single_trace():
    calls = []

    def f(x):
        calls.append(1)
        return x + 1

    cf = dl.compile(f)
    x = dl.randn(3)
    for _ in range(5):
        cf(x)
    assert len(calls) == 2  # one eager warm-up call, one trace
    assert cf.compiles == 1


def test_retrace_on_new_shape_is_logged(caplog):
    cf = dl.compile(lambda x: x * 2, warmup=0)
    with caplog.at_level(logging.INFO, logger="danlu.compile"):
        cf(dl.ones(3))
        cf(dl.ones(4))
    assert cf.compiles == 2
    msgs = " ".join(r.getMessage() for r in caplog.records)
    assert "first call" in msgs and "argument 0" in msgs


def test_dynamic_batch_dimension_does_not_retrace():
    w = dl.randn(4, 3)
    cf = dl.compile(lambda x: (x.reshape(-1, 4) @ w).relu().sum(1) * x.shape[0], dynamic={0: 0}, warmup=0)
    for b in (8, 5, 16, 1):
        x = dl.randn(b, 2, 2)
        close(cf(x), (x.reshape(-1, 4) @ w).relu().sum(1) * b)
    assert cf.compiles == 1
    g = cf.graph_for(dl.randn(3, 2, 2))
    assert "s0" in str(g)


def test_module_parameters_are_inputs_not_constants():
    class M(dl.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = dl.nn.Parameter(dl.randn(4, 3))

        def forward(self, x):
            return (x @ self.w).sum()

    m = M()
    cm = dl.compile(m, warmup=0)
    x = dl.randn(2, 4)
    close(cm(x), m(x))
    with dl.no_grad():
        m.w.mul_(2)  # training updates the parameter in place
    close(cm(x), m(x))
    assert cm.compiles == 1
    assert "%w" in str(cm.graph_for(x))


def test_buffer_mutation_is_written_back():
    class Counter(dl.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("n", dl.zeros(()))

        def forward(self, x):
            self.n.add_(1)
            return x * self.n

    c = Counter()
    cc = dl.compile(c, warmup=0)
    x = dl.ones(2)
    outs = [cc(x).tolist() for _ in range(3)]
    assert outs == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
    assert c.n.item() == 3.0


def test_aot_backward_matches_eager_gradients():
    w = dl.randn(4, 3, requires_grad=True)
    b = dl.randn(3, requires_grad=True)

    def f(x):
        return ((x @ w + b).sigmoid() ** 2).mean()

    cf = dl.compile(f, warmup=0)
    x = dl.randn(5, 4, requires_grad=True)
    y = cf(x)
    assert y.grad_fn is not None
    y.backward()
    gw, gb, gx = w.grad.clone(), b.grad.clone(), x.grad.clone()
    w.grad = b.grad = x.grad = None
    f(x).backward()
    close(gw, w.grad)
    close(gb, b.grad)
    close(gx, x.grad)


def test_compiled_training_step_with_backward_inside():
    w = dl.randn(4, 1, requires_grad=True)

    def step(x, y):
        w.grad = None
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        with dl.no_grad():
            w.sub_(0.1 * w.grad)
        return loss

    x, y = dl.randn(16, 4), dl.randn(16, 1)
    w0 = w.detach().clone()
    cs = dl.compile(step)
    losses = [cs(x, y).item() for _ in range(5)]
    w_compiled = w.detach().clone()
    with dl.no_grad():
        w.copy_(w0)
    eager = [step(x, y).item() for _ in range(5)]
    np.testing.assert_allclose(losses, eager, rtol=1e-5)
    close(w_compiled, w, 1e-5)
    assert cs.compiles == 1


def test_data_dependent_control_flow_errors_at_user_line():
    def f(x):
        if x.sum() > 0:  # the line the error must point at
            return x
        return -x

    cf = dl.compile(f, warmup=0)
    with pytest.raises(dl.GraphBreakError) as ei:
        cf(dl.ones(2))
    msg = str(ei.value)
    assert "cond" in msg and "fallback='eager'" in msg
    last = traceback.extract_tb(ei.tb)[-1]
    assert last.filename == __file__ and "x.sum() > 0" in last.line


def test_fallback_eager_runs_and_logs(caplog):
    def f(x):
        return x * 2 if x.sum() > 0 else x * 3

    cf = dl.compile(f, fallback="eager", warmup=0)
    with caplog.at_level(logging.INFO, logger="danlu.compile"):
        assert cf(dl.ones(2)).tolist() == [2.0, 2.0]
        assert cf(-dl.ones(2)).tolist() == [-3.0, -3.0]
    assert "eagerly" in " ".join(r.getMessage() for r in caplog.records)


def test_item_and_numpy_in_trace_raise_graph_break():
    for fn in (lambda x: x * x.sum().item(), lambda x: dl.tensor(x.numpy())):
        with pytest.raises(dl.GraphBreakError):
            dl.compile(fn, warmup=0)(dl.ones(2))


def test_error_inside_compiled_code_names_user_line():
    def f(i, x):
        return x[i]  # advanced indexing: out of range at run time

    cf = dl.compile(f, warmup=0)
    x = dl.randn(3)
    cf(dl.tensor([0, 1]), x)
    with pytest.raises(IndexError) as ei:
        cf(dl.tensor([0, 7]), x)
    notes = "\n".join(getattr(ei.value, "__notes__", []))
    assert "x[i]" in notes and "test_compile.py" in notes


def test_check_true_reports_frozen_python_value():
    class Cfg:
        k = 3.0

    cfg = Cfg()
    cf = dl.compile(lambda x: x * cfg.k + 1, check=True, warmup=0)
    x = dl.randn(4)
    cf(x)
    cfg.k = 4.0
    with pytest.raises(GraphDivergenceError) as ei:
        cf(x)
    assert "frozen" in str(ei.value) and "mul" in str(ei.value)


def test_assert_same_as_eager_helper():
    assert_same_as_eager(lambda x, w: (x @ w).softmax(-1).sum(0) if hasattr(dl, "softmax") else (x @ w).sum(0),
                         dl.randn(5, 4), dl.randn(4, 3))


def test_outputs_structure_and_python_values():
    cf = dl.compile(lambda x: {"a": x + 1, "b": (x * 2, 7)}, warmup=0)
    out = cf(dl.ones(2))
    assert set(out) == {"a", "b"} and out["b"][1] == 7
    assert out["b"][0].tolist() == [2.0, 2.0]


def test_no_grad_signature_differs_from_grad():
    w = dl.randn(3, requires_grad=True)
    cf = dl.compile(lambda x: (x * w).sum(), warmup=0)
    x = dl.randn(3)
    with dl.no_grad():
        y0 = cf(x)
    y1 = cf(x)
    assert y0.grad_fn is None and y1.grad_fn is not None
    assert cf.compiles == 2


def test_graph_prints_as_runnable_python_that_round_trips():
    from danlu.graph.codegen import source_namespace

    def f(x, w):
        return (x @ w).relu().sum(1, keepdim=True) + dl.ones(1)

    cf = dl.compile(f, optimize=False, warmup=0)
    x, w = dl.randn(4, 3), dl.randn(3, 2)
    g = cf.graph_for(x, w)
    text = str(g)
    assert "matmul(%arg0, %arg1)" in text and "f32[4, 2]" in text
    src = g.python_source()
    ns = {"CONSTS": source_namespace(g)}
    exec(src, ns)
    (out,) = ns["forward"](x.numpy(), w.numpy())
    np.testing.assert_allclose(out, f(x, w).numpy(), rtol=1e-6)


def test_grad_read_through_attribute_is_looked_up_each_call():
    w = dl.ones(2, requires_grad=True)
    f = dl.compile(lambda: w.grad * 1, warmup=0)
    (w * 2).sum().backward()
    assert f().tolist() == [2.0, 2.0]
    w.grad = None
    (w * 3).sum().backward()
    assert f().tolist() == [3.0, 3.0]
    assert f.compiles == 1


def test_compiled_optimizer_step_follows_lr_schedule_without_retracing(caplog):
    w = dl.randn(4, 1, requires_grad=True)
    w0 = w.detach().clone()
    opt = dl.optim.SGD([w], lr=0.1, momentum=0.9)
    sched = dl.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    x, y = dl.randn(16, 4), dl.randn(16, 1)

    def step():
        opt.zero_grad()
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    cs = dl.compile(step)
    compiled = []
    for _ in range(6):
        compiled.append(cs().item())
        sched.step()
    w_c = w.detach().clone()
    with dl.no_grad():
        w.copy_(w0)
    opt2 = dl.optim.SGD([w], lr=0.1, momentum=0.9)
    sched2 = dl.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    opt, sched = opt2, sched2
    eager = []
    for _ in range(6):
        eager.append(step().item())
        sched.step()
    np.testing.assert_allclose(compiled, eager, rtol=1e-5)
    close(w_c, w, 1e-5)
    assert cs.compiles == 1


def test_changed_hyperparameter_retraces_with_reason(caplog):
    w = dl.randn(3, requires_grad=True)
    opt = dl.optim.SGD([w], lr=0.1, momentum=0.5)

    def step():
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()

    cs = dl.compile(step)
    with caplog.at_level(logging.INFO, logger="danlu.compile"):
        cs(), cs()
        opt.param_groups[0]["momentum"] = 0.9
        cs()
    assert cs.compiles == 2
    assert "momentum" in " ".join(r.getMessage() for r in caplog.records)


def test_check_true_also_tries_fresh_inputs_and_leaves_state_alone():
    class Cfg:
        k = 3.0

    seen = []

    def f(x, t):
        seen.append(1)
        return x * 2 + t.sum()

    cf = dl.compile(f, check=True, warmup=0)
    x, t = dl.randn(4), dl.randn(3)
    out = cf(x, t)
    close(out, x * 2 + t.sum())
    assert len(seen) >= 4  # the trace, eager runs on two fresh input sets and on the real ones

    w = dl.zeros(2)

    def g(x):
        w.add_(x)  # state the check must not change twice
        return w * 1

    cg = dl.compile(g, check=True, warmup=0)
    cg(dl.ones(2))
    assert w.tolist() == [1.0, 1.0]


def test_inplace_updates_through_views_are_traced():
    def f(x, v):
        y = x * 1
        side = y[2]
        y[0] += v          # a view written in place
        y[:, 1].mul_(2)    # another one
        return y.sum(0) + side

    x, v = dl.randn(3, 4), dl.randn(4)
    cf = dl.compile(f, warmup=0)
    close(cf(x, v), f(x, v))
    x2, v2 = dl.randn(3, 4), dl.randn(4)
    close(cf(x2, v2), f(x2, v2))
