"""danlu.optim.lr_scheduler against torch.optim.lr_scheduler: lr sequences must be exactly equal."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import danlu as dl
import danlu.optim as optim
from danlu.optim import lr_scheduler as dls

from .helpers import Runner, assert_params_close, assert_plain, json_roundtrip

ths = torch.optim.lr_scheduler

pytestmark = pytest.mark.filterwarnings("ignore:The epoch parameter", "ignore:Detected call of",
                                        "ignore:To get the last learning rate")

SPEC = [((0,), dict(lr=0.1)), ((1, 2), dict(lr=0.05))]  # two groups with their own lrs


class Scale:
    """A callable object: LambdaLR saves its __dict__ in the state dict."""

    def __init__(self, rate):
        self.rate = rate

    def __call__(self, epoch):
        return self.rate ** epoch


# name -> (builder(scheduler_module, optimizer) -> scheduler, epochs to run)
SCHEDULES = {
    "StepLR": (lambda m, o: m.StepLR(o, step_size=7, gamma=0.3), 60),
    "MultiStepLR": (lambda m, o: m.MultiStepLR(o, milestones=[30, 5, 12, 12], gamma=0.5), 40),
    "ExponentialLR": (lambda m, o: m.ExponentialLR(o, gamma=0.93), 50),
    "CosineAnnealingLR": (lambda m, o: m.CosineAnnealingLR(o, T_max=17, eta_min=0.001), 100),
    "CosineAnnealingLR-eta0": (lambda m, o: m.CosineAnnealingLR(o, T_max=10), 45),
    "LambdaLR": (lambda m, o: m.LambdaLR(o, lambda e: 0.95 ** e + 0.01 * (e % 3)), 40),
    "LambdaLR-per-group": (lambda m, o: m.LambdaLR(o, [lambda e: 1 / (e + 1), Scale(0.9)]), 40),
    "MultiplicativeLR": (lambda m, o: m.MultiplicativeLR(o, lambda e: 0.97 if e % 2 else 1.01), 40),
    "LinearLR": (lambda m, o: m.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=10), 30),
    "LinearLR-decay": (lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=25), 30),
    "ConstantLR": (lambda m, o: m.ConstantLR(o, factor=0.3, total_iters=6), 30),
    "PolynomialLR": (lambda m, o: m.PolynomialLR(o, total_iters=20, power=2.0), 30),
    "CosineAnnealingWarmRestarts": (lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=7, T_mult=2, eta_min=0.01), 80),
    "CosineAnnealingWarmRestarts-1": (lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=5), 40),
    "OneCycleLR-cos": (lambda m, o: m.OneCycleLR(o, max_lr=[0.2, 0.1], total_steps=60), 59),
    "OneCycleLR-linear": (lambda m, o: m.OneCycleLR(o, max_lr=0.15, epochs=5, steps_per_epoch=10,
                                                    anneal_strategy="linear", pct_start=0.25), 49),
    "OneCycleLR-three-phase": (lambda m, o: m.OneCycleLR(o, max_lr=0.2, total_steps=50, three_phase=True,
                                                         base_momentum=[0.8, 0.7], max_momentum=0.9,
                                                         div_factor=10.0, final_div_factor=100.0), 49),
    "OneCycleLR-no-momentum": (lambda m, o: m.OneCycleLR(o, max_lr=0.2, total_steps=30, cycle_momentum=False), 29),
    "SequentialLR": (lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=5),
                                                     m.CosineAnnealingLR(o, T_max=20)], milestones=[5]), 40),
    "SequentialLR-3": (lambda m, o: m.SequentialLR(o, [m.ConstantLR(o, factor=0.5, total_iters=3),
                                                       m.ExponentialLR(o, gamma=0.9),
                                                       m.StepLR(o, step_size=4, gamma=0.5)],
                                                   milestones=[4, 15]), 40),
    "ChainedScheduler": (lambda m, o: m.ChainedScheduler([m.ConstantLR(o, factor=0.1, total_iters=8),
                                                          m.ExponentialLR(o, gamma=0.9)]), 40),
    "ChainedScheduler-cos": (lambda m, o: m.ChainedScheduler([m.LinearLR(o, start_factor=0.5, total_iters=4),
                                                              m.CosineAnnealingLR(o, T_max=12),
                                                              m.MultiStepLR(o, [7, 20])]), 50),
}

OPTIMIZERS = {"SGD": dict(lr=0.1, momentum=0.9), "Adam": dict(lr=0.1)}


class Side:
    """One framework's optimizer (two groups, real steps on the shared problem) and scheduler."""

    def __init__(self, lib, opt_name, builder):
        self.runner = Runner(lib, (optim if lib == "dl" else torch.optim).__dict__[opt_name],
                             OPTIMIZERS[opt_name], spec=SPEC)
        self.opt = self.runner.opt
        self.mod = dls if lib == "dl" else ths
        self.sched = builder(self.mod, self.opt) if builder else None

    def record(self):
        groups = self.opt.param_groups
        return (list(self.sched.get_last_lr()), [g["lr"] for g in groups],
                [g.get("momentum") for g in groups], [tuple(g["betas"]) if "betas" in g else None for g in groups])

    def epoch(self, *args):
        self.runner.step()
        self.sched.step(*args)
        return self.record()


