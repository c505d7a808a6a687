"""Recurrent primitives: the time loop of an RNN (tanh or relu), LSTM (optionally projected) or GRU
layer as one primitive each, with a backward primitive each, and the cell functions built on them.

Why whole-sequence primitives: a recurrence spelled with danlu ops records ~10 tape nodes per time
step, and its backward runs one small weight-gradient GEMM per step. Here the forward kernel runs the
loop in NumPy (one GEMM per step plus in-place gate arithmetic) and keeps the activations in a
workspace; the backward kernel walks the steps in reverse and forms the weight gradient with a few
large GEMMs over many time steps at once, run on a pool thread while the loop goes on. The input
projection ``x @ W_ih^T + b`` is not part of the primitives: callers compute it for all steps at once
first (``input_projection``: one ordinary ``matmul``).

Layout. The input projection is *gate-major*, ``xproj (G, N, H)`` for G gates (LSTM 4: i f g o;
GRU 3: r z n; RNN 1), so every gate of every step is one contiguous block and the gate arithmetic
runs on contiguous memory (strided column blocks cost NumPy about twice as much). The ``N`` rows are
*packed*: time step ``t`` owns the ``batch_sizes[t]`` rows after those of the steps before it, and
they are the *first* ``batch_sizes[t]`` batch elements (a padded ``(T, B)`` batch is the case
``batch_sizes = (B,) * T``). Each step updates only the still-running prefix of the ``(B, P)`` state,
so no arithmetic touches padding, and the final state holds every sequence's state at its own last
step (its first step when ``reverse``).

Outputs of each forward primitive: ``out (N, P)``, ``h_n (B, P)`` (LSTM: also ``c_n (B, H)``) and
``ws``, a flat workspace of per-row activations for the backward kernel (no gradient flows through
it; the public functions drop it). Double backward: each backward primitive's VJP rebuilds the
recurrence with differentiable danlu ops (``_*_reference``) and differentiates its first-order
gradient again, so second and higher derivatives are exact, only slower than first ones.
"""
# ruff: noqa: A002  (``input``, PyTorch's argument name)

from __future__ import annotations

import ctypes
import threading
from time import perf_counter

import numpy as np

from ..core import dtypes as _dt
from ..core.dispatch import apply, state
from ..core.errors import DTypeError, ShapeError, api, describe
from ..core.registry import AVal, register
from ..core.tensor import Tensor

__all__ = ["rnn_tanh_cell", "rnn_relu_cell", "lstm_cell", "gru_cell"]


# == BLAS threads in the time loop ==================================================================
# The per-step GEMMs are small and alternate with NumPy elementwise work. A multi-threaded BLAS keeps its
# helper thread spinning between them: with an idle core that nearly halves the GEMMs, but when the other
# core is busy, waking the helper for every step costs far more than the GEMM itself. Which case holds
# changes from moment to moment on a shared machine, so the loops measure it: every few loops of a shape,
# one loop times some steps with one BLAS thread and some with all of them, and loops of that shape then
# run with the faster setting. When single-threaded, the backward loop gives the idle core its weight
# gradients instead (see _RowGemms). Where the BLAS's thread control cannot be found (not OpenBLAS),
# the loops leave the BLAS alone. The setting is process-wide: loops running at once in two threads
# may slow each other, never change a result. After a loop the BLAS gets back the thread count it had
# when danlu first looked.

_PROBE_EVERY = 8            # loops of one shape between two timings of both settings
_PROBE_MIN_FLOPS = 1 << 21  # per-step GEMM flops below which the choice does not matter
_blas_lock = threading.Lock()
_blas = {"looked": False, "set": None, "default": 1}


def _find_blas_controls():
    _blas["looked"] = True
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    except OSError:
        return
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "64_"),
                               ("openblas", "")):
            setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
                _blas["set"], _blas["default"] = setter, int(getter())
                return


class _LoopBlas:
    """Context manager around one time loop that picks its BLAS threading; call ``step()`` at the start of
    every step. ``multi`` says whether the BLAS currently runs on all its threads."""

    stats: dict = {}  # shape key -> [seconds per step with one thread, with all threads, loops run]

    def __init__(self, key, n_steps: int, step_flops: float):
        with _blas_lock:
            if not _blas["looked"]:
                _find_blas_controls()
            if len(self.stats) > 512:  # many shapes (varying batch sizes): start over
                self.stats.clear()
        self.multi = self.probing = False
        self.active = _blas["set"] is not None and _blas["default"] > 1 and step_flops >= _PROBE_MIN_FLOPS
        if not self.active:
            return
        st = self.stats.setdefault(key, [None, None, 0])
        st[2] += 1
        self.st = st
        self.probing = n_steps >= 8 and (None in st[:2] or st[2] % _PROBE_EVERY == 0)
        self.multi = not self.probing and None not in st[:2] and st[1] < st[0]

    def __enter__(self):
        if self.active:
            self.i, self.timed_from = 0, 0
            self._threads()
            self.t = perf_counter()
        return self

    @property
    def core_free(self) -> bool:
        """Whether a pool thread may take GEMM work now: the BLAS runs one thread and the probe (which
        changes the process-wide thread count) is over."""
        return not (self.multi or self.probing)

    def _threads(self):
        _blas["set"](_blas["default"] if self.multi else 1)

    def _record(self, k, seconds, probe=True):
        """A probe's timings replace the old ones (both settings measured under the same conditions); a
        whole loop's average moves its setting's figure, so a setting that got slow loses the choice."""
        old = self.st[k]
        self.st[k] = seconds if probe or old is None else 0.5 * old + 0.5 * seconds

    def step(self):
        if not self.active:
            return
        i = self.i = self.i + 1
        if not self.probing or i < 2:
            return
        # at the start of step i - 1: steps 1-2 run on one thread, 3-4 on all (step 0 warms up); a first
        # all-threads step (it also wakes the BLAS threads) slower than three one-thread steps ends the
        # probe there
        now = perf_counter()
        if i == 2:
            self.t = now
        elif i == 4:
            self._record(0, (now - self.t) / 2)
            self.multi, self.t = True, now
            self._threads()
        elif i == 5 and now - self.t > 3 * self.st[0]:
            self._record(1, now - self.t)
            self._decide(now, i)
        elif i == 6:
            self._record(1, (now - self.t) / 2)
            self._decide(now, i)

    def _decide(self, now, i):
        self.multi, self.probing, self.t, self.timed_from = self.st[1] < self.st[0], False, now, i - 1
        self._threads()

    def __exit__(self, *exc):
        if self.active:
            steps = self.i - self.timed_from
            if not self.probing and steps > 0:
                self._record(1 if self.multi else 0, (perf_counter() - self.t) / steps, probe=False)
            _blas["set"](_blas["default"])


