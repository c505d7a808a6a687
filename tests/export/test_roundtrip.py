"""Save -> load -> run gives the function's own outputs: models with parameters, ops with attributes of
every kind, multi-output ops, control flow with subgraphs, random ops and output structures."""

import math

import numpy as np
import pytest
import safetensors

import danlu as dl
import danlu.export as export
import danlu.nn.functional as F
from danlu.export.schema import GraphDecoder, GraphEncoder

from .helpers import MLP, assert_outputs_equal, eager, read_doc, roundtrip

# -- models with parameters ----------------------------------------------------------------------------------


def test_mlp_module_roundtrip(tmp_path):
    model = MLP()
    x = dl.randn(4, 3)
    prog = roundtrip(model, (x,), tmp_path / "mlp.dlx")
    assert_outputs_equal(prog(x), eager(model, x))
    x2 = dl.randn(4, 3)
    assert_outputs_equal(prog(x=x2), eager(model, x2))  # inputs by name (the forward's parameter names)
    assert [s.name for s in prog.input_specs] == ["x"]
    assert [s.name for s in prog.output_specs] == ["logits", "probs"]
    assert prog.signature == "MLP(x: float32[4, 3]) -> (logits: float32[4, 2], probs: float32[4, 2])"


def test_weights_are_current_values_and_stored_by_parameter_name(tmp_path):
    model = MLP()
    with dl.no_grad():
        model.w1.mul_(3.0)  # the value at save time is what the artifact holds
    x = dl.randn(4, 3)
    want = eager(model, x)
    path = tmp_path / "mlp.dlx"
    export.save(model, (x,), path)
    with dl.no_grad():
        model.w1.zero_()  # later changes do not reach the artifact
    assert_outputs_equal(export.load(path)(x), want)
    # a plain safetensors file: the weights are entries named after the parameters; no pickle anywhere
    with safetensors.safe_open(str(path), framework="np") as f:
        assert set(f.keys()) == {"w1", "b1", "w2", "scale"}
        np.testing.assert_array_equal(f.get_tensor("b1"), model.b1.detach().numpy())
        assert set(f.metadata()) == {"danlu.export"}
    with open(path, "rb") as fh:
        head = fh.read(9)
    assert head[8:9] == b"{"  # an 8-byte length then the JSON header: safetensors, not a zip/pickle
    assert set(dl.load(path)) == {"w1", "b1", "w2", "scale"}  # danlu.load reads it as a plain state dict


def test_unused_parameters_are_not_stored(tmp_path):
    model = MLP()
    model.unused = dl.nn.Parameter(dl.randn(100))
    path = tmp_path / "m.dlx"
    export.save(model, (dl.randn(4, 3),), path)
    assert set(dl.load(path)) == {"w1", "b1", "w2", "scale"}


def test_plain_function_capturing_tensors_and_compiled_function(tmp_path):
    w = dl.randn(3, 3)
    b = dl.randn(3)

    def layer(x, y):
        return (x @ w + b).tanh() * y, (x - y).abs().sum()

    x, y = dl.randn(2, 3), dl.randn(2, 3)
    prog = roundtrip(layer, (x, y), tmp_path / "f.dlx")
    assert_outputs_equal(prog(x, y), eager(layer, x, y))
    assert set(dl.load(tmp_path / "f.dlx")) == {"w", "b"}  # captured tensors keep their variable names
    assert [s.name for s in prog.input_specs] == ["x", "y"]
    assert [s.name for s in prog.output_specs] == ["output0", "output1"]
    compiled = dl.compile(layer)
    compiled(x, y)  # an already-used compiled function exports its function, traced afresh
    prog = roundtrip(compiled, (x, y), tmp_path / "c.dlx", input_names=["a", "b"], output_names=["p", "q"])
    assert_outputs_equal(prog(b=y, a=x), eager(layer, x, y))
    assert prog.signature == "layer(a: float32[2, 3], b: float32[2, 3]) -> (p: float32[2, 3], q: float32[])"