def _run(side, epochs):
    out = [side.record()]
    for _ in range(epochs):
        out.append(side.epoch())
    return out


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_lr_sequence_matches_torch(name, opt_name):
    builder, epochs = SCHEDULES[name]
    d, t = Side("dl", opt_name, builder), Side("th", opt_name, builder)
    seq_d, seq_t = _run(d, epochs), _run(t, epochs)
    assert seq_d == seq_t  # exact: the same float formulas in the same order
    assert len({r[1][0] for r in seq_d}) > 1  # the schedule did change the lr
    assert_params_close(d.runner.values(), t.runner.values(), rtol=1e-12, atol=1e-13)
    keys = {"initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"}
    for gd, gt in zip(d.opt.param_groups, t.opt.param_groups, strict=True):
        assert {k: gd[k] for k in keys & set(gd)} == {k: gt[k] for k in keys & set(gt)}
    assert getattr(d.sched, "last_epoch", None) == getattr(t.sched, "last_epoch", None)
    assert all(np.isfinite(v).all() for v in d.runner.values())


def test_two_schedulers_on_one_optimizer():
    """Chaining by stepping two schedulers of the same optimizer, as in PyTorch's docs."""
    sides = []
    for lib, m in (("dl", dls), ("th", ths)):
        s = Side(lib, "SGD", None)
        a, b = m.ExponentialLR(s.opt, gamma=0.9), m.MultiStepLR(s.opt, milestones=[5, 9], gamma=0.1)
        seq = []
        for _ in range(20):
            s.runner.step()
            a.step()
            b.step()
            seq.append((a.get_last_lr(), b.get_last_lr()))
        sides.append(seq)
    assert sides[0] == sides[1]


def _state_round_trip(name, opt_name, split):
    """Train `split` epochs, checkpoint (through JSON), resume in fresh objects, and finish."""
    builder, epochs = SCHEDULES[name]
    ref = Side("dl", opt_name, builder)
    full = _run(ref, epochs)
    first = Side("dl", opt_name, builder)
    _run(first, split)
    opt_sd = json_roundtrip(first.opt.state_dict())
    sched_sd = json_roundtrip(first.sched.state_dict())
    assert_plain(first.sched.state_dict())
    resumed = Side("dl", opt_name, builder)  # the scheduler is built first, then the states load
    for p, q in zip(resumed.runner.params, first.runner.params, strict=True):
        with dl.no_grad():
            p.copy_(q)
    resumed.opt.load_state_dict(opt_sd)
    resumed.sched.load_state_dict(sched_sd)
    rest = [resumed.epoch() for _ in range(epochs - split)]
    return full[split + 1:], rest, ref, resumed


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_state_dict_round_trip(name):
    opt_name = "Adam" if name.startswith("OneCycle") else "SGD"
    split = SCHEDULES[name][1] // 2
    expected, got, ref, resumed = _state_round_trip(name, opt_name, split)
    assert got == expected
    assert_params_close(resumed.runner.values(), ref.runner.values(), rtol=0, atol=0)