# == shared checks and helpers ======================================================================

def _check_floats(name, *xs):
    dt = xs[0].dtype
    if not dt.is_floating_point:
        raise DTypeError(f"{name}: expected floating point tensors, got {describe(xs[0])}")
    for x in xs[1:]:
        if x.dtype is not dt:
            raise DTypeError(f"{name}: all inputs must have the same dtype, got {', '.join(describe(a) for a in xs)}; "
                             "convert the input or the module with .to(dtype)")


def _check_shape(name, what, x, shape):
    if tuple(x.shape) != tuple(shape):
        raise ShapeError(f"{name}: expected {what} of shape {list(shape)}, got {describe(x)}")


def _check_rows(name, x, batch_sizes, gates):
    """(N, H) of a gate-major packed input projection (G, N, H), checked against ``batch_sizes``."""
    if len(x.shape) != 3 or x.shape[0] != gates:
        raise ShapeError(f"{name}: expected the input projection gate-major as ({gates}, N, H), got {describe(x)}")
    _, n, h = x.shape
    if any(not isinstance(b, int) or b < 0 for b in batch_sizes) or \
            any(a < b for a, b in zip(batch_sizes, batch_sizes[1:])):
        raise ValueError(f"{name}: batch_sizes must be non-increasing non-negative ints, got {list(batch_sizes)}")
    if sum(batch_sizes) != n:
        raise ShapeError(f"{name}: batch_sizes {list(batch_sizes)} account for {sum(batch_sizes)} rows but the "
                         f"input projection has {n} ({describe(x)})")
    return n, h


def _check_batch(name, h0, batch_sizes):
    if len(h0.shape) != 2:
        raise ShapeError(f"{name}: expected a 2-D initial state (B, H), got {describe(h0)}")
    if batch_sizes and h0.shape[0] != batch_sizes[0]:
        raise ShapeError(f"{name}: the initial state has {h0.shape[0]} rows but the first time step has "
                         f"{batch_sizes[0]} batch elements ({describe(h0)})")


def _steps(batch_sizes, reverse):
    """[(first row, batch size)] in processing order."""
    out = []
    off = 0
    for b in batch_sizes:
        out.append((off, b))
        off += b
    return out[::-1] if reverse else out


def _compute_dtype(dt):
    return np.float32 if dt == np.float16 else dt


def _up(x, ct):
    return x if x.dtype == ct else x.astype(ct)


def _down(arrays, dt):
    return tuple(a if a.dtype == dt else a.astype(dt) for a in arrays)


def _views(buf, *shapes):
    """Consecutive contiguous arrays of the given shapes over the flat buffer ``buf``."""
    out, off = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        out.append(buf[off:off + n].reshape(shape))
        off += n
    return out


def _scratch(ct, *shapes):
    """Flat buffers big enough for the largest step; ``_take(buf, shape)`` views one contiguously."""
    return [np.empty(int(np.prod(s)), ct) for s in shapes]


def _take(buf, shape):
    return buf[:int(np.prod(shape))].reshape(shape)


def _sigmoid_of_negated(a):
    """In place: ``a`` holds ``-x``; leaves ``1 / (1 + exp(-x))``, PyTorch's formula (``exp`` overflowing
    to inf gives exactly 0). The kernels get ``-x`` for free by negating the weights' sigmoid gates."""
    np.exp(a, out=a)
    a += 1.0
    np.reciprocal(a, out=a)


def _dsigmoid(s, out):
    """``s * (1 - s)`` into ``out``."""
    np.subtract(1.0, s, out=out)
    out *= s
    return out


def _gate_weights(w_hh, gates, negate, ct):
    """A copy of ``W_hh (G*H, P)`` with the rows of the ``negate`` gates negated. The step GEMM runs as
    ``W @ h^T`` (output ``(G*H, b)``): OpenBLAS splits that shape better than ``h @ W^T`` (measured 20-40%
    faster per step), and the gate arithmetic reads the result through a transposed view."""
    w = np.array(w_hh, dtype=ct, copy=True)  # never written in place: the caller's weights
    g_h = w.shape[0] // gates
    for k in negate:
        np.negative(w[k * g_h:(k + 1) * g_h], out=w[k * g_h:(k + 1) * g_h])
    return w


def _transposed_product(w, x, scratch, out):
    """``out (b, P) = x (b, K) @ w^T`` for ``w (P, K)``, computed as ``w @ x^T`` (see ``_gate_weights``)."""
    t = _take(scratch, (w.shape[0], x.shape[0]))
    np.matmul(w, x.T, out=t)
    np.copyto(out, t.T)
    return out


def _ws_aval(x, n_elems):
    """The workspace output: raw bytes (uint8) of ``n_elems`` compute-dtype values. Not a float output, so
    autograd neither tracks it nor builds a zero cotangent for it."""
    return AVal((n_elems * np.dtype(_compute_dtype(x.dtype.np)).itemsize,), _dt.uint8)


