"""Table-driven op tests: one ``OpCase`` per public function, checked the same way for every op.

For each case and sample: forward against PyTorch (float32 and float64, contiguous and
non-contiguous inputs), the VJP against PyTorch's, numerical gradcheck and gradgradcheck in float64.
A recording interpreter notes which registry primitives each case runs, so a coverage test can fail
when a registered op has no case exercising its forward or its VJP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable

import numpy as np
import torch

import danlu as dl
from danlu.core import dispatch

TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
               "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8,
               "uint8": torch.uint8, "bool": torch.bool}


@dataclass
class Arg:
    """A tensor argument: shape, how to fill it, and whether it is differentiated."""
    shape: tuple
    kind: str = "float"          # float | pos | unit | int | index | bool | nonzero | custom
    grad: bool = True
    low: float = -2.0
    high: float = 2.0
    fill: Callable | None = None  # fill(rng, shape) -> np.ndarray for kind="custom"
    dtype: str | None = None      # force a dtype (e.g. "int64" for indices)


@dataclass
class OpCase:
    name: str
    dl_fn: Callable
    torch_fn: Callable
    samples: list                 # list of lists of Arg / python values
    dtypes: tuple = ("float32", "float64")
    grad: bool = True
    gradgrad: bool = True
    atol: float | None = None
    rtol: float | None = None
    grad_atol: float | None = None
    noncontig: bool = True
    gradcheck_eps: float = 1e-6
    numeric_grad: bool = True     # False where finite differences are ill-posed (ties, kinks)
    tags: tuple = field(default_factory=tuple)

    def __repr__(self):
        return self.name


def _seed(*parts) -> int:
    """A seed that is the same in every process (str hashes are randomised per process)."""
    import zlib

    return zlib.crc32("|".join(parts).encode())


def make_array(arg: Arg, dtype: str, rng) -> np.ndarray:
    return np.asarray(_make_array(arg, dtype, rng))


def _make_array(arg: Arg, dtype: str, rng) -> np.ndarray:
    shape = tuple(arg.shape)
    dt = arg.dtype or dtype
    k = arg.kind
    if k == "custom":
        a = np.asarray(arg.fill(rng, shape))
        return a.astype(arg.dtype) if arg.dtype else a.astype(dt) if a.dtype.kind == "f" else a
    if k == "float":
        a = rng.uniform(arg.low, arg.high, shape)
    elif k == "pos":
        a = rng.uniform(max(arg.low, 0.1) if arg.low > 0 else 0.5, arg.high if arg.high > 0 else 2.0, shape)
    elif k == "unit":
        a = rng.uniform(-0.9, 0.9, shape)
    elif k == "nonzero":
        a = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    elif k == "int":
        a = rng.integers(int(arg.low), int(arg.high) + 1, shape)
        return a.astype(arg.dtype or "int64")
    elif k == "index":
        a = rng.integers(0, int(arg.high), shape)
        return a.astype(arg.dtype or "int64")
    elif k == "bool":
        return rng.random(shape) < 0.5
    else:
        raise ValueError(k)
    return np.asarray(a).astype(dt)


def noncontiguous(a: np.ndarray) -> np.ndarray:
    """The same values in a non-contiguous layout (a strided view of a larger buffer)."""
    if a.ndim == 0 or a.size <= 1:
        return a
    big = np.zeros(a.shape[:-1] + (a.shape[-1] * 2,), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def to_dl(v, requires_grad=False):
    if isinstance(v, np.ndarray):
        t = dl.from_numpy(v)
        if requires_grad:
            t.requires_grad_(True)
        return t
    return v


def to_torch(v, requires_grad=False):
    if isinstance(v, np.ndarray):
        t = torch.from_numpy(np.array(v, copy=True, order="C"))
        if requires_grad:
            t.requires_grad_(True)
        return t
    return v


def flatten_out(out):
    if isinstance(out, (tuple, list)):
        res = []
        for o in out:
            res.extend(flatten_out(o))
        return res
    return [out]


def as_np(x):
    if isinstance(x, dl.Tensor):
        return x.detach().numpy()
    if isinstance(x, torch.Tensor):
        return x.detach().numpy()
    return np.asarray(x)


def tolerances(case: OpCase, dtype: str):
    if dtype == "float64":
        atol, rtol = 1e-10, 1e-7
    elif dtype == "float16":
        atol, rtol = 1e-2, 1e-2
    else:
        atol, rtol = 1e-5, 1.3e-5
    return (case.atol if case.atol is not None and dtype != "float64" else atol,
            case.rtol if case.rtol is not None and dtype != "float64" else rtol)


def assert_close(got, want, atol, rtol, what):
    got, want = as_np(got), as_np(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != torch's {want.shape}"
    if want.dtype == np.bool_ or want.dtype.kind in "iu":
        assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != torch's {want.dtype}"
        np.testing.assert_array_equal(got, want, err_msg=what)
    else:
        assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != torch's {want.dtype}"
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), atol=atol, rtol=rtol,
                                   equal_nan=True, err_msg=what)


class Recorder:
    """An interpreter that runs kernels eagerly and notes every primitive it sees."""

    def __init__(self):
        self.forward: set[str] = set()
        self.grad: set[str] = set()

    def run(self, op, args, attrs, avals):
        self.forward.add(op.name)
        if op.differentiable and any(isinstance(a, dl.Tensor) and a._rg for a in args) and \
                dispatch.state.grad_enabled:
            self.grad.add(op.name)
        return op.kernel(*[a._data if isinstance(a, dl.Tensor) else a for a in args], **attrs)

    def write_inplace(self, target, res):
        np.copyto(target._data, res._data, casting="unsafe")

    def __enter__(self):
        self._prev = dispatch.push_interpreter(self)
        return self

    def __exit__(self, *exc):
        dispatch.pop_interpreter(self._prev)


COVERAGE = {"forward": set(), "grad": set()}


def build_inputs(case, sample, dtype, rng, contiguous=True):
    arrays = []
    for a in sample:
        if isinstance(a, Arg):
            arr = make_array(a, dtype, rng)
            arrays.append(arr if contiguous else noncontiguous(arr))
        else:
            arrays.append(a)
    return arrays


def grad_mask(sample):
    return [isinstance(a, Arg) and a.grad and (a.kind not in ("int", "index", "bool")) and
            (a.dtype is None or a.dtype.startswith("float")) for a in sample]


def check_forward(case: OpCase, sample, dtype: str, contiguous=True):
    rng = np.random.default_rng(_seed(case.name, str(sample), dtype))
    arrays = build_inputs(case, sample, dtype, rng, contiguous)
    want = case.torch_fn(*[to_torch(a) for a in arrays])
    with Recorder() as rec:
        got = case.dl_fn(*[to_dl(a) for a in arrays])
    COVERAGE["forward"] |= rec.forward
    g, w = flatten_out(got), flatten_out(want)
    assert len(g) == len(w), f"{case.name}: {len(g)} outputs, torch gives {len(w)}"
    for i, (a, b) in enumerate(zip(g, w)):
        # tolerances follow the output's own dtype (an integer-input case can have float32 outputs)
        out_dt = str(getattr(b, "dtype", "")).replace("torch.", "")
        atol, rtol = tolerances(case, out_dt if out_dt.startswith("float") else dtype)
        assert_close(a, b, atol, rtol, f"{case.name} output {i} ({dtype}, sample {sample})")


def check_grad(case: OpCase, sample, dtype: str):
    mask = grad_mask(sample)
    if not any(mask):
        return
    _check_grad(case, sample, dtype, mask)
    if sum(mask) > 1:
        # each differentiable input alone: an op must save what that input's gradient needs even when
        # the others need no gradient (Op.save_for)
        for k in [i for i, m in enumerate(mask) if m]:
            _check_grad(case, sample, dtype, [i == k for i in range(len(mask))])


def _check_grad(case: OpCase, sample, dtype: str, mask):
    rng = np.random.default_rng(_seed(case.name, str(sample), dtype, "g"))
    arrays = build_inputs(case, sample, dtype, rng)
    t_in = [to_torch(a, m) for a, m in zip(arrays, mask)]
    t_out = [o for o in flatten_out(case.torch_fn(*t_in)) if isinstance(o, torch.Tensor) and o.requires_grad]
    cot = [rng.standard_normal(tuple(o.shape)).astype(str(o.dtype).replace("torch.", "")) for o in t_out]
    t_grads = torch.autograd.grad(t_out, [t for t, m in zip(t_in, mask) if m],
                                  [torch.from_numpy(c) for c in cot], allow_unused=True)
    with Recorder() as rec:
        d_in = [to_dl(a, m) for a, m in zip(arrays, mask)]
        d_out = [o for o in flatten_out(case.dl_fn(*d_in)) if isinstance(o, dl.Tensor) and o.requires_grad]
        assert len(d_out) == len(t_out), f"{case.name}: {len(d_out)} differentiable outputs, torch has {len(t_out)}"
        d_grads = dl.autograd.grad(d_out, [t for t, m in zip(d_in, mask) if m], [dl.from_numpy(c) for c in cot],
                                   allow_unused=True)
    COVERAGE["forward"] |= rec.forward
    COVERAGE["grad"] |= rec.grad
    atol, rtol = tolerances(case, dtype)
    if case.grad_atol is not None and dtype != "float64":
        atol = case.grad_atol
    for i, (a, b) in enumerate(zip(d_grads, t_grads)):
        if b is None:
            assert a is None or not np.any(as_np(a)), f"{case.name}: grad {i} should be zero/None"
            continue
        assert a is not None, f"{case.name}: grad {i} is None, torch has one"
        assert_close(a, b, atol, rtol, f"{case.name} grad of input {i} ({dtype}, sample {sample})")


def differentiable_fn(case, sample, arrays, mask):
    def fn(*diff):
        it = iter(diff)
        args = [next(it) if m else to_dl(a) for a, m in zip(arrays, mask)]
        return tuple(flatten_out(case.dl_fn(*args)))
    return fn


def check_gradcheck(case: OpCase, sample, second_order: bool):
    rng = np.random.default_rng(_seed(case.name, str(sample), "gc"))
    arrays = build_inputs(case, sample, "float64", rng)
    mask = grad_mask(sample)
    if not any(mask):
        return
    diff = [to_dl(a, True) for a, m in zip(arrays, mask) if m]
    fn = differentiable_fn(case, sample, arrays, mask)
    with Recorder() as rec:
        if second_order:
            assert dl.autograd.gradgradcheck(fn, tuple(diff), eps=case.gradcheck_eps, atol=1e-5, rtol=1e-3)
        else:
            assert dl.autograd.gradcheck(fn, tuple(diff), eps=case.gradcheck_eps, atol=1e-5, rtol=1e-3)
    COVERAGE["grad"] |= rec.grad