def test_lambda_state_dict_saves_callable_objects():
    for lib, m in (("dl", dls), ("th", ths)):
        s = Side(lib, "SGD", None)
        sched = m.LambdaLR(s.opt, [lambda e: 1.0, Scale(0.5)])
        sd = sched.state_dict()
        assert sd["lr_lambdas"] == [None, {"rate": 0.5}]
    sd["lr_lambdas"][1] = {"rate": 0.25}
    s = Side("dl", "SGD", None)
    sched = dls.LambdaLR(s.opt, [lambda e: 1.0, Scale(0.5)])
    sched.load_state_dict(sd)
    assert sched.lr_lambdas[1].rate == 0.25


def test_sequential_state_dict_nests_inner_states():
    side = Side("dl", "SGD", SCHEDULES["SequentialLR"][0])
    sd = side.sched.state_dict()
    assert [s["T_max"] if "T_max" in s else s["total_iters"] for s in sd["_schedulers"]] == [5, 20]
    assert_plain(sd)


# -- step(epoch): the deprecated closed forms ------------------------------------------------------

@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR",
                                  "ConstantLR", "PolynomialLR", "LambdaLR"])
def test_step_with_epoch_uses_closed_form(name):
    builder, _ = SCHEDULES[name]
    seqs = []
    for lib in ("dl", "th"):
        s = Side(lib, "SGD", builder)
        seq = []
        for epoch in (3, 4, 10, 7, 25, 26, 0, 13):
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                s.runner.step()
                s.sched.step(epoch)
            assert any("epoch parameter" in str(x.message) for x in w)
            seq.append(s.record())
        seqs.append(seq)
    assert seqs[0] == seqs[1]


@pytest.mark.parametrize("T_mult", [1, 2, 3])
def test_warm_restarts_fractional_epochs(T_mult):
    seqs = []
    for lib in ("dl", "th"):
        s = Side(lib, "SGD", lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=T_mult, eta_min=0.001))
        seq = []
        iters = 4
        for epoch in range(12):
            for i in range(iters):
                s.runner.step()
                s.sched.step(epoch + i / iters)
                seq.append((s.record(), s.sched.T_cur, s.sched.T_i, s.sched.last_epoch))
        s.sched.step(5)
        s.sched.step()
        seq.append(s.record())
        seqs.append(seq)
    assert seqs[0] == seqs[1]
    with pytest.raises(ValueError, match="Expected non-negative epoch"):
        s.sched.step(-1)


# -- ReduceLROnPlateau -------------------------------------------------------------------------------

METRICS = [5.0, 4.0, 4.0, 3.9999, 4.1, 4.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0, 2.99, 2.995, 2.0, 2.5, 2.5, 2.5, 2.5,
           2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]

PLATEAU = [
    dict(),
    dict(patience=2),
    dict(patience=1, factor=0.5, cooldown=2),
    dict(patience=0, factor=0.5, min_lr=0.01),
    dict(patience=1, factor=0.5, min_lr=[0.02, 0.001]),
    dict(mode="max", patience=1, factor=0.3),
    dict(mode="min", threshold_mode="abs", threshold=0.05, patience=1),
    dict(mode="max", threshold_mode="abs", threshold=0.2, patience=0, cooldown=1),
    dict(mode="min", threshold=0.01, patience=1, factor=0.9, eps=0.004),
]


