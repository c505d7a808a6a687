"""Dynamic dimensions: one artifact for any batch size, symbols stored by name, guards enforced, and
sizes that a function silently turned into constants caught at save time."""

import numpy as np
import pytest

import danlu as dl
import danlu.export as export
from danlu.core.errors import ShapeError

from .helpers import MLP, assert_outputs_equal, eager, read_doc, roundtrip


def test_dynamic_batch_saved_with_4_runs_with_7(tmp_path):
    model = MLP()
    prog = roundtrip(model, (dl.randn(4, 3),), tmp_path / "mlp.dlx", dynamic={0: 0})
    for batch in (7, 4, 2, 13):
        x = dl.randn(batch, 3)
        assert_outputs_equal(prog(x), eager(model, x))
    assert prog.input_specs[0].shape == ("s0", 3)
    assert prog.output_specs[0].shape == ("s0", 2)
    doc, _ = read_doc(tmp_path / "mlp.dlx")
    assert doc["inputs"] == [{"name": "x", "shape": ["s0", 3], "dtype": "float32"}]
    assert doc["symbols"] == [{"name": "s0", "sources": [[0, 0]], "example": 4}]


def test_named_dimensions_and_symbolic_attributes(tmp_path):
    w = dl.randn(6, 2)

    def fn(x):  # (batch, seq, 3): reshape by sizes computed from the symbols
        b, s, _ = x.shape
        flat = x.reshape(b * s, 3)
        pairs = x.reshape(b, -1, 6)          # needs seq even
        return flat.sum(-1).reshape(b, s), pairs @ w

    x = dl.randn(4, 6, 3)
    prog = roundtrip(fn, (x,), tmp_path / "n.dlx", input_names=["tokens"],
                     dynamic={"tokens": {0: "batch", 1: "seq"}})
    assert prog.input_specs[0].shape == ("batch", "seq", 3)
    assert prog.signature.startswith("fn(tokens: float32[batch, seq, 3]) -> (output0: float32[batch, seq]")
    reshape = [n for n in prog.graph.nodes if n.op.name == "reshape"]
    assert any("batch" in str(n.attrs["shape"]) for n in reshape)  # size expressions, not baked numbers
    for shape in ((7, 10, 3), (1, 2, 3), (4, 6, 3)):
        x = dl.randn(*shape)
        assert_outputs_equal(prog(x), eager(fn, x), rtol=1e-5)


def test_dimensions_sharing_a_name_must_agree(tmp_path):
    fn = lambda x, y: x * 2 + y.sum(1, keepdim=True)  # noqa: E731
    prog = roundtrip(fn, (dl.randn(4, 3), dl.randn(4, 5)), tmp_path / "s.dlx",
                     dynamic={0: {0: "batch"}, 1: {0: "batch"}})
    assert [s.shape for s in prog.input_specs] == [("batch", 3), ("batch", 5)]
    x, y = dl.randn(6, 3), dl.randn(6, 5)
    assert_outputs_equal(prog(x, y), eager(fn, x, y))
    with pytest.raises(ShapeError, match=r"input 'y' has size 5 in dimension 0.*'batch', which is 6 in dimension 0 "
                                         r"of input 'x'"):
        prog(x, dl.randn(5, 5))
    with pytest.raises(ValueError, match="share a name must have the same size"):
        export.save(fn, (dl.randn(4, 3), dl.randn(3, 5)), tmp_path / "bad.dlx",
                    dynamic={0: {0: "batch"}, 1: {0: "batch"}})


def test_dynamic_true_and_mark_dynamic(tmp_path):
    fn = lambda x: x.sum(-1)  # noqa: E731
    prog = roundtrip(fn, (dl.randn(3, 2),), tmp_path / "t.dlx", dynamic=True)
    assert prog.input_specs[0].shape == ("s0", 2)
    x = dl.mark_dynamic(dl.randn(3, 2), 1)
    prog = roundtrip(fn, (x,), tmp_path / "m.dlx")
    assert prog.input_specs[0].shape == (3, "s0")
    assert_outputs_equal(prog(dl.ones(3, 9)), dl.full((3,), 9.0))
    compiled = dl.compile(fn, dynamic={0: 0})  # a compiled function's dynamic= is used by default
    prog = roundtrip(compiled, (dl.randn(3, 2),), tmp_path / "c.dlx")
    assert prog.input_specs[0].shape == ("s0", 2)


def test_scan_over_a_dynamic_sequence_length(tmp_path):
    w = dl.randn(5, 5) * 0.3

    def rnn(x, h0):  # x: (time, 5)
        def step(h, xt):
            h = (h @ w + xt).tanh()
            return h, h.sum()
        return dl.scan(step, h0, x)

    h0 = dl.zeros(5)
    prog = roundtrip(rnn, (dl.randn(6, 5), h0), tmp_path / "rnn.dlx", dynamic={0: {0: "time"}})
    for t in (6, 1, 11):
        x = dl.randn(t, 5)
        assert_outputs_equal(prog(x, h0), eager(rnn, x, h0), rtol=1e-5)


def test_size_guards_recorded_while_tracing_are_enforced(tmp_path):
    def fn(x):
        if x.shape[0] > 3:  # Python control flow on a dynamic size: recorded as a guard
            return x * 2
        return x * 3

    prog = roundtrip(fn, (dl.randn(4, 2),), tmp_path / "g.dlx", dynamic={0: {0: "batch"}})
    assert_outputs_equal(prog(dl.ones(9, 2)), dl.full((9, 2), 2.0))
    with pytest.raises(ShapeError, match=r"batch=2.*`batch > 3` is True for the example sizes \(batch=4\)"):
        prog(dl.ones(2, 2))


