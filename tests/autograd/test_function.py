"""Custom autograd Functions against torch.autograd.Function: saved tensors, needs_input_grad,
several inputs and outputs, non-tensor arguments, non-differentiable outputs, once_differentiable and
double backward."""

import numpy as np
import pytest
import torch

import danlu as dl

A = np.array([[0.5, -1.5, 2.0], [3.0, 0.25, -0.75]])
B = np.array([[1.5, 2.0, -0.5], [0.5, 4.0, 1.0]])


def close(d, t, rtol=1e-10, atol=1e-12):
    if t is None:
        assert d is None
        return
    assert d is not None
    np.testing.assert_allclose(d.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol)


def both(make):
    """make(module) -> a Function subclass for that module (the same code for danlu and torch)."""
    return make(dl), make(torch)


def make_cube(m):
    class Cube(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x ** 2 * g
    return Cube


def make_mul_add(m, log):
    class MulAdd(m.autograd.Function):
        """out = a * b + scale * c, with a Python scale and a flag."""

        @staticmethod
        def forward(ctx, a, b, scale, c, flag=True):
            ctx.save_for_backward(a, b)
            ctx.scale = scale
            log.append(tuple(ctx.needs_input_grad))
            return a * b + scale * c if flag else a * b

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved_tensors
            ga = g * b if ctx.needs_input_grad[0] else None
            gb = g * a if ctx.needs_input_grad[1] else None
            gc = g * ctx.scale if ctx.needs_input_grad[3] else None
            return ga, gb, None, gc, None
    return MulAdd


def make_split(m):
    class SinCos(m.autograd.Function):
        """Two outputs."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.sin(), x.cos()

        @staticmethod
        def backward(ctx, gs, gc):
            (x,) = ctx.saved_tensors
            return gs * x.cos() - gc * x.sin()
    return SinCos


def test_save_for_backward_and_forward_values():
    dC, tC = both(make_cube)
    x, tx = dl.tensor(A, requires_grad=True), torch.tensor(A, requires_grad=True)
    y, ty = dC.apply(x), tC.apply(tx)
    close(y, ty)
    assert y.requires_grad and not y.is_leaf and y.grad_fn is not None
    y.backward(dl.tensor(B))
    ty.backward(torch.tensor(B))
    close(x.grad, tx.grad)


def test_function_output_without_grad_inputs_has_no_graph():
    dC, _ = both(make_cube)
    y = dC.apply(dl.tensor(A))
    assert not y.requires_grad and y.grad_fn is None
    with dl.no_grad():
        z = dC.apply(dl.tensor(A, requires_grad=True))
    assert not z.requires_grad


def test_forward_runs_without_recording():
    seen = []

    class Probe(dl.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x * 2
            seen.append((y.requires_grad, dl.is_grad_enabled()))
            return y

        @staticmethod
        def backward(ctx, g):
            return g * 2
    x = dl.ones(2, requires_grad=True)
    Probe.apply(x).sum().backward()
    assert seen == [(False, False)] and x.grad.tolist() == [2.0, 2.0]


@pytest.mark.parametrize("grads", [(True, True, True), (True, False, False), (False, True, True),
                                   (False, False, True)])
def test_multiple_inputs_needs_input_grad_and_non_tensor_args(grads):
    res = []
    for m in (dl, torch):
        log = []
        F = make_mul_add(m, log)
        a = m.tensor(A, requires_grad=grads[0])
        b = m.tensor(B, requires_grad=grads[1])
        c = m.tensor(A * 2, requires_grad=grads[2])
        out = F.apply(a, b, 0.5, c, True)
        (out * out).sum().backward()
        res.append((out, a.grad, b.grad, c.grad, log))
    (do, da, db, dc, dlog), (to, ta, tb, tc, tlog) = res
    assert dlog == tlog == [(grads[0], grads[1], False, grads[2], False)]
    close(do, to)
    close(da, ta)
    close(db, tb)
    close(dc, tc)


def test_multiple_outputs():
    dF, tF = both(make_split)
    res = []
    for F, m in ((dF, dl), (tF, torch)):
        x = m.tensor(A, requires_grad=True)
        s, c = F.apply(x)
        assert s.grad_fn is c.grad_fn or m is torch
        (s * 2 + c * c).sum().backward()
        res.append(x.grad)
    close(*res)


def test_multiple_outputs_only_one_used():
    dF, tF = both(make_split)
    res = []
    for F, m in ((dF, dl), (tF, torch)):
        x = m.tensor(A, requires_grad=True)
        s, _ = F.apply(x)
        s.sum().backward()  # the unused output's gradient arrives as zeros (materialize_grads)
        res.append(x.grad)
    close(*res)


def test_set_materialize_grads_false_passes_none():
    got = []
    for m in (dl, torch):
        class F(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.set_materialize_grads(False)
                return x * 2, x * 3

            @staticmethod
            def backward(ctx, g1, g2):
                got.append((g1 is None, g2 is None))
                return (g1 * 2 if g1 is not None else 0) + (g2 * 3 if g2 is not None else 0)
        x = m.tensor(A, requires_grad=True)
        F.apply(x)[1].sum().backward()
    assert got[0] == got[1] == (True, False)


def test_mark_non_differentiable():
    res = []
    for m in (dl, torch):
        class SortLike(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                idx = (x > 0).to(x.dtype)  # a float output that must not get a gradient
                ctx.mark_non_differentiable(idx)
                ctx.save_for_backward(idx)
                return x * idx, idx

            @staticmethod
            def backward(ctx, g, g_idx):
                (idx,) = ctx.saved_tensors
                return g * idx
        x = m.tensor(A, requires_grad=True)
        y, idx = SortLike.apply(x)
        assert y.requires_grad and not idx.requires_grad
        (y * 3).sum().backward()
        res.append(x.grad)
    close(*res)


def test_integer_outputs_never_require_grad():
    class ArgAndVal(dl.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.argmax(), x * 1

        @staticmethod
        def backward(ctx, gi, gv):
            return gv
    i, v = ArgAndVal.apply(dl.tensor([1.0, 3.0], requires_grad=True))
    assert not i.requires_grad and v.requires_grad


def test_returning_an_input_unchanged():
    res = []
    for m in (dl, torch):
        class Ident(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x

            @staticmethod
            def backward(ctx, g):
                return g * 5
        x = m.tensor(A, requires_grad=True)
        y = Ident.apply(x)
        assert y is not x and y.requires_grad and not y.is_leaf and x.is_leaf
        y.sum().backward()
        res.append(x.grad)
    close(*res)


def test_once_differentiable():
    res = []
    for m in (dl, torch):
        class Exp(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                r = x.exp()
                ctx.save_for_backward(r)
                return r

            @staticmethod
            @m.autograd.function.once_differentiable
            def backward(ctx, g):
                (r,) = ctx.saved_tensors
                return g * r
        x = m.tensor(A, requires_grad=True)
        y = Exp.apply(x)
        (g,) = m.autograd.grad(y.sum(), x, create_graph=True)
        assert not g.requires_grad or m is torch
        res.append(g)
    close(*res)
    with pytest.raises(RuntimeError):
        # the gradient has no graph, so differentiating it again fails
        dl.autograd.grad(res[0].sum(), dl.tensor(A, requires_grad=True))


def test_once_differentiable_export():
    assert dl.autograd.once_differentiable is dl.autograd.function.once_differentiable


def make_softplus(m):
    class Softplus(m.autograd.Function):
        """A backward written with library ops, so it is differentiable again."""

        @staticmethod
        def forward(ctx, x, beta):
            ctx.save_for_backward(x)
            ctx.beta = beta
            return m.log(1 + m.exp(beta * x)) / beta

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * m.sigmoid(ctx.beta * x), None
    return Softplus


def test_double_backward_through_function():
    dF, tF = both(make_softplus)
    res = []
    for F, m in ((dF, dl), (tF, torch)):
        x = m.tensor(A, requires_grad=True)
        y = F.apply(x, 1.5)
        (g1,) = m.autograd.grad((y * y).sum(), x, create_graph=True)
        (g2,) = m.autograd.grad((g1 * g1).sum(), x, create_graph=True)
        (g3,) = m.autograd.grad(g2.sum(), x)
        res.append((y, g1, g2, g3))
    for d, t in zip(*res, strict=True):
        close(d, t, rtol=1e-9)


def test_double_backward_through_function_with_two_inputs():
    res = []
    for m in (dl, torch):
        log = []
        F = make_mul_add(m, log)
        a = m.tensor(A, requires_grad=True)
        b = m.tensor(B, requires_grad=True)
        c = m.tensor(A * 2, requires_grad=True)
        out = F.apply(a, b, 2.0, c)
        ga, gb, gc = m.autograd.grad((out ** 2).sum(), (a, b, c), create_graph=True)
        h = m.autograd.grad((ga * gb + gc).sum(), (a, b, c))
        res.append((ga, gb, gc) + tuple(h))
    for d, t in zip(*res, strict=True):
        close(d, t)


def test_function_passes_gradcheck():
    dF, _ = both(make_softplus)
    x = dl.tensor(A, requires_grad=True)
    assert dl.autograd.gradcheck(lambda t: dF.apply(t, 0.7), (x,))
    assert dl.autograd.gradgradcheck(lambda t: dF.apply(t, 0.7), (x,))


def test_saved_tensor_modified_in_place_raises():
    dC, tC = both(make_cube)
    for C, m in ((dC, dl), (tC, torch)):
        x = m.tensor(A, requires_grad=True)
        h = x * 1
        y = C.apply(h)
        h.add_(1)
        with pytest.raises(RuntimeError, match="version"):
            y.sum().backward()


def test_backward_returning_too_few_gradients_errors():
    class Bad(dl.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, g):
            return g
    a, b = dl.ones(2, requires_grad=True), dl.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="Bad.*1 gradient.*2"):
        Bad.apply(a, b).sum().backward()


def test_backward_gradient_broadcast_and_dtype_are_reduced():
    # A backward may return a gradient of the broadcast shape; it is summed to the input's shape.
    res = []
    for m in (dl, torch):
        class AddRow(m.autograd.Function):
            @staticmethod
            def forward(ctx, x, row):
                return x + row

            @staticmethod
            def backward(ctx, g):
                return g, g.sum(0)
        x = m.tensor(A, requires_grad=True)
        row = m.tensor(B[0], requires_grad=True)
        (AddRow.apply(x, row) * m.tensor(B)).sum().backward()
        res.append((x.grad, row.grad))
    close(res[0][0], res[1][0])
    close(res[0][1], res[1][1])


def test_ctx_attributes_and_hooks_on_function_outputs():
    dC, tC = both(make_cube)
    res = []
    for C, m in ((dC, dl), (tC, torch)):
        x = m.tensor(A, requires_grad=True)
        y = C.apply(x)
        y.register_hook(lambda g: g * 2)
        y.retain_grad()
        y.sum().backward()
        res.append((x.grad, y.grad))
    close(res[0][0], res[1][0])
    close(res[0][1], res[1][1])


def test_function_apply_inside_no_grad_and_anomaly():
    dC, _ = both(make_cube)
    x = dl.tensor(A, requires_grad=True)
    with dl.autograd.detect_anomaly():
        y = dC.apply(x)
        y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * A ** 2)


def test_mark_dirty_in_place_function():
    res = []
    for m in (dl, torch):
        class MulTwo_(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                x.mul_(2)
                ctx.mark_dirty(x)
                return x

            @staticmethod
            def backward(ctx, g):
                return g * 2
        a = m.tensor(A, requires_grad=True)
        h = a * 1
        y = MulTwo_.apply(h)
        assert y.requires_grad and not y.is_leaf
        (y * y).sum().backward()
        res.append((y, h, a.grad))
    for d, t in zip(*res, strict=True):
        close(d, t)
