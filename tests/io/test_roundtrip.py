"""save/load round trips: every dtype and odd shape, nested structures, state dicts, optimizer states."""

import io
import json
import math
import pathlib
from collections import OrderedDict

import numpy as np
import pytest
import safetensors

import danlu as dl
from danlu.io import FORMAT_NAME, FORMAT_VERSION, load, save

from .helpers import assert_same, roundtrip, sample

DTYPES = [dl.float16, dl.float32, dl.float64, dl.int8, dl.int16, dl.int32, dl.int64, dl.uint8, dl.bool]
SHAPES = [(), (0,), (2, 0, 3), (1,), (3, 4), (2, 3, 5)]


def entries(path):
    with safetensors.safe_open(str(path), framework="np") as f:
        return list(f.keys()), f.metadata()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_single_tensor_every_dtype_and_shape(tmp_path, dtype, shape):
    t = sample(dtype, shape, np.random.default_rng(0))
    got = roundtrip(t, tmp_path / "t.safetensors")
    assert_same(t, got)
    got.add_(got.detach() if dtype != dl.bool else got.logical_not())  # the loaded memory is writable


def test_all_dtypes_in_one_file_stay_aligned(tmp_path):
    # mixed itemsizes in one file: offsets must still give every tensor its own bytes
    rng = np.random.default_rng(1)
    obj = {d.name: sample(d, (7,), rng) for d in DTYPES}
    obj.update({d.name + "_0d": sample(d, (), rng) for d in DTYPES})
    assert_same(obj, roundtrip(obj, tmp_path / "all.safetensors"))


def test_non_contiguous_tensors_are_saved_by_value(tmp_path):
    x = dl.arange(24.0).reshape(4, 6)
    views = [x.t(), x[:, ::2], x[1:3, 1:5], x.t()[::2]]
    assert not any(v.is_contiguous() for v in views)
    got = roundtrip(views, tmp_path / "v.safetensors")
    for v, g in zip(views, got, strict=True):
        np.testing.assert_array_equal(g.numpy(), v.numpy())


def test_requires_grad_and_parameters(tmp_path):
    leaf = dl.ones(2, requires_grad=True)
    param = dl.nn.Parameter(dl.zeros(3))
    frozen = dl.nn.Parameter(dl.zeros(1), requires_grad=False)
    nonleaf = leaf * 2  # saved by value as a leaf that requires grad, as torch.save does
    got = roundtrip({"leaf": leaf, "param": param, "frozen": frozen, "nonleaf": nonleaf, "plain": dl.ones(1)},
                    tmp_path / "rg.safetensors")
    assert got["leaf"].requires_grad and got["leaf"].is_leaf and type(got["leaf"]) is dl.Tensor
    assert type(got["param"]) is dl.nn.Parameter and got["param"].requires_grad
    assert type(got["frozen"]) is dl.nn.Parameter and not got["frozen"].requires_grad
    assert got["nonleaf"].requires_grad and got["nonleaf"].is_leaf and got["nonleaf"].grad_fn is None
    np.testing.assert_array_equal(got["nonleaf"].detach().numpy(), [2.0, 2.0])
    assert not got["plain"].requires_grad
    (got["leaf"] * got["param"].sum()).sum().backward()  # loaded leaves take part in autograd
    np.testing.assert_array_equal(got["param"].grad.numpy(), [2.0, 2.0, 2.0])


def test_nested_structure_keeps_every_type(tmp_path):
    obj = {
        "list": [1, 2.5, "three", None, True, False],
        "tuple": (dl.ones(2), (1, (2,)), []),
        "odict": OrderedDict([("z", 1), ("a", dl.zeros(0))]),
        "int keys": {0: "zero", 1: dl.tensor([1]), -5: None, 2**80: "big key"},
        "str vs int": {0: "int", "0": "str", 0.5: "float", True: "bool", None: "none", (1, "a"): "tuple"},
        "floats": [0.0, -0.0, 1e-310, 1.7976931348623157e308, math.inf, -math.inf, math.nan, 1.0, 3.0],
        "ints": [0, -1, 2**63 - 1, -(2**63), 2**100, -(2**100)],
        "strings": ["", "ünïcødé ✓", 'quote " and \\ backslash', "line\nbreak", "__metadata__"],
        "empty": [{}, [], (), OrderedDict()],
        "size": dl.zeros(2, 3, 0).shape,
        "dtypes": [dl.float16, dl.bool, dl.int64],
        "deep": [[[[{"k": [dl.tensor(5)]}]]]],
    }
    got = roundtrip(obj, tmp_path / "nested.safetensors")
    assert_same(obj, got)
    assert got["dtypes"][0] is dl.float16 and type(got["size"]) is dl.Size


