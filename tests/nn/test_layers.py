"""Layers against PyTorch: each case builds the same layer in both frameworks (one constructor call,
given ``torch.nn`` or ``danlu.nn``), copies torch's parameters and buffers in through ``state_dict``
and compares outputs, input gradients and parameter gradients in float64 (tight) and float32; plus
reprs, state-dict keys, default initialization, train/eval behaviour and running statistics.

The helpers at the top (``copy_into``, ``compare_modules``, ...) are shared by the other test files
of this folder.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

import danlu as dl

DL_DTYPE = {"float32": dl.float32, "float64": dl.float64}
TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64}
TOL = {"float64": dict(atol=1e-10, rtol=1e-8), "float32": dict(atol=2e-5, rtol=2e-4)}


# == shared helpers ==================================================================================

def to_dl(t: torch.Tensor) -> dl.Tensor:
    """A danlu copy of a torch tensor (same dtype and values)."""
    return dl.tensor(t.detach().numpy())


def as_np(x) -> np.ndarray:
    return x.detach().numpy() if isinstance(x, (dl.Tensor, torch.Tensor)) else np.asarray(x)


def copy_into(dm: dl.nn.Module, tm: torch.nn.Module) -> None:
    """Load torch's parameters and buffers into the danlu module; the key lists must be the same."""
    sd = tm.state_dict()
    assert list(dm.state_dict()) == list(sd), f"state_dict keys differ: {list(dm.state_dict())} vs {list(sd)}"
    dm.load_state_dict({k: to_dl(v) for k, v in sd.items()})


def flat(out) -> list:
    if isinstance(out, (tuple, list)):
        return [o for x in out for o in flat(x)]
    return [out]


def assert_close(got, want, dtype: str, what: str, **tol) -> None:
    g, w = as_np(got), as_np(want)
    assert g.shape == w.shape, f"{what}: shape {g.shape} != {w.shape}"
    np.testing.assert_allclose(g, w, **(tol or TOL[dtype]), equal_nan=True, err_msg=what)


def make_inputs(specs, dtype: str, rng) -> list:
    """Numpy inputs from specs: a shape (float, differentiated), or an array / ``("int", shape, high)``."""
    out = []
    for s in specs:
        if isinstance(s, tuple) and s and s[0] == "int":
            out.append(rng.integers(0, s[2], s[1]).astype(np.int64))
        elif isinstance(s, np.ndarray):
            out.append(s.astype(dtype) if s.dtype.kind == "f" else s)
        else:
            out.append(rng.uniform(-2.0, 2.0, s).astype(dtype))
    return out


def compare_modules(dm, tm, arrays, dtype: str, grad: bool = True, forward_kwargs=None, tol=None,
                    check_buffers: bool = True, requires_grad=None):
    """Run both modules on the same inputs; compare outputs, then gradients (inputs and parameters)
    for one random cotangent, then buffers. Inputs are differentiated where ``requires_grad`` says
    (default: the floating ones). Returns (danlu outputs, torch outputs)."""
    forward_kwargs = forward_kwargs or {}
    tol = tol or TOL[dtype]
    if requires_grad is None:
        requires_grad = [a.dtype.kind == "f" for a in arrays]
    requires_grad = [grad and r for r in requires_grad]
    t_in = [torch.tensor(a, requires_grad=r) for a, r in zip(arrays, requires_grad, strict=True)]
    d_in = [dl.tensor(a, requires_grad=r) for a, r in zip(arrays, requires_grad, strict=True)]
    t_out = flat(tm(*t_in, **forward_kwargs(torch) if callable(forward_kwargs) else forward_kwargs))
    d_out = flat(dm(*d_in, **forward_kwargs(dl) if callable(forward_kwargs) else forward_kwargs))
    assert len(d_out) == len(t_out)
    for i, (d, t) in enumerate(zip(d_out, t_out, strict=True)):
        if t is None:
            assert d is None, f"output {i}: expected None"
            continue
        assert_close(d, t, dtype, f"output {i}", **tol)
    if grad:
        rng = np.random.default_rng(1)
        t_loss, d_loss = 0, 0
        for d, t in zip(d_out, t_out, strict=True):
            if t is not None and t.dtype.is_floating_point and t.requires_grad:
                ct = rng.uniform(-1, 1, tuple(t.shape)).astype(dtype)
                t_loss = t_loss + (t * torch.tensor(ct)).sum()
                d_loss = d_loss + (d * dl.tensor(ct)).sum()
        if isinstance(t_loss, torch.Tensor):
            t_loss.backward()
            d_loss.backward()
            for i, (d, t) in enumerate(zip(d_in, t_in, strict=True)):
                if t.requires_grad:
                    assert_close(d.grad, t.grad, dtype, f"grad of input {i}", **tol)
            t_params = dict(tm.named_parameters())
            for name, p in dm.named_parameters():
                tp = t_params[name]
                if tp.grad is None:
                    assert p.grad is None or not as_np(p.grad).any(), f"grad of {name}: torch has none"
                else:
                    assert_close(p.grad, tp.grad, dtype, f"grad of parameter {name}", **tol)
    if check_buffers:
        t_buf = dict(tm.named_buffers())
        for name, b in dm.named_buffers():
            assert_close(b, t_buf[name], dtype if b.dtype.is_floating_point else "float64", f"buffer {name}", **tol)
    return d_out, t_out