# == weight gradients alongside the backward time loop ==============================================
# The weight gradient sums h_prev^T dG over all rows; the rows of the steps the backward loop has
# finished are final, so their GEMMs run on the pool thread while the loop goes on. Those are few long
# BLAS calls, which hardly contend with the loop for the GIL. Small problems do it all at the end.

_OVERLAP_MIN = 1 << 24  # flops of the weight-gradient GEMMs below which a helper thread is not worth it


class _RowGemms:
    """The weight gradients ``fn(lo, hi)`` (a tuple of partial sums over rows ``[lo, hi)``), computed in
    parts on the pool thread as the backward loop reports rows final, and the rest at the end."""

    def __init__(self, fn, n_rows, flops):
        self.fn, self.n = fn, n_rows
        self.futures = []
        self.lo = self.hi = None      # rows reported, not yet submitted
        self.sub = None               # rows submitted: one range growing from one end
        self.overlap = flops >= _OVERLAP_MIN and n_rows > 1
        self.chunk = max(1, n_rows // 6)

    def done(self, lo, hi, idle_core: bool):
        """Rows ``[lo, hi)`` are final (adjacent to the previous call's); ``idle_core``: whether the loop
        leaves a core free for the pool thread now."""
        if not self.overlap:
            return
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)
        if idle_core and self.hi - self.lo >= self.chunk:
            from .nn import _worker

            self.futures.append((_worker().submit(self.fn, self.lo, self.hi), self.lo, self.hi))
            sub = self.sub or (self.lo, self.hi)
            self.sub = (min(sub[0], self.lo), max(sub[1], self.hi))
            self.lo = self.hi = None

    def total(self):
        if self.sub is None:
            return self.fn(0, self.n)
        lo, hi = (0, self.sub[0]) if self.sub[1] == self.n else (self.sub[1], self.n)
        parts = [self.fn(lo, hi)] if hi > lo else []
        for fut, a, b in self.futures:  # a part the pool thread has not started is computed here
            parts.append(self.fn(a, b) if fut.cancel() else fut.result())
        return tuple(sum(ps[1:], ps[0].copy()) if len(ps) > 1 else ps[0] for ps in zip(*parts))


# == double backward: differentiate the first-order gradient of a reference recurrence ==============

def _double_vjp(reference, n_cot, ctx, vs):
    """VJP of a ``*_sequence_backward`` primitive with inputs ``(out, ws, *cotangents, *primals)`` and
    outputs ``grads of primals``: rebuild the forward with danlu ops, take its VJP with a graph, and
    differentiate that against ``vs``. ``out`` and ``ws`` get no gradient: they are functions of the
    primals, whose dependence the rebuilt forward already carries."""
    from ..autograd.engine import grad as _grad
    from .shape import _alias

    ins = ctx.inputs
    cots, primals = ins[2:2 + n_cot], ins[2 + n_cot:]
    outer = state.grad_enabled
    state.grad_enabled = True
    try:
        # Fresh aliases cut the inner differentiation at these inputs: it must give partial derivatives
        # only (the outer backward carries each input's own history), yet stay connected to the inputs
        # so that higher orders still differentiate through.
        ps = [_alias(p) if p._rg else p.detach().requires_grad_(True) for p in primals]
        gs = [_alias(g) if g._rg else g.detach().requires_grad_(True) for g in cots]
        outs = [(o, g) for o, g in zip(reference(*ps, **ctx.attrs), gs) if o._rg]
        first = _grad([o for o, _ in outs], ps, [g for _, g in outs], create_graph=True, allow_unused=True)
        pairs = [(f, v) for f, v in zip(first, vs) if f is not None and v is not None and f._rg]
        wrt_idx = [2 + i for i in range(n_cot + len(primals)) if ctx.edges[2 + i] is not None]
        wrt = [(gs + ps)[i - 2] for i in wrt_idx]
        res = [None] * len(ins)
        if pairs and wrt:
            second = _grad([f for f, _ in pairs], wrt, [v for _, v in pairs], create_graph=outer, allow_unused=True)
            for i, s in zip(wrt_idx, second):
                res[i] = s if outer or s is None else s.detach()
    finally:
        state.grad_enabled = outer
    return tuple(res)


def _reference_loop(x, batch_sizes, reverse, state0, step):
    """Run ``step(x rows of the step (G, b, H), state prefixes) -> (h_out, new prefixes)`` over the packed
    steps with danlu ops; returns (packed outputs (N, P), final states)."""
    from .shape import cat

    states = list(state0)
    outs = []
    for off, b in _steps(batch_sizes, reverse):
        h_out, new = step(x[:, off:off + b], [s[:b] for s in states])
        states = [n if s.shape[0] == b else cat([n, s[b:]]) for n, s in zip(new, states)]
        outs.append((off, h_out))
    if not outs:  # an empty sequence: (0, P), still a function of x like the primitive's output
        out = _empty_rows(x, states[0].shape[1])
    else:
        out = cat([o for _, o in sorted(outs, key=lambda e: e[0])])
    return out, states


def _empty_rows(x, width):
    from .shape import expand

    return expand(x[0, :, :1], (0, width)) * 0.0


def _gate_split(hg, gates):
    from .shape import chunk

    return chunk(hg, gates, 1)


# == RNN (tanh / relu) ==============================================================================
# ws: h_prev (N, H), the state each row started from (the weight gradient's left factor).

def _rnn_infer(x, h0, w_hh, *, batch_sizes, reverse, nonlinearity):
    name = "rnn_sequence"
    _check_floats(name, x, h0, w_hh)
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{name}: Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    n, h = _check_rows(name, x, batch_sizes, 1)
    _check_batch(name, h0, batch_sizes)
    b = h0.shape[0]
    _check_shape(name, "hidden state", h0, (b, h))
    _check_shape(name, "weight_hh", w_hh, (h, h))
    return AVal((n, h), x.dtype), AVal((b, h), x.dtype), _ws_aval(x, n * h)


