"""Random functions of danlu.nn.functional (the dropout family, rrelu when training) cannot be compared
with PyTorch value for value: these tests check their statistics, that the gradient is the drawn mask,
seeded reproducibility, and that they are the identity when not training."""

import numpy as np
import pytest

import danlu as dl
import danlu.nn.functional as F


def test_identity_when_not_training_or_p_zero():
    x = dl.randn(5, 6)
    x4 = dl.randn(2, 3, 4, 4)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    x3 = x4[0]
    assert F.dropout1d(x3, 0.5, training=False) is x3
    assert F.dropout2d(x4, 0.5, training=False) is x4
    assert F.dropout3d(x4, 0.0) is x4
    assert F.alpha_dropout(x, 0.5) is x  # training defaults to False, as in PyTorch
    np.testing.assert_allclose(F.rrelu(dl.tensor([-1.0, 2.0]), 0.1, 0.3).numpy(), [-0.2, 2.0], rtol=1e-6)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.8])
@pytest.mark.parametrize("dtype", [dl.float32, dl.float64])
def test_dropout_statistics(p, dtype):
    y = F.dropout(dl.ones(200, 500, dtype=dtype), p)
    assert y.dtype is dtype
    v = y.numpy()
    kept = v != 0
    np.testing.assert_allclose(v[kept], 1.0 / (1.0 - p), rtol=1e-15 if dtype is dl.float64 else 1e-7)
    n = v.size
    tol = 6 * np.sqrt(p * (1 - p) / n)  # six standard deviations of the kept fraction
    assert abs(kept.mean() - (1 - p)) < tol
    assert abs(v.mean() - 1.0) < tol / (1 - p)


def test_dropout_p_one_gives_zeros_and_zero_gradient():
    x = dl.randn(4, 5, requires_grad=True)
    y = F.dropout(x, 1.0)
    assert not y.detach().numpy().any()
    y.sum().backward()
    assert not x.grad.numpy().any()


def test_dropout_gradient_is_the_scaled_mask():
    x = dl.rand(60, 40, dtype=dl.float64) + 0.5
    x.requires_grad_(True)
    y = F.dropout(x, 0.4)
    y.sum().backward()
    mask = y.detach().numpy() != 0
    np.testing.assert_allclose(x.grad.numpy(), np.where(mask, 1 / 0.6, 0.0))
    # the gradient of the gradient: dropout is linear, so it is zero
    x2 = dl.rand(10, dtype=dl.float64, requires_grad=True)
    (g,) = dl.autograd.grad((F.dropout(x2, 0.5) ** 2).sum(), x2, create_graph=True)
    (gg,) = dl.autograd.grad(g.sum(), x2)
    assert set(np.unique(gg.numpy())) <= {0.0, 8.0}


def test_dropout_is_reproducible_under_manual_seed():
    dl.manual_seed(123)
    a = F.dropout(dl.ones(1000), 0.5).numpy()
    b_cont = F.dropout(dl.ones(1000), 0.5).numpy()
    dl.manual_seed(123)
    b = F.dropout(dl.ones(1000), 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert (a != b_cont).any()
    dl.manual_seed(7)
    c = F.dropout2d(dl.ones(4, 8, 2, 2), 0.5).numpy()
    dl.manual_seed(7)
    np.testing.assert_array_equal(c, F.dropout2d(dl.ones(4, 8, 2, 2), 0.5).numpy())


def test_dropout_inplace():
    x = dl.ones(1000)
    y = F.dropout(x, 0.5, inplace=True)
    assert y is x
    assert set(np.unique(x.numpy())) <= {0.0, 2.0} and (x.numpy() == 0).any()
    # in place on a non-leaf under autograd: the gradient still follows the mask
    w = dl.ones(200, requires_grad=True)
    h = w * 3.0
    F.dropout(h, 0.25, inplace=True)
    h.sum().backward()
    kept = h.detach().numpy() != 0
    np.testing.assert_allclose(w.grad.numpy(), np.where(kept, 3.0 / 0.75, 0.0), rtol=1e-6)
    with pytest.raises(RuntimeError, match="leaf"):
        F.dropout(dl.ones(3, requires_grad=True), 0.5, inplace=True)


def test_dropout_rejects_bad_probability():
    for f in (F.dropout, F.dropout2d, F.alpha_dropout):
        for p in (-0.1, 1.5):
            with pytest.raises(ValueError, match="between 0 and 1"):
                f(dl.ones(2, 2, 2, 2), p)


@pytest.mark.parametrize("fn,shape,lead", [(F.dropout1d, (16, 32, 5), 2), (F.dropout1d, (32, 5), 1),
                                           (F.dropout2d, (8, 16, 3, 3), 2), (F.dropout2d, (16, 3, 3), 1),
                                           (F.dropout3d, (4, 8, 2, 2, 2), 2)])
def test_feature_dropout_drops_whole_channels(fn, shape, lead):
    y = fn(dl.ones(*shape), 0.5).numpy()
    channels = y.reshape(int(np.prod(shape[:lead])), -1)
    assert np.all(channels.min(axis=1) == channels.max(axis=1)), "a channel was partly dropped"
    assert set(np.unique(channels)) <= {0.0, 2.0}
    dropped = (channels[:, 0] == 0).mean()
    assert 0.2 < dropped < 0.8


def test_feature_dropout_checks_rank():
    with pytest.raises(RuntimeError, match="dropout2d"):
        F.dropout2d(dl.ones(2, 3), 0.5)


def test_alpha_dropout_keeps_mean_and_variance():
    dl.manual_seed(0)
    x = dl.randn(400, 500, dtype=dl.float64)
    y = F.alpha_dropout(x, 0.2, training=True).numpy()
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1.0) < 0.02
    # dropped entries all take one value, a * alpha' + b, about p of them
    alpha_p, p = -1.7580993408473766, 0.2
    a = ((1 - p) * (1 + p * alpha_p ** 2)) ** -0.5
    frac = np.isclose(y, a * alpha_p - a * alpha_p * p, rtol=0, atol=1e-12).mean()
    assert abs(frac - p) < 0.01


def test_rrelu_training_draws_slopes_in_range():
    dl.manual_seed(0)
    x = -(dl.rand(2000, dtype=dl.float64) + 0.1)
    x.requires_grad_(True)
    y = F.rrelu(x, 0.1, 0.3, training=True)
    slope = (y / x).detach().numpy()
    assert slope.min() >= 0.1 and slope.max() <= 0.3 and slope.std() > 0.04
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), slope)
    pos = dl.rand(10) + 0.1
    np.testing.assert_array_equal(F.rrelu(pos, training=True).numpy(), pos.numpy())
