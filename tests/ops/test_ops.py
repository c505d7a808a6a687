"""Runs every OpCase from the family tables (cases_*.py) through the same checks."""

import importlib
import pkgutil

import pytest

from . import harness as H

_MODULES = sorted(m.name for m in pkgutil.iter_modules([__file__.rsplit("/", 1)[0]])
                  if m.name.startswith("cases_"))
CASES = []
for _m in _MODULES:
    CASES.extend(importlib.import_module(f"tests.ops.{_m}").CASES)

_names = [c.name for c in CASES]
assert len(_names) == len(set(_names)), f"duplicate case names: {sorted(n for n in _names if _names.count(n) > 1)}"


def _params(pred=lambda c: True):
    out = []
    for c in CASES:
        if not pred(c):
            continue
        for i, s in enumerate(c.samples):
            out.append(pytest.param(c, s, id=f"{c.name}-{i}"))
    return out


@pytest.mark.parametrize("case,sample", _params())
def test_forward(case, sample):
    for dt in case.dtypes:
        H.check_forward(case, sample, dt)
        if case.noncontig:
            H.check_forward(case, sample, dt, contiguous=False)


@pytest.mark.parametrize("case,sample", _params(lambda c: c.grad))
def test_grad_vs_torch(case, sample):
    for dt in [d for d in case.dtypes if d.startswith("float")]:
        H.check_grad(case, sample, dt)


@pytest.mark.parametrize("case,sample", _params(lambda c: c.grad and c.numeric_grad))
def test_gradcheck(case, sample):
    H.check_gradcheck(case, sample, second_order=False)


@pytest.mark.parametrize("case,sample", _params(lambda c: c.grad and c.gradgrad and c.numeric_grad))
def test_gradgradcheck(case, sample):
    H.check_gradcheck(case, sample, second_order=True)