def _rnn_impl(x, h0, w_hh, *, batch_sizes, reverse, nonlinearity):
    dt = x.dtype
    ct = _compute_dtype(dt)
    x, h0, w_hh = _up(x[0], ct), _up(h0, ct), _up(w_hh, ct)
    n, hs = x.shape
    out = np.empty((n, hs), ct)
    ws = np.empty(n * hs, ct)
    h_prev = ws.reshape(n, hs)
    h = h0.copy()
    w_t = np.ascontiguousarray(w_hh.T)
    relu = nonlinearity == "relu"
    key = ("rnn", h0.shape[0], hs, ct)
    with _LoopBlas(key, len(batch_sizes), 2 * h0.shape[0] * hs * hs) as lb:
        for off, b in _steps(batch_sizes, reverse):
            lb.step()
            r = slice(off, off + b)
            hb, o = h[:b], out[r]
            h_prev[r] = hb
            np.matmul(hb, w_t, out=o)
            o += x[r]
            if relu:
                np.maximum(o, 0.0, out=o)
            else:
                np.tanh(o, out=o)
            hb[...] = o
    return _down((out, h), dt) + (ws.view(np.uint8),)


def _rnn_vjp(ctx, g_out, g_hn, g_ws):
    out, _, ws = ctx.outs
    return apply(RNN_BACKWARD, out, ws, g_out, g_hn, *ctx.inputs, **ctx.attrs)


def _rnn_bw_infer(out, ws, g_out, g_hn, x, h0, w_hh, *, batch_sizes, reverse, nonlinearity):
    return AVal(x.shape, x.dtype), AVal(h0.shape, x.dtype), AVal(w_hh.shape, x.dtype)


def _rnn_bw_impl(out, ws, g_out, g_hn, x, h0, w_hh, *, batch_sizes, reverse, nonlinearity):
    dt = x.dtype
    ct = _compute_dtype(dt)
    out, g_out, g_hn, w_hh = (_up(a, ct) for a in (out, g_out, g_hn, w_hh))
    n, hs = out.shape
    h_prev = ws.view(ct).reshape(n, hs)
    dpre = np.empty((1, n, hs), ct)
    dh = g_hn.copy()
    relu = nonlinearity == "relu"
    (t1,) = _scratch(ct, dh.shape)
    dw = _RowGemms(lambda lo, hi: (dpre[0, lo:hi].T @ h_prev[lo:hi],), n, 2 * n * hs * hs)
    key = ("rnn_backward", g_hn.shape[0], hs, ct)
    with _LoopBlas(key, len(batch_sizes), 2 * g_hn.shape[0] * hs * hs) as lb:
        for off, b in reversed(_steps(batch_sizes, reverse)):
            lb.step()
            r = slice(off, off + b)
            y, d, dhb = out[r], dpre[0, r], dh[:b]
            np.add(dhb, g_out[r], out=d)
            if relu:
                d *= y > 0
            else:
                u = _take(t1, (b, hs))
                np.multiply(y, y, out=u)
                np.subtract(1.0, u, out=u)
                d *= u
            np.matmul(d, w_hh, out=dhb)
            dw.done(off, off + b, lb.core_free)
        (dw_hh,) = dw.total()
    return _down((dpre, dh, dw_hh), dt)


def _rnn_reference(x, h0, w_hh, *, batch_sizes, reverse, nonlinearity):
    from .elementwise import relu, tanh
    from .linalg import matmul

    act = relu if nonlinearity == "relu" else tanh
    wt = w_hh.t()

    def step(xr, st):
        hn = act(xr[0] + matmul(st[0], wt))
        return hn, [hn]

    out, (h,) = _reference_loop(x, batch_sizes, reverse, [h0], step)
    return out, h


RNN_SEQUENCE = register("rnn_sequence", infer=_rnn_infer, impl=_rnn_impl, vjp=_rnn_vjp, save_in=(0, 1, 2),
                        save_out=True, multi_out=True, family="recurrent")
RNN_BACKWARD = register("rnn_sequence_backward", infer=_rnn_bw_infer, impl=_rnn_bw_impl,
                        vjp=lambda c, *vs: _double_vjp(_rnn_reference, 2, c, vs), save_in=tuple(range(7)),
                        multi_out=True, nondiff_args=(0, 1), family="recurrent")


def rnn_sequence(xproj: Tensor, h0: Tensor, w_hh: Tensor, *, batch_sizes, reverse: bool = False,
                 nonlinearity: str = "tanh"):
    """The recurrence ``h_t = act(xproj_t + h_{t-1} @ w_hh^T)`` over packed rows; returns ``(out, h_n)``.

    ``xproj (1, N, H)`` already holds ``x @ w_ih^T + b_ih + b_hh``; ``h0 (B, H)``.

    >>> import danlu as dl
    >>> out, h = rnn_sequence(dl.zeros(1, 3, 2), dl.zeros(2, 2), dl.eye(2), batch_sizes=(2, 1))
    >>> out.shape, h.shape
    (danlu.Size([3, 2]), danlu.Size([2, 2]))
    """
    out, h_n, _ = apply(RNN_SEQUENCE, xproj, h0, w_hh, batch_sizes=tuple(int(b) for b in batch_sizes),
                        reverse=bool(reverse), nonlinearity=nonlinearity)
    return out, h_n


# == LSTM ===========================================================================================
# ws: gates (4, N, H) after their activations, in PyTorch's order i f g o | c_prev (N, H) | tanh(c) (N, H)
#     | h_prev (N, P)

def _lstm_ws(ws, n, hs, ps):
    return _views(ws, (4, n, hs), (n, hs), (n, hs), (n, ps))


