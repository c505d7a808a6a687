"""TF1-style Graph / placeholder / Variable / Session on danlu's graph mode."""

import collections
import threading

import numpy as np
import pytest

import danlu as dl
from danlu.core.errors import DTypeError, ShapeError
from danlu.graph.ir import GraphError
from danlu.graph.session import (Graph, Session, Variable, get_default_graph, global_variables,
                                 global_variables_initializer, gradients, group, placeholder, train_op,
                                 trainable_variables, variables_initializer)


def _mlp_data(n=16, d=5, k=3, seed=0):
    rs = np.random.RandomState(seed)
    x = rs.randn(n, d).astype(np.float32)
    y = rs.randint(0, k, n)
    w1 = (rs.randn(d, 8) * 0.3).astype(np.float32)
    b1 = (rs.randn(8) * 0.1).astype(np.float32)
    w2 = (rs.randn(8, k) * 0.3).astype(np.float32)
    return x, y, [w1, b1, w2]


def _mlp(x, w1, b1, w2):
    return (x @ w1 + b1).relu() @ w2


def _nll(logits, y):
    return -dl.log_softmax(logits, 1).gather(1, y.unsqueeze(1)).mean()


# -- building ------------------------------------------------------------------------------------

def test_default_graph_stack_and_threads():
    outer = get_default_graph()
    with Graph() as g1:
        assert get_default_graph() is g1
        with Graph() as g2:
            assert get_default_graph() is g2
        with g1.as_default():
            assert get_default_graph() is g1
        seen = []
        t = threading.Thread(target=lambda: seen.append(get_default_graph()))
        t.start()
        t.join()
        assert seen[0] is not g1   # the default graph is per thread
    assert get_default_graph() is outer


def test_ops_inside_graph_build_nodes_and_run_nothing():
    a = dl.tensor([1.0, 2.0])
    with Graph() as g:
        x = placeholder((2,), name="x")
        y = x * a + dl.ones(2)          # an eager tensor is captured; creation ops become nodes
    n = len(g.ir.nodes)
    assert n >= 3 and "mul" in str(g)
    assert Session(g).run(y, {x: [3.0, 4.0]}).tolist() == [4.0, 9.0]
    a.mul_(10)                          # captured tensors are read live at each run
    assert Session(g).run(y, {x: [3.0, 4.0]}).tolist() == [31.0, 81.0]
    assert len(g.ir.nodes) == n
    assert (a * 2).tolist() == [20.0, 40.0]   # eager again outside the block


def test_placeholder_outside_graph_and_bad_shapes():
    with pytest.raises(GraphError, match="inside a graph"):
        placeholder((2,))
    with Graph():
        with pytest.raises(ShapeError, match="a shape is required"):
            placeholder(None)
        with pytest.raises(ShapeError, match="dimension 1"):
            placeholder((2, -3))
        x = placeholder((None, 3), dtype=dl.float64, name="x")
        x2 = placeholder((1,), name="x")
    assert x.dtype is dl.float64 and str(x.shape[0]) == "x_dim0" and x.shape[1] == 3
    assert x2.shape == (1,)


def test_fetch_structures_and_result_types():
    Point = collections.namedtuple("Point", "a b")
    with Graph() as g:
        x = placeholder((None,), name="x")
        s = x.sum()
        d = x * 2
    with Session(g) as sess:
        out = sess.run({"s": s, "pair": (d, [s]), "p": Point(s, d)}, feed_dict={x: [1.0, 2.0]})
    assert isinstance(out["s"], np.float32) and out["s"] == 3.0
    assert isinstance(out["pair"], tuple) and isinstance(out["pair"][1], list)
    np.testing.assert_array_equal(out["pair"][0], np.array([2.0, 4.0], np.float32))
    assert isinstance(out["p"], Point) and out["p"].a == 3.0
    assert out["pair"][0].dtype == np.float32


# -- variables ---------------------------------------------------------------------------------

def test_variables_live_in_the_session():
    with Graph() as g:
        v = Variable([1.0, 2.0], name="v")
        inc = v.assign_add([1.0, 1.0])
        init = global_variables_initializer()
    s1, s2 = Session(g), Session(g)
    with pytest.raises(GraphError, match="uninitialized variable 'v'"):
        s1.run(v)
    s1.run(init)
    s2.run(init)
    s1.run(inc)
    s1.run(inc)
    assert s1.run(v).tolist() == [3.0, 4.0]
    assert s2.run(v).tolist() == [1.0, 2.0]
    s1.run(init)                        # re-initializing restores the initial value
    assert s1.run(v).tolist() == [1.0, 2.0]


