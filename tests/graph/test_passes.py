"""Each graph pass alone: it changes the graph as intended and never changes a result."""

import numpy as np

import danlu as dl
from danlu.graph.check import evaluate
from danlu.graph.compile import flatten, trace_entry
from danlu.graph.passes import (algebraic_simplification, common_subexpression_elimination, constant_folding,
                                dead_code_elimination, elementwise_fusion, run_pipeline)
from danlu.graph.passes.memory import plan_memory


def traced(fn, *args):
    leaves, spec = flatten((args, {}))
    entry = trace_entry(fn, leaves, spec, getattr(fn, "__name__", "f"), optimize=False)
    arrays = [leaves[ref]._data if kind == "arg" else ref._data for kind, ref in entry.inputs]
    return entry.graph, arrays


def outputs(graph, arrays):
    env = evaluate(graph, arrays)
    return [env[o.id] if hasattr(o, "id") else o for o in graph.outputs]


def assert_same(before, after, arrays):
    for a, b in zip(outputs(before, arrays), outputs(after, arrays)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def ops_of(g):
    return [n.op.name for n in g.nodes]


def test_dce_removes_unused_nodes():
    def f(x):
        _unused = (x * 3).exp()
        return x + 1

    g, arrays = traced(f, dl.randn(4))
    before = g.copy()
    g = dead_code_elimination(g)
    assert ops_of(g) == ["add"]
    assert_same(before, g, arrays)


def test_cse_merges_equal_nodes_but_not_random_ones():
    def f(x):
        return (x * 2).sin() + (x * 2).sin() + dl.rand(4) + dl.rand(4)

    g, arrays = traced(f, dl.randn(4))
    g2 = common_subexpression_elimination(g.copy())
    assert ops_of(g2).count("mul") == 1 and ops_of(g2).count("sin") == 1
    assert ops_of(g2).count("uniform") == 2


def test_constant_folding_evaluates_constant_subgraphs():
    def f(x):
        return x + dl.ones(4).sum() * dl.arange(4).float()

    g, arrays = traced(f, dl.randn(4))
    before = g.copy()
    g = dead_code_elimination(constant_folding(g))
    assert ops_of(g) == ["add"]
    assert len(g.consts) == 1
    assert_same(before, g, arrays)


def test_algebraic_simplification_identities():
    def f(x):
        y = x * 1 + 0
        y = -y
        y = -y  # double negation
        return y ** 3 - (y / 1) ** 2

    g, arrays = traced(f, dl.randn(5))
    before = g.copy()
    g = dead_code_elimination(algebraic_simplification(g))
    names = ops_of(g)
    assert "pow" not in names and "neg" not in names and "div" not in names
    assert names.count("mul") == 3  # x*x*x and x*x
    assert_same(before, g, arrays)


def test_simplification_keeps_broadcasting_identities():
    # x * 1 where 1 is a tensor of a larger shape changes the shape: not an identity
    def f(x):
        return x * dl.ones(3, 4)

    g, arrays = traced(f, dl.randn(4))
    g2 = algebraic_simplification(g.copy())
    assert "mul" in ops_of(g2)


def test_fusion_groups_elementwise_chains_by_flags():
    def f(x, w):
        h = x @ w
        return ((h * 2 + 1).tanh() * h).sum()

    g, arrays = traced(f, dl.randn(64, 32), dl.randn(32, 16))
    before = g.copy()
    g = elementwise_fusion(g)
    names = ops_of(g)
    assert names[0] == "matmul" and names[-1] == "sum" and len(names) == 3
    fused = g.nodes[1].op
    assert [s[0].name for s in fused.program] == ["mul", "add", "tanh", "mul"]
    assert_same(before, g, arrays)


def test_fused_kernel_chunks_large_broadcast_inputs():
    def f(x, b):
        return ((x + b).sigmoid() * x - b).exp()

    x, b = dl.randn(700, 300), dl.randn(300)
    g, arrays = traced(f, x, b)
    before = g.copy()
    g = elementwise_fusion(g)
    assert len(g.nodes) == 1
    assert_same(before, g, arrays)
    xt = dl.randn(300, 700).T  # non-contiguous full-size input takes the row-block path
    g3, arrays3 = traced(f, xt, dl.randn(300, 1).reshape(300, 1).T.reshape(1, 300))
    assert_same(g3.copy(), elementwise_fusion(g3), arrays3)


def test_memory_plan_reuses_and_reports_peak():
    def f(x, w):
        h = (x @ w).tanh()
        h = (h * 2 + 1).exp()
        y = h @ w.T
        return (y.sin() + 1).sum()

    g, arrays = traced(f, dl.randn(256, 128), dl.randn(128, 128))
    g = run_pipeline(g)
    plan = g.memory_plan()
    assert plan.assign, "some result should be written into a dead buffer"
    assert plan.peak_bytes <= plan.peak_bytes_unplanned
    assert plan.buffers < plan.buffers_unplanned
    assert "MB" in str(plan)


def test_memory_plan_never_writes_inputs_or_outputs():
    def f(x):
        return (x * 2).exp(), x.sin()

    g, arrays = traced(f, dl.randn(100))
    plan = plan_memory(g)
    ids = {v.id for v in g.inputs} | {o.id for o in g.outputs}
    assert not (set(plan.assign.values()) & ids)


def test_pipeline_dumps_each_pass(tmp_path, monkeypatch):
    monkeypatch.setenv("DANLU_DUMP_GRAPH", str(tmp_path))
    g, _ = traced(lambda x: (x * 1).exp(), dl.randn(3))
    run_pipeline(g)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files[0].endswith("traced.txt") and any("fusion" in f for f in files)


def test_shape_rules_fold_reshape_chains_and_double_transposes():
    def f(x):
        y = x.reshape(2, 6).reshape(3, 4).reshape(12)
        z = x.transpose(0, 1).transpose(0, 1)
        return y, z + x.reshape(3, 4)

    g, arrays = traced(f, dl.randn(3, 4))
    before = g.copy()
    g = dead_code_elimination(algebraic_simplification(g))
    names = ops_of(g)
    assert names.count("reshape") == 1 and "permute" not in names
    assert_same(before, g, arrays)


def _fused_node(fn, *args):
    g, arrays = traced(fn, *args)
    g = elementwise_fusion(g)
    (node,) = [n for n in g.nodes if hasattr(n.op, "program")]
    return node, arrays, g


def test_fused_kernel_runs_in_place_in_its_output():
    """A chain of steps needs one scratch buffer besides the output (temporaries live in the output's
    chunk and are overwritten in place), and the results equal the unfused ones in both chunk layouts
    and on one or two threads."""
    def gelu(x):
        return 0.5 * x * (1 + (0.79788456 * (x + 0.044715 * x ** 3)).tanh())

    for shape in [(300_000,), (700, 500)]:
        x = dl.randn(*shape)
        node, arrays, g = _fused_node(gelu, x)
        assert node.op.source.split("def run_safe")[0].count("_empty(") <= 2  # flat and row layouts
        np.testing.assert_allclose(node.op.kernel(*[arrays[0]]), outputs(traced(gelu, x)[0], arrays)[0],
                                   rtol=1e-6, atol=1e-6)
        xt = dl.randn(shape[::-1]).T if len(shape) == 2 else x  # non-contiguous: the row-block layout
        node2, arrays2, _ = _fused_node(gelu, xt)
        np.testing.assert_allclose(node2.op.kernel(arrays2[0]), outputs(traced(gelu, xt)[0], arrays2)[0],
                                   rtol=1e-6, atol=1e-6)


def test_fused_kernel_with_an_output_over_its_input_keeps_the_input_until_read():
    """``m`` is written over ``p`` (as a compiled optimizer step does): the temporary ``g * 2`` must not
    be parked in ``m``'s chunk, which is ``p``'s memory, before ``p`` is read."""
    def step(p, g):
        a = g * 2
        m = p * 0.9 + a
        return m, (m * 3).exp()

    p, gr = dl.randn(300_000), dl.randn(300_000)
    node, arrays, g = _fused_node(step, p, gr)
    want = outputs(traced(step, p, gr)[0], [a.copy() for a in arrays])
    pa = arrays[0].copy()
    by_input = {v.id: a for v, a in zip(g.inputs, [pa, arrays[1]])}
    args = [by_input[v.id] for v in node.inputs]
    pos_p = next(k for k, v in enumerate(node.inputs) if v is g.inputs[0])
    assert node.op.inplace_ok(0, {pos_p})
    got = node.op.kernel(*args, out=(pa, None))
    assert got[0] is pa
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5)


def test_memory_plan_never_writes_over_an_input_also_read_through_a_view():
    """``y`` and its first row both feed the fused kernel: computing in place over ``y`` would overwrite
    row 0 while later chunks still read it."""
    rng = np.random.default_rng(0)
    W = dl.tensor(rng.standard_normal((300, 300)) * 0.1)

    def f(x):
        y = x @ W
        return (dl.tanh(y + y[0:1]) * 3.0) @ W

    x = dl.tensor(rng.standard_normal((300, 300)))
    np.testing.assert_allclose(dl.compile(f, warmup=0)(x).numpy(), f(x).numpy(), rtol=1e-12, atol=1e-12)