@pytest.mark.parametrize("obj", [dl.tensor(1.5), 7, "text", None, [], {}, (dl.zeros(1),), OrderedDict()],
                         ids=repr)
def test_any_root(tmp_path, obj):
    assert_same(obj, roundtrip(obj, tmp_path / "root.safetensors"))


def test_numpy_scalars_are_stored_as_python_numbers(tmp_path):
    got = roundtrip({"f": np.float32(0.5), "i": np.int64(3), "b": np.bool_(True)}, tmp_path / "np.safetensors")
    assert got == {"f": 0.5, "i": 3, "b": True}
    assert [type(v) for v in got.values()] == [float, int, bool]


class Block(dl.nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = dl.nn.Parameter(dl.randn(n_out, n_in))
        self.bias = dl.nn.Parameter(dl.randn(n_out))
        self.register_buffer("count", dl.tensor(7))
        self.register_buffer("scratch", dl.zeros(2), persistent=False)

    def forward(self, x):
        return x @ self.weight.t() + self.bias


class Net(dl.nn.Module):
    def __init__(self):
        super().__init__()
        self.first = Block(4, 3)
        self.second = Block(3, 2)
        self.scale = dl.nn.Parameter(dl.ones(1))

    def forward(self, x):
        return self.second(self.first(x)) * self.scale


def test_module_state_dict(tmp_path):
    net = Net()
    sd = net.state_dict()
    path = tmp_path / "net.safetensors"
    got = roundtrip(sd, path)
    assert type(got) is OrderedDict and list(got) == list(sd)
    assert_same(sd, got)
    # a flat state dict is a plain safetensors file whose names are the state dict's keys
    names, _ = entries(path)
    assert sorted(names) == sorted(sd)

    other = Net()
    other.load_state_dict(got)
    x = dl.randn(5, 4)
    np.testing.assert_array_equal(other(x).detach().numpy(), net(x).detach().numpy())


def test_tied_weights_in_a_state_dict_keep_both_names(tmp_path):
    w = dl.randn(2, 2)
    sd = OrderedDict([("encoder.weight", w), ("decoder.weight", w)])
    path = tmp_path / "tied.safetensors"
    save(sd, path)
    names, _ = entries(path)
    assert sorted(names) == ["decoder.weight", "encoder.weight"]  # readable as a full state dict anywhere
    assert_same(sd, load(path))


def test_shared_tensors_are_stored_once_and_share_memory_again(tmp_path):
    w = dl.randn(3)
    other_view = w.reshape(3, 1)  # same memory, another view: stored separately
    obj = {"a": [w, w], "b": (w,), "c": other_view}
    path = tmp_path / "shared.safetensors"
    save(obj, path)
    names, _ = entries(path)
    assert sorted(names) == ["a.0", "c"]
    got = load(path)
    assert_same(obj, got)
    got["a"][0].add_(1.0)
    np.testing.assert_array_equal(got["a"][1].numpy(), got["a"][0].numpy())
    np.testing.assert_array_equal(got["b"][0].numpy(), got["a"][0].numpy())
    assert not np.array_equal(got["c"].numpy().reshape(3), got["a"][0].numpy())


def test_tensor_names_follow_the_path_and_never_clash(tmp_path):
    t1, t2, t3, t4 = (dl.tensor([float(i)]) for i in range(4))
    obj = {"a": {"b": t1}, "a.b": t2, 0: [t3], "0": [t4], "x": dl.zeros(0), "y": dl.zeros(0)}
    path = tmp_path / "names.safetensors"
    got = roundtrip(obj, path)
    assert_same(obj, got)
    names, _ = entries(path)
    assert len(names) == 6 and {"a.b", "0.0", "x", "y"} <= set(names)


def test_reserved_safetensors_name_in_a_state_dict(tmp_path):
    sd = {"__metadata__": dl.ones(1), "w": dl.zeros(2)}
    assert_same(sd, roundtrip(sd, tmp_path / "reserved.safetensors"))


def adam_like_state():
    return {
        "state": {
            0: {"step": dl.tensor(10.0), "exp_avg": dl.randn(3, 4), "exp_avg_sq": dl.rand(3, 4)},
            1: {"step": dl.tensor(10.0), "exp_avg": dl.randn(3), "exp_avg_sq": dl.rand(3),
                "max_exp_avg_sq": dl.rand(3)},
            3: {"momentum_buffer": None, "step": 4},
        },
        "param_groups": [
            {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False,
             "foreach": None, "maximize": False, "capturable": False, "differentiable": False, "fused": None,
             "params": [0, 1]},
            {"lr": 0.1, "betas": (0.5, 0.6), "eps": 1e-8, "weight_decay": 1e-2, "amsgrad": True, "initial_lr": 0.1,
             "params": [2, 3]},
        ],
    }


def test_optimizer_state_dict(tmp_path):
    sd = adam_like_state()
    path = tmp_path / "opt.safetensors"
    got = roundtrip(sd, path)
    assert_same(sd, got)
    assert list(got["state"]) == [0, 1, 3] and all(type(k) is int for k in got["state"])
    assert got["param_groups"][0]["betas"] == (0.9, 0.999)
    names, _ = entries(path)
    assert "state.0.exp_avg" in names and "state.1.max_exp_avg_sq" in names


def test_torch_optimizer_state_dict_layout(tmp_path):
    torch = pytest.importorskip("torch")
    params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(2))]
    opt = torch.optim.AdamW(params, lr=0.01, amsgrad=True)
    for _ in range(2):
        opt.zero_grad()
        (params[0].sum() ** 2 + params[1].pow(3).sum()).backward()
        opt.step()
    tsd = opt.state_dict()

    def to_danlu(x):
        if isinstance(x, torch.Tensor):
            return dl.from_numpy(x.detach().numpy().copy())
        if isinstance(x, dict):
            return {k: to_danlu(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(to_danlu(v) for v in x)
        return x

    dsd = to_danlu(tsd)
    got = roundtrip(dsd, tmp_path / "adamw.safetensors")
    assert_same(dsd, got)
    for i, st in tsd["state"].items():
        for k, v in st.items():
            np.testing.assert_array_equal(got["state"][i][k].numpy(), v.numpy())
    assert got["param_groups"] == [{k: v for k, v in g.items()} for g in tsd["param_groups"]]


def test_rng_state_round_trip(tmp_path):
    g = dl.Generator().manual_seed(123)
    dl.rand(5, generator=g)
    path = tmp_path / "rng.safetensors"
    save({"rng": g.get_state()}, path)
    expected = dl.randn(4, generator=g)
    state = load(path)["rng"]
    assert state.dtype == dl.uint8
    g2 = dl.Generator().set_state(state)
    np.testing.assert_array_equal(dl.randn(4, generator=g2).numpy(), expected.numpy())


def test_file_objects_and_pathlike(tmp_path):
    obj = {"w": dl.arange(6).reshape(2, 3), "meta": ("x", 1)}
    buf = io.BytesIO()
    save(obj, buf)
    buf.seek(0)
    assert_same(obj, load(buf))

    with open(tmp_path / "f.safetensors", "wb") as f:
        save(obj, f)
    with open(tmp_path / "f.safetensors", "rb") as f:
        assert_same(obj, load(f))
    assert_same(obj, load(str(tmp_path / "f.safetensors")))
    assert_same(obj, load(pathlib.Path(tmp_path / "f.safetensors")))


def test_map_location(tmp_path):
    path = tmp_path / "m.safetensors"
    save(dl.ones(1), path)
    assert_same(dl.ones(1), load(path, map_location="cpu"))
    assert_same(dl.ones(1), load(path, map_location=dl.device("cpu")))
    with pytest.raises(ValueError, match="map_location"):
        load(path, map_location="cuda:0")


def test_metadata_document(tmp_path):
    path = tmp_path / "doc.safetensors"
    save({"t": dl.ones(2, dtype=dl.float64), "n": 3}, path)
    _, meta = entries(path)
    doc = json.loads(meta["danlu"])
    assert doc["format"] == FORMAT_NAME == "danlu" and doc["version"] == FORMAT_VERSION == 1
    assert doc["root"] == {"t": "dict", "items": [
        ["t", {"t": "tensor", "key": "t", "dtype": "float64", "shape": [2], "requires_grad": False,
               "parameter": False}],
        ["n", 3]]}


def test_loading_runs_no_pickle(tmp_path, monkeypatch):
    import pickle

    path = tmp_path / "p.safetensors"
    save(adam_like_state(), path)

    def forbidden(*a, **k):
        raise AssertionError("pickle used while loading")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    load(path)