def pair(ctor: Callable, dtype: str):
    """The danlu and torch modules from one constructor, in ``dtype``, with torch's state copied in."""
    tm = ctor(torch.nn).to(TORCH_DTYPE[dtype])
    dm = ctor(dl.nn).to(DL_DTYPE[dtype])
    copy_into(dm, tm)
    return dm, tm


# == the layer table =================================================================================

@dataclass
class LayerCase:
    name: str
    ctor: Callable                     # ctor(nn) -> module, for nn in (torch.nn, danlu.nn)
    inputs: list                       # input specs for make_inputs
    grad: bool = True
    eval: bool = False                 # compare in eval mode (random layers)
    forward_kwargs: dict = field(default_factory=dict)
    tol: dict | None = None            # per-dtype tolerance override, with the reason at the case

    def __repr__(self):
        return self.name


def _int(shape, high):
    return ("int", shape, high)


CASES = [
    # linear
    LayerCase("linear", lambda nn: nn.Linear(3, 4), [(2, 5, 3)]),
    LayerCase("linear_nobias_1d", lambda nn: nn.Linear(3, 4, bias=False), [(3,)]),
    LayerCase("bilinear", lambda nn: nn.Bilinear(3, 4, 5), [(2, 3), (2, 4)]),
    LayerCase("bilinear_nobias", lambda nn: nn.Bilinear(2, 3, 2, bias=False), [(4, 2), (4, 3)]),
    LayerCase("identity", lambda nn: nn.Identity(54, unused="x"), [(2, 3)]),
    # convolutions
    LayerCase("conv1d", lambda nn: nn.Conv1d(2, 4, 3), [(2, 2, 7)]),
    LayerCase("conv1d_all", lambda nn: nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2),
              [(2, 4, 9)]),
    LayerCase("conv1d_same", lambda nn: nn.Conv1d(2, 3, 4, padding="same", bias=False), [(1, 2, 6)]),
    LayerCase("conv1d_unbatched", lambda nn: nn.Conv1d(2, 3, 2), [(2, 5)]),
    LayerCase("conv1d_reflect", lambda nn: nn.Conv1d(2, 3, 3, padding=2, padding_mode="reflect"), [(2, 2, 6)]),
    LayerCase("conv1d_circular_same", lambda nn: nn.Conv1d(2, 3, 4, padding="same", padding_mode="circular"),
              [(2, 2, 6)]),
    LayerCase("conv2d", lambda nn: nn.Conv2d(3, 4, 3), [(2, 3, 6, 5)]),
    LayerCase("conv2d_all", lambda nn: nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2),
                                                 groups=2, bias=False), [(2, 4, 7, 6)]),
    LayerCase("conv2d_same", lambda nn: nn.Conv2d(2, 3, (2, 3), padding="same", dilation=2), [(1, 2, 5, 6)]),
    LayerCase("conv2d_valid", lambda nn: nn.Conv2d(2, 3, 3, padding="valid"), [(1, 2, 5, 5)]),
    LayerCase("conv2d_unbatched", lambda nn: nn.Conv2d(2, 3, 3, padding=1), [(2, 4, 4)]),
    LayerCase("conv2d_reflect", lambda nn: nn.Conv2d(2, 3, 3, padding=(1, 2), padding_mode="reflect"),
              [(2, 2, 5, 6)]),
    LayerCase("conv2d_replicate", lambda nn: nn.Conv2d(2, 3, 3, stride=2, padding=1, padding_mode="replicate"),
              [(2, 2, 5, 5)]),
    LayerCase("conv2d_circular", lambda nn: nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular", groups=2),
              [(1, 2, 4, 5)]),
    LayerCase("conv_transpose1d", lambda nn: nn.ConvTranspose1d(2, 3, 3, stride=2, padding=1, output_padding=1),
              [(2, 2, 5)]),
    LayerCase("conv_transpose1d_unbatched", lambda nn: nn.ConvTranspose1d(2, 4, 2, groups=2, dilation=2),
              [(2, 5)]),
    LayerCase("conv_transpose2d", lambda nn: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1), [(2, 3, 4, 3)]),
    LayerCase("conv_transpose2d_all", lambda nn: nn.ConvTranspose2d(4, 6, (2, 3), stride=(2, 3), padding=(0, 1),
                                                                    output_padding=(1, 2), groups=2, bias=False,
                                                                    dilation=(2, 1)), [(1, 4, 3, 3)]),
    LayerCase("conv_transpose2d_output_size", lambda nn: nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1),
              [(1, 2, 3, 3)], forward_kwargs={"output_size": [6, 6]}),
    LayerCase("conv_transpose2d_output_size_full", lambda nn: nn.ConvTranspose2d(2, 2, 3, stride=3),
              [(1, 2, 2, 2)], forward_kwargs={"output_size": [1, 2, 7, 8]}),
    # pooling
    LayerCase("max_pool1d", lambda nn: nn.MaxPool1d(3, stride=2, padding=1), [(2, 3, 8)]),
    LayerCase("max_pool1d_indices", lambda nn: nn.MaxPool1d(2, return_indices=True, ceil_mode=True), [(2, 7)]),
    LayerCase("max_pool2d", lambda nn: nn.MaxPool2d(2), [(2, 3, 6, 5)]),
    LayerCase("max_pool2d_all", lambda nn: nn.MaxPool2d((3, 2), stride=(2, 1), padding=1, dilation=(1, 2),
                                                        ceil_mode=True, return_indices=True), [(1, 2, 7, 6)]),
    LayerCase("avg_pool1d", lambda nn: nn.AvgPool1d(3, stride=2, padding=1, count_include_pad=False), [(2, 3, 8)]),
    LayerCase("avg_pool1d_ceil", lambda nn: nn.AvgPool1d(2, ceil_mode=True), [(3, 7)]),
    LayerCase("avg_pool2d", lambda nn: nn.AvgPool2d(2), [(2, 3, 6, 5)]),
    LayerCase("avg_pool2d_all", lambda nn: nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True,
                                                        count_include_pad=False), [(1, 2, 6, 7)]),
    LayerCase("avg_pool2d_divisor", lambda nn: nn.AvgPool2d((2, 3), divisor_override=4), [(2, 5, 7)]),
    LayerCase("adaptive_avg_pool1d", lambda nn: nn.AdaptiveAvgPool1d(3), [(2, 3, 7)]),
    LayerCase("adaptive_avg_pool2d", lambda nn: nn.AdaptiveAvgPool2d((2, 3)), [(2, 3, 5, 7)]),
    LayerCase("adaptive_avg_pool2d_none", lambda nn: nn.AdaptiveAvgPool2d((None, 1)), [(2, 5, 4)]),
    LayerCase("adaptive_max_pool1d", lambda nn: nn.AdaptiveMaxPool1d(3, return_indices=True), [(2, 3, 7)]),
    LayerCase("adaptive_max_pool2d", lambda nn: nn.AdaptiveMaxPool2d(2), [(2, 3, 5, 5)]),
    # normalization (training mode: batch statistics and running-stat updates)
    LayerCase("batch_norm1d_2d", lambda nn: nn.BatchNorm1d(3), [(5, 3)]),
    LayerCase("batch_norm1d_3d", lambda nn: nn.BatchNorm1d(3, momentum=None), [(4, 3, 5)]),
    LayerCase("batch_norm1d_no_stats", lambda nn: nn.BatchNorm1d(3, track_running_stats=False), [(4, 3)]),
    LayerCase("batch_norm2d", lambda nn: nn.BatchNorm2d(3, eps=1e-3, momentum=0.3), [(2, 3, 4, 5)]),
    LayerCase("batch_norm2d_no_affine", lambda nn: nn.BatchNorm2d(2, affine=False), [(3, 2, 3, 3)]),
    LayerCase("batch_norm2d_eval", lambda nn: nn.BatchNorm2d(2), [(3, 2, 3, 3)], eval=True),
    LayerCase("batch_norm2d_eval_no_stats", lambda nn: nn.BatchNorm2d(2, track_running_stats=False),
              [(3, 2, 3, 3)], eval=True),
    LayerCase("batch_norm3d", lambda nn: nn.BatchNorm3d(2), [(2, 2, 3, 2, 2)]),
    LayerCase("instance_norm1d", lambda nn: nn.InstanceNorm1d(3), [(2, 3, 5)]),
    LayerCase("instance_norm1d_unbatched", lambda nn: nn.InstanceNorm1d(3, affine=True), [(3, 5)]),
    LayerCase("instance_norm2d_stats", lambda nn: nn.InstanceNorm2d(2, affine=True, track_running_stats=True),
              [(3, 2, 3, 4)]),
    LayerCase("instance_norm2d_stats_eval", lambda nn: nn.InstanceNorm2d(2, track_running_stats=True),
              [(3, 2, 3, 4)], eval=True),
    LayerCase("layer_norm", lambda nn: nn.LayerNorm(4), [(2, 3, 4)]),
    LayerCase("layer_norm_2d_shape", lambda nn: nn.LayerNorm((3, 4), eps=1e-3), [(2, 3, 4)]),
    LayerCase("layer_norm_no_affine", lambda nn: nn.LayerNorm([4], elementwise_affine=False), [(5, 4)]),
    LayerCase("layer_norm_no_bias", lambda nn: nn.LayerNorm(4, bias=False), [(5, 4)]),
    LayerCase("group_norm", lambda nn: nn.GroupNorm(2, 4), [(3, 4, 5)]),
    LayerCase("group_norm_2d", lambda nn: nn.GroupNorm(3, 6, eps=1e-3, affine=False), [(2, 6, 2, 3)]),
    LayerCase("group_norm_no_bias", lambda nn: nn.GroupNorm(1, 2, bias=False), [(2, 2, 3)]),
    LayerCase("rms_norm", lambda nn: nn.RMSNorm(4), [(2, 3, 4)]),
    LayerCase("rms_norm_eps", lambda nn: nn.RMSNorm([3, 4], eps=1e-3, elementwise_affine=False), [(2, 3, 4)]),
    # dropout (eval: the identity)
    LayerCase("dropout_eval", lambda nn: nn.Dropout(0.5), [(3, 4)], eval=True),
    LayerCase("dropout_p0", lambda nn: nn.Dropout(0.0), [(3, 4)]),
    LayerCase("dropout1d_eval", lambda nn: nn.Dropout1d(0.3), [(2, 3, 4)], eval=True),
    LayerCase("dropout2d_eval", lambda nn: nn.Dropout2d(0.3), [(2, 3, 4, 4)], eval=True),
    LayerCase("dropout3d_eval", lambda nn: nn.Dropout3d(0.3), [(2, 3, 2, 2, 2)], eval=True),
    LayerCase("alpha_dropout_eval", lambda nn: nn.AlphaDropout(0.3), [(2, 3)], eval=True),
    # embedding
    LayerCase("embedding", lambda nn: nn.Embedding(7, 3), [_int((2, 4), 7)]),
    LayerCase("embedding_padding", lambda nn: nn.Embedding(7, 3, padding_idx=2),
              [np.array([[2, 1, 2], [6, 2, 0]])]),
    LayerCase("embedding_negative_padding", lambda nn: nn.Embedding(5, 2, padding_idx=-1),
              [np.array([4, 1, 4, 3])]),
    LayerCase("embedding_scale_grad", lambda nn: nn.Embedding(5, 2, scale_grad_by_freq=True),
              [np.array([1, 1, 3, 1])]),
    LayerCase("embedding_max_norm", lambda nn: nn.Embedding(6, 3, max_norm=0.5, norm_type=1.5),
              [np.array([[0, 3], [3, 5]])]),
    # activations
    LayerCase("relu", lambda nn: nn.ReLU(), [(3, 4)]),
    LayerCase("relu6", lambda nn: nn.ReLU6(), [np.linspace(-8, 8, 12).reshape(3, 4) + 0.05]),
    LayerCase("leaky_relu", lambda nn: nn.LeakyReLU(0.2), [(3, 4)]),
    LayerCase("elu", lambda nn: nn.ELU(alpha=0.7), [(3, 4)]),
    LayerCase("selu", lambda nn: nn.SELU(), [(3, 4)]),
    LayerCase("celu", lambda nn: nn.CELU(alpha=1.5), [(3, 4)]),
    LayerCase("gelu", lambda nn: nn.GELU(), [(3, 4)]),
    LayerCase("gelu_tanh", lambda nn: nn.GELU(approximate="tanh"), [(3, 4)]),
    LayerCase("silu", lambda nn: nn.SiLU(), [(3, 4)]),
    LayerCase("mish", lambda nn: nn.Mish(), [(3, 4)]),
    LayerCase("softplus", lambda nn: nn.Softplus(beta=2.0, threshold=1.5), [(3, 4)]),
    LayerCase("softsign", lambda nn: nn.Softsign(), [(3, 4)]),
    LayerCase("tanh", lambda nn: nn.Tanh(), [(3, 4)]),
    LayerCase("sigmoid", lambda nn: nn.Sigmoid(), [(3, 4)]),
    LayerCase("hardtanh", lambda nn: nn.Hardtanh(-0.5, 1.5), [(3, 4)]),
    # PyTorch's hardsigmoid backward multiplies by the float32 constant 1.0f / 6.0f even in float64
    # (0.1666666716...); danlu uses the exact 1/6, so the float64 gradients differ by ~3e-8 relative.
    LayerCase("hardsigmoid", lambda nn: nn.Hardsigmoid(), [np.linspace(-4, 4, 12).reshape(3, 4) + 0.01],
              tol={"float64": dict(atol=1e-10, rtol=1e-7)}),
    LayerCase("hardswish", lambda nn: nn.Hardswish(), [np.linspace(-4, 4, 12).reshape(3, 4) + 0.01]),
    LayerCase("logsigmoid", lambda nn: nn.LogSigmoid(), [(3, 4)]),
    LayerCase("softmax", lambda nn: nn.Softmax(dim=1), [(3, 4, 2)]),
    LayerCase("log_softmax", lambda nn: nn.LogSoftmax(dim=-1), [(3, 4)]),
    LayerCase("softmin", lambda nn: nn.Softmin(dim=0), [(3, 4)]),
    LayerCase("softmax2d", lambda nn: nn.Softmax2d(), [(2, 3, 2, 2)]),
    LayerCase("prelu", lambda nn: nn.PReLU(), [(3, 4)]),
    LayerCase("prelu_channels", lambda nn: nn.PReLU(3, init=0.1), [(2, 3, 4)]),
    LayerCase("threshold", lambda nn: nn.Threshold(0.1, 20.0), [(3, 4)]),
    LayerCase("glu", lambda nn: nn.GLU(dim=1), [(3, 4, 2)]),
    LayerCase("hardshrink", lambda nn: nn.Hardshrink(0.3), [(3, 4)]),
    LayerCase("softshrink", lambda nn: nn.Softshrink(0.3), [(3, 4)]),
    LayerCase("tanhshrink", lambda nn: nn.Tanhshrink(), [(3, 4)]),
    LayerCase("rrelu_eval", lambda nn: nn.RReLU(0.1, 0.4), [(3, 4)], eval=True),
    # containers of the above
    LayerCase("sequential_mlp", lambda nn: nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8),
                                                         nn.Dropout(0.0), nn.Linear(8, 2)), [(3, 4)]),
    LayerCase("sequential_cnn", lambda nn: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3)),
              [(2, 1, 4, 4)]),
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's performance note
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_layer_matches_torch(case, dtype):
    torch.manual_seed(0)
    dm, tm = pair(case.ctor, dtype)
    if case.eval:
        dm.eval()
        tm.eval()
    arrays = make_inputs(case.inputs, dtype, np.random.default_rng(0))
    compare_modules(dm, tm, arrays, dtype, grad=case.grad, forward_kwargs=case.forward_kwargs,
                    tol=(case.tol or {}).get(dtype))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_repr_and_state_dict_match_torch(case):
    torch.manual_seed(0)
    tm, dm = case.ctor(torch.nn), case.ctor(dl.nn)
    assert repr(dm) == repr(tm).replace("torch", "danlu")
    t_sd, d_sd = tm.state_dict(), dm.state_dict()
    assert list(d_sd) == list(t_sd)
    for k in t_sd:
        assert tuple(d_sd[k].shape) == tuple(t_sd[k].shape), k
        assert str(d_sd[k].dtype).split(".")[-1] == str(t_sd[k].dtype).split(".")[-1], k
    t_params = dict(tm.named_parameters())
    assert [n for n, _ in dm.named_parameters()] == list(t_params)
    for n, p in dm.named_parameters():
        assert p.requires_grad == t_params[n].requires_grad, n


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("case", [c for c in CASES if not c.name.startswith(("dropout", "alpha_dropout", "rrelu"))
                                  or c.eval], ids=repr)
