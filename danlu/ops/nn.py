"""Neural-network primitives: softmax and log_softmax, a fused cross-entropy (with its own backward
primitive), nll_loss and embedding. The composites built on them live in ``danlu.nn.functional``.

Each of these is a primitive rather than a composite because it is faster or more stable than the
same math spelled with elementwise ops; the reason is given in each section. Every VJP is written
with danlu ops, so second derivatives work; the hot kernels process row blocks that stay in cache and
split the rows over two threads (NumPy ufuncs release the GIL).
"""
# ruff: noqa: A001, A002  (``input``, PyTorch's argument name)

from __future__ import annotations

import itertools
import os
import threading
import time
import weakref

import numpy as np

from ..core import dtypes as _dt
from ..core.dispatch import CONVERT, apply
from ..core.errors import DTypeError, ShapeError, api, describe
from ..core.registry import AVal, register
from ..core.tensor import Tensor
from ._util import norm_dim

__all__ = ["softmax", "log_softmax"]

_REDUCTIONS = ("none", "mean", "sum")


# == row-parallel helper ============================================================================

_BLOCK_BYTES = 1 << 19     # a row block's scratch stays in L2 while exp, sum and scale pass over it
_PARALLEL_MIN = 1 << 17    # below this many elements a second thread costs more than it saves
_CPUS = os.cpu_count() or 1
_pool = [None]
_pool_lock = threading.Lock()


def _reset_pool():
    _pool[0] = None


if hasattr(os, "register_at_fork"):
    # A forked child (DataLoader workers) has no pool thread; make it start its own.
    os.register_at_fork(after_in_child=_reset_pool)


def _worker():
    if _pool[0] is None:
        with _pool_lock:
            if _pool[0] is None:
                from concurrent.futures import ThreadPoolExecutor

                _pool[0] = ThreadPoolExecutor(1, thread_name_prefix="danlu-nn")
    return _pool[0]


class _Timing:
    """Seconds per element of one kernel at one size class, serial and threaded (moving averages):
    whether a second thread pays depends on what else the machine runs, so it is measured."""

    __slots__ = ("avg", "runs", "calls")
    PROBE_EVERY = 16  # calls between runs of the currently slower way, to notice when the load changes

    def __init__(self):
        self.avg = [None, None]
        self.runs = [0, 0]
        self.calls = 0

    def threaded_next(self) -> bool:
        self.calls += 1
        serial, threaded = self.avg
        if serial is None or threaded is None:
            return self.calls % 2 == 0  # alternate until both ways have been timed
        return (threaded < serial) != (self.calls % self.PROBE_EVERY == 0)

    def record(self, threaded: bool, seconds: float, n_elems: int) -> None:
        self.runs[threaded] += 1
        if self.runs[threaded] == 1:
            return  # a first run pays one-time costs (fresh pages, starting the pool)
        per = seconds / n_elems
        old = self.avg[threaded]
        self.avg[threaded] = per if old is None else 0.75 * old + 0.25 * per


_TIMINGS: dict = {}