def _lstm_infer(x, h0, c0, w_hh, *w_hr, batch_sizes, reverse):
    name = "lstm_sequence"
    _check_floats(name, x, h0, c0, w_hh, *w_hr)
    n, h = _check_rows(name, x, batch_sizes, 4)
    if len(w_hr) > 1:
        raise TypeError(f"{name}: expected at most one projection weight, got {len(w_hr)}")
    p = w_hr[0].shape[0] if w_hr and len(w_hr[0].shape) == 2 else h
    if w_hr:
        _check_shape(name, "weight_hr", w_hr[0], (p, h))
    _check_batch(name, h0, batch_sizes)
    b = h0.shape[0]
    _check_shape(name, "hidden state", h0, (b, p))
    _check_shape(name, "cell state", c0, (b, h))
    _check_shape(name, "weight_hh", w_hh, (4 * h, p))
    dt = x.dtype
    return AVal((n, p), dt), AVal((b, p), dt), AVal((b, h), dt), _ws_aval(x, n * (6 * h + p))


def _lstm_impl(x, h0, c0, w_hh, *w_hr, batch_sizes, reverse):
    dt = x.dtype
    ct = _compute_dtype(dt)
    x, h0, c0 = _up(x, ct), _up(h0, ct), _up(c0, ct)
    _, n, hs = x.shape
    b0, ps = h0.shape
    wn = _gate_weights(w_hh, 4, (0, 1, 3), ct)  # the GEMM yields -(h W^T) for the sigmoid gates i f o
    w_hr_t = np.ascontiguousarray(_up(w_hr[0], ct).T) if w_hr else None
    out = np.empty((n, ps), ct)
    ws = np.empty(n * (6 * hs + ps), ct)
    gates, c_prev, tanh_c, h_prev = _lstm_ws(ws, n, hs, ps)
    h, c = h0.copy(), c0.copy()
    tg, t1 = _scratch(ct, (4, b0, hs), (b0, hs))
    key = ("lstm", b0, hs, ps, ct)
    with _LoopBlas(key, len(batch_sizes), 8 * b0 * hs * ps) as lb, np.errstate(over="ignore"):
        for off, b in _steps(batch_sizes, reverse):
            lb.step()
            r = slice(off, off + b)
            hb, cb, a, xr = h[:b], c[:b], gates[:, r], x[:, r]
            h_prev[r] = hb
            c_prev[r] = cb
            t_t = _take(tg, (4 * hs, b))
            np.matmul(wn, hb.T, out=t_t)
            t = t_t.reshape(4, hs, b).transpose(0, 2, 1)  # (4, b, H)
            np.subtract(t[:2], xr[:2], out=a[:2])
            np.subtract(t[3], xr[3], out=a[3])
            np.add(t[2], xr[2], out=a[2])
            _sigmoid_of_negated(a[:2])
            _sigmoid_of_negated(a[3])
            np.tanh(a[2], out=a[2])
            u = _take(t1, (b, hs))
            cb *= a[1]
            np.multiply(a[0], a[2], out=u)
            cb += u
            tc = tanh_c[r]
            np.tanh(cb, out=tc)
            if w_hr_t is None:
                np.multiply(a[3], tc, out=hb)
            else:
                np.multiply(a[3], tc, out=u)
                np.matmul(u, w_hr_t, out=hb)
            out[r] = hb
    return _down((out, h, c), dt) + (ws.view(np.uint8),)


def _lstm_vjp(ctx, g_out, g_hn, g_cn, g_ws):
    out, _, _, ws = ctx.outs
    return apply(LSTM_BACKWARD, out, ws, g_out, g_hn, g_cn, *ctx.inputs, **ctx.attrs)


def _lstm_bw_infer(out, ws, g_out, g_hn, g_cn, x, h0, c0, w_hh, *w_hr, batch_sizes, reverse):
    return tuple(AVal(a.shape, x.dtype) for a in (x, h0, c0, w_hh) + w_hr)


def _lstm_bw_impl(out, ws, g_out, g_hn, g_cn, x, h0, c0, w_hh, *w_hr, batch_sizes, reverse):
    dt = x.dtype
    ct = _compute_dtype(dt)
    g_out, g_hn, g_cn, w_hh = (_up(a, ct) for a in (g_out, g_hn, g_cn, w_hh))
    w_hr = _up(w_hr[0], ct) if w_hr else None
    _, n, hs = x.shape
    b0, ps = g_hn.shape
    gates, c_prev, tanh_c, h_prev = _lstm_ws(ws.view(ct), n, hs, ps)
    w_t = np.ascontiguousarray(w_hh.T)
    dg = np.empty((4, n, hs), ct)  # d(pre-activation gates) = d xproj
    dh_rows = np.empty((n, ps), ct) if w_hr is not None else None
    dh, dc = g_hn.copy(), g_cn.copy()
    ts, t1, t4, t5 = _scratch(ct, (3, b0, hs), (b0, hs), (4 * hs, b0), (ps, b0))

    def weight_grads(lo, hi):
        dw = np.matmul(dg[:, lo:hi].transpose(0, 2, 1), h_prev[lo:hi]).reshape(4 * hs, ps)
        if w_hr is None:
            return (dw,)
        return dw, dh_rows[lo:hi].T @ (gates[3, lo:hi] * tanh_c[lo:hi])

    wgrads = _RowGemms(weight_grads, n, 2 * n * 4 * hs * ps)
    key = ("lstm_backward", b0, hs, ps, ct)
    with _LoopBlas(key, len(batch_sizes), 8 * b0 * hs * ps) as lb:
        for off, b in reversed(_steps(batch_sizes, reverse)):
            lb.step()
            r = slice(off, off + b)
            a, d, cp, tc = gates[:, r], dg[:, r], c_prev[r], tanh_c[r]
            dhb, dcb = dh[:b], dc[:b]
            dhb += g_out[r]
            if w_hr is not None:
                dh_rows[r] = dhb
                dhp = dhb @ w_hr
            else:
                dhp = dhb
            u = _take(t1, (b, hs))
            # dc += dh * o * (1 - tanh(c)^2)
            np.multiply(tc, tc, out=u)
            np.subtract(1.0, u, out=u)
            u *= a[3]
            u *= dhp
            dcb += u
            s = _take(ts, (3, b, hs))
            _dsigmoid(a[:2], s[:2])
            _dsigmoid(a[3], s[2])
            np.multiply(dcb, a[2], out=d[0])
            d[0] *= s[0]
            np.multiply(dcb, cp, out=d[1])
            d[1] *= s[1]
            np.multiply(dhp, tc, out=d[3])
            d[3] *= s[2]
            np.multiply(a[2], a[2], out=u)
            np.subtract(1.0, u, out=u)
            u *= a[0]
            np.multiply(dcb, u, out=d[2])
            dcb *= a[1]
            # dh_prev = sum_k d_k @ W_k as one GEMM over the gate-stacked (4H, b) transpose
            d_t = _take(t4, (4 * hs, b))
            np.copyto(d_t.reshape(4, hs, b), d.transpose(0, 2, 1))
            _transposed_product(w_t, d_t.T, t5, dhb)
            wgrads.done(off, off + b, lb.core_free)
        grads = (dg, dh, dc) + wgrads.total()
    return _down(grads, dt)