@pytest.mark.parametrize("kwargs", PLATEAU, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
def test_reduce_lr_on_plateau(kwargs):
    seqs = []
    for lib, m in (("dl", dls), ("th", ths)):
        s = Side(lib, "SGD", None)
        sched = m.ReduceLROnPlateau(s.opt, **kwargs)
        seq = []
        for metric in METRICS:
            s.runner.step()
            sched.step(dl.tensor(metric) if lib == "dl" else torch.tensor(metric))
            seq.append((sched.get_last_lr(), sched.best, sched.num_bad_epochs, sched.cooldown_counter,
                        sched.last_epoch, sched.in_cooldown))
        seqs.append(seq)
    assert seqs[0] == seqs[1]
    assert seqs[0][-1][0] != seqs[0][0][0] or kwargs.get("eps")


def test_reduce_lr_on_plateau_state_dict():
    s = Side("dl", "SGD", None)
    sched = dls.ReduceLROnPlateau(s.opt, patience=1, factor=0.5, cooldown=1)
    for metric in METRICS[:10]:
        sched.step(metric)
    sd = json_roundtrip(sched.state_dict())
    assert_plain(sched.state_dict())
    s2 = Side("dl", "SGD", None)
    s2.opt.load_state_dict(json_roundtrip(s.opt.state_dict()))
    sched2 = dls.ReduceLROnPlateau(s2.opt)
    sched2.load_state_dict(sd)
    for metric in METRICS[10:]:
        sched.step(metric)
        sched2.step(metric)
        assert sched.get_last_lr() == sched2.get_last_lr()
        assert (sched.best, sched.num_bad_epochs, sched.cooldown_counter) == \
               (sched2.best, sched2.num_bad_epochs, sched2.cooldown_counter)


def test_reduce_lr_on_plateau_errors():
    s = Side("dl", "SGD", None)
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        dls.ReduceLROnPlateau(s.opt, factor=1.0)
    with pytest.raises(ValueError, match="mode what is unknown"):
        dls.ReduceLROnPlateau(s.opt, mode="what")
    with pytest.raises(ValueError, match="threshold mode x is unknown"):
        dls.ReduceLROnPlateau(s.opt, threshold_mode="x")
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 1"):
        dls.ReduceLROnPlateau(s.opt, min_lr=[0.1])
    sched = dls.ReduceLROnPlateau(s.opt, min_lr=[0.0, 0.0], patience=0)
    s.opt.add_param_group({"params": [dl.zeros(1, requires_grad=True)], "lr": 1.0})
    sched.step(1.0)
    with pytest.raises(RuntimeError, match="differs from when `ReduceLROnPlateau` was initialized"):
        sched.step(2.0)


# -- construction, resumption and warnings ------------------------------------------------------

def test_initial_lr_and_resume():
    s = Side("dl", "SGD", None)
    with pytest.raises(KeyError, match="initial_lr"):
        dls.StepLR(s.opt, step_size=2, last_epoch=5)
    dls.StepLR(s.opt, step_size=2)
    assert [g["initial_lr"] for g in s.opt.param_groups] == [0.1, 0.05]
    # Resuming at a later epoch continues from there; compare with torch.
    seqs = []
    for lib, m in (("dl", dls), ("th", ths)):
        side = Side(lib, "SGD", None)
        for g in side.opt.param_groups:
            g["initial_lr"] = g["lr"] * 2
        sched = m.CosineAnnealingLR(side.opt, T_max=10, last_epoch=4)
        seq = [list(sched.get_last_lr())]
        for _ in range(12):
            side.runner.step()
            sched.step()
            seq.append(list(sched.get_last_lr()))
        seqs.append(seq)
    assert seqs[0] == seqs[1]


def test_warnings_like_torch():
    for lib, m in (("dl", dls), ("th", ths)):
        s = Side(lib, "SGD", None)
        sched = m.StepLR(s.opt, step_size=2)
        with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
            sched.step()
        with pytest.warns(UserWarning, match="get_last_lr"):
            sched.get_lr()
    s = Side("dl", "SGD", None)
    sched = dls.StepLR(s.opt, step_size=2)
    s.runner.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()


def test_scheduler_sees_custom_step_override():
    class Plain(optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, dict(lr=0.1))

        def step(self, closure=None):
            return None

    opt = Plain([dl.zeros(1, requires_grad=True)])
    sched = dls.ExponentialLR(opt, gamma=0.5)
    opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()
    assert sched.get_last_lr() == [0.05]


_BAD = [
    ("ConstantLR", dict(factor=1.5)), ("LinearLR", dict(start_factor=0.0)), ("LinearLR", dict(end_factor=1.5)),
    ("CosineAnnealingWarmRestarts", dict(T_0=0)), ("CosineAnnealingWarmRestarts", dict(T_0=2, T_mult=0)),
    ("CosineAnnealingWarmRestarts", dict(T_0=2, eta_min="x")), ("OneCycleLR", dict(max_lr=1.0)),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=0)), ("OneCycleLR", dict(max_lr=1.0, epochs=0, steps_per_epoch=2)),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=10, pct_start=1)),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=10, anneal_strategy="exp")),
    ("OneCycleLR", dict(max_lr=[1.0], total_steps=10)), ("LambdaLR", dict(lr_lambda=[lambda e: 1.0])),
]