def test_layer_compiles_like_eager(case):
    """A compiled forward (graph mode) gives what eager gives, buffers updates included."""
    torch.manual_seed(0)
    eager = case.ctor(dl.nn)
    if case.eval:
        eager.eval()
    traced = copy.deepcopy(eager)
    f = dl.compile(lambda *xs: traced(*xs, **case.forward_kwargs))
    rng = np.random.default_rng(0)
    for _ in range(3):  # the first calls warm up; later ones run the compiled graph
        ins = [dl.tensor(a) for a in make_inputs(case.inputs, "float32", rng)]
        want = flat(eager(*ins, **case.forward_kwargs))
        got = flat(f(*ins))
        for g, w in zip(got, want, strict=True):
            assert_close(g, w, "float32", "compiled output")
    for (name, b), (_, b2) in zip(eager.named_buffers(), traced.named_buffers(), strict=True):
        assert_close(b2, b, "float32", f"buffer {name}")


@pytest.mark.parametrize("ctor", [
    lambda nn: nn.ReLU(inplace=True), lambda nn: nn.LeakyReLU(0.1, inplace=True), lambda nn: nn.ELU(inplace=True),
    lambda nn: nn.Hardtanh(inplace=True), lambda nn: nn.ReLU6(True), lambda nn: nn.SiLU(inplace=True),
    lambda nn: nn.Threshold(0.5, -1.0, inplace=True), lambda nn: nn.SELU(True), lambda nn: nn.Hardswish(True),
], ids=["relu", "leaky_relu", "elu", "hardtanh", "relu6", "silu", "threshold", "selu", "hardswish"])
def test_inplace_activations_write_their_input(ctor):
    a = np.random.default_rng(0).uniform(-3, 3, (3, 4)).astype(np.float32)
    t, d = torch.tensor(a), dl.tensor(a)
    t_out, d_out = ctor(torch.nn)(t), ctor(dl.nn)(d)
    assert repr(ctor(dl.nn)) == repr(ctor(torch.nn))
    np.testing.assert_allclose(d.numpy(), t.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(d_out.numpy(), t_out.numpy(), rtol=1e-6, atol=1e-6)
    assert not np.allclose(d.numpy(), a)


# == training behaviour ==============================================================================

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("ctor, shape", [
    (lambda nn: nn.BatchNorm1d(3), (6, 3)),
    (lambda nn: nn.BatchNorm1d(3, momentum=None), (4, 3, 5)),
    (lambda nn: nn.BatchNorm2d(2, momentum=0.5, affine=False), (3, 2, 2, 3)),
    (lambda nn: nn.InstanceNorm1d(2, track_running_stats=True, affine=True), (3, 2, 4)),
], ids=["bn1d", "bn1d_cumulative", "bn2d", "in1d"])
def test_running_stats_follow_torch_over_steps(ctor, shape, dtype):
    dm, tm = pair(ctor, dtype)
    rng = np.random.default_rng(0)
    for step in range(4):
        x = (rng.normal(size=shape) * (step + 1) + step).astype(dtype)
        compare_modules(dm, tm, [x], dtype)  # also compares running_mean/var and num_batches_tracked
    counted = int(tm.num_batches_tracked)  # 4 for batch norm; instance norm does not count
    assert int(dm.num_batches_tracked) == counted
    dm.eval()
    tm.eval()
    x = rng.normal(size=shape).astype(dtype)
    compare_modules(dm, tm, [x], dtype)
    assert int(dm.num_batches_tracked) == counted  # eval does not count batches


def test_batchnorm_reset_and_eval_uses_running_stats():
    m = dl.nn.BatchNorm1d(2)
    m(dl.tensor([[0.0, 10.0], [2.0, 30.0]]))
    assert np.allclose(m.running_mean.numpy(), [0.1, 2.0])
    m.eval()
    y = m(dl.tensor([[0.1, 2.0]]))  # the running mean maps to ~0
    assert np.allclose(y.detach().numpy(), 0.0, atol=1e-6)
    m.reset_running_stats()
    assert m.running_mean.tolist() == [0.0, 0.0] and m.running_var.tolist() == [1.0, 1.0]
    assert int(m.num_batches_tracked) == 0


def test_batchnorm_input_checks_like_torch():
    with pytest.raises(ValueError, match="expected 4D input"):
        torch.nn.BatchNorm2d(2)(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="expected 4D input"):
        dl.nn.BatchNorm2d(2)(dl.zeros(2, 2))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        dl.nn.BatchNorm1d(2)(dl.zeros(1, 2))


@pytest.mark.parametrize("cls, shape, per_channel", [
    ("Dropout", (200, 50), False), ("Dropout1d", (40, 30, 8), True), ("Dropout2d", (40, 30, 2, 3), True),
    ("Dropout3d", (20, 30, 2, 2, 2), True),
])
def test_dropout_train_statistics_and_eval_identity(cls, shape, per_channel):
    p = 0.3
    m = getattr(dl.nn, cls)(p)
    x = dl.ones(*shape)
    y = m(x).numpy()
    assert np.all((y == 0) | np.isclose(y, 1 / (1 - p)))
    frac = (y == 0).mean()
    assert abs(frac - p) < 0.05
    if per_channel:
        lead = y.reshape(shape[0], shape[1], -1)
        assert np.all((lead == 0).all(-1) | (lead != 0).all(-1))  # whole channels dropped
    m.eval()
    assert m(x) is x or np.array_equal(m(x).numpy(), x.numpy())
    m.train()
    assert (m(x).numpy() == 0).any()


def test_dropout_gradient_uses_the_same_mask():
    x = dl.ones(100, requires_grad=True)
    y = dl.nn.Dropout(0.5)(x)
    y.sum().backward()
    assert np.array_equal(x.grad.numpy(), y.detach().numpy())


def test_alpha_dropout_keeps_mean_and_variance():
    x = dl.randn(200000)
    y = dl.nn.AlphaDropout(0.2)(x).numpy()
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1.0) < 0.02