def _over_blocks(fn, n_rows: int, row_elems: int, itemsize: int) -> None:
    """Run ``fn(lo, hi)`` on consecutive row blocks of ``[0, n_rows)`` sized to stay in L2.

    Large inputs may share the blocks with one pool thread through a common counter (if the helper
    never gets to run, this thread does every block and withdraws the helper's task). Whether to
    share is decided by the measured speed of both ways for this kernel and size: on a machine whose
    other core is busy, the second thread only adds waiting."""
    rows = max(1, _BLOCK_BYTES // max(1, row_elems * itemsize))
    starts = range(0, n_rows, rows)

    def drain(claim):
        for k in claim:
            if k >= len(starts):
                return
            lo = starts[k]
            fn(lo, min(lo + rows, n_rows))

    n_elems = n_rows * row_elems
    if n_elems < _PARALLEL_MIN or len(starts) < 2 or _CPUS < 2:
        drain(range(len(starts)))
        return
    timing = _TIMINGS.get((fn.__code__, n_elems.bit_length()))
    if timing is None:
        timing = _TIMINGS[fn.__code__, n_elems.bit_length()] = _Timing()
    threaded = timing.threaded_next()
    t0 = time.perf_counter()
    if not threaded:
        drain(range(len(starts)))
    else:
        claim = itertools.count()
        err = np.geterr()  # NumPy's error state is per thread: the helper takes the caller's

        def helper_drain():
            with np.errstate(**err):
                drain(claim)

        helper = _worker().submit(helper_drain)
        try:
            drain(claim)
        finally:
            if not helper.cancel():
                helper.result()
    timing.record(threaded, time.perf_counter() - t0, n_elems)


def _compute_dtype(x: np.ndarray):
    """float16 computes in float32 (as PyTorch's CPU kernels accumulate)."""
    return np.float32 if x.dtype == np.float16 else x.dtype


# == softmax / log_softmax ==========================================================================
# Primitives for stability: exp(x - max) never overflows, and log_softmax is x - logsumexp(x) rather
# than log(softmax(x)), which would give -inf where a probability underflows.

def _float_infer(name):
    def infer(x, *, dim):
        if not x.dtype.is_floating_point:
            raise DTypeError(f"{name}: expected a floating point input, got {describe(x)}; convert with .float() "
                             f"or pass dtype=danlu.float32")
        return AVal(x.shape, x.dtype)
    return infer


def _shifted(x, dim):
    """``x - max(x)`` along ``dim``: exact where it matters (near the max), and exp of it cannot overflow."""
    return np.subtract(x, np.max(x, axis=dim, keepdims=True))


def _softmax_impl(x, *, dim):
    if x.ndim == 0:
        return np.ones_like(x)
    if x.size == 0:
        return x.copy()
    e = _shifted(x.astype(_compute_dtype(x), copy=False), dim)
    np.exp(e, out=e)
    e /= np.sum(e, axis=dim, keepdims=True)
    return e.astype(x.dtype, copy=False)


def _log_softmax_impl(x, *, dim):
    if x.ndim == 0:
        return np.zeros_like(x)
    if x.size == 0:
        return x.copy()
    z = _shifted(x.astype(_compute_dtype(x), copy=False), dim)
    # (x - max) - log(sum(exp(x - max))): subtracting the max first keeps the result's precision
    # relative to itself rather than to the size of the logits.
    z -= np.log(np.sum(np.exp(z), axis=dim, keepdims=True))
    return z.astype(x.dtype, copy=False)


def _softmax_vjp(c, g):
    from .reduce import sum as _sum

    y = c.out
    if y.ndim == 0:
        return (g * 0.0,)
    gy = g * y
    return (gy - y * _sum(gy, c.attrs["dim"], keepdim=True),)


def _log_softmax_vjp(c, g):
    from .elementwise import exp
    from .reduce import sum as _sum

    y = c.out
    if y.ndim == 0:
        return (g * 0.0,)
    return (g - exp(y) * _sum(g, c.attrs["dim"], keepdim=True),)


SOFTMAX = register("softmax", infer=_float_infer("softmax"), impl=_softmax_impl, vjp=_softmax_vjp, save_out=True,
                   family="nn")
LOG_SOFTMAX = register("log_softmax", infer=_float_infer("log_softmax"), impl=_log_softmax_impl,
                       vjp=_log_softmax_vjp, save_out=True, family="nn")


def _cast_for(input, dtype):
    if dtype is not None and _dt.as_dtype(dtype) is not input.dtype:
        return apply(CONVERT, input, dtype=_dt.as_dtype(dtype))
    return input


@api
def softmax(input, dim: int, dtype=None) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim``, computed stably, as ``torch.softmax``.

    ``dtype`` converts the input first (useful to compute a float16 tensor's softmax in float32).

    >>> import danlu as dl
    >>> dl.softmax(dl.tensor([1.0, 2.0, 3.0]), 0)
    tensor([0.0900, 0.2447, 0.6652])
    """
    input = _cast_for(input, dtype)
    return apply(SOFTMAX, input, dim=norm_dim("softmax", dim, input.ndim))


@api
def log_softmax(input, dim: int, dtype=None) -> Tensor:
    """``x - logsumexp(x)`` along ``dim`` (finite where ``log(softmax(x))`` would underflow to -inf).

    >>> import danlu as dl
    >>> dl.log_softmax(dl.tensor([0.0, 200.0]), 0)
    tensor([-200.,    0.])
    """
    input = _cast_for(input, dtype)
    return apply(LOG_SOFTMAX, input, dim=norm_dim("log_softmax", dim, input.ndim))


Tensor.softmax = lambda self, dim, dtype=None: softmax(self, dim, dtype)  # noqa: E731
Tensor.log_softmax = lambda self, dim, dtype=None: log_softmax(self, dim, dtype)  # noqa: E731


# == shared checks for class-index losses ===========================================================

def _check_class_target(name, x, target, weight):
    """x (N, C) float, target (N,) int64, weight (C,) of x's dtype: PyTorch's checks and messages."""
    if not x.dtype.is_floating_point:
        raise DTypeError(f"{name}: expected a floating point input, got {describe(x)}")
    if len(x.shape) != 2:
        raise ShapeError(f"{name}: expected a 2-D input (N, C), got {describe(x)}")
    if target.dtype is not _dt.int64:
        raise DTypeError(f"{name}: expected target dtype to be Long (int64) class indices, but got "
                         f"{describe(target)}; convert it with .long()")
    if tuple(target.shape) != (x.shape[0],):
        raise ShapeError(f"{name}: Expected input batch_size ({x.shape[0]}) to match target batch_size "
                         f"({target.shape[0] if target.shape else 0}) (input {describe(x)}, target {describe(target)})")
    if weight:
        w = weight[0]
        if tuple(w.shape) != (x.shape[1],):
            raise ShapeError(f"{name}: weight tensor should be defined either for all {x.shape[1]} classes or no "
                             f"classes but got weight tensor of shape: {list(w.shape)}")
        if w.dtype is not x.dtype:
            raise DTypeError(f"{name}: expected weight of the input's dtype {x.dtype.name}, got {describe(w)}; "
                             "convert the weight with .to(input.dtype)")


def _valid_targets(target, n_classes, ignore_index):
    """(valid mask, targets with ignored entries replaced by 0); raises PyTorch's error when a target is
    out of range."""
    valid = target != ignore_index
    safe_t = target if valid.all() else np.where(valid, target, 0)
    if safe_t.size and (safe_t.min() < 0 or safe_t.max() >= n_classes):
        bad = valid & ((target < 0) | (target >= n_classes))
        raise IndexError(f"Target {int(target[bad][0])} is out of bounds.")
    return valid, safe_t


def _row_coeff(valid, safe_t, weight, reduction, g):
    """``(c, mw)``: the upstream gradient divided by the mean's denominator (if any), and each row's
    target weight ``w[t_i]`` (1 without weights, 0 where ignored), in float64."""
    wt = weight[safe_t].astype(np.float64) if weight is not None else np.ones(valid.shape)
    mw = np.where(valid, wt, 0.0)
    g = np.asarray(g, dtype=np.float64)
    if reduction == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):
            c = g / mw.sum()
    else:
        c = g
    return c, mw


def _reduce_loss(loss, mw, reduction, dtype):
    if reduction == "none":
        return loss.astype(dtype)
    total = loss.sum()
    if reduction == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):
            total = total / mw.sum()
    return np.asarray(total, dtype=dtype)


def _loss_shape(n, reduction):
    return (n,) if reduction == "none" else ()


# == cross_entropy ==================================================================================
# A fused primitive for speed and stability: the forward exponentiates each row once and keeps the
# result; the backward primitive turns that buffer into softmax times the row's scale in one pass
# over it (or, without the buffer, rebuilds it from the saved logsumexp with one exp), folding the
# reduction, class weights, label smoothing and the one-hot subtraction into the same pass.
# The same math as PyTorch: loss_i = m_i * [(1 - e) w[t_i] (lse_i - x[i, t_i]) + e/C sum_j w_j
# (lse_i - x_ij)] with m_i = (t_i != ignore_index), and 'mean' divides by sum_i m_i w[t_i].

def _ce_infer(x, target, *weight, reduction, ignore_index, label_smoothing):
    _check_class_target("cross_entropy", x, target, weight)
    return AVal(_loss_shape(x.shape[0], reduction), x.dtype), AVal((x.shape[0],), x.dtype)


def _exp_rows(x):
    """Per row of a 2-D float array: ``e = exp(x - shift)``, ``s = sum(e)``, ``shift`` and
    ``lse = shift + log(s)``.

    Rows are first exponentiated unshifted (one pass fewer); a row whose sum overflows or falls into
    the subnormal range is redone shifted by its max, so the result is as stable as the shifted form
    everywhere. Threaded over row blocks."""
    n, c = x.shape
    e = np.empty_like(x)
    s = np.empty(n, x.dtype)
    lse = np.empty(n, x.dtype)
    shift = np.zeros(n, x.dtype)
    if n == 0 or c == 0:
        s.fill(0)
        lse.fill(-np.inf)
        return lse, e, s, shift
    tiny = np.finfo(x.dtype).tiny * 2.0 ** 40
    ones = np.ones(c, x.dtype)

    def work(lo, hi):
        np.exp(x[lo:hi], out=e[lo:hi])
        np.matmul(e[lo:hi], ones, out=s[lo:hi])

    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        _over_blocks(work, n, c, x.itemsize)
        np.log(s, out=lse)
        ok = (s > tiny) & (s < np.inf)
        if not ok.all():
            redo = np.flatnonzero(~ok)
            m = np.max(x[redo], axis=1)
            er = np.exp(x[redo] - m[:, None])
            e[redo] = er
            s[redo] = er.sum(axis=1)
            lse[redo] = np.log(s[redo]) + m
            shift[redo] = m
    return lse, e, s, shift


# The forward's exp buffer, kept for the backward kernel of the same call: the backward then scales it
# into the gradient in place instead of exponentiating again. Keyed by the id of the logsumexp array
# the forward returned (the backward receives that same array); an entry dies with that array, and a
# backward that finds no entry (a second backward with retain_graph, a graph replay) recomputes.
_EXP_MEMO: dict = {}


def _memo_exp(x_in, target, lse, e, s, checked):
    key = id(lse)
    _EXP_MEMO[key] = (weakref.ref(x_in), weakref.ref(target), e, s, checked)
    weakref.finalize(lse, _EXP_MEMO.pop, key, None)


def _take_exp(x_in, target, lse):
    """``(e, s, (valid, safe_t))`` kept by the forward that returned ``lse`` for these inputs, or None."""
    entry = _EXP_MEMO.pop(id(lse), None)
    if entry is None or entry[0]() is not x_in or entry[1]() is not target:
        return None
    return entry[2:]


def _ce_impl(x, target, *weight, reduction, ignore_index, label_smoothing):
    x_in, dtype = x, x.dtype
    x = x.astype(_compute_dtype(x), copy=False)
    w = weight[0].astype(x.dtype, copy=False) if weight else None
    n, c = x.shape
    valid, safe_t = _valid_targets(target, c, ignore_index)
    lse, e, s, shift = _exp_rows(x)
    picked = x[np.arange(n), safe_t] if n and c else np.zeros(n, x.dtype)
    wt = w[safe_t] if w is not None else 1.0
    mw = np.where(valid, wt, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        # lse - x_t as (shift - x_t) + log(s) in float64: exact for large logits too.
        log_s = np.log(s.astype(np.float64))
        loss = mw * ((shift.astype(np.float64) - picked) + log_s)
        if label_smoothing > 0.0:
            wsum = float(w.sum()) if w is not None else float(c)
            wx = (x @ w if w is not None else x.sum(axis=1)).astype(np.float64)
            smooth = np.where(valid, wsum * (shift + log_s) - wx, 0.0)
            loss = (1.0 - label_smoothing) * loss + (label_smoothing / c) * smooth
    loss = np.where(valid, loss, 0.0)
    lse_out = lse.astype(dtype, copy=False)
    _memo_exp(x_in, target, lse_out, e, s, (valid, safe_t))
    return _reduce_loss(loss, mw, reduction, dtype), lse_out


def _ce_vjp(c, g_loss, g_lse):
    x, target = c.inputs[0], c.inputs[1]
    weight = tuple(w for w in c.inputs[2:] if w is not None)
    return (apply(CE_BACKWARD, x, target, c.outs[1], g_loss, g_lse, *weight, **c.attrs), None) + (None,) * len(weight)


CROSS_ENTROPY = register("cross_entropy", infer=_ce_infer, impl=_ce_impl, vjp=_ce_vjp, save_in=(0, 1, 2),
                         save_out=True, multi_out=True, nondiff_args=(1, 2), family="nn")


def _ce_bwd_infer(x, target, lse, g, g_lse, *weight, reduction, ignore_index, label_smoothing):
    _check_class_target("cross_entropy_backward", x, target, weight)
    return AVal(x.shape, x.dtype)


def _ce_bwd_impl(x, target, lse, g, g_lse, *weight, reduction, ignore_index, label_smoothing):
    """grad_ij = A_i softmax_ij - b_i [j == t_i] - e_i w_j, with A_i = a_i + g_lse_i (the saved logsumexp's
    own cotangent folds into the softmax term, as d lse / dx = softmax)."""
    x_in, dtype = x, x.dtype
    x = x.astype(_compute_dtype(x), copy=False)
    w = weight[0] if weight else None
    n, c = x.shape
    eps = label_smoothing
    kept = _take_exp(x_in, target, lse)
    valid, safe_t = kept[2] if kept is not None else _valid_targets(target, c, ignore_index)
    coef, mw = _row_coeff(valid, safe_t, w, reduction, g)
    wsum = float(w.sum(dtype=np.float64)) if w is not None else float(c)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        # Ignored rows get exact zeros, also when 'mean' over no valid target makes coef infinite.
        a = np.where(valid, coef * ((1.0 - eps) * mw + eps * wsum / c), 0.0)
        b = np.where(valid, coef * (1.0 - eps) * mw, 0.0).astype(x.dtype)
        big_a = (a + np.asarray(g_lse, np.float64)).astype(x.dtype)
        out = kept[0] if kept is not None else np.empty_like(x)
        if out.size:
            _ce_grad_rows(out, x, lse, big_a, kept)
            r = np.flatnonzero(valid)
            out[r, safe_t[r]] -= b[r]
            if eps > 0.0:
                e = np.where(valid, coef * (eps / c), 0.0).astype(x.dtype)
                out -= e[:, None] * w[None, :] if w is not None else e[:, None]
    return out.astype(dtype, copy=False)


def _ce_grad_rows(out, x, lse, big_a, kept):
    """``out = big_a[:, None] * softmax(x)``, from the kept exp buffer (already in ``out``) or from
    ``lse`` with one exp."""
    n, c = x.shape
    if kept is not None:
        scale = big_a / kept[1]

        def work(lo, hi):
            np.multiply(out[lo:hi], scale[lo:hi, None], out=out[lo:hi])
    else:
        lse = np.asarray(lse, x.dtype)
        log_a = np.log(big_a)
        fold = bool(np.isfinite(log_a).all())
        # exp(x - lse + log A) = A * softmax: the scale rides in the exponent, saving a pass.
        shift = (lse - log_a) if fold else lse

        def work(lo, hi):
            o = out[lo:hi]
            np.subtract(x[lo:hi], shift[lo:hi, None], out=o)
            np.exp(o, out=o)
            if not fold:
                np.multiply(o, big_a[lo:hi, None], out=o)

    _over_blocks(work, n, c, x.itemsize)


def _ce_row_scale(x, target, g, weight, attrs):
    """``a_i`` of the backward (the softmax coefficient without the lse cotangent), with danlu ops."""
    from .reduce import sum as _sum
    from .elementwise import where
    from .index import index_select

    eps, red, c = attrs["label_smoothing"], attrs["reduction"], x.shape[1]
    valid = target != attrs["ignore_index"]
    fv = valid.to(x.dtype)
    safe_t = where(valid, target, 0)
    mw = fv * index_select(weight[0], 0, safe_t) if weight else fv
    wsum = _sum(weight[0]) if weight else float(c)
    coef = g / _sum(mw) if red == "mean" else g
    return where(valid, coef * ((1.0 - eps) * mw + wsum * (eps / c)), 0.0), mw


def _ce_bwd_vjp(c, h):
    """Second order: the backward is linear in g and g_lse and depends on x and lse through
    p = exp(x - lse) only, so each cotangent is a softmax-style product."""
    from .creation import ones, zeros
    from .elementwise import exp
    from .reduce import sum as _sum

    x, target, lse, g, g_lse = c.inputs[:5]
    weight = tuple(w for w in c.inputs[5:] if w is not None)
    attrs = c.attrs
    p = exp(x - lse.unsqueeze(1))
    hp = h * p
    a, mw = _ce_row_scale(x, target, g, weight, attrs)
    gx = glse = gg = ggl = None
    if c.edges[0] is not None or c.edges[2] is not None:
        gx = (a + g_lse).unsqueeze(1) * hp
        glse = -_sum(gx, 1) if c.edges[2] is not None else None
        gx = gx if c.edges[0] is not None else None
    if c.edges[3] is not None:
        n = x.shape[0]
        k = apply(CE_BACKWARD, x, target, lse, ones(n, dtype=x.dtype), zeros(n, dtype=x.dtype), *weight,
                  reduction="none", ignore_index=attrs["ignore_index"], label_smoothing=attrs["label_smoothing"])
        hk = _sum(h * k, 1)
        gg = hk if attrs["reduction"] == "none" else _sum(hk)
        if attrs["reduction"] == "mean":
            gg = gg / _sum(mw)
    if c.edges[4] is not None:
        ggl = _sum(hp, 1)
    return (gx, None, glse, gg, ggl) + (None,) * len(weight)


CE_BACKWARD = register("cross_entropy_backward", infer=_ce_bwd_infer, impl=_ce_bwd_impl, vjp=_ce_bwd_vjp,
                       save_in=tuple(range(6)), nondiff_args=(1, 5), family="nn")


def _check_reduction(name, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: {reduction!r} is not a valid value for reduction; use 'none', 'mean' or 'sum'")


def cross_entropy_indices(input, target, weight=None, reduction: str = "mean", ignore_index: int = -100,
                          label_smoothing: float = 0.0) -> Tensor:
    """The fused cross-entropy of 2-D logits ``(N, C)`` and int64 class indices ``(N,)``; what
    ``danlu.nn.functional.cross_entropy`` calls after moving the class dimension last.

    >>> import danlu as dl
    >>> cross_entropy_indices(dl.tensor([[0.0, 0.0]]), dl.tensor([1]))
    tensor(0.6931)
    """
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    extra = (weight,) if weight is not None else ()
    loss, _ = apply(CROSS_ENTROPY, input, target, *extra, reduction=reduction, ignore_index=int(ignore_index),
                    label_smoothing=float(label_smoothing))
    return loss


# == nll_loss =======================================================================================
# A primitive pair so that invalid targets raise PyTorch's error and the backward writes one value per
# row instead of a dense scatter. The loss is linear in its input and the backward is linear in g,
# and the two are each other's adjoint, so each one's VJP is the other.

def _nll_infer(x, target, *weight, reduction, ignore_index):
    _check_class_target("nll_loss", x, target, weight)
    return AVal(_loss_shape(x.shape[0], reduction), x.dtype)


def _nll_impl(x, target, *weight, reduction, ignore_index):
    n, c = x.shape
    valid, safe_t = _valid_targets(target, c, ignore_index)
    w = weight[0] if weight else None
    wt = w[safe_t].astype(np.float64) if w is not None else np.ones(n)
    mw = np.where(valid, wt, 0.0)
    picked = x[np.arange(n), safe_t] if n and c else np.zeros(n, x.dtype)
    with np.errstate(invalid="ignore"):
        loss = np.where(valid, -mw * picked, 0.0)
    return _reduce_loss(loss, mw, reduction, x.dtype)


def _nll_vjp(c, g):
    target = c.inputs[1]
    weight = tuple(w for w in c.inputs[2:] if w is not None)
    gx = apply(NLL_LOSS_BACKWARD, g, target, *weight, num_classes=c.in_meta[0][0][1], **c.attrs)
    return (gx, None) + (None,) * len(weight)


NLL_LOSS = register("nll_loss", infer=_nll_infer, impl=_nll_impl, vjp=_nll_vjp, save_in=(1, 2), nondiff_args=(1, 2),
                    family="nn")


def _nll_bwd_infer(g, target, *weight, num_classes, reduction, ignore_index):
    n = target.shape[0] if target.shape else 0
    if tuple(g.shape) != _loss_shape(n, reduction):
        raise ShapeError(f"nll_loss_backward: gradient {describe(g)} does not match the loss of {n} targets with "
                         f"reduction={reduction!r}")
    return AVal((n, num_classes), g.dtype)


def _nll_bwd_impl(g, target, *weight, num_classes, reduction, ignore_index):
    n = target.shape[0]
    valid, safe_t = _valid_targets(target, num_classes, ignore_index)
    coef, mw = _row_coeff(valid, safe_t, weight[0] if weight else None, reduction, g)
    out = np.zeros((n, num_classes), g.dtype)
    r = np.flatnonzero(valid)
    with np.errstate(invalid="ignore"):
        vals = -(coef * mw)
    out[r, safe_t[r]] = vals[r] if vals.ndim else vals
    return out


def _nll_bwd_vjp(c, h):
    a = c.attrs
    target = c.inputs[1]
    weight = tuple(w for w in c.inputs[2:] if w is not None)
    gg = apply(NLL_LOSS, h, target, *weight, reduction=a["reduction"], ignore_index=a["ignore_index"])
    return (gg, None) + (None,) * len(weight)


NLL_LOSS_BACKWARD = register("nll_loss_backward", infer=_nll_bwd_infer, impl=_nll_bwd_impl, vjp=_nll_bwd_vjp,
                             save_in=(1, 2), nondiff_args=(1, 2), family="nn")


def nll_loss_indices(input, target, weight=None, reduction: str = "mean", ignore_index: int = -100) -> Tensor:
    """Negative log-likelihood of 2-D log-probabilities ``(N, C)`` at int64 class indices ``(N,)``.

    >>> import danlu as dl
    >>> nll_loss_indices(dl.tensor([[-1.0, -2.0], [-3.0, -4.0]]), dl.tensor([1, 0]))
    tensor(2.5000)
    """
    _check_reduction("nll_loss", reduction)
    extra = (weight,) if weight is not None else ()
    return apply(NLL_LOSS, input, target, *extra, reduction=reduction, ignore_index=int(ignore_index))


# == embedding ======================================================================================
# A primitive so the backward accumulates rows by sorting the indices once (NumPy's ``add.at`` on
# rows is several times slower), skips the padding row, and can scale by index frequency.

def _emb_infer(weight, idx, *, padding_idx, scale_grad_by_freq):
    if len(weight.shape) != 2:
        raise RuntimeError(f"embedding: 'weight' must be 2-D, got {describe(weight)}")
    if idx.dtype not in (_dt.int64, _dt.int32):
        raise DTypeError(f"embedding: expected indices of type Long or Int, got {describe(idx)}; convert them "
                         "with .long()")
    return AVal(tuple(idx.shape) + (weight.shape[1],), weight.dtype)


def _check_rows(idx, n_rows):
    if idx.size and (idx.min() < 0 or idx.max() >= n_rows):
        bad = idx[(idx < 0) | (idx >= n_rows)].reshape(-1)[0]
        raise IndexError(f"embedding: index {int(bad)} is out of range for a weight with {n_rows} rows "
                         "(index out of range in self)")


def _emb_impl(weight, idx, *, padding_idx, scale_grad_by_freq):
    _check_rows(idx, weight.shape[0])
    return np.take(weight, idx, axis=0)


def _emb_vjp(c, g):
    idx = c.inputs[1]
    return apply(EMBEDDING_BACKWARD, g, idx, num_weights=c.in_meta[0][0][0], **c.attrs), None


EMBEDDING = register("embedding", infer=_emb_infer, impl=_emb_impl, vjp=_emb_vjp, save_in=(1,), nondiff_args=(1,),
                     family="nn")


def _emb_bwd_infer(g, idx, *, num_weights, padding_idx, scale_grad_by_freq):
    if tuple(g.shape[:-1]) != tuple(idx.shape) or not g.shape:
        raise ShapeError(f"embedding_backward: gradient {describe(g)} does not match indices {describe(idx)}")
    return AVal((num_weights, g.shape[-1]), g.dtype)


_ROUNDS = 8  # index multiplicities up to this are summed with row assignments, longer runs with reduceat


def _emb_bwd_impl(g, idx, *, num_weights, padding_idx, scale_grad_by_freq):
    _check_rows(idx, num_weights)
    d = g.shape[-1]
    flat = idx.reshape(-1)
    rows = g.reshape(-1, d)
    out = np.zeros((num_weights, d), g.dtype)
    m = flat.size
    if m == 0:
        return out
    order = np.argsort(flat, kind="stable")
    s = flat[order]
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    lens = np.diff(np.append(starts, m))
    gs = rows[order]
    long = lens > _ROUNDS
    short = ~long
    out[s[starts[short]]] = gs[starts[short]]
    if lens[short].max(initial=0) > 1:
        seg = np.repeat(np.arange(starts.size), lens)
        rank = np.arange(m) - starts[seg]
        in_short = short[seg]
        for k in range(1, int(lens[short].max())):
            sel = np.flatnonzero((rank == k) & in_short)
            if sel.size:
                out[s[sel]] += gs[sel]
    if long.any():
        take = np.repeat(long, lens)
        long_lens = lens[long]
        offs = np.concatenate(([0], np.cumsum(long_lens)[:-1]))
        out[s[starts[long]]] = np.add.reduceat(gs[take], offs, axis=0)
    if scale_grad_by_freq:
        counts = np.zeros(num_weights, g.dtype)
        counts[s[starts]] = lens
        np.divide(out, np.maximum(counts, 1)[:, None], out=out)
    if padding_idx is not None:
        out[padding_idx] = 0
    return out


def _emb_bwd_vjp(c, h):
    """The adjoint of row accumulation is row lookup, with the padding mask and frequency scale."""
    from .creation import ones

    idx = c.inputs[1]
    a = c.attrs
    gg = apply(EMBEDDING, h, idx, padding_idx=None, scale_grad_by_freq=False)
    if a["padding_idx"] is not None:
        gg = gg * (idx != a["padding_idx"]).unsqueeze(-1).to(gg.dtype)
    if a["scale_grad_by_freq"]:
        counts = apply(EMBEDDING_BACKWARD, ones(tuple(idx.shape) + (1,), dtype=h.dtype), idx,
                       num_weights=a["num_weights"], padding_idx=None, scale_grad_by_freq=False)
        gg = gg / apply(EMBEDDING, counts, idx, padding_idx=None, scale_grad_by_freq=False)
    return gg, None


EMBEDDING_BACKWARD = register("embedding_backward", infer=_emb_bwd_infer, impl=_emb_bwd_impl, vjp=_emb_bwd_vjp,
                              save_in=(1,), nondiff_args=(1,), family="nn")


def embedding_lookup(input, weight, padding_idx=None, scale_grad_by_freq: bool = False) -> Tensor:
    """``weight[input]``; rows at ``padding_idx`` get no gradient (``padding_idx`` already resolved to
    a non-negative row or None).

    >>> import danlu as dl
    >>> embedding_lookup(dl.tensor([1, 0]), dl.tensor([[0.0, 1.0], [2.0, 3.0]]))
    tensor([[2., 3.],
            [0., 1.]])
    """
    return apply(EMBEDDING, weight, input, padding_idx=padding_idx, scale_grad_by_freq=bool(scale_grad_by_freq))


# == binary cross-entropy (elementwise, no reduction) ===============================================

def _bce_kernel(x, t):
    with np.errstate(divide="ignore", invalid="ignore"):
        lx = np.maximum(np.log(x), -100.0)
        l1x = np.maximum(np.log1p(-x), -100.0)
    return (-(t * lx + (1 - t) * l1x)).astype(x.dtype, copy=False)


def _bce_vjp(c, g):
    """PyTorch's gradients: (x - t) / max(x (1 - x), 1e-12) for the input (finite, steep, at 0 and 1
    where the clamped logs would give 0), and log(1 - x) - log(x) (not clamped: +-inf at 0 and 1) for
    the target."""
    from .elementwise import clamp, log, log1p

    x, t = c.inputs
    gx = gt = None
    if c.edges[0] is not None:
        gx = g * (x - t) / clamp(x * (1 - x), min=1e-12)
    if c.edges[1] is not None:
        gt = g * (log1p(-x) - log(x))
    return gx, gt


def _bce_infer(x, t):
    from ._util import broadcast_shapes

    return AVal(broadcast_shapes("binary_cross_entropy", x.shape, t.shape), x.dtype)


BINARY_CROSS_ENTROPY = register("binary_cross_entropy", infer=_bce_infer, impl=_bce_kernel, vjp=_bce_vjp,
                                save_in=(0, 1), elementwise=True, family="nn")


def binary_cross_entropy_elementwise(input, target):
    """Per-element ``-(t log(x) + (1 - t) log(1 - x))`` with each log clamped at -100 (see
    ``danlu.nn.functional.binary_cross_entropy`` for weights and reductions).

    >>> import danlu as dl
    >>> from danlu.ops.nn import binary_cross_entropy_elementwise
    >>> binary_cross_entropy_elementwise(dl.tensor([0.5, 0.0]), dl.tensor([1.0, 1.0]))
    tensor([  0.6931, 100.0000])
    """
    return apply(BINARY_CROSS_ENTROPY, input, target)


# == linear ==========================================================================================
# A primitive (rather than matmul + transpose + add) for speed, as PyTorch's addmm: one node, the bias
# added in place into the GEMM's result, and the weight gradient computed as g^T x, so it comes out in
# the weight's own (C-contiguous) layout; a transposed gradient would slow every optimizer update.

def _linear_infer(x, w, *b):
    if len(w.shape) != 2 or len(x.shape) < 1 or x.shape[-1] != w.shape[1]:
        raise ShapeError(f"linear: input {describe(x)} and weight {describe(w)} cannot be multiplied: the "
                         f"input's last dimension must equal the weight's second (weight is (out, in))")
    if x.dtype is not w.dtype or (b and b[0].dtype is not w.dtype):
        from ..core.errors import DTypeError

        raise DTypeError(f"linear: expected input, weight and bias of the same dtype, got "
                         f"{', '.join(describe(t) for t in (x, w, *b))}; convert them with .to(dtype)")
    if b and tuple(b[0].shape) not in ((w.shape[0],), ()):
        raise ShapeError(f"linear: bias {describe(b[0])} must have shape [{w.shape[0]}] for weight {describe(w)}")
    return AVal(tuple(x.shape[:-1]) + (w.shape[0],), x.dtype)


def _linear_impl(x, w, *b):
    if x.dtype == np.float16:
        y = np.matmul(x.astype(np.float32), w.T.astype(np.float32))
        if b:
            y += b[0]
        return y.astype(np.float16)
    y = np.matmul(x, w.T)
    if b:
        y += b[0]
    return y


def _linear_vjp(c, g):
    from .linalg import matmul
    from .reduce import sum as _sum
    from .shape import reshape, transpose

    x, w = c.inputs[0], c.inputs[1]
    gx = gw = gb = None
    out_f, in_f = c.in_meta[1][0]
    if c.edges[0] is not None:
        gx = matmul(g, w)
    if c.edges[1] is not None:
        g2 = reshape(g, (-1, out_f)) if g.ndim != 2 else g
        x2 = reshape(x, (-1, in_f)) if x.ndim != 2 else x
        gw = matmul(transpose(g2, 0, 1), x2)
    if len(c.edges) > 2 and c.edges[2] is not None:
        gb = _sum(g, tuple(range(g.ndim - 1))) if g.ndim > 1 else g
    return (gx, gw, gb) if len(c.edges) > 2 else (gx, gw)


LINEAR = register("linear", infer=_linear_infer, impl=_linear_impl, vjp=_linear_vjp, save_in=(0, 1),
                  save_for={0: (1,), 1: (0,)}, family="nn")


def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` as one primitive (see ``danlu.nn.functional.linear``).

    >>> import danlu as dl
    >>> from danlu.ops.nn import linear
    >>> linear(dl.ones(2, 3), dl.ones(4, 3), dl.zeros(4)).shape
    danlu.Size([2, 4])
    """
    if bias is None:
        return apply(LINEAR, input, weight)
    return apply(LINEAR, input, weight, bias)
