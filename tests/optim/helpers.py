"""Shared problem and runners for the optimizer tests: the same parameters and loss in danlu and torch."""

from __future__ import annotations

import json

import numpy as np
import torch

import danlu as dl

DL_DTYPE = {"float32": dl.float32, "float64": dl.float64}
TH_DTYPE = {"float32": torch.float32, "float64": torch.float64}

_rng = np.random.default_rng(1234)
INIT = {"W": _rng.uniform(-1.5, 1.5, (3, 4)), "b": _rng.uniform(-1, 1, (4,)), "s": np.array(0.7)}
CONST = {"A": _rng.uniform(0.2, 2.0, (3, 4)), "C": _rng.uniform(-1, 1, (3, 4)),
         "E": _rng.uniform(0.5, 3.0, (4,)), "D": _rng.uniform(-2, 2, (4,))}


def make_params(lib: str, dtype: str):
    """Leaf tensors W (3x4), b (4,) and a 0-d s, with the same initial values in both frameworks."""
    if lib == "dl":
        return [dl.tensor(INIT[k], dtype=DL_DTYPE[dtype], requires_grad=True) for k in ("W", "b", "s")]
    return [torch.tensor(INIT[k], dtype=TH_DTYPE[dtype], requires_grad=True) for k in ("W", "b", "s")]


def _consts(lib: str, dtype: str):
    if lib == "dl":
        return {k: dl.tensor(v, dtype=DL_DTYPE[dtype]) for k, v in CONST.items()}
    return {k: torch.tensor(v, dtype=TH_DTYPE[dtype]) for k, v in CONST.items()}


def loss_fn(params, c):
    """A non-quadratic loss coupling the parameters; written with operators shared by both frameworks."""
    W, b, s = params
    return ((c["A"] * (W - c["C"]) ** 2).sum() + 0.05 * (W ** 4).sum() + (c["E"] * (b - c["D"]) ** 2).sum()
            + 0.1 * W.sum() * b.sum() + 3.0 * (s - 0.5) ** 2 + s * b.sum())


def groups_of(params, spec):
    """spec None: a plain list of params; else a list of (indices, options) per group."""
    if spec is None:
        return list(params)
    return [{"params": [params[i] for i in idx], **opts} for idx, opts in spec]


class Runner:
    """One framework's side of a run: params, optimizer and a step that recomputes the gradients."""

    def __init__(self, lib: str, cls, kwargs: dict, dtype: str = "float64", spec=None):
        self.lib, self.dtype = lib, dtype
        self.params = make_params(lib, dtype)
        self.consts = _consts(lib, dtype)
        extra = {"foreach": False} if lib == "th" else {}
        self.opt = cls(groups_of(self.params, spec), **kwargs, **extra)
        # Maximizing -loss keeps the run bounded (the loss grows without limit).
        self.sign = -1.0 if kwargs.get("maximize") else 1.0

    def loss(self):
        return loss_fn(self.params, self.consts) * self.sign

    def step(self):
        self.opt.zero_grad()
        self.loss().backward()
        self.opt.step()

    def values(self):
        return [p.detach().numpy().copy() for p in self.params]


def assert_params_close(dl_vals, th_vals, rtol, atol):
    for d, t in zip(dl_vals, th_vals, strict=True):
        np.testing.assert_allclose(d, t, rtol=rtol, atol=atol)


def to_numpy(x):
    return x.detach().numpy() if isinstance(x, (dl.Tensor, torch.Tensor)) else np.asarray(x)


def json_roundtrip(sd):
    """What a safetensors + JSON checkpoint does to a state dict: tensors stored apart, the rest as JSON."""
    tensors = {}

    def pack(v):
        if isinstance(v, dl.Tensor):
            key = f"t{len(tensors)}"
            tensors[key] = (v.numpy().copy(), v.dtype)
            return {"__tensor__": key}
        if isinstance(v, dict):
            return {k: pack(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [pack(x) for x in v]
        return v

    def unpack(v):
        if isinstance(v, dict):
            if "__tensor__" in v:
                arr, dt = tensors[v["__tensor__"]]
                return dl.tensor(arr, dtype=dt)
            return {k: unpack(x) for k, x in v.items()}
        if isinstance(v, list):
            return [unpack(x) for x in v]
        return v

    return unpack(json.loads(json.dumps(pack(sd))))


def assert_plain(value, path="sd"):
    """A state dict holds only danlu tensors and plain Python values (no pickle-only objects)."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, (str, int)), f"{path}: key {k!r} of type {type(k).__name__}"
            assert_plain(v, f"{path}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            assert_plain(v, f"{path}[{i}]")
    else:
        assert value is None or isinstance(value, (dl.Tensor, bool, int, float, str)), \
            f"{path}: {type(value).__name__} is not a tensor or a plain value"