def test_sizes_turned_into_plain_ints_are_caught_at_save(tmp_path):
    def fn(x):
        n = int(x.shape[0])  # the symbol is lost: the graph would bake the example's size
        return x.sum(0) / n

    path = tmp_path / "bad.dlx"
    with pytest.raises(export.ExportError, match=r"node 1 \(div, test_dynamic.py:\d+\) has input 1 = 4 traced for "
                                                 r"s0=4 but 5 for s0=5"):
        export.save(fn, (dl.randn(4, 3),), path, dynamic={0: 0})
    assert not path.exists()
    export.save(fn, (dl.randn(4, 3),), path)  # static export of the same function is fine
    assert_outputs_equal(export.load(path)(dl.ones(4, 3)), dl.ones(3))


def test_sizes_pinned_by_a_guard_warn_at_save(tmp_path):
    def fn(x):
        return x.reshape(int(x.shape[0]) * 3)  # reshape's own check pins the size with a guard

    with pytest.warns(UserWarning, match=r"pinned to the example's sizes.*s0 \* 3 != 12"):
        prog = roundtrip(fn, (dl.randn(4, 3),), tmp_path / "p.dlx", dynamic={0: 0})
    assert prog(dl.ones(4, 3)).shape == (12,)
    with pytest.raises(ShapeError, match="break an assumption"):
        prog(dl.ones(5, 3))


def test_static_inputs_refuse_other_sizes_with_a_clear_error(tmp_path):
    prog = roundtrip(lambda x: x + 1, (dl.randn(4, 3),), tmp_path / "s.dlx", input_names=["pixels"])
    with pytest.raises(ShapeError, match=r"input 'pixels' must have size 4 in dimension 0 \(pixels: float32\[4, 3\]\),"
                                         r" got float32\[5, 3\].*export with dynamic="):
        prog(dl.randn(5, 3))
    prog = roundtrip(lambda x: x + 1, (dl.randn(4, 3),), tmp_path / "d.dlx", dynamic={0: 0})
    with pytest.raises(ShapeError, match=r"size 3 in dimension 1.*only the dimension\(s\) \['s0'\] are dynamic"):
        prog(dl.randn(5, 4))


def test_bad_dynamic_specs(tmp_path):
    x = dl.randn(4, 3)
    f = lambda x: x  # noqa: E731
    with pytest.raises(ValueError, match="dynamic dimension 2 of input 'x'"):
        export.save(f, (x,), tmp_path / "a.dlx", dynamic={0: 2})
    with pytest.raises(ValueError, match="dynamic names input 'y'"):
        export.save(f, (x,), tmp_path / "a.dlx", dynamic={"y": 0})
    with pytest.raises(ValueError, match="must be an identifier"):
        export.save(f, (x,), tmp_path / "a.dlx", dynamic={0: {0: "my batch"}})
    with pytest.raises(TypeError, match="dynamic must be None, True or a dict"):
        export.save(f, (x,), tmp_path / "a.dlx", dynamic=[0])


def test_dynamic_export_matches_static_export(tmp_path):
    """The symbolic graph, run at the example size, computes exactly what the static one does."""
    model = MLP()
    x = dl.randn(4, 3)
    a = roundtrip(model, (x,), tmp_path / "a.dlx")(x)
    b = roundtrip(model, (x,), tmp_path / "b.dlx", dynamic={0: 0})(x)
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())


def test_cond_and_while_loop_with_a_dynamic_batch(tmp_path):
    def fn(x):
        y = dl.cond(x.sum() > 0, lambda t: t * 2, lambda t: t.flip(0), x)
        _, y = dl.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * 1.5), (dl.tensor(0), y))
        return y.reshape(-1)

    prog = roundtrip(fn, (dl.randn(4, 3),), tmp_path / "cw.dlx", dynamic={0: 0})
    assert prog.output_specs[0].shape == ("s0 * 3",)
    for batch in (2, 9):
        x = dl.randn(batch, 3)
        for inp in (x, -x):
            assert_outputs_equal(prog(inp), eager(fn, inp))


def test_scan_with_a_dynamic_batch_in_the_carry(tmp_path):
    w = dl.randn(5, 5) * 0.3

    def rnn(x, h0):
        def step(h, xt):
            h = (h @ w + xt).tanh()
            return h, h * 2
        return dl.scan(step, h0, x)

    prog = roundtrip(rnn, (dl.randn(6, 4, 5), dl.zeros(4, 5)), tmp_path / "rnn.dlx",
                     dynamic={0: {0: "time", 1: "batch"}, 1: {0: "batch"}})
    x, h0 = dl.randn(3, 7, 5), dl.zeros(7, 5)
    assert_outputs_equal(prog(x, h0), eager(rnn, x, h0), rtol=1e-5)


def test_slicing_other_dimensions_of_a_dynamic_batch(tmp_path):
    fn = lambda x: x[:, 1:3] * 2  # noqa: E731
    prog = roundtrip(fn, (dl.randn(4, 5),), tmp_path / "s.dlx", dynamic={0: 0})
    x = dl.randn(7, 5)
    assert_outputs_equal(prog(x), eager(fn, x))