def test_reads_see_values_from_the_start_of_the_run():
    with Graph() as g:
        v = Variable(1.0)
        new = v.assign(v * 10)
        twice = v + v
    s = Session(g)
    s.run(v.initializer)
    got_new, got_v, got_twice = s.run([new, v, twice])
    assert (got_new, got_v, got_twice) == (10.0, 1.0, 2.0)
    assert s.run(v) == 10.0
    r = s.run(v)
    r2 = s.run(v)
    assert r is not r2   # results are copies, not the session's buffer


def test_assign_effect_runs_with_anything_computed_from_it():
    with Graph() as g:
        v = Variable(0.0)
        y = v.assign(5.0) + 1
    s = Session(g)
    s.run(v.initializer)
    assert s.run(y) == 6.0 and s.run(v) == 5.0


def test_assign_checks_shape_and_dtype():
    with Graph():
        v = Variable([1.0, 2.0], name="v")
        n = Variable([1, 2], name="n")
        x = placeholder((None,), name="x")
        with pytest.raises(ShapeError, match="variable has shape"):
            v.assign([1.0, 2.0, 3.0])
        with pytest.raises(ShapeError):
            v.assign(x)                # an unknown size cannot be stored in a fixed-shape variable
        with pytest.raises(DTypeError, match="float"):
            n.assign([1.5, 2.5])
        n.assign([3, 4])


def test_variable_initial_value_from_graph_is_drawn_at_init():
    with Graph() as g:
        w = Variable(dl.randn(3, 4), name="w")
        c = Variable(np.arange(3), name="c", trainable=False, dtype=dl.float64)
        init = global_variables_initializer()
    assert [v.name for v in global_variables(g)] == ["w", "c"]
    assert [v.name for v in trainable_variables(g)] == ["w"]
    s = Session(g)
    s.run(init)
    a = s.run(w)
    s.run(init)
    b = s.run(w)
    assert a.shape == (3, 4) and not np.array_equal(a, b)
    assert s.run(c).dtype == np.float64 and s.run(c).tolist() == [0.0, 1.0, 2.0]
    assert "Variable 'w'" in repr(w)


def test_group_load_and_variables_initializer():
    with Graph() as g:
        a, b = Variable(1.0, name="a"), Variable([2.0, 3.0], name="b")
        both = group(a.assign(10.0), b.assign_sub([1.0, 1.0]))
        init_a = variables_initializer([a])
    s = Session(g)
    s.run(init_a)
    with pytest.raises(GraphError, match="uninitialized variable 'b'"):
        s.run(both)
    b.load([5.0, 5.0], s)
    assert s.run(both) is None
    assert s.run(a) == 10.0 and s.run(b).tolist() == [4.0, 4.0]
    with pytest.raises(ShapeError, match="variable 'b'"):
        b.load([1.0], s)


# -- feeding, pruning, caching -------------------------------------------------------------------

def test_unknown_batch_size_one_compile_serves_all_sizes():
    x_np = np.random.RandomState(0).randn(9, 4).astype(np.float32)
    w_np = np.random.RandomState(1).randn(4, 3).astype(np.float32)
    with Graph() as g:
        x = placeholder((None, 4), name="x")
        w = Variable(w_np)
        y = (x @ w).tanh().sum(1)
    s = Session(g)
    s.run(w.initializer)
    base = g.compiles
    for n in (2, 5, 9, 3, 7):
        np.testing.assert_allclose(s.run(y, {x: x_np[:n]}), np.tanh(x_np[:n] @ w_np).sum(1), rtol=1e-5)
    assert g.compiles - base == 1


def test_sizes_that_break_a_shape_rule_assumption_are_rechecked():
    # (None, 3) + (1, 3): while building, broadcasting assumed the unknown size is not 1. For size 1 the
    # shapes are re-inferred; they agree with the symbolic ones, so the symbolic code still serves.
    with Graph() as g:
        x = placeholder((None, 3), name="x")
        b = placeholder((1, 3), name="b")
        y = (x + b).sum(0)
    s = Session(g)
    bv = np.array([[1.0, 2.0, 3.0]], np.float32)
    for n in (4, 1, 2, 1):
        xv = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
        np.testing.assert_array_equal(s.run(y, {x: xv, b: bv}), (xv + bv).sum(0))
    assert g.compiles == 1


