"""cond, while_loop and scan: eager and compiled agree, gradients agree, no retrace for new lengths."""

import numpy as np

import danlu as dl


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a.detach()), np.asarray(b.detach()), rtol=tol, atol=tol)


def test_scan_rnn_compiles_once_for_any_length_and_differentiates():
    W = dl.randn(4, 4, requires_grad=True)
    U = dl.randn(4, 4, requires_grad=True)

    def rnn(xs, h0):
        def step(h, x):
            h = (h @ W + x @ U).tanh()
            return h, h.sum(-1)

        h, ys = dl.scan(step, h0, xs)
        return (h ** 2).sum() + ys.sum()

    cr = dl.compile(rnn, dynamic={0: 0}, warmup=0)
    for T in (6, 9, 2):
        xs, h0 = dl.randn(T, 3, 4), dl.randn(3, 4, requires_grad=True)
        y = cr(xs, h0)
        y.backward()
        gW, gU, gh = W.grad.clone(), U.grad.clone(), h0.grad.clone()
        W.grad = U.grad = h0.grad = None
        y2 = rnn(xs, h0)
        y2.backward()
        close(y, y2)
        close(gW, W.grad)
        close(gU, U.grad)
        close(gh, h0.grad)
        W.grad = U.grad = h0.grad = None
    assert cr.compiles == 1
    g = cr.entry_for(dl.randn(5, 3, 4), dl.randn(3, 4, requires_grad=True)).graph
    assert "scan" in str(g)


def test_scan_reverse_and_pytrees():
    def f(c, x):
        a, b = c
        return (a + x["u"], b * 2), {"v": a * x["u"]}

    xs = {"u": dl.arange(5).float()}
    eager = dl.scan(f, (dl.zeros(()), dl.ones(())), xs, reverse=True)
    comp = dl.compile(lambda xs: dl.scan(f, (dl.zeros(()), dl.ones(())), xs, reverse=True), warmup=0)(xs)
    close(eager[0][0], comp[0][0])
    close(eager[0][1], comp[0][1])
    close(eager[1]["v"], comp[1]["v"])


def test_cond_both_branches_and_gradient():
    f = dl.compile(lambda x: dl.cond(x.sum() > 0, lambda t: (t * 2).exp(), lambda t: -t.sin(), x).sum(), warmup=0)
    for v in ([1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]):
        x = dl.tensor(v, requires_grad=True)
        y = f(x)
        y.backward()
        x2 = dl.tensor(v, requires_grad=True)
        y2 = dl.cond(x2.sum() > 0, lambda t: (t * 2).exp(), lambda t: -t.sin(), x2).sum()
        y2.backward()
        close(y, y2)
        close(x.grad, x2.grad)
    assert f.compiles == 1


def test_while_loop_runs_in_graph():
    w = dl.compile(lambda n: dl.while_loop(lambda c: c[0] < n, lambda c: (c[0] * 2, c[1] + 1),
                                           (dl.tensor(1), dl.tensor(0))), warmup=0)
    assert [t.item() for t in w(dl.tensor(10))] == [16, 4]
    assert [t.item() for t in w(dl.tensor(1000))] == [1024, 10]
    assert w.compiles == 1


def test_cond_captures_outer_tensors():
    scale = dl.tensor(3.0)
    f = dl.compile(lambda x: dl.cond(x.sum() > 0, lambda t: t * scale, lambda t: t - scale, x), warmup=0)
    assert f(dl.ones(2)).tolist() == [3.0, 3.0]
    assert f(-dl.ones(2)).tolist() == [-4.0, -4.0]


def test_scan_body_may_return_no_outputs():
    def f(xs):
        (h,), ys = dl.scan(lambda c, x: ((c[0] + x,), None), (dl.zeros(2),), xs)
        return h, ys

    xs = dl.randn(5, 2)
    h, ys = dl.compile(f, warmup=0)(xs)
    assert ys is None
    close(h, xs.sum(0))