@pytest.mark.parametrize("name,kwargs", _BAD, ids=[f"{n}-{i}" for i, (n, _) in enumerate(_BAD)])
def test_bad_arguments_raise_like_torch(name, kwargs):
    errors = []
    for lib, m in (("dl", dls), ("th", ths)):
        s = Side(lib, "SGD", None)
        with pytest.raises(ValueError) as e:
            getattr(m, name)(s.opt, **kwargs)
        errors.append(str(e.value))
    assert errors[0] == errors[1]


def test_one_cycle_errors():
    w = dl.zeros(1, requires_grad=True)
    with pytest.raises(ValueError, match="must support momentum or beta1"):
        dls.OneCycleLR(optim.Adagrad([w]), max_lr=1.0, total_steps=5)
    s = Side("dl", "SGD", lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=3))
    s.epoch()
    s.epoch()
    s.epoch()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        s.epoch()
    with pytest.raises(TypeError, match="is not an Optimizer"):
        dls.StepLR(object(), step_size=1)


def test_composite_errors():
    a, b = Side("dl", "SGD", None), Side("dl", "SGD", None)
    s1, s2 = dls.StepLR(a.opt, 2), dls.StepLR(b.opt, 2)
    with pytest.raises(ValueError, match="belong to the same optimizer"):
        dls.SequentialLR(a.opt, [s1, s2], milestones=[3])
    with pytest.raises(ValueError, match="number of milestones"):
        dls.SequentialLR(a.opt, [s1], milestones=[3])
    with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
        dls.ChainedScheduler([s1, dls.ReduceLROnPlateau(a.opt)])


def test_state_dicts_are_plain():
    for name, (builder, _) in SCHEDULES.items():
        side = Side("dl", "Adam" if name.startswith("OneCycle") else "SGD", builder)
        for _ in range(3):
            side.epoch()
        assert_plain(side.sched.state_dict(), name)
        assert_plain(side.opt.state_dict(), name)
    assert math.isinf(dls.ReduceLROnPlateau(side.opt).state_dict()["best"])


def test_one_cycle_adam_betas_tuple():
    s = Side("dl", "Adam", SCHEDULES["OneCycleLR-cos"][0])
    s.epoch()
    assert isinstance(s.opt.param_groups[0]["betas"], tuple)
    assert s.opt.param_groups[0]["betas"][1] == 0.999
    assert np.isfinite(s.runner.values()[0]).all()