def test_mismatched_unknown_sizes_error_names_the_op():
    with Graph() as g:
        x = placeholder((None, 3), name="x")
        y = placeholder((None, 3), name="y")
        z = x - y                        # built assuming both unknown sizes are equal
    s = Session(g)
    np.testing.assert_array_equal(s.run(z, {x: np.ones((2, 3)), y: np.ones((2, 3))}), np.zeros((2, 3)))
    with pytest.raises(ShapeError, match="x_dim0=4, y_dim0=5") as e:
        s.run(z, {x: np.ones((4, 3)), y: np.ones((5, 3))})
    assert "test_session.py" in str(e.value)
    # a size-1 dimension broadcasts, as eagerly
    assert g.compiles == 1
    np.testing.assert_array_equal(s.run(z, {x: np.ones((4, 3)), y: np.zeros((1, 3))}), np.ones((4, 3)))
    assert g.compiles == 1          # the result has x's size: the symbolic code is right
    np.testing.assert_array_equal(s.run(z, {x: np.ones((1, 3)), y: np.zeros((4, 3))}), np.ones((4, 3)))
    assert g.compiles == 2          # the result has y's size: a copy compiled for these sizes


def test_second_run_does_not_recompile():
    with Graph() as g:
        x = placeholder((None,), name="x")
        y = placeholder((None,), name="y")
        a, b = x * 2, x + y
    s = Session(g)
    s.run(a, {x: [1.0]})
    s.run([a, b], {x: [1.0], y: [2.0]})
    n = g.compiles
    for _ in range(3):
        s.run(a, {x: [1.0, 2.0]})
        s.run([a, b], {x: [3.0], y: [2.0]})
    Session(g).run(a, {x: [5.0]})        # the cache belongs to the graph: a new session reuses it
    assert g.compiles == n == 2


def test_pruning_unfed_placeholders():
    with Graph() as g:
        x = placeholder((None,), name="x")
        unused = placeholder((3,), name="unused")
        y = x * 3
        z = y + unused.sum()
    s = Session(g)
    assert s.run(y, {x: [1.0]}).tolist() == [3.0]          # 'unused' is not needed: no feed required
    with pytest.raises(GraphError, match=r"placeholder 'unused' \(float32\(3,\)\).*fetch 1"):
        s.run([y, z], {x: [1.0]})
    # feeding an intermediate tensor overrides it, so what is upstream of it is not needed
    assert s.run(z, {y: [1.0, 2.0], unused: [0.0, 0.0, 1.0]}).tolist() == [2.0, 3.0]
    assert s.run(z, {y: np.ones(2, np.float32), unused: dl.ones(3)}).tolist() == [4.0, 4.0]


def test_feed_errors_name_the_placeholder():
    with Graph() as g:
        x = placeholder((None, 4), name="images")
        lab = placeholder((None,), dtype=dl.int64, name="labels")
        y = x.sum() + lab.sum()
    s = Session(g)
    with pytest.raises(ShapeError, match=r"shape \(2, 5\) to placeholder 'images'.*\(None, 4\)"):
        s.run(y, {x: np.ones((2, 5)), lab: [1, 2]})
    with pytest.raises(ShapeError, match=r"shape \(2, 4, 1\)"):
        s.run(y, {x: np.ones((2, 4, 1)), lab: [1, 2]})
    with pytest.raises(DTypeError, match=r"float64 and shape \(2,\) to placeholder 'labels'"):
        s.run(y, {x: np.ones((2, 4)), lab: [1.5, 2.0]})
    with pytest.raises(DTypeError, match="placeholder 'images'"):
        s.run(y, {x: np.array([["a"] * 4]), lab: [1]})
    # safe conversions are accepted: ints and float64 for a float32 placeholder
    assert s.run(y, {x: [[1, 2, 3, 4]], lab: np.array([3], np.int32)}) == 13.0
    with pytest.raises(TypeError, match="feed_dict keys"):
        s.run(y, {"images": np.ones((1, 4))})
    with pytest.raises(TypeError, match="cannot feed a graph tensor"):
        s.run(y, {x: y, lab: [1]})