def test_bad_dropout_probability():
    with pytest.raises(ValueError, match="between 0 and 1"):
        dl.nn.Dropout(1.5)


def test_rrelu_train_slopes_in_range():
    x = -dl.ones(1000)
    y = dl.nn.RReLU(0.1, 0.3)(x).numpy()
    assert np.all((y <= -0.1 + 1e-7) & (y >= -0.3 - 1e-7)) and y.std() > 0.01


def test_train_eval_flags_propagate():
    net = dl.nn.Sequential(dl.nn.Linear(2, 2), dl.nn.Dropout(), dl.nn.BatchNorm1d(2))
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


# == embedding ======================================================================================

def test_embedding_padding_row_is_zero_and_gets_no_gradient():
    m = dl.nn.Embedding(5, 3, padding_idx=1)
    assert m.weight[1].abs().sum().item() == 0.0
    out = m(dl.tensor([[1, 2], [1, 1]]))
    out.sum().backward()
    assert m.weight.grad[1].abs().sum().item() == 0.0
    assert np.allclose(m.weight.grad[2].numpy(), 1.0)


def test_embedding_from_pretrained():
    w = dl.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    e = dl.nn.Embedding.from_pretrained(w)
    assert not e.weight.requires_grad and e.num_embeddings == 3 and e.embedding_dim == 2
    assert e(dl.tensor([2, 0])).tolist() == [[5.0, 6.0], [1.0, 2.0]]
    e2 = dl.nn.Embedding.from_pretrained(w, freeze=False, padding_idx=0)
    assert e2.weight.requires_grad and e2.weight[0].tolist() == [1.0, 2.0]  # not zeroed, as PyTorch
    t2 = torch.nn.Embedding.from_pretrained(torch.tensor(w.numpy()), freeze=False, padding_idx=0)
    assert repr(e2) == repr(t2)
    with pytest.raises(AssertionError):
        dl.nn.Embedding.from_pretrained(dl.zeros(3))


