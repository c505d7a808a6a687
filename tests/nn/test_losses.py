"""Loss modules against PyTorch: the same constructor call on both frameworks, forward values and
gradients (of the inputs, and of the targets where PyTorch differentiates them) in float64 and
float32, for each reduction; reprs and buffers (class weights) in the state dict."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import danlu as dl

from .test_layers import DL_DTYPE, TORCH_DTYPE, compare_modules


def _torch_t(a):
    return torch.tensor(a)


def _dl_t(a):
    return dl.tensor(a)


@dataclass
class LossCase:
    name: str
    ctor: Callable          # ctor(nn, T): T turns a numpy array into that framework's tensor
    make: Callable          # make(rng, dtype) -> list of numpy inputs
    grad: tuple             # which inputs are differentiated

    def __repr__(self):
        return self.name


def _f(rng, shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, shape)


def _sign(rng, shape):
    return rng.choice([-1.0, 1.0], shape)


W3 = np.array([0.2, 1.0, 3.0])
W4 = np.array([0.5, 2.0, 1.0, 1.5])

CASES = []
for red in ("mean", "sum", "none"):
    CASES += [
        LossCase(f"l1_{red}", lambda nn, T, r=red: nn.L1Loss(reduction=r),
                 lambda g: [_f(g, (3, 4)), _f(g, (3, 4))], (True, True)),
        LossCase(f"mse_{red}", lambda nn, T, r=red: nn.MSELoss(reduction=r),
                 lambda g: [_f(g, (3, 4)), _f(g, (3, 4))], (True, True)),
        LossCase(f"cross_entropy_{red}", lambda nn, T, r=red: nn.CrossEntropyLoss(reduction=r),
                 lambda g: [_f(g, (5, 3)), g.integers(0, 3, 5)], (True, False)),
        LossCase(f"cross_entropy_weight_ignore_{red}",
                 lambda nn, T, r=red: nn.CrossEntropyLoss(weight=T(W3), ignore_index=1, reduction=r),
                 lambda g: [_f(g, (6, 3)), np.array([0, 1, 2, 2, 1, 0])], (True, False)),
        LossCase(f"cross_entropy_smoothing_{red}",
                 lambda nn, T, r=red: nn.CrossEntropyLoss(weight=T(W3), label_smoothing=0.2, ignore_index=0,
                                                          reduction=r),
                 lambda g: [_f(g, (5, 3)), np.array([0, 1, 2, 2, 1])], (True, False)),
        LossCase(f"cross_entropy_spatial_{red}", lambda nn, T, r=red: nn.CrossEntropyLoss(reduction=r),
                 lambda g: [_f(g, (2, 3, 2, 2)), g.integers(0, 3, (2, 2, 2))], (True, False)),
        LossCase(f"cross_entropy_probs_{red}",
                 lambda nn, T, r=red: nn.CrossEntropyLoss(weight=T(W3), label_smoothing=0.1, reduction=r),
                 lambda g: [_f(g, (4, 3)), g.dirichlet(np.ones(3), 4)], (True, True)),
        LossCase(f"nll_{red}", lambda nn, T, r=red: nn.NLLLoss(weight=T(W4), ignore_index=2, reduction=r),
                 lambda g: [np.log(g.dirichlet(np.ones(4), 5)), np.array([0, 2, 3, 1, 2])], (True, False)),
        LossCase(f"nll_spatial_{red}", lambda nn, T, r=red: nn.NLLLoss(reduction=r),
                 lambda g: [_f(g, (2, 4, 3)), g.integers(0, 4, (2, 3))], (True, False)),
        LossCase(f"smooth_l1_{red}", lambda nn, T, r=red: nn.SmoothL1Loss(reduction=r, beta=0.5),
                 lambda g: [_f(g, (3, 4)), _f(g, (3, 4))], (True, True)),
        LossCase(f"huber_{red}", lambda nn, T, r=red: nn.HuberLoss(reduction=r, delta=0.7),
                 lambda g: [_f(g, (3, 4)), _f(g, (3, 4))], (True, True)),
        LossCase(f"bce_{red}", lambda nn, T, r=red: nn.BCELoss(weight=T(W4), reduction=r),
                 lambda g: [_f(g, (3, 4), 0.05, 0.95), _f(g, (3, 4), 0.0, 1.0)], (True, True)),
        LossCase(f"bce_logits_{red}",
                 lambda nn, T, r=red: nn.BCEWithLogitsLoss(weight=T(W4), pos_weight=T(W4[::-1].copy()), reduction=r),
                 lambda g: [_f(g, (3, 4), -4, 4), _f(g, (3, 4), 0.0, 1.0)], (True, True)),
        LossCase(f"kl_div_log_target_{red}", lambda nn, T, r=red: nn.KLDivLoss(reduction=r, log_target=True),
                 lambda g: [np.log(g.dirichlet(np.ones(4), 3)), np.log(g.dirichlet(np.ones(4), 3))], (True, True)),
        LossCase(f"poisson_nll_{red}", lambda nn, T, r=red: nn.PoissonNLLLoss(reduction=r),
                 lambda g: [_f(g, (3, 4)), g.integers(0, 5, (3, 4)).astype(float)], (True, False)),
        LossCase(f"poisson_nll_full_rates_{red}",
                 lambda nn, T, r=red: nn.PoissonNLLLoss(log_input=False, full=True, reduction=r),
                 lambda g: [_f(g, (3, 4), 0.1, 3.0), g.integers(0, 5, (3, 4)).astype(float)], (True, False)),
        LossCase(f"gaussian_nll_{red}", lambda nn, T, r=red: nn.GaussianNLLLoss(full=True, reduction=r),
                 lambda g: [_f(g, (3, 4)), _f(g, (3, 4)), _f(g, (3, 4), 0.1, 2.0)], (True, True, True)),
        LossCase(f"gaussian_nll_var_per_sample_{red}", lambda nn, T, r=red: nn.GaussianNLLLoss(reduction=r),
                 lambda g: [_f(g, (3, 4)), _f(g, (3, 4)), _f(g, (3,), 0.1, 2.0)], (True, True, True)),
        LossCase(f"margin_ranking_{red}", lambda nn, T, r=red: nn.MarginRankingLoss(margin=0.3, reduction=r),
                 lambda g: [_f(g, (6,)), _f(g, (6,)), _sign(g, (6,))], (True, True, False)),
        LossCase(f"hinge_embedding_{red}", lambda nn, T, r=red: nn.HingeEmbeddingLoss(margin=0.8, reduction=r),
                 lambda g: [_f(g, (3, 4)), _sign(g, (3, 4))], (True, False)),
        LossCase(f"soft_margin_{red}", lambda nn, T, r=red: nn.SoftMarginLoss(reduction=r),
                 lambda g: [_f(g, (3, 4)), _sign(g, (3, 4))], (True, False)),
        LossCase(f"multilabel_soft_margin_{red}",
                 lambda nn, T, r=red: nn.MultiLabelSoftMarginLoss(weight=T(W4), reduction=r),
                 lambda g: [_f(g, (3, 4)), g.integers(0, 2, (3, 4)).astype(float)], (True, False)),
        LossCase(f"cosine_embedding_{red}", lambda nn, T, r=red: nn.CosineEmbeddingLoss(margin=0.1, reduction=r),
                 lambda g: [_f(g, (5, 3)), _f(g, (5, 3)), _sign(g, (5,))], (True, True, False)),
        LossCase(f"triplet_margin_{red}", lambda nn, T, r=red: nn.TripletMarginLoss(margin=2.0, reduction=r),
                 lambda g: [_f(g, (5, 3)), _f(g, (5, 3)), _f(g, (5, 3))], (True, True, True)),
        LossCase(f"triplet_margin_p1_swap_{red}",
                 lambda nn, T, r=red: nn.TripletMarginLoss(margin=1.5, p=1.0, swap=True, reduction=r),
                 lambda g: [_f(g, (5, 3)), _f(g, (5, 3)), _f(g, (5, 3))], (True, True, True)),
        LossCase(f"triplet_distance_{red}", lambda nn, T, r=red: nn.TripletMarginWithDistanceLoss(reduction=r),
                 lambda g: [_f(g, (5, 3)), _f(g, (5, 3)), _f(g, (5, 3))], (True, True, True)),
        LossCase(f"triplet_distance_custom_swap_{red}",
                 lambda nn, T, r=red: nn.TripletMarginWithDistanceLoss(
                     distance_function=lambda a, b: (a - b).abs().sum(-1), margin=3.0, swap=True, reduction=r),
                 lambda g: [_f(g, (5, 3)), _f(g, (5, 3)), _f(g, (5, 3))], (True, True, True)),
    ]
for red in ("batchmean", "sum", "mean", "none"):
    CASES.append(LossCase(f"kl_div_{red}", lambda nn, T, r=red: nn.KLDivLoss(reduction=r),
                          lambda g: [np.log(g.dirichlet(np.ones(4), 3)), g.dirichlet(np.ones(4), 3)], (True, True)))
CASES += [
    LossCase("cross_entropy_unbatched", lambda nn, T: nn.CrossEntropyLoss(), lambda g: [_f(g, (4,)), np.array(2)],
             (True, False)),
    LossCase("cross_entropy_all_ignored", lambda nn, T: nn.CrossEntropyLoss(ignore_index=1),
             lambda g: [_f(g, (3, 2)), np.array([1, 1, 1])], (True, False)),
    LossCase("bce_logits_extreme", lambda nn, T: nn.BCEWithLogitsLoss(),
             lambda g: [np.array([-200.0, -30.0, 0.0, 30.0, 200.0]), np.array([1.0, 0.0, 0.5, 1.0, 0.0])],
             (True, True)),
    LossCase("bce_saturated_value", lambda nn, T: nn.BCELoss(reduction="none"),
             lambda g: [np.array([0.0, 1.0, 0.3]), np.array([1.0, 0.0, 0.3])], (False, False)),
    LossCase("pairwise_distance", lambda nn, T: nn.PairwiseDistance(p=3.0, keepdim=True),
             lambda g: [_f(g, (4, 3)), _f(g, (4, 3))], (True, True)),
    LossCase("cosine_similarity", lambda nn, T: nn.CosineSimilarity(dim=0), lambda g: [_f(g, (4, 3)), _f(g, (4, 3))],
             (True, True)),
]


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_loss_matches_torch(case, dtype):
    rng = np.random.default_rng(0)
    arrays = [a if a.dtype.kind in "iu" else a.astype(dtype) for a in map(np.asarray, case.make(rng))]
    arrays = [a.astype(np.int64) if a.dtype.kind in "iu" else a for a in arrays]
    tm = case.ctor(torch.nn, lambda a: torch.tensor(a, dtype=TORCH_DTYPE[dtype]))
    dm = case.ctor(dl.nn, lambda a: dl.tensor(a, dtype=DL_DTYPE[dtype]))
    compare_modules(dm, tm, arrays, dtype, requires_grad=list(case.grad))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_loss_repr_and_buffers(case):
    tm = case.ctor(torch.nn, _torch_t)
    dm = case.ctor(dl.nn, _dl_t)
    if "custom" not in case.name:  # a lambda distance function is printed by neither
        assert repr(dm) == repr(tm)
    t_sd, d_sd = tm.state_dict(), dm.state_dict()
    assert list(d_sd) == list(t_sd)
    for k in t_sd:
        np.testing.assert_array_equal(d_sd[k].numpy(), t_sd[k].numpy())


def test_bce_gradients_at_saturated_probabilities():
    x, t = np.array([0.0, 1.0, 0.3]), np.array([1.0, 0.0, 0.3])
    compare_modules(dl.nn.BCELoss(reduction="none"), torch.nn.BCELoss(reduction="none"), [x, t], "float64")


def test_loss_weight_follows_module_dtype():
    m = dl.nn.CrossEntropyLoss(weight=dl.tensor([1.0, 2.0])).double()
    assert m.weight.dtype == dl.float64
    x = dl.randn(3, 2, dtype=dl.float64, requires_grad=True)
    m(x, dl.tensor([0, 1, 1])).backward()
    assert x.grad.dtype == dl.float64


def test_legacy_size_average_reduce_arguments():
    for kwargs, expected in [(dict(size_average=False), "sum"), (dict(reduce=False), "none"),
                             (dict(size_average=True, reduce=True), "mean")]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = dl.nn.MSELoss(**kwargs)
        assert m.reduction == expected
        assert any("size_average and reduce args will be deprecated" in str(w.message) for w in caught)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert torch.nn.MSELoss(**kwargs).reduction == expected


def test_loss_argument_errors_like_torch():
    for nn_ in (torch.nn, dl.nn):
        with pytest.raises(ValueError, match="expected margin to be greater than 0"):
            nn_.TripletMarginLoss(margin=0.0)
        with pytest.raises(ValueError, match="expected margin to be greater than 0"):
            nn_.TripletMarginWithDistanceLoss(margin=-1.0)
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        dl.nn.L1Loss(reduction="avg")(dl.zeros(2), dl.zeros(2))


def test_training_a_classifier_reduces_cross_entropy():
    dl.manual_seed(0)
    g = np.random.default_rng(0)
    x = dl.tensor(g.normal(size=(64, 4)).astype(np.float32))
    y = dl.tensor((x.numpy()[:, 0] + x.numpy()[:, 1] > 0).astype(np.int64))
    net = dl.nn.Sequential(dl.nn.Linear(4, 16), dl.nn.ReLU(), dl.nn.Linear(16, 2))
    loss_fn = dl.nn.CrossEntropyLoss()
    first = None
    for _ in range(30):
        net.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        first = first if first is not None else loss.item()
        with dl.no_grad():
            for p in net.parameters():
                p -= 0.3 * p.grad
    assert loss.item() < 0.7 * first
