"""A whole training step (forward, loss, backward, optimizer step, zero_grad) compiled into one graph
updates parameters exactly as eager training does."""

import numpy as np
import pytest

import danlu as dl
import danlu.nn as nn
import danlu.nn.functional as F


def mlp():
    return nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 5))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 5))


OPTIMIZERS = {"adam": lambda p: dl.optim.Adam(p, lr=1e-2, weight_decay=1e-3),
              "sgd": lambda p: dl.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
              "rmsprop": lambda p: dl.optim.RMSprop(p, lr=1e-2, centered=True)}


def train_step(model, opt):
    """The whole training step the tests compile: zero_grad, forward, loss, backward, optimizer step."""
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def run(build, xshape, dtype, compiled, opt_name, steps=10, **compile_kw):
    """(losses, final state dict, optimizer, compiled function or None) of ``steps`` training steps."""
    dl.manual_seed(0)
    model = build().to(dtype)
    g = np.random.default_rng(0)
    xs = [dl.tensor(g.standard_normal(xshape), dtype=dtype) for _ in range(steps)]
    ys = [dl.tensor(g.integers(0, 5, xshape[0])) for _ in range(steps)]
    opt = OPTIMIZERS[opt_name](model.parameters())
    step = train_step(model, opt)
    fn = dl.compile(step, **compile_kw) if compiled else step
    losses = [float(fn(x, y)) for x, y in zip(xs, ys)]
    if compiled:
        assert fn.compiles == 1
    return losses, {k: v.numpy().copy() for k, v in model.state_dict().items()}, opt


@pytest.mark.parametrize("opt_name", ["adam", "sgd", "rmsprop"])
@pytest.mark.parametrize("dtype,rtol", [(dl.float64, 1e-6), (dl.float32, 1e-4)])
@pytest.mark.parametrize("build,xshape", [(mlp, (16, 20)), (cnn, (8, 1, 8, 8))], ids=["mlp", "cnn"])
def test_compiled_training_step_matches_eager(build, xshape, dtype, rtol, opt_name):
    le, we, _ = run(build, xshape, dtype, False, opt_name)
    lc, wc, _ = run(build, xshape, dtype, True, opt_name)
    np.testing.assert_allclose(lc, le, rtol=rtol)
    for k in we:
        np.testing.assert_allclose(wc[k], we[k], rtol=rtol, atol=rtol * 1e-2, err_msg=k)


def test_compiled_training_step_is_one_graph_with_backward_and_update():
    dl.manual_seed(0)
    model = mlp()
    step = dl.compile(train_step(model, dl.optim.SGD(model.parameters(), lr=0.1)))
    x, y = dl.randn(16, 20), dl.randint(0, 5, (16,))
    step(x, y)
    g = step.graph_for(x, y)
    text = str(g)
    # forward GEMMs (the fused `linear` op) and backward GEMMs live in the same graph
    assert text.count("= linear(") == 3
    assert text.count("matmul") >= 5
    entry = step.entry_for(x, y)
    assert len(entry.writes) == 6             # every parameter updated in place after each call


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_compiled_step_updates_parameters_and_state_in_place(opt_name):
    """The graph writes each updated parameter and optimizer buffer into the tensor's own array (no
    fresh buffer, no copy back), so its planned peak stays below the unplanned one."""
    dl.manual_seed(0)
    model = mlp()
    opt = {"sgd": lambda p: dl.optim.SGD(p, lr=0.1, momentum=0.9),
           "adam": lambda p: dl.optim.Adam(p, lr=1e-2)}[opt_name](model.parameters())
    x, y = dl.randn(16, 20), dl.randint(0, 5, (16,))
    step = dl.compile(train_step(model, opt))
    step(x, y)
    step(x, y)
    arrays = [p._data for p in model.parameters()]
    before = [a.copy() for a in arrays]
    step(x, y)
    plan = step.entry_for(x, y).graph.memory_plan()
    n_state = {"sgd": 1, "adam": 2}[opt_name] * len(arrays)
    assert len(plan.donated) >= len(arrays) + n_state, plan
    for p, a, b in zip(model.parameters(), arrays, before):
        assert p._data is a and not np.array_equal(a, b)