def test_embedding_max_norm_renormalizes_weight_in_place():
    torch.manual_seed(0)
    dm, tm = pair(lambda nn: nn.Embedding(6, 3, max_norm=0.5), "float64")
    idx = np.array([0, 3, 3])
    tm(torch.tensor(idx))
    dm(dl.tensor(idx))
    assert_close(dm.weight, tm.weight, "float64", "renormalized weight")


def test_embedding_bad_padding_idx():
    with pytest.raises(AssertionError):
        dl.nn.Embedding(3, 2, padding_idx=3)
    with pytest.raises(AssertionError):
        dl.nn.Embedding(3, 2, padding_idx=-4)


# == conv specifics ==================================================================================

@pytest.mark.parametrize("kwargs, err", [
    (dict(groups=0), "groups must be a positive integer"), (dict(groups=2), "in_channels must be divisible"),
    (dict(padding="full"), "Invalid padding string"), (dict(padding="same", stride=2), "not supported for strided"),
    (dict(padding_mode="mirror"), "padding_mode must be one of"),
])
def test_conv_constructor_errors_like_torch(kwargs, err):
    for nn_ in (torch.nn, dl.nn):
        with pytest.raises(ValueError, match=err):
            nn_.Conv2d(3, 4, 3, **kwargs)


def test_conv_transpose_rejects_non_zero_padding_mode_and_bad_output_size():
    with pytest.raises(ValueError, match='Only "zeros" padding mode'):
        dl.nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect")
    m = dl.nn.ConvTranspose2d(2, 2, 3, stride=2)
    with pytest.raises(ValueError, match="requested an output size of"):
        m(dl.zeros(1, 2, 3, 3), output_size=[10, 10])
    with pytest.raises(ValueError, match="output_size must have"):
        m(dl.zeros(1, 2, 3, 3), output_size=[7])


