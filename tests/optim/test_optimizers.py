"""danlu.optim optimizers against torch.optim (single-tensor implementations), step for step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import danlu as dl
import danlu.optim as optim

from .helpers import INIT, Runner, assert_params_close, assert_plain, json_roundtrip, to_numpy

# (name, options): every option of every optimizer, alone and combined.
CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, weight_decay=0.1)),
    ("SGD", dict(lr=0.02, maximize=True)),
    ("SGD", dict(lr=0.03, momentum=0.5, weight_decay=0.05, nesterov=True, maximize=True)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.1)),
    ("Adam", dict(lr=0.05, maximize=True)),
    ("Adam", dict(lr=0.05, betas=(0.3, 0.4))),  # lerp weight >= 0.5: PyTorch's second formula
    ("Adam", dict(lr=0.05, eps=1e-3)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1, amsgrad=True, maximize=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.05, weight_decay=0.2)),
    ("AdamW", dict(lr=0.05, weight_decay=0.2, amsgrad=True)),
    ("AdamW", dict(lr=0.05, maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, alpha=0.3, centered=True)),  # grad_avg lerp weight 0.7
    ("RMSprop", dict(lr=0.01, weight_decay=0.1, eps=1e-4)),
    ("RMSprop", dict(lr=0.01, maximize=True, momentum=0.3)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.3)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1, eps=1e-3)),
    ("Adagrad", dict(lr=0.1, maximize=True, lr_decay=0.01)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.5)),
    ("Adadelta", dict(eps=1e-3, weight_decay=0.1)),
    ("Adadelta", dict(maximize=True)),
]

TOL = {"float64": dict(rtol=1e-12, atol=1e-13), "float32": dict(rtol=1e-5, atol=1e-6)}


def _pair(name, kwargs, dtype="float64", spec=None):
    return (Runner("dl", getattr(optim, name), kwargs, dtype, spec),
            Runner("th", getattr(torch.optim, name), kwargs, dtype, spec))


def _case_id(case):
    name, kw = case
    return name + "-" + ",".join(f"{k}={v}" for k, v in kw.items())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_matches_torch(case, dtype):
    name, kwargs = case
    d, t = _pair(name, kwargs, dtype)
    for _ in range(20):
        d.step()
        t.step()
    assert_params_close(d.values(), t.values(), **TOL[dtype])
    # Something happened: the parameters moved.
    assert all(not np.allclose(v, INIT[k]) for v, k in zip(d.values(), ("W", "b", "s"), strict=True))
    # Same state entries, same values.
    for pd, pt in zip(d.params, t.params, strict=True):
        sd, st = d.opt.state[pd], t.opt.state[pt]
        assert sorted(sd) == sorted(st)
        for key in st:
            ref = to_numpy(st[key])
            # Normwise for state: in float32 the two frameworks' gradients already differ in the last bits
            # (reduction order), and a buffer's small entries are sums with cancellation.
            tol = TOL[dtype]
            atol = max(tol["atol"], tol["rtol"] * float(np.abs(ref).max()))
            np.testing.assert_allclose(to_numpy(sd[key]), ref, rtol=tol["rtol"], atol=atol, err_msg=key)
            if key == "step":
                assert sd[key].shape == () and sd[key].dtype is dl.float32


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad", "Adadelta"])
def test_param_groups_with_own_options(name):
    extra = {"SGD": dict(momentum=0.9), "Adam": dict(betas=(0.5, 0.9)), "RMSprop": dict(centered=True),
             "Adagrad": dict(lr_decay=0.1), "Adadelta": dict(rho=0.6)}[name]
    spec = [((0,), dict(lr=0.1, **extra)), ((1, 2), dict(lr=0.01, weight_decay=0.2))]
    d, t = _pair(name, dict(lr=0.05), spec=spec)
    assert [g["lr"] for g in d.opt.param_groups] == [0.1, 0.01]
    for _ in range(20):
        d.step()
        t.step()
    assert_params_close(d.values(), t.values(), **TOL["float64"])
    keys_t = [sorted(set(g) - {"foreach", "fused", "differentiable", "capturable"}) for g in t.opt.param_groups]
    assert [sorted(g) for g in d.opt.param_groups] == keys_t
    for gd, gt in zip(d.opt.param_groups, t.opt.param_groups, strict=True):
        assert {k: v for k, v in gd.items() if k != "params"} == {k: gt[k] for k in gd if k != "params"}


@pytest.mark.parametrize("case", [c for i, c in enumerate(CASES) if i % 2 == 0 or c[0] in ("Adagrad", "Adadelta")],
                         ids=_case_id)
def test_state_dict_round_trip(case):
    name, kwargs = case
    d, t = _pair(name, kwargs)
    for _ in range(10):
        d.step()
        t.step()
    sd = d.opt.state_dict()
    assert_plain(sd)
    # PyTorch's layout: the same parameter indices and state keys.
    st = t.opt.state_dict()
    assert sorted(sd["state"]) == sorted(st["state"])
    for i in st["state"]:
        assert sorted(sd["state"][i]) == sorted(st["state"][i])
    assert [g["params"] for g in sd["param_groups"]] == [g["params"] for g in st["param_groups"]]

    # A fresh optimizer (different lr, to be overwritten) on copies of the parameters, through JSON.
    d2 = Runner("dl", getattr(optim, name), {**kwargs, "lr": 123.0})
    for p, q in zip(d2.params, d.params, strict=True):
        with dl.no_grad():
            p.copy_(q)
    d2.opt.load_state_dict(json_roundtrip(sd))
    assert d2.opt.param_groups[0]["lr"] == d.opt.param_groups[0]["lr"]
    for _ in range(10):
        d.step()
        d2.step()
        t.step()
    for a, b in zip(d.values(), d2.values(), strict=True):
        np.testing.assert_array_equal(a, b)  # identical continuation
    assert_params_close(d.values(), t.values(), **TOL["float64"])


def test_loaded_state_is_copied_and_cast():
    d = Runner("dl", optim.Adam, dict(lr=0.1))
    d.step()
    sd = d.opt.state_dict()
    p32 = [x.detach().float().requires_grad_() for x in d.params]
    opt = optim.Adam(p32, lr=0.1)
    opt.load_state_dict(sd)
    st = opt.state[p32[0]]
    assert st["exp_avg"].dtype is dl.float32 and st["step"].dtype is dl.float32
    d2 = Runner("dl", optim.Adam, dict(lr=0.1))
    d2.opt.load_state_dict(sd)
    d2.step()
    # The source optimizer's buffers are untouched by the other's steps.
    np.testing.assert_array_equal(sd["state"][0]["step"].numpy(), 1.0)
    assert d2.opt.state[d2.params[0]]["exp_avg"] is not sd["state"][0]["exp_avg"]
    assert isinstance(d2.opt.param_groups[0]["betas"], tuple)


def test_load_state_dict_errors():
    d = Runner("dl", optim.SGD, dict(lr=0.1, momentum=0.9))
    other = optim.SGD([dl.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="doesn't match the size"):
        other.load_state_dict(d.opt.state_dict())
    two = optim.SGD([{"params": [dl.zeros(1, requires_grad=True)]}, {"params": [dl.zeros(1, requires_grad=True)]}])
    with pytest.raises(ValueError, match="different number of parameter groups"):
        two.load_state_dict(other.state_dict())


def test_zero_grad():
    w = dl.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    g = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is g and w.grad.tolist() == [0.0, 0.0] and not w.grad.requires_grad
    opt.zero_grad()
    assert w.grad is None
    # A gradient that is part of a graph (create_graph=True) is detached before zeroing.
    (w ** 3).sum().backward(create_graph=True)
    assert w.grad.grad_fn is not None
    opt.zero_grad(set_to_none=False)
    assert w.grad.grad_fn is None and w.grad.tolist() == [0.0, 0.0]


def test_params_without_grad_are_skipped():
    a = dl.tensor([1.0], requires_grad=True)
    b = dl.tensor([1.0], requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    (a * 2).sum().backward()
    opt.step()
    assert b.tolist() == [1.0] and b not in opt.state and a.tolist() != [1.0]
    assert list(opt.state_dict()["state"]) == [0]


def test_zero_grad_vs_none_changes_momentum_step():
    # A zero gradient still takes a momentum step; a None gradient does not (as in PyTorch).
    for set_to_none in (False, True):
        d, t = _pair("SGD", dict(lr=0.1, momentum=0.9))
        d.step()
        t.step()
        d.opt.zero_grad(set_to_none)
        t.opt.zero_grad(set_to_none)
        d.opt.step()
        t.opt.step()
        assert_params_close(d.values(), t.values(), **TOL["float64"])


def test_closure():
    d, t = _pair("SGD", dict(lr=0.1))
    for r in (d, t):
        def closure(r=r):
            r.opt.zero_grad()
            loss = r.loss()
            loss.backward()
            return loss
        grad_mode = dl.no_grad() if r.lib == "dl" else torch.no_grad()
        with grad_mode:  # the closure runs with grad enabled even so
            loss = r.opt.step(closure)
        r.last = float(loss.detach())
    assert d.last == pytest.approx(t.last, rel=1e-12)
    assert_params_close(d.values(), t.values(), **TOL["float64"])


def test_step_is_not_recorded_by_autograd():
    w = dl.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.Adam([w], lr=0.1)
    (w * w).sum().backward()
    opt.step()
    assert w.is_leaf and w.grad_fn is None
    assert not opt.state[w]["exp_avg"].requires_grad


def test_add_param_group():
    d, t = _pair("SGD", dict(lr=0.05, momentum=0.9), spec=[((0,), {})])
    for r in (d, t):
        r.opt.add_param_group({"params": r.params[1:], "lr": 0.2})
    assert d.opt.param_groups[1]["momentum"] == 0.9
    for _ in range(5):
        d.step()
        t.step()
    assert_params_close(d.values(), t.values(), **TOL["float64"])
    with pytest.raises(ValueError, match="more than one parameter group"):
        d.opt.add_param_group({"params": [d.params[0]]})


def test_adagrad_state_created_eagerly():
    d, t = _pair("Adagrad", dict(initial_accumulator_value=0.25))
    sd, st = d.opt.state_dict(), t.opt.state_dict()
    assert sorted(sd["state"]) == sorted(st["state"]) == [0, 1, 2]
    np.testing.assert_array_equal(sd["state"][0]["sum"].numpy(), st["state"][0]["sum"].numpy())


def test_named_parameters():
    w = dl.zeros(2, requires_grad=True)
    opt = optim.SGD([("w", w)], lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["w"]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["w"]


def test_repr():
    w = dl.zeros(1, requires_grad=True)
    tw = torch.zeros(1, requires_grad=True)
    r = repr(optim.SGD([w], lr=0.1, momentum=0.9))
    rt = repr(torch.optim.SGD([tw], lr=0.1, momentum=0.9))
    keep = ("SGD", "Parameter", "    lr", "    momentum", "    dampening", "    nesterov", "    weight_decay",
            "    maximize", ")")
    assert [x for x in r.splitlines() if x.startswith(keep)] == [x for x in rt.splitlines() if x.startswith(keep)]


_BAD = [
    ("SGD", dict(lr=-1)), ("SGD", dict(lr=0.1, momentum=-0.5)), ("SGD", dict(lr=0.1, weight_decay=-1e-3)),
    ("SGD", dict(lr=0.1, nesterov=True)), ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)),
    ("Adam", dict(lr=-0.5)), ("Adam", dict(eps=-1.0)), ("Adam", dict(betas=(1.0, 0.9))),
    ("Adam", dict(betas=(0.9, -0.1))), ("Adam", dict(weight_decay=-2)), ("Adam", dict(betas=(0, 0.9))),
    ("AdamW", dict(lr=-1e-3)), ("AdamW", dict(betas=(0.9, 1.5))),
    ("RMSprop", dict(lr=-1)), ("RMSprop", dict(eps=-1)), ("RMSprop", dict(momentum=-1)),
    ("RMSprop", dict(weight_decay=-1)), ("RMSprop", dict(alpha=-0.1)),
    ("Adagrad", dict(lr=-1)), ("Adagrad", dict(lr_decay=-1)), ("Adagrad", dict(weight_decay=-1)),
    ("Adagrad", dict(initial_accumulator_value=-1)), ("Adagrad", dict(eps=-1)),
    ("Adadelta", dict(lr=-1)), ("Adadelta", dict(rho=1.5)), ("Adadelta", dict(eps=-1)),
    ("Adadelta", dict(weight_decay=-1)),
]


@pytest.mark.parametrize("case", _BAD, ids=_case_id)
def test_bad_hyperparameters_raise_like_torch(case):
    name, kwargs = case
    with pytest.raises(ValueError) as et:
        getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError) as ed:
        getattr(optim, name)([dl.zeros(1, requires_grad=True)], **kwargs)
    assert str(ed.value) == str(et.value)


def test_bad_params():
    w = dl.zeros(2, requires_grad=True)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        optim.SGD(w, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        optim.SGD([w * 2], lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.SGD([w, 3.0], lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {w}}], lr=0.1)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD([w, w], lr=0.1)


def test_user_dicts_not_mutated():
    w = dl.zeros(2, requires_grad=True)
    group = {"params": [w], "lr": 0.5}
    optim.SGD([group], lr=0.1, momentum=0.9)
    assert group == {"params": [w], "lr": 0.5}


def test_custom_optimizer_subclass():
    class SignSGD(optim.Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, dict(lr=lr))

        def _update(self, p, grad, group):
            p.add_(grad.sign() * -group["lr"])

    w = dl.tensor([1.0, -2.0], requires_grad=True, dtype=dl.float64)
    opt = SignSGD([w])
    (w * w).sum().backward()
    opt.step()
    assert w.tolist() == [0.9, -1.9]


@pytest.mark.parametrize("name,kwargs", [("Adam", dict(amsgrad=True, weight_decay=0.1)),
                                         ("RMSprop", dict(centered=True, momentum=0.5)),
                                         ("Adagrad", dict(lr_decay=0.1)), ("Adadelta", dict()),
                                         ("SGD", dict(momentum=0.9, nesterov=True, lr=0.1))])
def test_step_reads_no_tensor_values(name, kwargs, monkeypatch):
    """Inside step() no tensor value goes back to Python (needed for tracing the step into a graph)."""
    r = Runner("dl", getattr(optim, name), kwargs)
    r.step()

    def refuse(*_a, **_k):
        raise AssertionError("a tensor value was read inside step()")

    r.opt.zero_grad()
    r.loss().backward()
    for attr in ("item", "tolist", "__bool__", "__float__", "__int__", "numpy", "__array__"):
        monkeypatch.setattr(dl.Tensor, attr, refuse)
    r.opt.step()


@pytest.mark.parametrize("case", [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
                                  ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=0.1)),
                                  ("AdamW", dict(lr=0.05)), ("RMSprop", dict(centered=True, momentum=0.5)),
                                  ("Adagrad", dict(lr_decay=0.1)), ("Adadelta", dict())], ids=_case_id)
def test_compiled_step_matches_eager(case):
    """opt.step() traced into a graph once (after an eager first step creates the state) runs like eager."""
    if not hasattr(dl, "compile"):
        pytest.skip("danlu.compile is not available in this build")
    name, kwargs = case
    eager, traced = Runner("dl", getattr(optim, name), kwargs), Runner("dl", getattr(optim, name), kwargs)

    def grads(r):
        # Keep the .grad tensors (set_to_none=False): the compiled graph captures them by identity.
        r.opt.zero_grad(set_to_none=False)
        r.loss().backward()

    for r in (eager, traced):
        grads(r)
        r.opt.step()
    step = dl.compile(traced.opt.step)
    for _ in range(8):
        grads(eager)
        eager.opt.step()
        grads(traced)
        step()
    assert step.compiles == 1
    for a, b in zip(eager.values(), traced.values(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)
    for key, value in eager.opt.state[eager.params[0]].items():
        np.testing.assert_allclose(value.numpy(), traced.opt.state[traced.params[0]][key].numpy(), rtol=1e-13,
                                   atol=1e-14)


def test_step_dtype_follows_default_dtype():
    # As torch: state['step'] is float64 when the default dtype is float64, else float32.
    dl.set_default_dtype(dl.float64)
    torch_default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        d, t = _pair("Adam", dict(lr=0.1))
        d.step()
        t.step()
        assert d.opt.state[d.params[0]]["step"].dtype is dl.float64
        assert t.opt.state[t.params[0]]["step"].dtype is torch.float64
    finally:
        torch.set_default_dtype(torch_default)
    dl.set_default_dtype(dl.float32)
    r = Runner("dl", optim.RMSprop, {})
    r.step()
    assert r.opt.state[r.params[0]]["step"].dtype is dl.float32