def test_fetch_errors():
    with Graph() as g1:
        x1 = placeholder((1,), name="x1")
        y1 = x1 + 1
        init1 = global_variables_initializer()
    with Graph() as g2:
        x2 = placeholder((1,), name="x2")
        y2 = x2 * 2
        with pytest.raises(GraphError, match="different graphs"):
            x2 + y1
    s = Session(g2)
    with pytest.raises(GraphError, match="belongs to graph 'graph'.*not to this session's graph"):
        s.run(y1, {x1: [1.0]})
    with pytest.raises(GraphError, match="operation of graph"):
        s.run(init1)
    with pytest.raises(GraphError, match="eager tensor"):
        s.run(dl.ones(2))
    with pytest.raises(TypeError, match="invalid type str"):
        s.run("x2:0")
    s.close()
    with pytest.raises(RuntimeError, match="closed Session"):
        s.run(y2, {x2: [1.0]})
    with Session(g1) as s1:
        assert s1.run(y1, {x1: [1.0]}).tolist() == [2.0]
    with pytest.raises(RuntimeError, match="closed Session"):
        s1.run(y1, {x1: [1.0]})


def test_inplace_rules_inside_a_graph():
    e = dl.zeros(2)
    with Graph():
        x = placeholder((2,), dtype=dl.int64, name="x")
        v = Variable([1.0, 2.0], name="v")
        h = x * 2
        h.add_(1)                        # intermediate values are functionalized
        with pytest.raises(GraphError, match="placeholder 'x'"):
            x.add_(1)
        with dl.no_grad(), pytest.raises(GraphError, match="assign"):
            v.add_(1)
        with pytest.raises(GraphError, match="eager tensor"):
            e.add_(x)
        with pytest.raises(GraphError, match="gradients"):
            (v * v).sum().backward()
    assert e.tolist() == [0.0, 0.0] and v.grad is None


# -- gradients -------------------------------------------------------------------------------------

def test_gradients_match_eager_autograd():
    x_np, y_np, ws = _mlp_data()
    with Graph() as g:
        x = placeholder((None, 5), name="x")
        y = placeholder((None,), dtype=dl.int64, name="y")
        vs = [Variable(w) for w in ws]
        loss = _nll(_mlp(x, *vs), y)
        grads = gradients(loss, vs + [x])
        unrelated = Variable(1.0)
        assert gradients(loss, [unrelated, y]) == [None, None]
    s = Session(g)
    s.run(variables_initializer(vs))
    got = s.run(grads, {x: x_np, y: y_np})
    ts = [dl.tensor(w, requires_grad=True) for w in ws]
    xt = dl.tensor(x_np, requires_grad=True)
    want = dl.autograd.grad(_nll(_mlp(xt, *ts), dl.tensor(y_np)), ts + [xt])
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b.numpy())


def test_second_order_gradients_and_grad_ys():
    with Graph() as g:
        x = placeholder((3,), name="x")
        y = x ** 3
        (dy,) = gradients(y, [x])                    # non-scalar ys: summed, as TF
        (d2y,) = gradients(dy, [x])
        (wy,) = gradients(y, x, grad_ys=[[1.0, 0.0, 2.0]])
    got = Session(g).run([dy, d2y, wy], {x: [1.0, 2.0, 3.0]})
    np.testing.assert_allclose(got[0], [3.0, 12.0, 27.0])
    np.testing.assert_allclose(got[1], [6.0, 12.0, 18.0])
    np.testing.assert_allclose(got[2], [3.0, 0.0, 54.0])


# -- training ------------------------------------------------------------------------------------

OPTIMIZERS = {
    "sgd": lambda p: dl.optim.SGD(p, lr=0.1),
    "sgd_momentum_dampening": lambda p: dl.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.3),
    "sgd_nesterov_wd": lambda p: dl.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda p: dl.optim.Adam(p, lr=0.01),
    "adamw_amsgrad": lambda p: dl.optim.AdamW(p, lr=0.01, amsgrad=True),
    "rmsprop": lambda p: dl.optim.RMSprop(p, lr=0.01, momentum=0.5),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_training_steps_equal_eager(name):
    make = OPTIMIZERS[name]
    x_np, y_np, ws = _mlp_data()
    ts = [dl.tensor(w, requires_grad=True) for w in ws]
    opt = make(ts)
    eager_losses = []
    for _ in range(4):
        opt.zero_grad()
        loss = _nll(_mlp(dl.tensor(x_np), *ts), dl.tensor(y_np))
        loss.backward()
        opt.step()
        eager_losses.append(loss.item())
    with Graph() as g:
        x = placeholder((None, 5), name="x")
        y = placeholder((None,), dtype=dl.int64, name="y")
        vs = [Variable(w) for w in ws]
        loss = _nll(_mlp(x, *vs), y)
        train = train_op(make(vs), loss)
        init = global_variables_initializer()
    s = Session(g)
    s.run(init)
    losses = [float(s.run([train, loss], {x: x_np, y: y_np})[1]) for _ in range(4)]
    # The same primitive kernels in the same order: bit-for-bit equal.
    assert losses == eager_losses
    for v, t in zip(s.run(vs), ts):
        np.testing.assert_array_equal(v, t.detach().numpy())
    # Re-initializing resets the optimizer state too: training restarts exactly.
    s.run(init)
    again = [float(s.run([train, loss], {x: x_np, y: y_np})[1]) for _ in range(4)]
    assert again == eager_losses