def test_in_place_update_never_overwrites_a_value_still_read():
    """After common-subexpression elimination ``p``'s new value is ``a``, computed before ``b`` reads
    the old ``p``: writing the update over ``p`` at ``a`` would corrupt ``b`` (in one fused kernel or
    in separate nodes)."""
    p = dl.tensor(np.arange(6.0).reshape(2, 3))

    def f(x):
        with dl.no_grad():
            a = p * 3
            b = p + x
            p.mul_(3)
        return a * b

    x = dl.tensor(np.full((2, 3), 0.5))
    for optimize in (True, False):
        p.copy_(dl.tensor(np.arange(6.0).reshape(2, 3)))
        ref = [f(x).numpy().copy() for _ in range(3)]
        want = p.numpy().copy()
        p.copy_(dl.tensor(np.arange(6.0).reshape(2, 3)))
        cf = dl.compile(f, optimize=optimize)
        got = [cf(x).numpy().copy() for _ in range(3)]
        np.testing.assert_allclose(got, ref)
        np.testing.assert_allclose(p.numpy(), want)


def test_overlapping_inputs_are_never_updated_in_place():
    from danlu.graph.compile import _donatable

    base = np.zeros((4, 4))
    other = np.ones(3)
    donate = {1: (0, base), 2: (1, other)}
    assert _donatable(donate, [base, base[1:], other]) == {2: 1}
    assert _donatable(donate, [base, other]) == {1: 0, 2: 1}
    assert _donatable(donate, [base, other, other]) == {1: 0}  # two tensors over one array


def test_a_returned_view_of_an_updated_tensor_never_aliases_it():
    """``new[0]`` is returned while ``p`` takes ``new``'s value: writing ``new`` into ``p``'s array would
    make the returned tensor change on the next call."""
    p = dl.tensor(np.arange(6.0).reshape(2, 3))

    def f():
        with dl.no_grad():
            new = p * 0.5 + 1
            p.data = new
        return new[0]

    cf = dl.compile(f, warmup=0)
    r1 = cf()
    first = r1.numpy().copy()
    cf()
    np.testing.assert_array_equal(r1.numpy(), first)
    np.testing.assert_allclose(first, [1.0, 1.5, 2.0])


@pytest.mark.parametrize("opt_name", ["sgd", "adam", "rmsprop"])
def test_first_step_creating_optimizer_state_runs_eagerly_even_without_warmup(opt_name, caplog):
    """With ``warmup=0`` the first call would trace the optimizer's first step (state created, SGD's
    buffer taken from the gradient) and repeat it forever: that call runs eagerly instead, says so, and
    the next call is traced. Losses equal eager training's at every step."""
    le, we, _ = run(mlp, (16, 20), dl.float64, False, opt_name)
    with caplog.at_level("INFO", logger="danlu.compile"):
        lc, wc, opt = run(mlp, (16, 20), dl.float64, True, opt_name, warmup=0)  # asserts one compile
    assert "creates its state" in caplog.text
    np.testing.assert_allclose(lc, le, rtol=1e-10)
    for k, v in wc.items():
        np.testing.assert_allclose(v, we[k], rtol=1e-10, err_msg=k)
    assert all(isinstance(t._data, np.ndarray) for s in opt.state.values() for t in s.values()
               if isinstance(t, dl.Tensor))


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_check_mode_accepts_a_training_step(opt_name):
    """``check=True`` on a whole training step: the learning rate's arithmetic (a live number in the
    graph, Python arithmetic in eager code) is not a divergence, and fresh class indices stay within the
    classes seen (3 here), so the step runs, agrees with eager and trains as eager does."""
    def train(compiled):
        dl.manual_seed(0)
        m = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
        opt = {"sgd": lambda p: dl.optim.SGD(p, lr=0.1, momentum=0.9),
               "adam": lambda p: dl.optim.Adam(p, lr=1e-2)}[opt_name](m.parameters())
        x, y = dl.tensor(np.linspace(-1, 1, 30).reshape(5, 6), dtype=dl.float32), dl.tensor([0, 1, 2, 0, 1])
        step = train_step(m, opt)
        fn = dl.compile(step, check=True) if compiled else step
        return [float(fn(x, y)) for _ in range(5)]

    np.testing.assert_allclose(train(True), train(False), rtol=1e-5)