def _lstm_reference(x, h0, c0, w_hh, *w_hr, batch_sizes, reverse):
    from .elementwise import sigmoid, tanh
    from .linalg import matmul

    wt = w_hh.t()
    wr = w_hr[0].t() if w_hr else None

    def step(xr, st):
        h, c = st
        i, f, g, o = (xr[k] + hk for k, hk in enumerate(_gate_split(matmul(h, wt), 4)))
        cn = sigmoid(f) * c + sigmoid(i) * tanh(g)
        hn = sigmoid(o) * tanh(cn)
        if wr is not None:
            hn = matmul(hn, wr)
        return hn, [hn, cn]

    out, (h, c) = _reference_loop(x, batch_sizes, reverse, [h0, c0], step)
    return out, h, c


LSTM_SEQUENCE = register("lstm_sequence", infer=_lstm_infer, impl=_lstm_impl, vjp=_lstm_vjp,
                         save_in=tuple(range(5)), save_out=True, multi_out=True, family="recurrent")
LSTM_BACKWARD = register("lstm_sequence_backward", infer=_lstm_bw_infer, impl=_lstm_bw_impl,
                         vjp=lambda c, *vs: _double_vjp(_lstm_reference, 3, c, vs), save_in=tuple(range(10)),
                         multi_out=True, nondiff_args=(0, 1), family="recurrent")


def lstm_sequence(xproj: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, w_hr: Tensor | None = None, *,
                  batch_sizes, reverse: bool = False):
    """An LSTM layer's recurrence over packed rows; returns ``(out, h_n, c_n)``.

    ``xproj (4, N, H)`` holds ``x @ w_ih^T + b_ih + b_hh`` gate-major in PyTorch's order i, f, g, o;
    ``h0 (B, P)``, ``c0 (B, H)``, ``w_hh (4H, P)`` and the optional projection ``w_hr (P, H)`` (``P = H``
    without one).

    >>> import danlu as dl
    >>> out, h, c = lstm_sequence(dl.zeros(4, 5, 2), dl.zeros(3, 2), dl.ones(3, 2), dl.zeros(8, 2),
    ...                           batch_sizes=(3, 2))
    >>> out.shape, c[:, 0]  # the third sequence stopped after one step
    (danlu.Size([5, 2]), tensor([0.2500, 0.2500, 0.5000]))
    """
    extra = (w_hr,) if w_hr is not None else ()
    out, h_n, c_n, _ = apply(LSTM_SEQUENCE, xproj, h0, c0, w_hh, *extra,
                             batch_sizes=tuple(int(b) for b in batch_sizes), reverse=bool(reverse))
    return out, h_n, c_n


# == GRU ============================================================================================
# ws: sigmoid(r), sigmoid(z) (2, N, H) | n (N, H) | h_prev @ W_hn^T + b_hn (N, H) | h_prev (N, H)

def _gru_ws(ws, n, hs):
    return _views(ws, (2, n, hs), (n, hs), (n, hs), (n, hs))


def _gru_infer(x, h0, w_hh, *b_hh, batch_sizes, reverse):
    name = "gru_sequence"
    _check_floats(name, x, h0, w_hh, *b_hh)
    n, h = _check_rows(name, x, batch_sizes, 3)
    _check_batch(name, h0, batch_sizes)
    b = h0.shape[0]
    _check_shape(name, "hidden state", h0, (b, h))
    _check_shape(name, "weight_hh", w_hh, (3 * h, h))
    if len(b_hh) > 1:
        raise TypeError(f"{name}: expected at most one hidden bias, got {len(b_hh)}")
    if b_hh:
        _check_shape(name, "bias_hh", b_hh[0], (3 * h,))
    dt = x.dtype
    return AVal((n, h), dt), AVal((b, h), dt), _ws_aval(x, n * 5 * h)


def _gru_impl(x, h0, w_hh, *b_hh, batch_sizes, reverse):
    dt = x.dtype
    ct = _compute_dtype(dt)
    x, h0 = _up(x, ct), _up(h0, ct)
    _, n, hs = x.shape
    b0 = h0.shape[0]
    wn = _gate_weights(w_hh, 3, (0, 1), ct)  # the GEMM yields -(h W^T) for r and z
    bias = _up(b_hh[0], ct).reshape(3, 1, hs) if b_hh else None
    out = np.empty((n, hs), ct)
    ws = np.empty(n * 5 * hs, ct)
    rz_all, n_all, hn_all, h_prev = _gru_ws(ws, n, hs)
    h = h0.copy()
    tg, t1 = _scratch(ct, (3 * hs, b0), (b0, hs))
    key = ("gru", b0, hs, ct)
    with _LoopBlas(key, len(batch_sizes), 6 * b0 * hs * hs) as lb, np.errstate(over="ignore"):
        for off, b in _steps(batch_sizes, reverse):
            lb.step()
            r = slice(off, off + b)
            hb, xr, rz, nn, hn = h[:b], x[:, r], rz_all[:, r], n_all[r], hn_all[r]
            h_prev[r] = hb
            t_t = _take(tg, (3 * hs, b))
            np.matmul(wn, hb.T, out=t_t)
            t = t_t.reshape(3, hs, b).transpose(0, 2, 1)  # (3, b, H)
            np.subtract(t[:2], xr[:2], out=rz)
            if bias is not None:
                rz -= bias[:2]
                np.add(t[2], bias[2], out=hn)
            else:
                hn[...] = t[2]
            _sigmoid_of_negated(rz)
            np.multiply(rz[0], hn, out=nn)
            nn += xr[2]
            np.tanh(nn, out=nn)
            # h' = (1 - z) n + z h = n + z (h - n)
            u = _take(t1, (b, hs))
            np.subtract(hb, nn, out=u)
            u *= rz[1]
            np.add(nn, u, out=hb)
            out[r] = hb
    return _down((out, h), dt) + (ws.view(np.uint8),)