def test_scan_weight_gradients_summed_outside_the_loop_match_eager():
    """An LSTM-style body uses each weight through ``h @ W.T`` (twice for ``V``): the backward scan
    reads the activations the forward scan saved, sums the weight gradients as one product of the
    stacked steps after the loop, and the gradients (float64) equal eager autograd's."""
    rng = np.random.default_rng(0)
    W = dl.tensor(rng.standard_normal((8, 4)), requires_grad=True)
    V = dl.tensor(rng.standard_normal((4, 4)), requires_grad=True)
    b = dl.tensor(rng.standard_normal(8), requires_grad=True)

    def f(xs, h0):
        def cell(carry, x):
            h, c = carry
            gates = x + h @ W.T + b
            i, g = gates.chunk(2, 1)
            c = i.sigmoid() * c + g.tanh() + (h @ V) * (c @ V.T)
            h = c.tanh()
            return (h, c), h
        (h, c), ys = dl.scan(cell, (h0, h0), xs)
        return (h * c).sum() + (ys ** 2).sum()

    xs, h0 = dl.tensor(rng.standard_normal((7, 3, 8))), dl.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    cf = dl.compile(f, warmup=0)
    out = cf(xs, h0)
    got = dl.autograd.grad(out, [W, V, b, h0])
    want = dl.autograd.grad(f(xs, h0), [W, V, b, h0])
    for g_, w_ in zip(got, want):
        close(g_, w_, 1e-10)
    bodies = [n.attrs["body"] for n in cf.entry_for(xs, h0).backward_graph.nodes if n.op.name == "scan"]
    assert bodies and any(o in body.inputs for body in bodies for o in body.outputs), \
        "the weight gradients should pass through the backward loop unchanged"
    assert any(name.startswith("res") for body in bodies for name in body.input_names), \
        "the backward loop should read the forward step's saved activations, not recompute them"


def test_scan_backward_uses_the_forward_draw_of_random_ops():
    """Dropout inside a compiled scan: the backward must use the masks the forward drew (saved), not
    draw new ones. The gradient is checked against the formula with the forward's mask."""
    rng = np.random.default_rng(0)
    xs = dl.tensor(rng.standard_normal((4, 3, 5)), requires_grad=True)
    h0 = dl.tensor(rng.standard_normal((3, 5)))
    W = dl.tensor(rng.standard_normal((5, 5)), requires_grad=True)

    def fn(xs, h0):
        def step(h, x):
            y = dl.nn.functional.dropout((x @ W).tanh(), 0.5, training=True)
            return h + y, y
        _, ys = dl.scan(step, h0, xs)
        (gx,) = dl.autograd.grad((ys * xs).sum(), [xs])
        return ys.detach(), gx

    ys, gx = dl.compile(fn, warmup=0)(xs, h0)
    x, w, y = xs.detach().numpy(), W.detach().numpy(), ys.numpy()
    t = np.tanh(x @ w)
    want = y + ((x * (y != 0) * 2) * (1 - t ** 2)) @ w.T
    np.testing.assert_allclose(gx.numpy(), want, rtol=1e-10, atol=1e-10)


def test_scan_with_an_integer_carry_differentiates_in_graphs():
    rng = np.random.default_rng(0)
    W = dl.tensor(rng.standard_normal((4, 4)), requires_grad=True)

    def f(xs, h0):
        def step(c, x):
            h, k = c
            h = (h @ W + x).tanh()
            return (h, k + 1), h * 2
        (h, k), ys = dl.scan(step, (h0, dl.tensor(0)), xs)
        return (h ** 2).sum() + ys.sum() + k.double() * 0

    xs = dl.tensor(rng.standard_normal((5, 3, 4)))
    h0 = dl.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    got = dl.autograd.grad(dl.compile(f, warmup=0)(xs, h0), [W, h0])
    want = dl.autograd.grad(f(xs, h0), [W, h0])
    for g_, w_ in zip(got, want):
        close(g_, w_, 1e-10)