def test_module_with_submodules_and_shared_parameters(tmp_path):
    class Tied(dl.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = dl.nn.Parameter(dl.randn(10, 4))
            self.inner = dl.nn.Sequential(dl.nn.Flatten(), dl.nn.Identity())

        def forward(self, ids):
            h = F.embedding(ids, self.emb)        # the same parameter used twice (tied weights)
            return self.inner(h) @ self.emb.reshape(8, 5)[:, :3]

    model = Tied()
    ids = dl.tensor([[1, 2], [3, 9]])
    prog = roundtrip(model, (ids,), tmp_path / "tied.dlx")
    assert_outputs_equal(prog(ids), eager(model, ids))
    assert len(prog.graph.consts) == 1  # the tied parameter is stored once


def test_output_structures_and_literals(tmp_path):
    def fn(x):
        return {"a": (x, [x * 2, 7]), "b": None, "c": "text", 3: x.sum()}

    x = dl.randn(2)
    prog = roundtrip(fn, (x,), tmp_path / "s.dlx")
    got = prog(x)
    assert list(got) == ["a", "b", "c", 3]
    assert isinstance(got["a"], tuple) and isinstance(got["a"][1], list)
    assert got["a"][1][1] == 7 and got["b"] is None and got["c"] == "text"
    np.testing.assert_allclose(got["a"][1][0].numpy(), x.numpy() * 2)
    np.testing.assert_allclose(got[3].numpy(), x.numpy().sum(), rtol=1e-6)
    assert [s.name for s in prog.output_specs] == ["a.0", "a.1.0", "3"]


def test_outputs_never_alias_stored_constants(tmp_path):
    w = dl.randn(3)
    prog = roundtrip(lambda x: (w, x + 1), (dl.zeros(3),), tmp_path / "w.dlx")
    first, _ = prog(dl.zeros(3))
    first.add_(100.0)  # the caller owns its outputs
    again, _ = prog(dl.zeros(3))
    np.testing.assert_array_equal(again.numpy(), w.numpy())


def test_inference_outputs_do_not_require_grad(tmp_path):
    w = dl.nn.Parameter(dl.randn(3))
    prog = roundtrip(lambda x: x * w, (dl.ones(3),), tmp_path / "g.dlx")
    out = prog(dl.ones(3, requires_grad=True))
    assert not out.requires_grad


def test_in_place_buffer_updates_are_dropped_with_a_warning(tmp_path):
    class Counter(dl.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("calls", dl.zeros(()))

        def forward(self, x):
            self.calls.add_(1)
            return x * 2

    model = Counter()
    with pytest.warns(UserWarning, match="in place"):
        prog = roundtrip(model, (dl.ones(2),), tmp_path / "c.dlx")
    assert float(model.calls) == 0.0  # tracing did not run the update eagerly
    assert_outputs_equal(prog(dl.ones(2)), dl.ones(2) * 2)


# -- ops with attributes of every kind ---------------------------------------------------------------------

X = dict(x=lambda: dl.randn(4, 3, 5))
IMG = dl.randn(2, 3, 8, 8)
KERNEL = dl.randn(4, 3, 3, 3)
IDX = dl.tensor([0, 2, 2])


def _scan(x):
    w = dl.ones(5) * 0.5

    def step(c, xt):
        c = (c * w + xt).tanh()
        return c, (c.sum(), c * 2)

    return dl.scan(step, dl.zeros(3, 5), x)


def _scan_reverse(x):
    return dl.scan(lambda c, xt: (c + xt.sum(), c * 1.0), dl.zeros(()), x, reverse=True)


def _cond(x):
    return dl.cond(x.sum() > 0, lambda t: (t * 2, t.amax()), lambda t: (-t, t.amin()), x)


def _cond_capturing(x):
    b = dl.full((5,), 3.0)
    return dl.cond(x.mean() > 0, lambda t: t + b, lambda t: t - b, x)


def _while(x):
    return dl.while_loop(lambda c: c[0] < 20, lambda c: (c[0] * 2, c[1] + x), (dl.tensor(1), dl.zeros_like(x)))


CASES = [
    ("reductions", lambda x: (x.sum(dim=(0, 2), keepdim=True), x.mean(1), x.amax(-1), x.var(1, correction=0),
                              x.prod(0), x.logsumexp(2), x.norm(dim=1), x.argmax(1), x.all(), (x > 0).any(2))),
    ("reshape_permute", lambda x: (x.permute(2, 0, 1).reshape(5, -1), x.transpose(0, 1).flatten(1),
                                   x.unsqueeze(1).expand(4, 2, 3, 5), x.squeeze(), x.flip(0, 2))),
    ("getitem_basic", lambda x: (x[1:3, None, ::2, -1], x[..., 1], x[-1], x[:, 1:, None][::3], x[2:2])),
    ("getitem_advanced", lambda x: (x[IDX], x[:, IDX], x[IDX, :, IDX], x[None, IDX, 1:])),
    ("cat_split_stack", lambda x: dl.split(x, [1, 2], dim=1) + dl.chunk(x, 2) + (dl.cat([x, x * 2], 0),
                                                                                  dl.stack([x, x], -1))),
    ("where_clamp", lambda x: (dl.where(x > 0, x, x * 0.5).clamp(-0.2, float("inf")), x.clamp(max=0.3),
                               dl.where(x < -1, float("nan"), x), dl.maximum(x, -x).clamp(min=-math.inf))),
    ("softmax", lambda x: (dl.softmax(x, -1), dl.log_softmax(x, 1), F.softmax(x, 0))),
    ("conv_pool", lambda x: F.max_pool2d(F.conv2d(IMG, KERNEL, padding=1, stride=2), 2) + x.sum()),
    ("conv_pool_more", lambda x: (F.avg_pool2d(IMG, 2, stride=1), F.conv2d(IMG, KERNEL, dilation=2, groups=1),
                                  F.adaptive_avg_pool2d(IMG, (3, 2)), x.sum())),
    ("dtypes", lambda x: (x.to(dl.float64) * 2 + x.to(dl.int64), (x > 0).to(dl.int32), x.half().float(),
                          dl.zeros(2, dtype=dl.int8) + 3)),
    ("creation_attrs", lambda x: (dl.full((2, 2), float("-inf")), dl.arange(0, 5, 2), dl.linspace(0, 1, 5),
                                  dl.eye(3, dtype=dl.float64), x + dl.full((5,), -0.0))),
    ("scalars", lambda x: (x + 1, 2 ** x, x * True, x / 3.5, x // 2, x % -1.5, -x, x > 0.25)),
    ("cumulative_and_more", lambda x: (x.cumsum(1), x.cumprod(-1), x.roll(2, 0), x.tril(1), x.triu(-1),
                                       x.gather(1, dl.zeros(4, 1, 5, dtype=dl.int64)), x.index_select(2, IDX))),
    ("nn_functional", lambda x: (F.layer_norm(x, (5,)), F.gelu(x), F.pad(x, (1, 2), value=0.5),
                                 F.pad(x, (1, 1, 1, 1), mode="reflect"), F.one_hot(IDX, 4), F.leaky_relu(x, 0.1))),
    ("einsum_matmul", lambda x: (dl.einsum("abc,abd->cd", x, x), x @ x.transpose(1, 2), dl.linalg.norm(x))),
    ("scan", _scan),
    ("scan_reverse", _scan_reverse),
    ("cond", _cond),
    ("cond_capturing", _cond_capturing),
    ("while_loop", _while),
]


@pytest.mark.parametrize("name,fn", CASES, ids=[c[0] for c in CASES])
def test_op_roundtrip(tmp_path, name, fn):
    x = dl.randn(4, 3, 5)
    prog = roundtrip(fn, (x,), tmp_path / f"{name}.dlx")
    for inp in (x, -x, dl.randn(4, 3, 5)):  # cond takes both branches; a fresh input is a fresh computation
        assert_outputs_equal(prog(inp), eager(fn, inp), rtol=1e-5, atol=1e-6)


def test_control_flow_subgraphs_are_stored_as_nested_graphs(tmp_path):
    path = tmp_path / "cond.dlx"
    export.save(_cond_capturing, (dl.randn(4, 3, 5),), path)
    doc, _ = read_doc(path)
    node = next(n for n in doc["graph"]["nodes"] if n["op"] == "cond")
    sub = node["attrs"]["true_graph"]
    assert sub["t"] == "graph" and sub["graph"]["nodes"][0]["op"] == "add"
    prog = export.load(path)
    cond_node = next(n for n in prog.graph.nodes if n.op.name == "cond")
    assert isinstance(cond_node.attrs["true_graph"], dl.graph.Graph)


def test_random_ops_default_and_own_generators(tmp_path):
    g = dl.Generator().manual_seed(3)

    def noisy(x):
        return x + dl.rand(2, generator=g), x + dl.randn(2), F.dropout(x, 0.5, training=True)

    x = dl.ones(2)
    prog = roundtrip(noisy, (x,), tmp_path / "r.dlx")
    assert len(prog.generators) == 1 and prog.generators[0] is not g  # a fresh generator stands for g
    # seeding the fresh generator and the default one reproduces the eager function seeded the same way
    prog.generators[0].manual_seed(3)
    dl.manual_seed(5)
    got = prog(x)
    g.manual_seed(3)
    dl.manual_seed(5)
    assert_outputs_equal(got, eager(noisy, x))
    doc, _ = read_doc(tmp_path / "r.dlx")
    assert doc["generators"] == [{"default": False}, {"default": True}]


# -- attribute encoding -------------------------------------------------------------------------------------

ATTRS = [None, True, False, 0, -7, 2 ** 80, 1.5, -0.0, math.inf, -math.inf, 1e-300, "", "héllo \"x\"\n",
         (), (1,), ((1, (2, None)), "s"), [1, 2.5], dl.float16, dl.bool, slice(1, None, 2), Ellipsis,
         np.float32(0.1), np.int64(-3), np.bool_(True), (("s", 0, 4, 1), ("n",), ("i", 2), ("t",))]


@pytest.mark.parametrize("value", ATTRS, ids=[repr(a)[:30] for a in ATTRS])
def test_attribute_encoding_is_lossless(value):
    enc = GraphEncoder({})
    j = enc.attr(value, "test")
    import json

    back = GraphDecoder({}, {}, [], "test", "danlu").attr(json.loads(json.dumps(j, allow_nan=False)), "test")
    assert type(back) is type(value)
    if isinstance(value, float):
        assert math.copysign(1, back) == math.copysign(1, value) and (back == value)
    elif isinstance(value, np.generic):
        assert back.dtype == value.dtype and back == value
    else:
        assert back == value


def test_nan_attribute_roundtrips():
    import json

    j = GraphEncoder({}).attr(math.nan, "t")
    assert j == {"t": "float", "v": "nan"}
    assert math.isnan(GraphDecoder({}, {}, [], "t", "danlu").attr(json.loads(json.dumps(j)), "t"))


def test_graph_property_is_the_stored_graph_and_optimized_graph_is_separate(tmp_path):
    model = MLP()
    prog = roundtrip(model, (dl.randn(4, 3),), tmp_path / "m.dlx")
    prog.graph.lint()
    assert all(n.op.name in dl.core.registry.REGISTRY for n in prog.graph.nodes)
    assert "def forward" in prog.source
    assert prog.metadata["danlu_version"] == dl.__version__ and prog.metadata["version"] == export.FORMAT_VERSION
    assert "MLP(x: float32[4, 3])" in repr(prog)
