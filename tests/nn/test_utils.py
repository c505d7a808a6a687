"""``danlu.nn.utils`` against PyTorch: gradient clipping (total norm, scaling, edge cases) and the
parameter/vector conversions."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import danlu as dl
from danlu.nn import utils

from .test_layers import copy_into


def _params_with_grads(dtype="float64", with_none=True, scale=1.0):
    """The same parameters and gradients in both frameworks: three with grads, one without."""
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (5,), (2, 2, 2)]
    vals = [rng.normal(size=s).astype(dtype) for s in shapes]
    grads = [rng.normal(size=s).astype(dtype) * scale for s in shapes]
    t_ps, d_ps = [], []
    for v, g in zip(vals, grads, strict=True):
        tp, dp = torch.nn.Parameter(torch.tensor(v)), dl.nn.Parameter(dl.tensor(v))
        tp.grad, dp.grad = torch.tensor(g), dl.tensor(g)
        t_ps.append(tp)
        d_ps.append(dp)
    if with_none:
        t_ps.append(torch.nn.Parameter(torch.zeros(2, dtype=getattr(torch, dtype))))
        d_ps.append(dl.nn.Parameter(dl.zeros(2, dtype=getattr(dl, dtype))))
    return t_ps, d_ps


def _assert_grads_equal(t_ps, d_ps, rtol=1e-12):
    for tp, dp in zip(t_ps, d_ps, strict=True):
        if tp.grad is None:
            assert dp.grad is None
        else:
            np.testing.assert_allclose(dp.grad.numpy(), tp.grad.numpy(), rtol=rtol, atol=1e-14)


@pytest.mark.parametrize("norm_type", [2.0, 1, 3.5, 0.5, math.inf, "inf", 0.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e4])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype):
    t_ps, d_ps = _params_with_grads(dtype)
    nt = float(norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(t_ps, max_norm, norm_type=nt)
    d_total = utils.clip_grad_norm_(d_ps, max_norm, norm_type=norm_type)
    assert isinstance(d_total, dl.Tensor) and d_total.ndim == 0 and d_total.dtype == getattr(dl, dtype)
    rtol = 1e-12 if dtype == "float64" else 2e-6
    np.testing.assert_allclose(d_total.item(), t_total.item(), rtol=rtol)
    _assert_grads_equal(t_ps, d_ps, rtol)
    if max_norm < d_total.item() and nt != 0:  # clipped: the new total norm is max_norm (up to the 1e-6 epsilon)
        new = utils.get_total_norm([p.grad for p in d_ps if p.grad is not None], norm_type).item()
        assert new == pytest.approx(max_norm * d_total.item() / (d_total.item() + 1e-6), rel=1e-5)


def test_clip_grad_norm_uses_the_1e6_epsilon():
    p = dl.nn.Parameter(dl.zeros(1, dtype=dl.float64))
    p.grad = dl.tensor([2.0], dtype=dl.float64)
    utils.clip_grad_norm_(p, 1.0)  # a single tensor is accepted too
    assert p.grad.item() == 2.0 * 1.0 / (2.0 + 1e-6)
    p.grad = dl.zeros(1, dtype=dl.float64)
    assert utils.clip_grad_norm_([p], 1.0).item() == 0.0 and p.grad.item() == 0.0


def test_clip_grad_norm_on_a_module_and_a_generator():
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    dm = dl.nn.Sequential(dl.nn.Linear(3, 4), dl.nn.Tanh(), dl.nn.Linear(4, 2)).double()
    copy_into(dm, tm)
    x = np.random.default_rng(0).normal(size=(5, 3))
    tm(torch.tensor(x)).pow(2).sum().backward()
    dm(dl.tensor(x)).pow(2).sum().backward()
    t_total = torch.nn.utils.clip_grad_norm_(tm.parameters(), 0.1)
    d_total = utils.clip_grad_norm_(dm.parameters(), 0.1)
    np.testing.assert_allclose(d_total.item(), t_total.item(), rtol=1e-10)
    _assert_grads_equal(list(tm.parameters()), list(dm.parameters()), rtol=1e-10)


def test_clip_grad_norm_nonfinite():
    t_ps, d_ps = _params_with_grads("float64", with_none=False)
    d_ps[1].grad[2] = math.nan
    t_ps[1].grad[2] = math.nan
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped"):
        utils.clip_grad_norm_(d_ps, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped"):
        torch.nn.utils.clip_grad_norm_(t_ps, 1.0, error_if_nonfinite=True)
    total = utils.clip_grad_norm_(d_ps, 1.0)  # default: scale by the non-finite norm anyway, as PyTorch
    t_total = torch.nn.utils.clip_grad_norm_(t_ps, 1.0)
    assert math.isnan(total.item()) and math.isnan(t_total.item())
    _assert_grads_equal(t_ps, d_ps)
    p = dl.nn.Parameter(dl.zeros(2))
    p.grad = dl.tensor([math.inf, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        utils.clip_grad_norm_([p], 1.0, norm_type=math.inf, error_if_nonfinite=True)


def test_clip_grad_norm_without_grads():
    p = dl.nn.Parameter(dl.zeros(2))
    total = utils.clip_grad_norm_([p], 1.0)
    assert total.item() == 0.0 and p.grad is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        utils.clip_grad_norm_((q for q in []), 1.0)
    assert any("empty generator" in str(w.message) for w in caught)


def test_clip_grad_norm_mixed_dtypes():
    a, b = dl.nn.Parameter(dl.zeros(2)), dl.nn.Parameter(dl.zeros(2, dtype=dl.float64))
    a.grad, b.grad = dl.tensor([3.0, 0.0]), dl.tensor([0.0, 4.0], dtype=dl.float64)
    ta, tb = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    ta.grad, tb.grad = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0], dtype=torch.float64)
    total = utils.clip_grad_norm_([a, b], 1.0)
    t_total = torch.nn.utils.clip_grad_norm_([ta, tb], 1.0)
    assert total.item() == pytest.approx(t_total.item()) and str(total.dtype) == "danlu.float64"
    assert a.grad.dtype == dl.float32 and b.grad.dtype == dl.float64
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_runs_outside_autograd():
    p = dl.nn.Parameter(dl.ones(3))
    (p * p).sum().backward(create_graph=True)
    assert p.grad.requires_grad
    utils.clip_grad_norm_([p], 0.5)
    np.testing.assert_allclose(p.grad.detach().numpy(), 2 * 0.5 / (math.sqrt(12) + 1e-6), rtol=1e-6)


def test_deprecated_clip_grad_norm_warns():
    p = dl.nn.Parameter(dl.zeros(1))
    p.grad = dl.tensor([5.0])
    with pytest.warns(FutureWarning, match="clip_grad_norm_"):
        assert utils.clip_grad_norm([p], 1.0).item() == 5.0


@pytest.mark.parametrize("clip", [0.5, 2, 100.0])
def test_clip_grad_value_matches_torch(clip):
    t_ps, d_ps = _params_with_grads("float64")
    assert torch.nn.utils.clip_grad_value_(t_ps, clip) is None
    assert utils.clip_grad_value_(d_ps, clip) is None
    _assert_grads_equal(t_ps, d_ps)
    assert max(np.abs(p.grad.numpy()).max() for p in d_ps if p.grad is not None) <= clip
    p = dl.nn.Parameter(dl.zeros(2))
    p.grad = dl.tensor([-3.0, 3.0])
    utils.clip_grad_value_(p, clip)  # a single tensor
    assert p.grad.tolist() == [-min(clip, 3.0), min(clip, 3.0)]


def test_get_total_norm_and_clip_grads_with_norm_match_torch():
    t_ps, d_ps = _params_with_grads("float64", with_none=False)
    tn = torch.nn.utils.get_total_norm([p.grad for p in t_ps], 3.0)
    dn = utils.get_total_norm([p.grad for p in d_ps], 3.0)
    np.testing.assert_allclose(dn.item(), tn.item(), rtol=1e-12)
    torch.nn.utils.clip_grads_with_norm_(t_ps, 0.2, tn)
    utils.clip_grads_with_norm_(d_ps, 0.2, dn)
    _assert_grads_equal(t_ps, d_ps)
    assert utils.get_total_norm([]).item() == 0.0


def test_parameters_to_vector_and_back_match_torch():
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Conv1d(1, 2, 2))
    dm = dl.nn.Sequential(dl.nn.Linear(3, 2), dl.nn.Conv1d(1, 2, 2))
    copy_into(dm, tm)
    tv = torch.nn.utils.parameters_to_vector(tm.parameters())
    dv = utils.parameters_to_vector(dm.parameters())
    np.testing.assert_array_equal(dv.detach().numpy(), tv.detach().numpy())
    assert dv.shape == (sum(p.numel() for p in dm.parameters()),)
    new = np.arange(dv.shape[0], dtype=np.float32)
    torch.nn.utils.vector_to_parameters(torch.tensor(new), tm.parameters())
    vec = dl.tensor(new)
    utils.vector_to_parameters(vec, dm.parameters())
    for (n, dp), tp in zip(dm.named_parameters(), tm.parameters(), strict=True):
        np.testing.assert_array_equal(dp.detach().numpy(), tp.detach().numpy(), err_msg=n)
        assert isinstance(dp, dl.nn.Parameter) and dp.requires_grad
    vec[0] = 100.0  # the parameters share the vector's memory, as in PyTorch
    assert dm[0].weight[0, 0].item() == 100.0
    with pytest.raises(TypeError, match="expected danlu.Tensor"):
        utils.vector_to_parameters(new, dm.parameters())


def test_parameters_to_vector_is_differentiable():
    a, b = dl.nn.Parameter(dl.ones(2, 2)), dl.nn.Parameter(dl.ones(3))
    v = utils.parameters_to_vector([a, b])
    (v * dl.arange(7.0)).sum().backward()
    assert a.grad.tolist() == [[0.0, 1.0], [2.0, 3.0]] and b.grad.tolist() == [4.0, 5.0, 6.0]


@pytest.mark.parametrize("clip", ["norm", "value"])
def test_clipping_inside_a_compiled_training_step_matches_eager(clip):
    def run(compiled):
        dl.manual_seed(0)
        net = dl.nn.Sequential(dl.nn.Linear(4, 8), dl.nn.GELU(), dl.nn.LayerNorm(8), dl.nn.Linear(8, 2))
        opt = dl.optim.SGD(net.parameters(), lr=0.1)
        x = dl.randn(16, 4)
        y = (x[:, 0] > 0).long()

        def step(x, y):
            opt.zero_grad()
            loss = dl.nn.CrossEntropyLoss()(net(x), y)
            loss.backward()
            if clip == "norm":
                return loss, utils.clip_grad_norm_(net.parameters(), 0.5)
            utils.clip_grad_value_(net.parameters(), 0.05)
            return loss, loss

        f = dl.compile(step) if compiled else step
        out = []
        for _ in range(4):
            loss, n = f(x, y)
            opt.step()
            out.append((loss.item(), n.item()))
        return out

    np.testing.assert_allclose(run(True), run(False), rtol=1e-5)