def _gru_vjp(ctx, g_out, g_hn, g_ws):
    out, _, ws = ctx.outs
    return apply(GRU_BACKWARD, out, ws, g_out, g_hn, *ctx.inputs, **ctx.attrs)


def _gru_bw_infer(out, ws, g_out, g_hn, x, h0, w_hh, *b_hh, batch_sizes, reverse):
    return tuple(AVal(a.shape, x.dtype) for a in (x, h0, w_hh) + b_hh)


def _gru_bw_impl(out, ws, g_out, g_hn, x, h0, w_hh, *b_hh, batch_sizes, reverse):
    dt = x.dtype
    ct = _compute_dtype(dt)
    g_out, g_hn, w_hh = (_up(a, ct) for a in (g_out, g_hn, w_hh))
    _, n, hs = x.shape
    b0 = g_hn.shape[0]
    rz_all, n_all, hn_all, h_prev = _gru_ws(ws.view(ct), n, hs)
    w_t = np.ascontiguousarray(w_hh.T)
    dx = np.empty((3, n, hs), ct)   # d(x-side pre-activations) = d xproj
    dhg = np.empty((3, n, hs), ct)  # d(h-side pre-activations h W_hh^T + b_hh)
    dh = g_hn.copy()
    t1, ts, t3, t4 = _scratch(ct, (b0, hs), (2, b0, hs), (3 * hs, b0), (hs, b0))

    def weight_grads(lo, hi):
        dw = np.matmul(dhg[:, lo:hi].transpose(0, 2, 1), h_prev[lo:hi]).reshape(3 * hs, hs)
        return (dw, dhg[:, lo:hi].sum(axis=1).reshape(3 * hs)) if b_hh else (dw,)

    wgrads = _RowGemms(weight_grads, n, 2 * n * 3 * hs * hs)
    key = ("gru_backward", b0, hs, ct)
    with _LoopBlas(key, len(batch_sizes), 6 * b0 * hs * hs) as lb:
        for off, b in reversed(_steps(batch_sizes, reverse)):
            lb.step()
            r = slice(off, off + b)
            rz, nn, hn, hp, dxr, dhr = rz_all[:, r], n_all[r], hn_all[r], h_prev[r], dx[:, r], dhg[:, r]
            dhb = dh[:b]
            dhb += g_out[r]
            u = _take(t1, (b, hs))
            # d n_pre = dh (1 - z) (1 - n^2)
            dn = dxr[2]
            np.multiply(nn, nn, out=u)
            np.subtract(1.0, u, out=u)
            np.multiply(dhb, u, out=dn)
            np.subtract(1.0, rz[1], out=u)
            dn *= u
            # d z_pre = dh (h_prev - n) z (1 - z);  d r_pre = dn_pre hn r (1 - r)
            s = _dsigmoid(rz, _take(ts, (2, b, hs)))
            np.subtract(hp, nn, out=u)
            np.multiply(dhb, u, out=dxr[1])
            dxr[1] *= s[1]
            np.multiply(dn, hn, out=dxr[0])
            dxr[0] *= s[0]
            dhr[:2] = dxr[:2]
            np.multiply(dn, rz[0], out=dhr[2])
            dhb *= rz[1]
            d_t = _take(t3, (3 * hs, b))
            np.copyto(d_t.reshape(3, hs, b), dhr.transpose(0, 2, 1))
            u = _take(t1, (b, hs))
            dhb += _transposed_product(w_t, d_t.T, t4, u)
            wgrads.done(off, off + b, lb.core_free)
        grads = (dx, dh) + wgrads.total()
    return _down(grads, dt)


def _gru_reference(x, h0, w_hh, *b_hh, batch_sizes, reverse):
    from .elementwise import sigmoid, tanh
    from .linalg import matmul

    wt = w_hh.t()

    def step(xr, st):
        (h,) = st
        hg = matmul(h, wt)
        if b_hh:
            hg = hg + b_hh[0]
        gr, gz, gn = _gate_split(hg, 3)
        rr, z = sigmoid(xr[0] + gr), sigmoid(xr[1] + gz)
        nn = tanh(xr[2] + rr * gn)
        hn = (1 - z) * nn + z * h
        return hn, [hn]

    out, (h,) = _reference_loop(x, batch_sizes, reverse, [h0], step)
    return out, h


GRU_SEQUENCE = register("gru_sequence", infer=_gru_infer, impl=_gru_impl, vjp=_gru_vjp, save_in=tuple(range(4)),
                        save_out=True, multi_out=True, family="recurrent")
GRU_BACKWARD = register("gru_sequence_backward", infer=_gru_bw_infer, impl=_gru_bw_impl,
                        vjp=lambda c, *vs: _double_vjp(_gru_reference, 2, c, vs), save_in=tuple(range(8)),
                        multi_out=True, nondiff_args=(0, 1), family="recurrent")


