"""``danlu.nn.init`` against PyTorch's formulas: gains and fans exactly, deterministic fills exactly,
random fills by their bounds and moments (the random streams differ, so values cannot match)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import danlu as dl
from danlu.nn import init


@pytest.mark.parametrize("nonlinearity, param", [
    ("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None), ("conv_transpose1d", None),
    ("conv_transpose2d", None), ("conv_transpose3d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
    ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 3), ("leaky_relu", math.sqrt(5)), ("selu", None),
])
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(nonlinearity, param)


def test_calculate_gain_errors_like_torch():
    for mod in (init, torch.nn.init):
        with pytest.raises(ValueError, match="Unsupported nonlinearity"):
            mod.calculate_gain("swish")
        with pytest.raises(ValueError, match="not a valid number"):
            mod.calculate_gain("leaky_relu", True)


@pytest.mark.parametrize("shape", [(3, 5), (4, 2, 3), (6, 3, 2, 5), (2, 1, 1, 1, 7), (0, 3)])
def test_fans_match_torch(shape):
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init._calculate_fan_in_and_fan_out(dl.empty(*shape)) == expected
    for mode in ("fan_in", "fan_out", "FAN_OUT"):
        assert init._calculate_correct_fan(dl.empty(*shape), mode) == \
            torch.nn.init._calculate_correct_fan(torch.empty(shape), mode)


def test_fan_errors():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(dl.empty(3))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_normal_(dl.empty(3, 3), mode="fan_avg")


def _sample(fn, shape=(400, 500)):
    return fn(dl.empty(*shape)).numpy().astype(np.float64)


def _check_uniform(w, bound):
    assert np.abs(w).max() <= bound * (1 + 1e-6)
    assert np.abs(w).max() > 0.99 * bound
    assert abs(w.mean()) < 0.01 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound


def _check_normal(w, std, mean=0.0):
    assert abs(w.mean() - mean) < 0.01 * std + 1e-12
    assert abs(w.std() - std) < 0.01 * std
    # Normal tails: about 4.55% of the draws beyond two standard deviations.
    assert abs((np.abs(w - mean) > 2 * std).mean() - 0.0455) < 0.004


def test_uniform_and_normal():
    _check_uniform(_sample(lambda t: init.uniform_(t, -0.3, 0.3)), 0.3)
    w = _sample(lambda t: init.uniform_(t, 1.0, 3.0))
    assert w.min() >= 1.0 and w.max() <= 3.0 and abs(w.mean() - 2.0) < 0.01
    _check_normal(_sample(lambda t: init.normal_(t, 0.5, 2.0)), 2.0, 0.5)


@pytest.mark.parametrize("shape", [(400, 500), (300, 20, 3, 3)])
@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_xavier(shape, gain):
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    _check_uniform(_sample(lambda t: init.xavier_uniform_(t, gain=gain), shape), math.sqrt(3.0) * std)
    _check_normal(_sample(lambda t: init.xavier_normal_(t, gain), shape), std)


@pytest.mark.parametrize("a, mode, nonlinearity", [
    (0, "fan_in", "leaky_relu"), (math.sqrt(5), "fan_in", "leaky_relu"), (0, "fan_out", "relu"),
    (0.1, "fan_out", "leaky_relu"), (0, "fan_in", "tanh"), (0, "fan_in", "selu"),
])
@pytest.mark.parametrize("shape", [(400, 500), (300, 20, 3, 3)])
def test_kaiming(a, mode, nonlinearity, shape):
    fan = torch.nn.init._calculate_correct_fan(torch.empty(shape), mode)
    std = torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    _check_uniform(_sample(lambda t: init.kaiming_uniform_(t, a=a, mode=mode, nonlinearity=nonlinearity), shape),
                   math.sqrt(3.0) * std)
    _check_normal(_sample(lambda t: init.kaiming_normal_(t, a, mode, nonlinearity), shape), std)


def test_kaiming_on_zero_elements_warns_and_is_a_no_op():
    t = dl.empty(0, 3)
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        assert init.kaiming_uniform_(t) is t
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        init.kaiming_normal_(t)


def _truncnorm_moments(mean, std, a, b):
    """Mean and std of N(mean, std^2) truncated to [a, b] (closed form)."""
    pdf = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    al, be = (a - mean) / std, (b - mean) / std
    z = cdf(be) - cdf(al)
    m = mean + std * (pdf(al) - pdf(be)) / z
    var = std ** 2 * (1 + (al * pdf(al) - be * pdf(be)) / z - ((pdf(al) - pdf(be)) / z) ** 2)
    return m, math.sqrt(var)


@pytest.mark.filterwarnings("ignore:mean is more than 2 std")
@pytest.mark.parametrize("mean, std, a, b", [
    (0.0, 1.0, -2.0, 2.0),      # most mass inside: redraw normals
    (0.0, 0.02, -0.04, 0.04),   # timm/ViT-style
    (0.0, 1.0, 0.5, 3.0),       # one-sided window
    (0.0, 1.0, 2.5, 4.0),       # little mass inside: uniform proposals with rejection
    (1.0, 0.5, -1.0, 0.5),      # mean outside the window
])
def test_trunc_normal_bounds_and_moments(mean, std, a, b):
    w = init.trunc_normal_(dl.empty(200, 500), mean, std, a, b).numpy().astype(np.float64)
    assert w.min() >= a and w.max() <= b
    m, s = _truncnorm_moments(mean, std, a, b)
    assert abs(w.mean() - m) < 0.01 * (b - a) and abs(w.std() - s) < 0.02 * s
    t = torch.nn.init.trunc_normal_(torch.empty(20000, dtype=torch.float64), mean, std, a, b)  # (slow sampler)
    assert abs(t.mean().item() - m) < 0.01 * (b - a)  # the closed form agrees with PyTorch's sampler


def test_trunc_normal_far_mean_warns():
    with pytest.warns(UserWarning, match="mean is more than 2 std from"):
        init.trunc_normal_(dl.empty(10), mean=5.0, std=1.0, a=-1.0, b=1.0)


def test_constant_ones_zeros_eye_match_torch():
    assert init.constant_(dl.empty(2, 3), 0.3).numpy().tolist() == torch.nn.init.constant_(
        torch.empty(2, 3), 0.3).numpy().tolist()
    assert init.ones_(dl.empty(4)).tolist() == [1.0] * 4
    assert init.zeros_(dl.ones(2, 2)).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    for shape in [(3, 3), (2, 4), (4, 2)]:
        np.testing.assert_array_equal(init.eye_(dl.empty(*shape)).numpy(), torch.nn.init.eye_(torch.empty(shape)))
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions"):
        init.eye_(dl.empty(2, 2, 2))


@pytest.mark.parametrize("shape, groups", [((4, 4, 3), 1), ((6, 2, 3, 3), 2), ((4, 6, 3, 2), 1), ((6, 3, 3, 2, 4), 3),
                                           ((2, 5, 5), 2)])
def test_dirac_matches_torch(shape, groups):
    np.testing.assert_array_equal(init.dirac_(dl.ones(*shape), groups).numpy(),
                                  torch.nn.init.dirac_(torch.ones(shape), groups).numpy())


def test_dirac_conv_passes_input_through():
    conv = dl.nn.Conv2d(3, 3, 3, padding=1, bias=False)
    init.dirac_(conv.weight)
    x = dl.randn(2, 3, 5, 5)
    np.testing.assert_allclose(conv(x).detach().numpy(), x.numpy(), atol=1e-6)


@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (7, 3), (4, 2, 3, 3), (6, 1, 2)])
@pytest.mark.parametrize("dtype", [dl.float32, dl.float64])
def test_orthogonal(shape, dtype):
    gain = 1.7
    w = init.orthogonal_(dl.empty(*shape, dtype=dtype), gain=gain).numpy().reshape(shape[0], -1) / gain
    rows, cols = w.shape
    gram = w @ w.T if rows <= cols else w.T @ w
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-5 if dtype == dl.float32 else 1e-12)


def test_orthogonal_is_haar_distributed():
    # With R's diagonal made positive, Q is Haar: every entry has mean 0 and variance 1/n.
    n, draws = 3, 1500
    qs = np.stack([init.orthogonal_(dl.empty(n, n, dtype=dl.float64)).numpy() for _ in range(draws)])
    assert np.abs(qs.mean(0)).max() < 0.05
    np.testing.assert_allclose((qs ** 2).mean(0), 1.0 / n, atol=0.03)
    dets = np.linalg.det(qs)
    assert 0.4 < (dets > 0).mean() < 0.6  # both components of O(n)


def test_orthogonal_errors_and_empty():
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(dl.empty(3))
    t = dl.empty(0, 3)
    assert init.orthogonal_(t) is t


def test_sparse():
    w = init.sparse_(dl.empty(10, 40), sparsity=0.25, std=0.5).numpy()
    assert ((w == 0).sum(0) == math.ceil(0.25 * 10)).all()
    nz = w[w != 0]
    assert abs(nz.std() - 0.5) < 0.08


def test_inits_run_without_autograd_and_return_their_tensor():
    p = dl.nn.Parameter(dl.empty(30, 20))
    for fn in (init.uniform_, init.normal_, init.xavier_uniform_, init.xavier_normal_, init.kaiming_uniform_,
               init.kaiming_normal_, init.orthogonal_, init.trunc_normal_, init.zeros_, init.ones_, init.eye_,
               lambda t: init.constant_(t, 2.0), lambda t: init.sparse_(t, 0.1)):
        out = fn(p)
        assert out is p and p.is_leaf and p.grad_fn is None and p.requires_grad


def test_generator_makes_fills_reproducible():
    for fn in (init.uniform_, init.normal_, init.xavier_uniform_, init.kaiming_normal_, init.orthogonal_,
               init.trunc_normal_):
        g1, g2 = dl.Generator(), dl.Generator()
        g1.manual_seed(7)
        g2.manual_seed(7)
        a = fn(dl.empty(4, 5), generator=g1).numpy()
        b = fn(dl.empty(4, 5), generator=g2).numpy()
        np.testing.assert_array_equal(a, b)


def test_deprecated_aliases_warn():
    for name in ("uniform", "normal", "constant", "xavier_uniform", "kaiming_normal", "orthogonal"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            args = (dl.empty(3, 3), 0.5) if name == "constant" else (dl.empty(3, 3),)
            getattr(init, name)(*args)
        assert any(issubclass(w.category, FutureWarning) and f"nn.init.{name}_" in str(w.message) for w in caught)
