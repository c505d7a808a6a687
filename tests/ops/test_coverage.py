"""Every registered primitive must be exercised by some OpCase: its forward, and (if it is
differentiable) its VJP. A differentiable primitive without a VJP rule fails too."""

from danlu.core.registry import REGISTRY

from . import harness as H
from .test_ops import CASES

# Exercised by dedicated tests instead of OpCase tables (named here so the list stays honest):
# random ops by tests/core/test_random.py and tests/ops/test_nn_random.py (values cannot match PyTorch's RNG);
# control flow by tests/graph/test_control.py (its primitives only appear in compiled graphs, where the
# tests compare outputs and gradients with eager execution).
ELSEWHERE = {
    "uniform", "normal", "uniform_like", "normal_like", "randint", "randperm", "bernoulli", "multinomial",
    "cond", "scan", "while_loop",
}


def test_differentiable_ops_have_vjp():
    missing = sorted(n for n, op in REGISTRY.items() if op.differentiable and op.vjp is None)
    assert not missing, f"differentiable ops without a vjp rule: {missing}"


def test_every_op_has_a_case():
    for case in CASES:
        s = case.samples[0]
        dt = "float64" if "float64" in case.dtypes else case.dtypes[0]
        H.check_forward(case, s, dt)
        if case.grad:
            H.check_grad(case, s, dt if dt.startswith("float") else "float64")
    fwd, grad = H.COVERAGE["forward"], H.COVERAGE["grad"]
    no_fwd = sorted(n for n in REGISTRY if n not in fwd and n not in ELSEWHERE)
    assert not no_fwd, f"registered ops with no OpCase exercising them: {no_fwd}"
    no_grad = sorted(n for n, op in REGISTRY.items()
                     if op.differentiable and n not in grad and n not in ELSEWHERE)
    assert not no_grad, f"differentiable ops whose VJP no OpCase checks: {no_grad}"