def test_train_op_first_step_then_steady_state_compiles_once_each():
    x_np, y_np, ws = _mlp_data()
    with Graph() as g:
        x = placeholder((None, 5), name="x")
        y = placeholder((None,), dtype=dl.int64, name="y")
        vs = [Variable(w) for w in ws]
        loss = _nll(_mlp(x, *vs), y)
        train = train_op(dl.optim.SGD(vs, lr=0.1, momentum=0.9), loss)
        init = global_variables_initializer()
    assert [sl.name for sl in train.slots] == ["Variable/momentum_buffer", "Variable_1/momentum_buffer",
                                               "Variable_2/momentum_buffer"]
    s = Session(g)
    s.run(init)
    for n in (16, 7, 16, 3):
        s.run(train, {x: x_np[:n], y: y_np[:n]})
    assert g.compiles == 2
    np.testing.assert_array_equal(s.run(train.slots[1]).shape, (8,))


def test_var_list_and_learning_rate_read_at_each_run():
    with Graph() as g:
        a, b = Variable(1.0, name="a"), Variable(1.0, name="b")
        loss = a * b
        opt = dl.optim.SGD([a, b], lr=0.5, momentum=0.0)
        train_a = train_op(opt, loss, var_list=[a])
        init = global_variables_initializer()
    s = Session(g)
    s.run(init)
    s.run(train_a)
    assert (s.run(a), s.run(b)) == (0.5, 1.0)
    opt.param_groups[0]["lr"] = 1.0            # as an lr scheduler would: no rebuild, no recompile
    n = g.compiles
    s.run(train_a)
    assert s.run(a) == -0.5 and g.compiles == n
    opt.param_groups[0]["momentum"] = 0.9      # baked into the graph: refused
    with pytest.raises(GraphError, match="momentum"):
        s.run(train_a)


def test_train_op_errors():
    with Graph() as g:
        a = Variable(1.0, name="a")
        b = Variable(2.0, name="b")
        with pytest.raises(ValueError, match="no gradients"):
            train_op(dl.optim.SGD([b], lr=0.1), a * 2)
        with pytest.raises(ValueError, match="does not optimize"):
            train_op(dl.optim.SGD([a], lr=0.1), a * b, var_list=[b])
    with pytest.raises(GraphError, match="eager tensor"):
        train_op(dl.optim.SGD([dl.ones(1, requires_grad=True)], lr=0.1), dl.ones(1))
    assert len(g._train_ops) == 0