# == default initialization ==========================================================================

def _uniform_ok(w: np.ndarray, bound: float) -> None:
    assert np.abs(w).max() <= bound * (1 + 1e-6)
    assert abs(w.mean()) < 0.05 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound


@pytest.mark.parametrize("ctor, fan_in", [
    (lambda: dl.nn.Linear(50, 400), 50),
    (lambda: dl.nn.Conv2d(6, 300, 3), 54),
    (lambda: dl.nn.Conv1d(4, 400, 5, groups=2), 10),
    (lambda: dl.nn.ConvTranspose2d(400, 6, 2), 24),  # fan_in of the (in, out/groups, k, k) weight: dim 1 * k * k
])
def test_default_init_kaiming_uniform_sqrt5_and_bias_bound(ctor, fan_in):
    m = ctor()
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)): gain sqrt(1/3), bound sqrt(3) gain / sqrt(fan_in)
    _uniform_ok(m.weight.detach().numpy(), bound)
    b = m.bias.detach().numpy()
    assert np.abs(b).max() <= bound and b.std() > 0.3 * bound


def test_default_init_of_other_layers():
    bil = dl.nn.Bilinear(20, 3, 500)
    _uniform_ok(bil.weight.detach().numpy(), 1 / math.sqrt(20))
    emb = dl.nn.Embedding(1000, 50).weight.detach().numpy()
    assert abs(emb.mean()) < 0.02 and abs(emb.std() - 1) < 0.02
    for m in (dl.nn.BatchNorm2d(3), dl.nn.LayerNorm(3), dl.nn.GroupNorm(1, 3), dl.nn.InstanceNorm1d(3, affine=True)):
        assert m.weight.tolist() == [1.0] * 3 and m.bias.tolist() == [0.0] * 3
    assert dl.nn.PReLU(2, init=0.1).weight.tolist() == pytest.approx([0.1, 0.1])
    bn = dl.nn.BatchNorm1d(2)
    assert bn.running_mean.tolist() == [0, 0] and bn.running_var.tolist() == [1, 1]
    assert bn.num_batches_tracked.dtype == dl.int64 and bn.num_batches_tracked.ndim == 0


def test_factory_dtype_argument():
    for m in (dl.nn.Linear(2, 3, dtype=dl.float64), dl.nn.Conv2d(1, 2, 3, dtype=dl.float64),
              dl.nn.BatchNorm1d(2, dtype=dl.float64), dl.nn.LayerNorm(2, dtype=dl.float64),
              dl.nn.Embedding(3, 2, dtype=dl.float64), dl.nn.MultiheadAttention(4, 2, dtype=dl.float64)):
        assert all(p.dtype == dl.float64 for p in m.parameters())
    assert dl.nn.BatchNorm1d(2, dtype=dl.float64).num_batches_tracked.dtype == dl.int64


def test_module_to_double_keeps_num_batches_tracked_int():
    m = dl.nn.BatchNorm1d(2).double()
    assert m.weight.dtype == dl.float64 and m.running_mean.dtype == dl.float64
    assert m.num_batches_tracked.dtype == dl.int64
