"""Convolution and pooling primitives (NCHW, as PyTorch).

Convolution is three primitives whose VJPs are written with each other, so every order of derivative
stays in the family: ``conv2d`` (input, weight[, bias]), ``conv_transpose2d`` (also conv2d's input
gradient) and ``conv2d_weight`` (conv2d's weight gradient). Each is one GEMM per chunk of images:

* stride 1 (the common case) uses a *full-width* layout: outputs are computed at every column of the
  padded input row, so each kernel tap is one constant offset into the flattened image plane. The im2col
  columns are then a single strided copy, and the transposed convolution adds each tap's columns back
  with one contiguous add (the extra columns carry zeros, so their overhang is harmless). The extra
  columns cost a few percent more GEMM work and save most of the copying.
* other strides copy strided windows per tap (shorter runs, same structure).

Pooling carries its backward passes as primitives too: ``max_pool2d`` returns flat indices (as PyTorch)
and ``max_pool2d_backward`` scatters by them (its VJP gathers); ``avg_pool2d`` and
``adaptive_avg_pool2d`` are linear, so each backward's VJP is the forward pool again.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..core import dtypes as _dt
from ..core.dispatch import apply, grad_enabled
from ..core.errors import DTypeError, ShapeError, api, describe, fmt_shape
from ..core.registry import AVal, register
from ..core.tensor import Tensor

__all__ = ["conv1d", "conv2d", "conv_transpose2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
           "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d"]

# Bytes of im2col columns per chunk of images. Smaller chunks keep the columns in cache, but every GEMM
# call synchronizes BLAS's threads, and on a busy machine each of those waits can cost a scheduler
# slice: measured on 2 cores, 6 MiB is near the best quiet-machine time and far better than cache-sized
# chunks under load. (Copies are memory-bound here, so Python threads around them did not help.)
_CHUNK_BYTES = 6 << 20


# == geometry ========================================================================================

def _tuple(name: str, arg: str, v, n: int = 2) -> tuple:
    """An int or a sequence of n ints -> n-tuple (PyTorch's _pair)."""
    if isinstance(v, Tensor):
        v = v.tolist()
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return (int(v),) * n
    try:
        t = tuple(int(e) for e in v)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: {arg} must be an int or a tuple of {n} ints, got {v!r}") from None
    if len(t) == 1:
        return t * n
    if len(t) != n:
        raise RuntimeError(f"{name}: expected {arg} to be a single integer value or a list of {n} values "
                           f"to match the convolution dimensions, but got {arg}={list(t)}")
    return t


def _taps(size: int, out: int, k: int, s: int, d: int, p: int) -> list:
    """For each kernel offset i: the output range [lo, hi) whose input ``o*s - p + i*d`` lies inside
    [0, size), and the input position of ``lo``."""
    r = []
    for i in range(k):
        base = i * d - p
        lo = min(max(-(base // s), 0), out)
        hi = min(max((size - 1 - base) // s + 1, lo), out) if size - 1 - base >= 0 else lo
        r.append((lo, hi, base + lo * s))
    return r


def _window(t: tuple, s: int) -> slice:
    """The strided input slice read by one tap over its valid output range."""
    lo, hi, first = t
    return slice(first, first + (hi - lo - 1) * s + 1, s)


class _Geom:
    """A 2-D convolution's geometry: input (N, C, H, W), weight (K, C/G, KH, KW), output (OH, OW), which
    may be smaller than the natural size (a transposed convolution's output padding)."""

    def __init__(self, x_shape, w_shape, out_hw, stride, padding, dilation, groups, exact=False):
        self.N, self.C, self.H, self.W = x_shape
        self.K, self.Cg, self.KH, self.KW = w_shape
        self.OH, self.OW = out_hw
        self.s, self.p, self.d, self.G = stride, padding, dilation, groups
        self.KK = self.KH * self.KW
        # The full-width layout multiplies its extra columns by zeros; with inf/NaN there (0 * inf) they
        # would leak NaN into results, so non-finite data takes the per-tap (exact) layout instead.
        self.fast = stride == (1, 1) and not exact
        if self.fast:  # full-width layout over the padded plane
            self.Hp = self.H + padding[0] + padding[1]
            self.Wp = self.W + padding[2] + padding[3]
            self.OHn = self.Hp - dilation[0] * (self.KH - 1)  # natural output rows
            self.HW = self.Hp * self.Wp
            self.L = self.OHn * self.Wp  # columns per image
            self.offs = [i * dilation[0] * self.Wp + j * dilation[1] for i in range(self.KH) for j in range(self.KW)]
            self.padded = any(padding)
        else:
            self.th = _taps(self.H, self.OH, self.KH, stride[0], dilation[0], padding[0])
            self.tw = _taps(self.W, self.OW, self.KW, stride[1], dilation[1], padding[2])
            self.L = self.OH * self.OW

    def chunk(self, per_image_bytes: int) -> int:
        return max(1, min(self.N, _CHUNK_BYTES // max(per_image_bytes, 1)))

    def cols_spec(self, nb, dtype, extra=0):
        """Columns (C*KK [+ extra rows], nb * L); im2col fills the first C*KK rows. Strided taps that
        fall off the input are never written, so those columns start as zeros."""
        return (self.C * self.KK + extra, nb * self.L), dtype, None if self.fast else 0

    def pad_spec(self, nb, dtype):
        """Flat image planes for the fast im2col, with slack for the last taps' overhang (zero borders
        stay zero: each chunk rewrites only the interior)."""
        return ((nb * self.C * self.HW + (self.KW - 1) * self.d[1],), dtype, 0) if self.fast else None

    def im2col(self, cols, x, n0, n1, xp):
        m = n1 - n0
        if self.fast:
            # All taps in one copy: tap (i, j) of plane (n, c) starts i*dh*Wp + j*dw into the flat plane.
            # Columns past a row's end read the next row (or plane): they only feed discarded outputs.
            C, HW, p = self.C, self.HW, self.p
            if not self.padded and n1 < self.N and x.flags.c_contiguous:
                src = x.reshape(-1)[n0 * C * HW:]
            else:
                xp[:m * C * HW].reshape(m, C, self.Hp, self.Wp)[:, :, p[0]:p[0] + self.H, p[2]:p[2] + self.W] = \
                    x[n0:n1]
                src = xp
            e = src.itemsize
            cols[:C * self.KK].reshape(C, self.KH, self.KW, m, self.L)[...] = as_strided(
                src, (C, self.KH, self.KW, m, self.L), (HW * e, self.d[0] * self.Wp * e, self.d[1] * e, C * HW * e, e),
                writeable=False)
            return
        xt = x[n0:n1].transpose(1, 0, 2, 3)
        c6 = cols[:self.C * self.KK].reshape(self.C, self.KK, m, self.OH, self.OW)
        t = 0
        for th in self.th:
            for tw in self.tw:
                if th[1] > th[0] and tw[1] > tw[0]:
                    c6[:, t, :, th[0]:th[1], tw[0]:tw[1]] = xt[:, :, _window(th, self.s[0]), _window(tw, self.s[1])]
                t += 1

    def grad_spec(self, nb, dtype, rows=None):
        """Output-gradient chunk (K, nb, rows, cols) in the GEMM's column layout; unused cells stay zero."""
        if self.fast:
            return (self.K, nb, rows or self.OHn, self.Wp), dtype, 0
        return (self.K, nb, self.OH, self.OW), dtype, None

    def load_grad(self, gc, gy, n0, n1):
        gc[:, :, :self.OH, :self.OW] = gy[n0:n1].transpose(1, 0, 2, 3)


def _compute_dtype(dt):
    # NumPy has no fast float16 GEMM: half precision computes in float32.
    return np.float32 if dt == np.float16 else dt


_pool = threading.local()
_POOL_CAP = 64 << 20


def _scratch(*specs):
    """Arrays for (shape, dtype, fill) specs (None passes through), carved from one per-thread block that
    is reused across calls: freshly mapped memory is slow to touch (page faults, very slow in some VMs),
    and a reused block stays warm. Views never outlive the kernel call that took them."""
    sizes = [0 if sp is None else -(-math.prod(sp[0]) * np.dtype(sp[1]).itemsize // 64) * 64 for sp in specs]
    total = sum(sizes)
    buf = getattr(_pool, "buf", None)
    if total > _POOL_CAP:
        buf = np.empty(total, np.uint8)
    elif buf is None or buf.nbytes < total:
        buf = _pool.buf = np.empty(total, np.uint8)
    out, off = [], 0
    for sp, size in zip(specs, sizes, strict=True):
        if sp is None:
            out.append(None)
            continue
        shape, dt, fill = sp
        a = buf[off:off + math.prod(shape) * np.dtype(dt).itemsize].view(dt).reshape(shape)
        if fill is not None:
            a[...] = fill
        out.append(a)
        off += size
    return out


def _chunks(n: int, nb: int, make):
    """(n0, n1, buffers) over the batch; ``make(m)`` gives the buffers for chunks of m images (called
    again only for a smaller last chunk, so that every view stays contiguous)."""
    bufs, size = None, 0
    for n0 in range(0, n, nb):
        m = min(nb, n - n0)
        if m != size:
            bufs, size = make(m), m
        yield n0, n0 + m, bufs


def _conv2d_kernel(x, w, b=None, *, stride, padding, dilation, groups):
    odt = x.dtype
    x, w = x.astype(_compute_dtype(odt), copy=False), w.astype(_compute_dtype(odt), copy=False)
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    oh = (H + padding[0] + padding[1] - dilation[0] * (KH - 1) - 1) // stride[0] + 1
    ow = (W + padding[2] + padding[3] - dilation[1] * (KW - 1) - 1) // stride[1] + 1
    out = np.empty((N, K, oh, ow), x.dtype)
    if not out.size:
        if b is not None:
            out[...] = b[:, None, None]
        return out.astype(odt, copy=False)
    g = _Geom(x.shape, w.shape, (oh, ow), stride, padding, dilation, groups)
    G, CKK, dt = groups, C * g.KK, x.dtype
    wm = w.reshape(G, K // G, CKK // G)
    fold = b is not None and G == 1  # the bias rides in the GEMM: a row of ones under the columns
    if fold:
        wm = np.concatenate([wm[0], b.astype(dt, copy=False)[:, None]], axis=1)[None]

    def make(m):
        cols, xp, res = _scratch(g.cols_spec(m, dt, extra=int(fold)), g.pad_spec(m, dt),
                                 ((G, K // G, m * g.L), dt, None))
        cols[CKK:] = 1
        return cols, xp, res

    for n0, n1, (cols, xp, res) in _chunks(N, g.chunk(CKK * g.L * x.itemsize), make):
        m = n1 - n0
        g.im2col(cols, x, n0, n1, xp)
        if G == 1:
            np.matmul(wm[0], cols.reshape(-1, m * g.L), out=res[0])
        else:
            np.matmul(wm, cols.reshape(G, CKK // G, m * g.L), out=res)
        r = res.reshape(K, m, g.OHn, g.Wp)[:, :, :oh, :ow] if g.fast else res.reshape(K, m, oh, ow)
        dst = out[n0:n1]
        dst[...] = r.transpose(1, 0, 2, 3)
        if b is not None and not fold:
            dst += b.astype(dt, copy=False)[:, None, None]
    return out.astype(odt, copy=False)


def _conv_transpose2d_kernel(gy, w, b=None, *, stride, padding, dilation, groups, out_hw):
    """The adjoint of conv2d in its input: (N, K, OH, OW) -> (N, C, H, W); also conv2d's input gradient."""
    odt = gy.dtype
    gy, w = gy.astype(_compute_dtype(odt), copy=False), w.astype(_compute_dtype(odt), copy=False)
    N, K, oh, ow = gy.shape
    _, Cg, KH, KW = w.shape
    G = groups
    C, Kg = Cg * G, K // G
    dt = gy.dtype
    dx = np.empty((N, C) + tuple(out_hw), dt)
    if not dx.size:
        return dx.astype(odt)
    g = _Geom(dx.shape, w.shape, (oh, ow), stride, padding, dilation, groups, exact=not np.isfinite(w).all())
    KK = g.KK
    if g.fast:
        # Columns ordered (group, tap, channel, image, plane): each tap's block is one contiguous add.
        HW = g.HW
        wt = np.ascontiguousarray(w.reshape(G, Kg, Cg, KK).transpose(0, 3, 2, 1)).reshape(G, KK * Cg, Kg)

        def make(m):
            return _scratch(g.grad_spec(m, dt, rows=g.Hp), ((G, KK, Cg, m * HW), dt, None),
                            ((G, Cg * m * HW), dt, None))

        for n0, n1, (gc, cols, acc) in _chunks(N, g.chunk(C * KK * HW * dt.itemsize), make):
            m = n1 - n0
            g.load_grad(gc, gy, n0, n1)
            gm = gc.reshape(G, Kg, m * HW)
            if G == 1:
                np.matmul(wt[0], gm[0], out=cols.reshape(KK * Cg, m * HW))
            else:
                np.matmul(wt, gm, out=cols.reshape(G, KK * Cg, m * HW))
            z = Cg * m * HW
            cz = cols.reshape(G, KK, z)
            acc[...] = cz[:, 0]  # tap 0 has offset 0
            for t in range(1, KK):
                o = g.offs[t]
                if o < z:
                    acc[:, o:] += cz[:, t, :z - o]
            src = acc.reshape(C, m, g.Hp, g.Wp)
            if g.padded:
                src = src[:, :, padding[0]:padding[0] + g.H, padding[2]:padding[2] + g.W]
            dx[n0:n1] = src.transpose(1, 0, 2, 3)
    else:
        wt = w.reshape(G, Kg, Cg * KK).transpose(0, 2, 1)
        sh, sw = stride

        def make(m):
            return _scratch(g.grad_spec(m, dt), ((C, KK, m, oh, ow), dt, None))

        for n0, n1, (gc, cols) in _chunks(N, g.chunk(C * KK * g.L * dt.itemsize), make):
            m = n1 - n0
            g.load_grad(gc, gy, n0, n1)
            np.matmul(wt, gc.reshape(G, Kg, m * g.L), out=cols.reshape(G, Cg * KK, m * g.L))
            d = dx[n0:n1]
            d[...] = 0
            dt_ = d.transpose(1, 0, 2, 3)
            t = 0
            for th in g.th:
                for tw in g.tw:
                    if th[1] > th[0] and tw[1] > tw[0]:
                        dt_[:, :, _window(th, sh), _window(tw, sw)] += cols[:, t, :, th[0]:th[1], tw[0]:tw[1]]
                    t += 1
    if b is not None:
        dx += b.astype(dt, copy=False)[:, None, None]
    return dx.astype(odt, copy=False)


def _conv2d_weight_kernel(x, gy, *, w_shape, stride, padding, dilation, groups, exact=False):
    """conv2d's gradients in its weight and bias: (sum over images and positions of gy (x) columns,
    sum of gy). Without groups the bias gradient rides in the GEMM as a row of ones under the columns."""
    odt = x.dtype
    x, gy = x.astype(_compute_dtype(odt), copy=False), gy.astype(_compute_dtype(odt), copy=False)
    N, C = x.shape[:2]
    K, Cg = w_shape[:2]
    G = groups
    Kg = K // G
    out, db = np.empty(w_shape, odt), np.empty(K, odt)
    if not x.size or not gy.size:
        out[...] = 0
        db[...] = gy.sum((0, 2, 3))
        return out, db
    g = _Geom(x.shape, w_shape, gy.shape[2:], stride, padding, dilation, groups, exact)
    CKK, dt = C * g.KK, x.dtype
    fold = G == 1
    acc = np.zeros((G, CKK // G + fold, Kg), dt)
    part = np.empty_like(acc)

    def make(m):
        cols, xp, gc = _scratch(g.cols_spec(m, dt, extra=int(fold)), g.pad_spec(m, dt), g.grad_spec(m, dt))
        cols[CKK:] = 1
        return cols, xp, gc

    for n0, n1, (cols, xp, gc) in _chunks(N, g.chunk(CKK * g.L * x.itemsize), make):
        m = n1 - n0
        g.im2col(cols, x, n0, n1, xp)
        g.load_grad(gc, gy, n0, n1)
        gm = gc.reshape(G, Kg, m * g.L)
        if G == 1:
            np.matmul(cols, gm[0].T, out=part[0])
        else:
            np.matmul(cols.reshape(G, CKK // G, m * g.L), gm.transpose(0, 2, 1), out=part)
        acc += part
    if g.fast and not np.isfinite(acc).all():  # non-finite input: redo without the extra columns
        return _conv2d_weight_kernel(x.astype(odt, copy=False), gy.astype(odt, copy=False), w_shape=w_shape,
                                     stride=stride, padding=padding, dilation=dilation, groups=groups, exact=True)
    out.reshape(G, Kg, CKK // G)[...] = acc[:, :CKK // G].transpose(0, 2, 1)
    db[...] = acc[0, CKK] if fold else gy.sum((0, 2, 3))
    return out, db


# == conv registry entries ===========================================================================

def _check_float(name, *xs):
    dts = [x.dtype for x in xs if x is not None]
    for x in xs:
        if x is not None and not x.dtype.is_floating_point:
            raise DTypeError(f"{name}: expected floating point tensors, got {describe(x)}; convert with .float()")
    if any(d is not dts[0] for d in dts):
        raise DTypeError(f"{name}: input, weight and bias must have the same dtype, got "
                         f"{', '.join(describe(x) for x in xs if x is not None)}; convert them with .to(dtype)")


def _check_weight(name, x, w, groups, in_channels_dim):
    if len(w.shape) != 4:
        raise ShapeError(f"{name}: expected a 4-dimensional weight for 4-dimensional input {fmt_shape(x.shape)}, "
                         f"but got weight of size {fmt_shape(w.shape)}")
    if groups < 1:
        raise RuntimeError(f"{name}: non-positive groups is not supported (groups={groups})")
    if in_channels_dim == 0:  # conv2d: weight (K, C/G, KH, KW)
        if w.shape[0] % groups:
            raise ShapeError(f"{name}: given groups={groups}, expected weight {fmt_shape(w.shape)} to be divisible "
                             f"by {groups} at dimension 0")
        if x.shape[1] != w.shape[1] * groups:
            raise ShapeError(f"{name}: given groups={groups}, weight of size {fmt_shape(w.shape)}, expected "
                             f"input{fmt_shape(x.shape)} to have {w.shape[1] * groups} channels, but got "
                             f"{x.shape[1]} channels instead")
    else:  # transposed: weight (K, C/G, KH, KW) with K the input channels
        if x.shape[1] != w.shape[0] or w.shape[0] % groups:
            raise ShapeError(f"{name}: given transposed=1, groups={groups}, weight of size {fmt_shape(w.shape)}, "
                             f"expected input{fmt_shape(x.shape)} to have {w.shape[0]} channels (divisible by "
                             f"groups), but got {x.shape[1]} channels instead")


def _check_bias(name, b, n):
    if b is not None and tuple(b.shape) != (n,):
        raise ShapeError(f"{name}: expected bias to be 1-dimensional with {n} elements, but got bias of size "
                         f"{fmt_shape(b.shape)} instead")


def _conv_out(name, x, w, stride, padding, dilation):
    size = []
    for i in range(2):
        padded = x.shape[2 + i] + padding[2 * i] + padding[2 * i + 1]
        k = dilation[i] * (w.shape[2 + i] - 1) + 1
        if padded < k:
            hw = [x.shape[2 + j] + padding[2 * j] + padding[2 * j + 1] for j in range(2)]
            ks = [dilation[j] * (w.shape[2 + j] - 1) + 1 for j in range(2)]
            raise ShapeError(f"{name}: calculated padded input size per channel: ({hw[0]} x {hw[1]}). Kernel size: "
                             f"({ks[0]} x {ks[1]}). Kernel size can't be greater than actual input size")
        size.append((padded - k) // stride[i] + 1)
    return tuple(size)


def _conv2d_infer(x, w, b=None, *, stride, padding, dilation, groups):
    _check_float("conv2d", x, w, b)
    if len(x.shape) != 4:
        raise ShapeError(f"conv2d: expected a 4-D input (N, C, H, W), got {describe(x)}")
    _check_weight("conv2d", x, w, groups, 0)
    _check_bias("conv2d", b, w.shape[0])
    return AVal((x.shape[0], w.shape[0]) + _conv_out("conv2d", x, w, stride, padding, dilation), x.dtype)


def _geom_attrs(a):
    return {k: a[k] for k in ("stride", "padding", "dilation", "groups")}


def _crop(y, hw):
    """Drop trailing rows/columns a natural-size convolution adds beyond a transposed one's input."""
    if tuple(y.shape[2:]) == tuple(hw):
        return y
    return y[:, :, :hw[0], :hw[1]]


def _conv2d_vjp(c, g):
    x, w = c.inputs[0], c.inputs[1]
    a = _geom_attrs(c.attrs)
    gx = apply(CONV_TRANSPOSE2D, g, w, out_hw=tuple(c.in_meta[0][0][2:]), **a) if c.edges[0] else None
    gw = gb = None
    if c.edges[1]:
        gw, gb = apply(CONV2D_WEIGHT, x, g, w_shape=tuple(c.in_meta[1][0]), **a)
    if len(c.edges) < 3:
        return gx, gw
    if c.edges[2] is None:
        gb = None
    elif gb is None:
        gb = g.sum((0, 2, 3))
    return gx, gw, gb


CONV2D = register("conv2d", infer=_conv2d_infer, impl=_conv2d_kernel, vjp=_conv2d_vjp, save_in=(0, 1),
                  family="conv")


def _conv_transpose2d_infer(x, w, b=None, *, stride, padding, dilation, groups, out_hw):
    _check_float("conv_transpose2d", x, w, b)
    if len(x.shape) != 4:
        raise ShapeError(f"conv_transpose2d: expected a 4-D input (N, C, H, W), got {describe(x)}")
    _check_weight("conv_transpose2d", x, w, groups, 1)
    _check_bias("conv_transpose2d", b, w.shape[1] * groups)
    out = AVal((x.shape[0], w.shape[1] * groups) + tuple(out_hw), x.dtype)
    nat = _conv_out("conv_transpose2d", out, w, stride, padding, dilation)
    if any(n < s for n, s in zip(nat, x.shape[2:], strict=True)):
        raise ShapeError(f"conv_transpose2d: output size {fmt_shape(out_hw)} is too small for input {describe(x)} "
                         f"with stride {stride}, padding {padding} and dilation {dilation}")
    return out


def _conv_transpose2d_vjp(c, g):
    x, w = c.inputs[0], c.inputs[1]
    a = _geom_attrs(c.attrs)
    in_hw = tuple(c.in_meta[0][0][2:])
    gx = _crop(apply(CONV2D, g, w, **a), in_hw) if c.edges[0] else None
    gw = apply(CONV2D_WEIGHT, g, x, w_shape=tuple(c.in_meta[1][0]), **a)[0] if c.edges[1] else None
    gb = g.sum((0, 2, 3)) if len(c.edges) > 2 and c.edges[2] else None
    return (gx, gw, gb)[:len(c.edges)]


CONV_TRANSPOSE2D = register("conv_transpose2d", infer=_conv_transpose2d_infer, impl=_conv_transpose2d_kernel,
                            vjp=_conv_transpose2d_vjp, save_in=(0, 1), family="conv")


def _conv2d_weight_infer(x, gy, *, w_shape, stride, padding, dilation, groups):
    _check_float("conv2d_weight", x, gy)
    nat = _conv_out("conv2d_weight", x, AVal(w_shape, x.dtype), stride, padding, dilation)
    if len(gy.shape) != 4 or gy.shape[:2] != (x.shape[0], w_shape[0]) or any(
            s > n for s, n in zip(gy.shape[2:], nat, strict=True)):
        raise ShapeError(f"conv2d_weight: output gradient {describe(gy)} does not fit input {describe(x)} and "
                         f"weight {fmt_shape(w_shape)}")
    return AVal(w_shape, x.dtype), AVal((w_shape[0],), x.dtype)


def _conv2d_weight_vjp(c, gw, gb):
    x, gy = c.inputs[0], c.inputs[1]
    a = _geom_attrs(c.attrs)
    gx = apply(CONV_TRANSPOSE2D, gy, gw, out_hw=tuple(c.in_meta[0][0][2:]), **a) if c.edges[0] else None
    ggy = _crop(apply(CONV2D, x, gw, gb, **a), tuple(c.in_meta[1][0][2:])) if c.edges[1] else None
    return gx, ggy


# Multi-output: the bias gradient costs one more GEMM row here, against a separate pass over gy.
CONV2D_WEIGHT = register("conv2d_weight", infer=_conv2d_weight_infer, impl=_conv2d_weight_kernel,
                         vjp=_conv2d_weight_vjp, save_in=(0, 1), multi_out=True, family="conv")


# == pooling kernels =================================================================================

def _pool_out(size, k, s, p, d, ceil_mode):
    """PyTorch's pooling output size (a window must start inside the input or its left padding)."""
    n = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = n // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _valid_taps(th, tw, kw):
    """(tap number, row range, column range) of the taps that fall inside the input for some window."""
    return [(i * kw + j, t, u) for i, t in enumerate(th) for j, u in enumerate(tw) if t[1] > t[0] and u[1] > u[0]]


def _pool_geometry(x_shape, kernel, stride, padding, dilation, ceil_mode):
    H, W = x_shape[2:]
    oh = _pool_out(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = _pool_out(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    th = _taps(H, oh, kernel[0], stride[0], dilation[0], padding[0])
    tw = _taps(W, ow, kernel[1], stride[1], dilation[1], padding[1])
    return oh, ow, _valid_taps(th, tw, kernel[1])


def _max_pool2d_values_kernel(x, *, kernel, stride, padding, dilation, ceil_mode):
    oh, ow, taps = _pool_geometry(x.shape, kernel, stride, padding, dilation, ceil_mode)
    val = np.full(x.shape[:2] + (oh, ow), -np.inf, x.dtype)
    for _, th, tw in taps:
        mv = val[:, :, th[0]:th[1], tw[0]:tw[1]]
        np.maximum(mv, x[:, :, _window(th, stride[0]), _window(tw, stride[1])], out=mv)
    return val


def _max_pool2d_kernel(x, *, kernel, stride, padding, dilation, ceil_mode):
    W = x.shape[3]
    oh, ow, taps = _pool_geometry(x.shape, kernel, stride, padding, dilation, ceil_mode)
    # Each tap's offset from its window's corner in the flat input plane; offsets grow with the tap
    # number, which the branch-free scan relies on.
    offs = [i * dilation[0] * W + j * dilation[1] for i in range(kernel[0]) for j in range(kernel[1])]
    odt = np.min_scalar_type(offs[-1])  # narrow, so the per-tap updates move few bytes
    val, off = _max_scan(x, taps, (oh, ow), stride, offs, odt, nan=False)
    if np.isnan(val).any():  # rare: PyTorch's rule lets a later NaN take over a window
        val, off = _max_scan(x, taps, (oh, ow), stride, offs, odt, nan=True)
    base = (np.arange(oh) * stride[0] - padding[0])[:, None] * W + (np.arange(ow) * stride[1] - padding[1])
    return val, np.add(off, base, dtype=np.int64)


def _max_scan(x, taps, out_hw, stride, offs, odt, nan):
    """Running max over the kernel taps in PyTorch's scan order, remembering the winning tap's offset.

    Branch-free updates (maximum, and off = max(off, offset * won), as offsets only grow) are several
    times faster than masked copies on random data."""
    N, C = x.shape[:2]
    oh, ow = out_hw
    full = all(th[:2] == (0, oh) and tw[:2] == (0, ow) for _, th, tw in taps)
    if full:
        # Every tap is inside every window (no padding reached): gather the taps into one contiguous
        # stack first, since ufuncs over short strided rows cost several times more per element.
        sn, sc, sh, sw = x.strides
        first = [(th[2], tw[2]) for _, th, tw in taps]
        (h0, w0), (h1, w1) = first[0], first[-1]
        kh, kw = len({f[0] for f in first}), len({f[1] for f in first})
        dh = (h1 - h0) // (kh - 1) if kh > 1 else 0
        dw = (w1 - w0) // (kw - 1) if kw > 1 else 0
        stack = as_strided(x[:, :, h0:, w0:], (kh, kw, N, C, oh, ow),
                           (dh * sh, dw * sw, sn, sc, stride[0] * sh, stride[1] * sw), writeable=False)
        stack = np.ascontiguousarray(stack).reshape(kh * kw, N, C, oh, ow)
        tap_values = [stack[k] for k in range(len(taps))]
        val, loc = stack[0].copy(), np.full((N, C, oh, ow), offs[taps[0][0]], odt)
        start = 1
    else:
        tap_values = [x[:, :, _window(th, stride[0]), _window(tw, stride[1])] for _, th, tw in taps]
        val = np.full((N, C, oh, ow), -np.inf, x.dtype)
        first = np.zeros((oh, ow), odt)  # the first in-bounds tap of each window
        for t, th, tw in reversed(taps):
            first[th[0]:th[1], tw[0]:tw[1]] = offs[t]
        loc = np.empty((N, C, oh, ow), odt)
        loc[...] = first
        start = 0
    won = np.empty((N, C, oh, ow), np.bool_)
    for (t, th, tw), v in list(zip(taps, tap_values, strict=True))[start:]:
        region = (slice(None), slice(None), slice(th[0], th[1]), slice(tw[0], tw[1]))
        mv, lv, wv = val[region], loc[region], won[region]
        np.greater(v, mv, out=wv)
        if nan:
            wv |= np.isnan(v)
        np.maximum(mv, v, out=mv)  # NaN-propagating, as PyTorch's values
        np.maximum(lv, np.multiply(wv, offs[t], dtype=odt), out=lv)
    return val, loc


def _scatter_planes(g, idx, in_hw, unique):
    """dx with dx.flat-per-plane[idx] += g (unique=True: no index repeats within a plane)."""
    N, C = g.shape[:2]
    hw = in_hw[0] * in_hw[1]
    flat = (idx.reshape(N * C, idx.shape[2] * idx.shape[3]) + np.arange(N * C)[:, None] * hw).ravel()
    if unique:
        dx = np.zeros(N * C * hw, g.dtype)
        dx[flat] = g.ravel()
    else:
        dx = np.bincount(flat, weights=g.ravel(), minlength=N * C * hw).astype(g.dtype)
    return dx.reshape((N, C) + tuple(in_hw))


def _max_pool2d_backward_kernel(g, idx, *, in_hw, unique):
    return _scatter_planes(g, idx, in_hw, unique)


def _avg_divisor(size, out, k, s, p, count_include_pad):
    """Per output position along one axis: the window's length clipped to the padded input, or (without
    count_include_pad) its length inside the input, as PyTorch counts them."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    padded = end - start
    inside = np.minimum(end, size) - np.maximum(start, 0)
    return padded if count_include_pad else inside


def _avg_geometry(H, W, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    oh = _pool_out(H, kernel[0], stride[0], padding[0], 1, ceil_mode)
    ow = _pool_out(W, kernel[1], stride[1], padding[1], 1, ceil_mode)
    if divisor_override:
        div = np.full((oh, ow), divisor_override)
    else:
        div = (_avg_divisor(H, oh, kernel[0], stride[0], padding[0], count_include_pad)[:, None]
               * _avg_divisor(W, ow, kernel[1], stride[1], padding[1], count_include_pad))
    th = _taps(H, oh, kernel[0], stride[0], 1, padding[0])
    tw = _taps(W, ow, kernel[1], stride[1], 1, padding[1])
    return oh, ow, div, th, tw


def _avg_pool2d_kernel(x, *, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    N, C, H, W = x.shape
    oh, ow, div, th, tw = _avg_geometry(H, W, kernel, stride, padding, ceil_mode, count_include_pad,
                                        divisor_override)
    out = np.zeros((N, C, oh, ow), x.dtype)
    for t in th:
        for u in tw:
            if t[1] > t[0] and u[1] > u[0]:
                out[:, :, t[0]:t[1], u[0]:u[1]] += x[:, :, _window(t, stride[0]), _window(u, stride[1])]
    out /= div.astype(x.dtype)
    return out


def _avg_pool2d_backward_kernel(g, *, in_hw, kernel, stride, padding, ceil_mode, count_include_pad,
                                divisor_override):
    N, C = g.shape[:2]
    H, W = in_hw
    _, _, div, th, tw = _avg_geometry(H, W, kernel, stride, padding, ceil_mode, count_include_pad,
                                      divisor_override)
    gd = g / div.astype(g.dtype)
    dx = np.zeros((N, C, H, W), g.dtype)
    for t in th:
        for u in tw:
            if t[1] > t[0] and u[1] > u[0]:
                dx[:, :, _window(t, stride[0]), _window(u, stride[1])] += gd[:, :, t[0]:t[1], u[0]:u[1]]
    return dx


def _adaptive_bounds(size, out):
    o = np.arange(out)
    return (o * size) // out, -((-(o + 1) * size) // out)


def _adaptive_matrix(size, out, dtype):
    """(out, size) averaging matrix with PyTorch's windows [floor(o*size/out), ceil((o+1)*size/out))."""
    start, end = _adaptive_bounds(size, out)
    pos = np.arange(size)
    inside = (pos >= start[:, None]) & (pos < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


def _separable(x, mh, mw):
    """mh @ x @ mw.T over the last two dims of (N, C, H, W), as two GEMMs."""
    N, C, H, W = x.shape
    t = np.matmul(x.reshape(N * C * H, W), mw.T).reshape(N * C, H, mw.shape[0])
    return np.matmul(mh, t).reshape(N, C, mh.shape[0], mw.shape[0])


def _adaptive_avg_pool2d_kernel(x, *, out_hw):
    N, C, H, W = x.shape
    oh, ow = out_hw
    if not oh or not ow:
        return np.zeros((N, C, oh, ow), x.dtype)
    if H % oh == 0 and W % ow == 0:  # equal windows: a plain mean
        return x.reshape(N, C, oh, H // oh, ow, W // ow).mean((3, 5))
    dt = _compute_dtype(x.dtype)
    out = _separable(x.astype(dt, copy=False), _adaptive_matrix(H, oh, dt), _adaptive_matrix(W, ow, dt))
    return out.astype(x.dtype, copy=False)


def _adaptive_avg_pool2d_backward_kernel(g, *, in_hw):
    dt = _compute_dtype(g.dtype)
    (H, W), (oh, ow) = in_hw, g.shape[2:]
    out = _separable(g.astype(dt, copy=False), _adaptive_matrix(H, oh, dt).T, _adaptive_matrix(W, ow, dt).T)
    return out.astype(g.dtype, copy=False)


def _adaptive_max_pool2d_kernel(x, *, out_hw):
    N, C, H, W = x.shape
    oh, ow = out_hw
    hs, he = _adaptive_bounds(H, oh)
    ws, we = _adaptive_bounds(W, ow)
    val = np.empty((N, C, oh, ow), x.dtype)
    idx = np.empty((N, C, oh, ow), np.int64)
    for a in range(oh):
        for b in range(ow):
            kw = we[b] - ws[b]
            win = x[:, :, hs[a]:he[a], ws[b]:we[b]].reshape(N, C, (he[a] - hs[a]) * kw)
            k = np.argmax(win, axis=2)
            nan = np.isnan(win)
            if nan.any():  # PyTorch keeps the last NaN of a window
                last = nan.shape[2] - 1 - np.argmax(nan[:, :, ::-1], axis=2)
                k = np.where(nan.any(axis=2), last, k)
            val[:, :, a, b] = np.take_along_axis(win, k[:, :, None], axis=2)[:, :, 0]
            idx[:, :, a, b] = (hs[a] + k // kw) * W + ws[b] + k % kw
    return val, idx


# == pooling registry entries ========================================================================

def _pool_check(name, x):
    if not x.dtype.is_floating_point:
        raise DTypeError(f"{name}: expected a floating point input, got {describe(x)}; convert with .float()")
    if len(x.shape) != 4:
        raise ShapeError(f"{name}: expected a 4-D input (N, C, H, W), got {describe(x)}")


def _max_pool2d_infer(x, *, kernel, stride, padding, dilation, ceil_mode):
    _pool_check("max_pool2d", x)
    H, W = x.shape[2:]
    oh = _pool_out(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = _pool_out(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    if oh < 1 or ow < 1:
        raise ShapeError(f"max_pool2d: given input size ({x.shape[1]}x{H}x{W}), calculated output size "
                         f"({x.shape[1]}x{oh}x{ow}) is too small")
    shape = tuple(x.shape[:2]) + (oh, ow)
    return AVal(shape, x.dtype), AVal(shape, _dt.int64)


def _unique_windows(kernel, stride, dilation):
    return all(s >= d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation, strict=True))


def _max_pool2d_vjp(c, g, _gi):
    idx = c.outs[1]
    return (apply(MAX_POOL2D_BACKWARD, g, idx, in_hw=tuple(c.in_meta[0][0][2:]),
                  unique=_unique_windows(c.attrs["kernel"], c.attrs["stride"], c.attrs["dilation"])),)


MAX_POOL2D = register("max_pool2d", infer=_max_pool2d_infer, impl=_max_pool2d_kernel, vjp=_max_pool2d_vjp,
                      save_out=True, multi_out=True, family="conv")


def _max_pool2d_values_vjp(c, g):
    idx = apply(MAX_POOL2D, c.inputs[0], **c.attrs)[1]
    return (apply(MAX_POOL2D_BACKWARD, g, idx, in_hw=tuple(c.in_meta[0][0][2:]),
                  unique=_unique_windows(c.attrs["kernel"], c.attrs["stride"], c.attrs["dilation"])),)


# Without indices the scan is a third of the work: inference (no gradient wanted) uses this op; its
# VJP recomputes the indices, so it stays differentiable wherever it is used.
MAX_POOL2D_VALUES = register("max_pool2d_values", infer=lambda x, **a: _max_pool2d_infer(x, **a)[0],
                             impl=_max_pool2d_values_kernel, vjp=_max_pool2d_values_vjp, save_in=(0,),
                             family="conv")


def _max_pool2d_backward_infer(g, idx, *, in_hw, unique):
    if tuple(g.shape) != tuple(idx.shape):
        raise ShapeError(f"max_pool2d_backward: gradient {describe(g)} and indices {describe(idx)} must match")
    return AVal(tuple(g.shape[:2]) + tuple(in_hw), g.dtype)


def _max_pool2d_backward_vjp(c, gg):
    from .index import gather

    idx = c.inputs[1]
    shape = c.in_meta[0][0]
    n, ch = shape[:2]
    hw = gg.shape[2] * gg.shape[3]
    picked = gather(gg.reshape(n, ch, hw), 2, idx.reshape(n, ch, shape[2] * shape[3]))
    return picked.reshape(shape), None


MAX_POOL2D_BACKWARD = register("max_pool2d_backward", infer=_max_pool2d_backward_infer,
                               impl=_max_pool2d_backward_kernel, vjp=_max_pool2d_backward_vjp, save_in=(1,),
                               family="conv")


def _adaptive_max_pool2d_infer(x, *, out_hw):
    _pool_check("adaptive_max_pool2d", x)
    shape = tuple(x.shape[:2]) + tuple(out_hw)
    return AVal(shape, x.dtype), AVal(shape, _dt.int64)


def _adaptive_max_pool2d_vjp(c, g, _gi):
    # Adaptive windows can overlap by a row or column: scatter with accumulation.
    return (apply(MAX_POOL2D_BACKWARD, g, c.outs[1], in_hw=tuple(c.in_meta[0][0][2:]), unique=False),)


ADAPTIVE_MAX_POOL2D = register("adaptive_max_pool2d", infer=_adaptive_max_pool2d_infer,
                               impl=_adaptive_max_pool2d_kernel, vjp=_adaptive_max_pool2d_vjp, save_out=True,
                               multi_out=True, family="conv")


def _avg_pool2d_infer(x, **a):
    _pool_check("avg_pool2d", x)
    H, W = x.shape[2:]
    oh = _pool_out(H, a["kernel"][0], a["stride"][0], a["padding"][0], 1, a["ceil_mode"])
    ow = _pool_out(W, a["kernel"][1], a["stride"][1], a["padding"][1], 1, a["ceil_mode"])
    if oh < 1 or ow < 1:
        raise ShapeError(f"avg_pool2d: given input size ({x.shape[1]}x{H}x{W}), calculated output size "
                         f"({x.shape[1]}x{oh}x{ow}) is too small")
    return AVal(tuple(x.shape[:2]) + (oh, ow), x.dtype)


AVG_POOL2D = register("avg_pool2d", infer=_avg_pool2d_infer, impl=_avg_pool2d_kernel, family="conv",
                      vjp=lambda c, g: (apply(AVG_POOL2D_BACKWARD, g, in_hw=tuple(c.in_meta[0][0][2:]),
                                              **c.attrs),))
AVG_POOL2D_BACKWARD = register(
    "avg_pool2d_backward", infer=lambda g, *, in_hw, **a: AVal(tuple(g.shape[:2]) + tuple(in_hw), g.dtype),
    impl=_avg_pool2d_backward_kernel, family="conv",
    vjp=lambda c, gg: (apply(AVG_POOL2D, gg, **{k: v for k, v in c.attrs.items() if k != "in_hw"}),))


def _adaptive_avg_infer(x, *, out_hw):
    _pool_check("adaptive_avg_pool2d", x)
    return AVal(tuple(x.shape[:2]) + tuple(out_hw), x.dtype)


ADAPTIVE_AVG_POOL2D = register(
    "adaptive_avg_pool2d", infer=_adaptive_avg_infer, impl=_adaptive_avg_pool2d_kernel, family="conv",
    vjp=lambda c, g: (apply(ADAPTIVE_AVG_POOL2D_BACKWARD, g, in_hw=tuple(c.in_meta[0][0][2:])),))
ADAPTIVE_AVG_POOL2D_BACKWARD = register(
    "adaptive_avg_pool2d_backward", infer=lambda g, *, in_hw: AVal(tuple(g.shape[:2]) + tuple(in_hw), g.dtype),
    impl=_adaptive_avg_pool2d_backward_kernel, family="conv",
    vjp=lambda c, gg: (apply(ADAPTIVE_AVG_POOL2D, gg, out_hw=tuple(c.in_meta[0][0][2:])),))


# == public functions ================================================================================

def _batched(name, x, nd):
    """(x with a batch dimension, whether one was added): PyTorch accepts unbatched input."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a Tensor input, got {type(x).__name__}")
    if x.ndim == nd:
        return x.unsqueeze(0), True
    if x.ndim != nd + 1:
        raise ShapeError(f"{name}: expected {nd}D (unbatched) or {nd + 1}D (batched) input, but got input of size "
                         f"{fmt_shape(x.shape)}")
    return x, False


def _conv_padding(name, padding, w_hw, stride, dilation):
    """padding int/tuple/'valid'/'same' -> (top, bottom, left, right)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"{name}: invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
        if any(s != 1 for s in stride):
            raise ValueError(f"{name}: padding='same' is not supported for strided convolutions")
        pads = []
        for k, d in zip(w_hw, dilation, strict=True):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]  # PyTorch puts the odd extra on the right
        return tuple(pads)
    ph, pw = _tuple(name, "padding", padding)
    if ph < 0 or pw < 0:
        raise RuntimeError(f"{name}: negative padding is not supported (padding={padding})")
    return (ph, ph, pw, pw)


def _positive(name, arg, t):
    if any(v <= 0 for v in t):
        raise RuntimeError(f"{name}: non-positive {arg} is not supported ({arg}={t})")
    return t


def _conv2d(name, inp, weight, bias, stride, padding, dilation, groups):
    x, unb = _batched(name, inp, 3)
    stride = _positive(name, "stride", _tuple(name, "stride", stride))
    dilation = _positive(name, "dilation", _tuple(name, "dilation", dilation))
    pad = _conv_padding(name, padding, tuple(weight.shape[2:]), stride, dilation)
    args = (x, weight) if bias is None else (x, weight, bias)
    y = apply(CONV2D, *args, stride=stride, padding=pad, dilation=dilation, groups=int(groups))
    return y.squeeze(0) if unb else y


@api
def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,  # noqa: A002
           groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) over (N, C, H, W) or unbatched (C, H, W) input, as
    ``torch.nn.functional.conv2d``; ``padding`` is an int, a pair, ``'valid'`` or ``'same'``.

    >>> import danlu as dl
    >>> x = dl.arange(16.0).reshape(1, 1, 4, 4)
    >>> dl.conv2d(x, dl.ones(1, 1, 2, 2), stride=2)
    tensor([[[[10., 18.],
              [42., 50.]]]])
    """
    return _conv2d("conv2d", input, weight, bias, stride, padding, dilation, groups)


@api
def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,  # noqa: A002
           groups: int = 1) -> Tensor:
    """1-D convolution over (N, C, L) or unbatched (C, L) input, as ``torch.nn.functional.conv1d``.

    >>> import danlu as dl
    >>> dl.conv1d(dl.tensor([[[1.0, 2.0, 3.0, 4.0]]]), dl.tensor([[[1.0, -1.0]]]))
    tensor([[[-1., -1., -1.]]])
    """
    x, unb = _batched("conv1d", input, 2)
    if weight.ndim != 3:
        raise ShapeError(f"conv1d: expected a 3-D weight (out_channels, in_channels/groups, k), got {describe(weight)}")
    pad = padding if isinstance(padding, str) else (0, _tuple("conv1d", "padding", padding, 1)[0])
    y = _conv2d("conv1d", x.unsqueeze(2), weight.unsqueeze(2), bias, (1, _tuple("conv1d", "stride", stride, 1)[0]),
                pad, (1, _tuple("conv1d", "dilation", dilation, 1)[0]), groups).squeeze(2)
    return y.squeeze(0) if unb else y


@api
def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,  # noqa: A002
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed 2-D convolution (the gradient of conv2d in its input), as
    ``torch.nn.functional.conv_transpose2d``; ``weight`` is (in_channels, out_channels/groups, kH, kW).

    >>> import danlu as dl
    >>> dl.conv_transpose2d(dl.ones(1, 1, 2, 2), dl.ones(1, 1, 2, 2), stride=2).shape
    danlu.Size([1, 1, 4, 4])
    """
    name = "conv_transpose2d"
    x, unb = _batched(name, input, 3)
    if weight.ndim != 4:
        raise ShapeError(f"{name}: expected a 4-D weight (in_channels, out_channels/groups, kH, kW), got "
                         f"{describe(weight)}")
    stride = _positive(name, "stride", _tuple(name, "stride", stride))
    dilation = _positive(name, "dilation", _tuple(name, "dilation", dilation))
    ph, pw = _tuple(name, "padding", padding)
    oph, opw = _tuple(name, "output_padding", output_padding)
    if min(ph, pw, oph, opw) < 0:
        raise RuntimeError(f"{name}: negative padding is not supported")
    if oph >= max(stride[0], dilation[0]) or opw >= max(stride[1], dilation[1]):
        raise RuntimeError(f"{name}: output padding must be smaller than either stride or dilation, but got "
                           f"output_padding=({oph}, {opw}), stride={stride}, dilation={dilation}")
    out_hw = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, d, k, op in
                   zip(x.shape[2:], stride, (ph, pw), dilation, weight.shape[2:], (oph, opw), strict=True))
    if min(out_hw) < 1:
        raise RuntimeError(f"{name}: given input size {fmt_shape(x.shape[1:])}, calculated output size "
                           f"{fmt_shape(out_hw)} is too small")
    args = (x, weight) if bias is None else (x, weight, bias)
    y = apply(CONV_TRANSPOSE2D, *args, stride=stride, padding=(ph, ph, pw, pw), dilation=dilation,
              groups=int(groups), out_hw=out_hw)
    return y.squeeze(0) if unb else y


def _pool_args(name, kernel_size, stride, padding, dilation=1, n=2):
    k = _positive(name, "kernel_size", _tuple(name, "kernel_size", kernel_size, n))
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else \
        _positive(name, "stride", _tuple(name, "stride", stride, n))
    p = _tuple(name, "padding", padding, n)
    d = _positive(name, "dilation", _tuple(name, "dilation", dilation, n))
    for kk, pp, dd in zip(k, p, d, strict=True):
        if pp < 0 or pp > (dd * (kk - 1) + 1) // 2:
            raise RuntimeError(f"{name}: pad should be at least zero and at most half of effective kernel size, "
                               f"but got pad={p}, kernel_size={k} and dilation={d}")
    return k, s, p, d


def _max_pool(name, inp, kernel_size, stride, padding, dilation, ceil_mode, return_indices, nd):
    x, unb = _batched(name, inp, nd + 1)
    k, s, p, d = _pool_args(name, kernel_size, stride, padding, dilation, nd)
    if nd == 1:
        x, k, s, p, d = x.unsqueeze(2), (1,) + k, (1,) + s, (0,) + p, (1,) + d
    attrs = dict(kernel=k, stride=s, padding=p, dilation=d, ceil_mode=bool(ceil_mode))
    if return_indices or (x.requires_grad and grad_enabled()):
        outs = apply(MAX_POOL2D, x, **attrs)
    else:
        outs = (apply(MAX_POOL2D_VALUES, x, **attrs),)
    if nd == 1:
        outs = tuple(o.squeeze(2) for o in outs)
    if unb:
        outs = tuple(o.squeeze(0) for o in outs)
    return outs if return_indices else outs[0]


@api
def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,  # noqa: A002
               return_indices: bool = False):
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``; indices are flat positions in each
    input H*W plane.

    >>> import danlu as dl
    >>> dl.max_pool2d(dl.arange(16.0).reshape(1, 1, 4, 4), 2, return_indices=True)
    (tensor([[[[ 5.,  7.],
              [13., 15.]]]]), tensor([[[[ 5,  7],
              [13, 15]]]]))
    """
    return _max_pool("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2)


@api
def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,  # noqa: A002
               return_indices: bool = False):
    """1-D max pooling over (N, C, L) or (C, L), as ``torch.nn.functional.max_pool1d``.

    >>> import danlu as dl
    >>> dl.max_pool1d(dl.tensor([[1.0, 3.0, 2.0, 0.0]]), 2)
    tensor([[3., 2.]])
    """
    return _max_pool("max_pool1d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 1)


def _avg_pool(name, inp, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, nd):
    x, unb = _batched(name, inp, nd + 1)
    k, s, p, _ = _pool_args(name, kernel_size, stride, padding, 1, nd)
    if divisor_override is not None and int(divisor_override) == 0:
        raise RuntimeError(f"{name}: divisor must be not zero")
    if nd == 1:
        x, k, s, p = x.unsqueeze(2), (1,) + k, (1,) + s, (0,) + p
    y = apply(AVG_POOL2D, x, kernel=k, stride=s, padding=p, ceil_mode=bool(ceil_mode),
              count_include_pad=bool(count_include_pad),
              divisor_override=None if divisor_override is None else int(divisor_override))
    if nd == 1:
        y = y.squeeze(2)
    return y.squeeze(0) if unb else y


@api
def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,  # noqa: A002
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    >>> import danlu as dl
    >>> dl.avg_pool2d(dl.arange(16.0).reshape(1, 1, 4, 4), 2)
    tensor([[[[ 2.5000,  4.5000],
              [10.5000, 12.5000]]]])
    """
    return _avg_pool("avg_pool2d", input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, 2)


@api
def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,  # noqa: A002
               count_include_pad: bool = True) -> Tensor:
    """1-D average pooling over (N, C, L) or (C, L), as ``torch.nn.functional.avg_pool1d``.

    >>> import danlu as dl
    >>> dl.avg_pool1d(dl.tensor([[1.0, 3.0, 2.0, 0.0]]), 2)
    tensor([[2., 1.]])
    """
    return _avg_pool("avg_pool1d", input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1)


def _adaptive_size(name, output_size, in_hw):
    n = len(in_hw)
    if isinstance(output_size, (int, np.integer)) or output_size is None:
        output_size = (output_size,) * n
    output_size = tuple(output_size)
    if len(output_size) == 1 and n > 1:
        output_size *= n
    if len(output_size) != n:
        raise RuntimeError(f"{name}: output_size must have {n} elements, got {output_size}")
    out = tuple(int(i) if o is None else int(o) for o, i in zip(output_size, in_hw, strict=True))
    if any(o < 0 for o in out):
        raise RuntimeError(f"{name}: output_size must be non-negative, got {output_size}")
    if any(i == 0 for i in in_hw):
        raise RuntimeError(f"{name}: expected input to have non-zero size for non-batch dimensions, but "
                           f"input has size {fmt_shape(in_hw)}")
    return out


def _adaptive(name, op, inp, output_size, nd):
    x, unb = _batched(name, inp, nd + 1)
    out = _adaptive_size(name, output_size, tuple(x.shape[2:]))
    if nd == 1:
        x, out = x.unsqueeze(2), (1,) + out
    y = apply(op, x, out_hw=out)
    ys = y if isinstance(y, tuple) else (y,)
    if nd == 1:
        ys = tuple(t.squeeze(2) for t in ys)
    if unb:
        ys = tuple(t.squeeze(0) for t in ys)
    return ys if isinstance(y, tuple) else ys[0]


@api
def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:  # noqa: A002
    """Average pooling to a fixed output size (an int, a pair, None keeps that input size), as
    ``torch.nn.functional.adaptive_avg_pool2d``.

    >>> import danlu as dl
    >>> dl.adaptive_avg_pool2d(dl.arange(9.0).reshape(1, 1, 3, 3), 2)
    tensor([[[[2., 3.],
              [5., 6.]]]])
    """
    return _adaptive("adaptive_avg_pool2d", ADAPTIVE_AVG_POOL2D, input, output_size, 2)


@api
def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:  # noqa: A002
    """Average pooling of (N, C, L) or (C, L) to a fixed length, as ``torch.nn.functional.adaptive_avg_pool1d``.

    >>> import danlu as dl
    >>> dl.adaptive_avg_pool1d(dl.tensor([[1.0, 2.0, 3.0, 4.0]]), 2)
    tensor([[1.5000, 3.5000]])
    """
    return _adaptive("adaptive_avg_pool1d", ADAPTIVE_AVG_POOL2D, input, output_size, 1)


@api
def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):  # noqa: A002
    """Max pooling to a fixed output size, as ``torch.nn.functional.adaptive_max_pool2d``.

    >>> import danlu as dl
    >>> dl.adaptive_max_pool2d(dl.arange(9.0).reshape(1, 1, 3, 3), 2)
    tensor([[[[4., 5.],
              [7., 8.]]]])
    """
    val, idx = _adaptive("adaptive_max_pool2d", ADAPTIVE_MAX_POOL2D, input, output_size, 2)
    return (val, idx) if return_indices else val


@api
def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False):  # noqa: A002
    """Max pooling of (N, C, L) or (C, L) to a fixed length, as ``torch.nn.functional.adaptive_max_pool1d``.

    >>> import danlu as dl
    >>> dl.adaptive_max_pool1d(dl.tensor([[1.0, 5.0, 3.0, 4.0]]), 2)
    tensor([[5., 4.]])
    """
    val, idx = _adaptive("adaptive_max_pool1d", ADAPTIVE_MAX_POOL2D, input, output_size, 1)
    return (val, idx) if return_indices else val