class _Affine(dl.nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.weight = dl.nn.Parameter(dl.tensor(w))
        self.bias = dl.nn.Parameter(dl.tensor(b))

    def forward(self, x):
        return x @ self.weight + self.bias


def test_module_parameters_are_captured_and_updated_in_place():
    rs = np.random.RandomState(0)
    w, b = rs.randn(3, 2).astype(np.float32), rs.randn(2).astype(np.float32)
    x_np = rs.randn(4, 3).astype(np.float32)
    model, ref = _Affine(w, b), _Affine(w, b)
    with Graph() as g:
        x = placeholder((None, 3), name="x")
        loss = (model(x) ** 2).mean()
        train = train_op(dl.optim.SGD(model.parameters(), lr=0.1, momentum=0.5), loss)
    s = Session(g)
    for _ in range(3):
        s.run(train, {x: x_np})
    opt = dl.optim.SGD(ref.parameters(), lr=0.1, momentum=0.5)
    for _ in range(3):
        opt.zero_grad()
        (ref(dl.tensor(x_np)) ** 2).mean().backward()
        opt.step()
    assert not np.array_equal(model.weight.detach().numpy(), w)
    np.testing.assert_array_equal(model.weight.detach().numpy(), ref.weight.detach().numpy())
    np.testing.assert_array_equal(model.bias.detach().numpy(), ref.bias.detach().numpy())
    assert model.weight.grad is None        # the symbolic gradients did not leak into .grad
    # the parameters are still ordinary eager tensors
    assert (model(dl.tensor(x_np)) - ref(dl.tensor(x_np))).abs().max().item() == 0.0


def test_python_decisions_on_unknown_sizes_are_checked_at_run():
    with Graph() as g:
        x = placeholder((None,), name="x")
        other = x.sum()
        y = x * 2 if x.shape[0] > 1 else x * 100     # decided once, with the example size
        z = y + 1
    s = Session(g)
    assert s.run(z, {x: [1.0, 2.0]}).tolist() == [3.0, 5.0]
    assert s.run(other, {x: [5.0]}) == 5.0                 # built before the decision: fine
    # the graph holds x * 2; a run whose size would have taken the other branch is refused
    with pytest.raises(GraphError, match=r"x_dim0 > 1.*x_dim0=1"):
        s.run(z, {x: [1.0]})


def test_run_inside_the_graph_block_and_control_flow():
    with Graph() as g:
        x = placeholder((None,), name="x")
        y = dl.cond(x.sum() > 0, lambda t: t * 2, lambda t: -t, x)
        s = Session(g)
        assert s.run(y, {x: [1.0, 2.0]}).tolist() == [2.0, 4.0]
        z = y + 1                                          # still building: the session did not disturb it
    assert s.run(y, {x: [-1.0, -2.0]}).tolist() == [1.0, 2.0]
    assert s.run(z, {x: [3.0]}).tolist() == [7.0]


def test_unknown_sizes_used_as_numbers():
    with Graph() as g:
        x = placeholder((None, 2), name="x")
        scaled = x / x.shape[0] * 2
        powered = x ** x.shape[0]          # the example size is 2: must not become x * x
        (grad_mean,) = gradients((x ** 2).mean(), [x])
    s = Session(g)
    for n in (3, 2, 5, 1):
        xv = np.arange(1, 2 * n + 1, dtype=np.float32).reshape(n, 2)
        a, p, gm = s.run([scaled, powered, grad_mean], {x: xv})
        np.testing.assert_allclose(a, xv / n * 2, rtol=1e-6)
        np.testing.assert_allclose(p, xv ** n, rtol=1e-6)
        np.testing.assert_allclose(gm, 2 * xv / xv.size, rtol=1e-6)
        assert a.dtype == p.dtype == gm.dtype == np.float32


def test_optimizer_minimize_and_feeding_overrides():
    with Graph() as g:
        x = placeholder((2,), name="x")
        w = Variable([1.0, -1.0], name="w")
        loss = ((w - x) ** 2).sum()
        train = dl.optim.SGD([w], lr=0.25).minimize(loss)
        init = global_variables_initializer()
    s = Session(g)
    s.run(init)
    s.run(train, {x: [3.0, 3.0]})
    np.testing.assert_array_equal(s.run(w), [2.0, 1.0])
    # a fed placeholder can be fetched (a copy comes back); feeding a variable overrides it for one run
    xv = np.array([5.0, 6.0], np.float32)
    got = s.run(x, {x: xv})
    assert got is not xv and got.tolist() == [5.0, 6.0]
    assert s.run(loss, {x: [0.0, 0.0], w: [3.0, 4.0]}) == 25.0
    np.testing.assert_array_equal(s.run(w), [2.0, 1.0])


def test_errors_while_running_point_at_the_line_that_built_the_op():
    import danlu.nn.functional as F

    with Graph() as g:
        x = placeholder((None, 3), name="x")
        y = placeholder((None,), dtype=dl.int64, name="y")
        loss = F.cross_entropy(x, y)
        with pytest.raises(dl.GraphBreakError, match="depends on the data"):
            x[x > 0]
    s = Session(g)
    assert s.run(loss, {x: np.zeros((2, 3)), y: [0, 1]}) == pytest.approx(np.log(3))
    with pytest.raises(IndexError) as e:
        s.run(loss, {x: np.zeros((2, 3)), y: [0, 7]})
    assert "loss = F.cross_entropy(x, y)" in "".join(getattr(e.value, "__notes__", []))