def gru_sequence(xproj: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None = None, *, batch_sizes,
                 reverse: bool = False):
    """A GRU layer's recurrence over packed rows (gates r, z, n as PyTorch, with
    ``n = tanh(x_n + r * (h W_hn^T + b_hn))``); returns ``(out, h_n)``.

    ``xproj (3, N, H)`` holds ``x @ w_ih^T + b_ih`` gate-major; the hidden bias ``b_hh (3H,)`` is applied
    inside.

    >>> import danlu as dl
    >>> out, h = gru_sequence(dl.zeros(3, 4, 2), dl.ones(2, 2), dl.zeros(6, 2), batch_sizes=(2, 2))
    >>> h
    tensor([[0.2500, 0.2500],
            [0.2500, 0.2500]])
    """
    extra = (b_hh,) if b_hh is not None else ()
    out, h_n, _ = apply(GRU_SEQUENCE, xproj, h0, w_hh, *extra, batch_sizes=tuple(int(b) for b in batch_sizes),
                        reverse=bool(reverse))
    return out, h_n


# == cells (one time step), as torch.lstm_cell / gru_cell / rnn_tanh_cell / rnn_relu_cell ==========

def input_projection(input: Tensor, w_ih: Tensor, gates: int, *biases) -> Tensor:
    """``input @ w_ih^T + sum(biases)`` for all rows at once, gate-major: ``(gates, N, H)`` from ``input
    (N, I)`` and ``w_ih (gates*H, I)`` (the layout the sequence primitives take).

    The bias rides in the GEMM as one more input column of ones: no separate pass over the large
    result, and its gradient comes out of the weight-gradient GEMM instead of a reduction.

    >>> import danlu as dl
    >>> input_projection(dl.ones(5, 3), dl.ones(8, 3), 4, dl.ones(8)).shape
    danlu.Size([4, 5, 2])
    """
    from .creation import ones
    from .linalg import matmul
    from .shape import cat, reshape

    g_h = w_ih.shape[0] // gates
    w = reshape(w_ih, (gates, g_h, w_ih.shape[1])).transpose(1, 2)
    bias = None
    for b in biases:
        if b is not None:
            bias = b if bias is None else bias + b
    if bias is None:
        return matmul(input, w)
    column = ones(input.shape[0], 1, dtype=input.dtype)
    return matmul(cat([input, column], 1), cat([w, reshape(bias, (gates, 1, g_h))], 1))


def _cell_check(name, input, hx, w_ih):
    if input.ndim != 2 or hx.ndim != 2:
        raise ShapeError(f"{name}: expected a 2-D input (B, I) and 2-D states (B, H), got {describe(input)} and "
                         f"{describe(hx)}")
    if input.shape[1] != w_ih.shape[1]:
        raise ShapeError(f"{name}: input has inconsistent input_size: got {input.shape[1]} expected {w_ih.shape[1]}")
    if input.shape[0] != hx.shape[0]:
        raise ShapeError(f"{name}: Input batch size {input.shape[0]} doesn't match hidden0 batch size {hx.shape[0]}")


@api
def lstm_cell(input: Tensor, hx, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
              b_hh: Tensor | None = None):
    """One LSTM step on ``input (B, I)`` and ``hx = (h, c)``; returns ``(h', c')``, as ``torch.lstm_cell``.

    >>> import danlu as dl
    >>> h, c = lstm_cell(dl.ones(1, 2), (dl.zeros(1, 3), dl.zeros(1, 3)), dl.zeros(12, 2), dl.zeros(12, 3))
    >>> c
    tensor([[0., 0., 0.]])
    """
    h, c = hx
    _cell_check("lstm_cell", input, h, w_ih)
    xp = input_projection(input, w_ih, 4, b_ih, b_hh)
    _, h1, c1 = lstm_sequence(xp, h, c, w_hh, batch_sizes=(input.shape[0],))
    return h1, c1


@api
def gru_cell(input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
             b_hh: Tensor | None = None) -> Tensor:
    """One GRU step on ``input (B, I)`` and ``hx (B, H)``, as ``torch.gru_cell``.

    >>> import danlu as dl
    >>> gru_cell(dl.ones(1, 2), dl.ones(1, 3), dl.zeros(9, 2), dl.zeros(9, 3))
    tensor([[0.5000, 0.5000, 0.5000]])
    """
    _cell_check("gru_cell", input, hx, w_ih)
    xp = input_projection(input, w_ih, 3, b_ih)
    _, h1 = gru_sequence(xp, hx, w_hh, b_hh, batch_sizes=(input.shape[0],))
    return h1


def _rnn_cell(name, nonlinearity):
    def cell(input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
             b_hh: Tensor | None = None) -> Tensor:
        _cell_check(name, input, hx, w_ih)
        xp = input_projection(input, w_ih, 1, b_ih, b_hh)
        _, h1 = rnn_sequence(xp, hx, w_hh, batch_sizes=(input.shape[0],), nonlinearity=nonlinearity)
        return h1

    cell.__name__ = cell.__qualname__ = name
    return api(cell)


rnn_tanh_cell = _rnn_cell("rnn_tanh_cell", "tanh")
rnn_tanh_cell.__doc__ = """One Elman RNN step ``tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)``, as ``torch.rnn_tanh_cell``.

    >>> import danlu as dl
    >>> rnn_tanh_cell(dl.ones(1, 2), dl.zeros(1, 1), dl.ones(1, 2), dl.ones(1, 1))
    tensor([[0.9640]])
    """
rnn_relu_cell = _rnn_cell("rnn_relu_cell", "relu")
rnn_relu_cell.__doc__ = """One Elman RNN step ``relu(x W_ih^T + b_ih + h W_hh^T + b_hh)``, as ``torch.rnn_relu_cell``.

    >>> import danlu as dl
    >>> rnn_relu_cell(dl.ones(1, 2), dl.zeros(1, 1), -dl.ones(1, 2), dl.ones(1, 1))
    tensor([[0.]])
    """
