"""OpCases for convolution and pooling (danlu/ops/conv.py).

Samples pass PyTorch's positional arguments after the tensors, so one case covers many settings.
Max-pooling inputs hold distinct values (spaced far beyond the gradcheck step), so no window has a tie
and the argmax cannot flip under finite differences. The ``*_double`` cases return first-order
gradients taken with ``create_graph=True``: differentiating them runs the VJPs of the backward
primitives (conv2d_weight, max_pool2d_backward, avg_pool2d_backward, ...) against PyTorch's.
"""

import math

import torch
import torch.nn.functional as TF

import danlu as dl
from danlu.core.dispatch import apply
from danlu.ops import conv as conv_mod
from danlu.ops.conv import MAX_POOL2D_VALUES

from .harness import Arg, OpCase


def _distinct(rng, shape):
    """Distinct values in [-2, 2), at least 4/numel apart."""
    n = math.prod(shape)
    return (rng.permutation(n).reshape(shape) / max(n, 1)) * 4 - 2


def D(shape, **kw):
    return Arg(shape, "custom", fill=_distinct, **kw)


def _special(rng, shape):
    """Ties, -inf and NaN: PyTorch keeps the first maximum, and the last NaN, of a window."""
    a = rng.integers(-2, 3, shape).astype(float)
    flat = a.reshape(-1)
    flat[::7] = -math.inf
    flat[3::11] = math.nan
    return a


def chunked(fn, nbytes=9000):
    """fn with the conv kernels' chunk budget shrunk, so that small inputs run several chunks of images
    (the last one partial): the chunk loop and its per-size buffers are exercised too."""

    def run(*args):
        old = conv_mod._CHUNK_BYTES
        conv_mod._CHUNK_BYTES = nbytes
        try:
            return fn(*args)
        finally:
            conv_mod._CHUNK_BYTES = old

    return run


def _with_inf(rng, shape):
    a = rng.uniform(-2, 2, shape)
    a.reshape(-1)[5::17] = math.inf
    return a


def first_order(lib, fn, n_wrt):
    """(n_wrt inputs, cotangent, other args...) -> the gradients of fn(inputs, other args) for the inputs,
    themselves differentiable."""

    def grads(*args):
        with lib.enable_grad():  # gradcheck evaluates it under no_grad
            ins = [a if a.requires_grad else a.detach().requires_grad_() for a in args[:n_wrt]]
            out = fn(*ins, *args[n_wrt + 1:])
            return tuple(lib.autograd.grad(out, ins, args[n_wrt], create_graph=True))

    return grads


def double(name, dl_fn, torch_fn, samples, n_wrt, **kw):
    return OpCase(name, first_order(dl, dl_fn, n_wrt), first_order(torch, torch_fn, n_wrt), samples,
                  gradgrad=False, **kw)  # gradgradcheck here would be a third-order check: the plain cases do it


CONV2D_SAMPLES = [
    [Arg((2, 3, 6, 5)), Arg((4, 3, 3, 3)), Arg((4,))],
    [Arg((2, 3, 7, 6)), Arg((4, 3, 3, 2)), None, 2, 1],
    [Arg((1, 4, 6, 6)), Arg((4, 2, 3, 3)), Arg((4,)), 1, (1, 2), (2, 1), 2],
    [Arg((2, 4, 5, 5)), Arg((4, 1, 3, 3)), Arg((4,)), 1, 1, 1, 4],           # depthwise
    [Arg((2, 3, 6, 7)), Arg((2, 3, 2, 4)), Arg((2,)), 1, "same", (2, 1)],    # asymmetric 'same'
    [Arg((1, 2, 5, 4)), Arg((3, 2, 3, 3)), None, 1, "valid"],
    [Arg((3, 5, 5)), Arg((2, 3, 3, 3)), Arg((2,)), 1, 1],                    # unbatched
    [Arg((2, 2, 7, 5)), Arg((3, 2, 3, 2)), Arg((3,)), (3, 2), (2, 1), (1, 2)],
    [Arg((2, 3, 4, 5)), Arg((2, 3, 1, 1)), None, 2],                         # 1x1, strided
    [Arg((1, 1, 5, 5)), Arg((1, 1, 5, 5)), Arg((1,))],                       # kernel = input
    [Arg((0, 3, 5, 5)), Arg((2, 3, 3, 3)), Arg((2,))],                       # empty batch
]

CONV_TRANSPOSE2D_SAMPLES = [
    [Arg((2, 4, 3, 4)), Arg((4, 3, 3, 3)), Arg((3,))],
    [Arg((2, 4, 3, 3)), Arg((4, 2, 3, 2)), Arg((4,)), 2, 1, 1, 2],
    [Arg((1, 2, 3, 3)), Arg((2, 2, 2, 2)), None, 1, 0, 1, 1, 2],             # output_padding >= stride
    [Arg((2, 3, 3)), Arg((2, 1, 3, 3)), None, (2, 3), (1, 0), (1, 2)],       # unbatched
    [Arg((1, 3, 2, 3)), Arg((3, 1, 3, 3)), Arg((3,)), 1, 1, 0, 3],           # depthwise
    [Arg((2, 2, 3, 2)), Arg((2, 2, 2, 3)), Arg((2,)), (2, 1), 0, 0, 1, (1, 2)],
]

MAX_POOL2D_SAMPLES = [  # (input, kernel_size, stride, padding, dilation, ceil_mode)
    [D((2, 3, 6, 8)), 2],
    [D((2, 2, 7, 8)), 3, 2, 1],
    [D((1, 2, 7, 8)), (3, 2), (2, 1), (1, 0), (1, 2)],
    [D((2, 2, 7, 7)), 3, 2, 0, 1, True],
    [D((1, 2, 5, 7)), 2, None, 1, 1, True],
    [D((1, 2, 7, 8)), 3, 1, 1, 2],                                          # overlapping, dilated
    [D((3, 5, 5)), 2, 1],                                                    # unbatched
    [D((1, 1, 1, 1)), 1],
    [D((0, 2, 4, 4)), 2],                                                    # empty batch
]

AVG_POOL2D_SAMPLES = [  # (input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    [Arg((2, 3, 6, 8)), 2],
    [Arg((2, 2, 7, 8)), 3, 2, 1],
    [Arg((2, 2, 7, 8)), 3, 2, 1, False, False],
    [Arg((1, 2, 7, 7)), 3, 2, 0, True],
    [Arg((1, 2, 7, 8)), 3, 2, 1, True, False],
    [Arg((1, 2, 5, 7)), (3, 2), (1, 2), (1, 1), False, True, 5],
    [Arg((1, 2, 5, 7)), 2, None, 1, True],
    [Arg((3, 5, 4)), 2, 1],                                                  # unbatched
    [Arg((0, 2, 4, 4)), 2],                                                  # empty batch
]

ADAPTIVE_SIZES = [(3, 3), (2, 5), 1, (None, 3), (7, 8), (4, 4), (10, 3)]


CASES = [
    OpCase("conv2d", dl.conv2d, TF.conv2d, CONV2D_SAMPLES),
    OpCase("conv2d_kw", lambda x, w: dl.conv2d(x, w, padding="same", dilation=2, groups=2),
           lambda x, w: TF.conv2d(x, w, padding="same", dilation=2, groups=2),
           [[Arg((2, 4, 5, 6)), Arg((2, 2, 3, 2))]]),
    OpCase("conv2d_chunked", chunked(dl.conv2d), TF.conv2d, [
        [Arg((5, 3, 6, 5)), Arg((4, 3, 3, 3)), Arg((4,))],
        [Arg((5, 2, 6, 5)), Arg((4, 1, 3, 2)), Arg((4,)), 1, (1, 2), 1, 2],
        [Arg((5, 2, 7, 6)), Arg((3, 2, 3, 3)), None, 2, 1],
    ]),
    OpCase("conv_transpose2d_chunked", chunked(dl.conv_transpose2d), TF.conv_transpose2d, [
        [Arg((5, 4, 3, 4)), Arg((4, 3, 3, 3)), Arg((3,)), 1, 1],
        [Arg((5, 4, 3, 3)), Arg((4, 2, 3, 2)), Arg((4,)), 2, 1, 1, 2],
    ]),
    # inf in the input or the weight: the full-width layout's extra columns must not leak 0 * inf = NaN
    # into gradients that PyTorch keeps finite (finite differences are meaningless here). No padding:
    # where zero padding meets an infinite weight PyTorch itself differs between float32 (skips the
    # padding) and float64 (multiplies it).
    OpCase("conv2d_nonfinite", dl.conv2d, TF.conv2d, [
        [Arg((2, 3, 6, 6), "custom", fill=_with_inf), Arg((4, 3, 3, 3))],
        [Arg((2, 3, 6, 6)), Arg((4, 3, 3, 3), "custom", fill=_with_inf), None, 1],
    ], numeric_grad=False),
    OpCase("conv1d", dl.conv1d, TF.conv1d, [
        [Arg((2, 3, 7)), Arg((4, 3, 3)), Arg((4,))],
        [Arg((3, 8)), Arg((2, 3, 2)), None, 2, 1],
        [Arg((2, 4, 9)), Arg((4, 2, 4)), Arg((4,)), 1, "same", 2, 2],
    ]),
    OpCase("conv_transpose2d", dl.conv_transpose2d, TF.conv_transpose2d, CONV_TRANSPOSE2D_SAMPLES),
    double("conv2d_double", dl.conv2d, TF.conv2d, [
        [Arg((2, 3, 5, 4)), Arg((2, 3, 3, 2)), Arg((2, 2, 3, 3))],
        [Arg((1, 4, 5, 5)), Arg((4, 2, 2, 2)), Arg((1, 4, 3, 3)), None, 2, 1, 1, 2],
    ], n_wrt=2),
    double("conv2d_bias_double", dl.conv2d, TF.conv2d, [  # the bias gradient is conv2d_weight's second output
        [Arg((2, 3, 5, 4)), Arg((2, 3, 3, 2)), Arg((2,)), Arg((2, 2, 3, 3))],
        [Arg((2, 2, 5, 5)), Arg((3, 2, 2, 2)), Arg((3,)), Arg((2, 3, 3, 3)), 2, 1],
    ], n_wrt=3),
    double("conv_transpose2d_double", dl.conv_transpose2d, TF.conv_transpose2d, [
        [Arg((1, 2, 3, 3)), Arg((2, 3, 2, 2)), Arg((1, 3, 6, 6)), None, 2, 0, 0],
    ], n_wrt=2),
    OpCase("max_pool2d", lambda x, *a: dl.max_pool2d(x, *a, return_indices=True),
           lambda x, *a: TF.max_pool2d(x, *a, return_indices=True), MAX_POOL2D_SAMPLES),
    OpCase("max_pool2d_no_indices", dl.max_pool2d, TF.max_pool2d, [[D((2, 3, 6, 8)), 2], [D((1, 2, 7, 7)), 3, 2, 1]]),
    # The values-only primitive that inference uses (the public function picks it when no gradient is
    # wanted), called directly so that its VJP (indices recomputed) is checked too.
    OpCase("max_pool2d_values_op",
           lambda x: apply(MAX_POOL2D_VALUES, x, kernel=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 1),
                           ceil_mode=True),
           lambda x: TF.max_pool2d(x, (3, 2), (2, 1), (1, 0), 1, True), [[D((2, 2, 7, 6))]]),
    OpCase("max_pool2d_ties_nan", lambda x: dl.max_pool2d(x, 3, 2, 1, return_indices=True),
           lambda x: TF.max_pool2d(x, 3, 2, 1, return_indices=True),
           [[Arg((2, 3, 7, 8), "custom", fill=_special)]], grad=False),
    OpCase("max_pool1d", lambda x, *a: dl.max_pool1d(x, *a, return_indices=True),
           lambda x, *a: TF.max_pool1d(x, *a, return_indices=True),
           [[D((2, 3, 9)), 2], [D((3, 9)), 3, 2, 1, 1, True], [D((1, 2, 10)), 3, 1, 1, 2]]),
    double("max_pool2d_double", lambda x: dl.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1), [
        [D((1, 2, 5, 6), grad=False), Arg((1, 2, 3, 3))],
    ], n_wrt=1),
    OpCase("avg_pool2d", dl.avg_pool2d, TF.avg_pool2d, AVG_POOL2D_SAMPLES),
    OpCase("avg_pool1d", dl.avg_pool1d, TF.avg_pool1d,
           [[Arg((2, 3, 9)), 2], [Arg((3, 9)), 3, 2, 1, True, False], [Arg((1, 2, 8)), 3, 1, 1]]),
    double("avg_pool2d_double", lambda x: dl.avg_pool2d(x, 3, 2, 1, True, False),
           lambda x: TF.avg_pool2d(x, 3, 2, 1, True, False), [[Arg((1, 2, 6, 5), grad=False), Arg((1, 2, 4, 3))]],
           n_wrt=1),
    OpCase("adaptive_avg_pool2d", dl.adaptive_avg_pool2d, TF.adaptive_avg_pool2d,
           [[Arg((2, 3, 7, 8)), s] for s in ADAPTIVE_SIZES] +
           [[Arg((3, 6, 4)), 2], [Arg((1, 2, 4, 6)), (2, 3)], [Arg((0, 2, 5, 5)), 2]]),
    # PyTorch's backward rejects an empty output size, so only the forward is compared there.
    OpCase("adaptive_avg_pool2d_empty_out", dl.adaptive_avg_pool2d, TF.adaptive_avg_pool2d,
           [[Arg((1, 2, 5, 5)), (0, 2)]], grad=False),
    OpCase("adaptive_avg_pool1d", dl.adaptive_avg_pool1d, TF.adaptive_avg_pool1d,
           [[Arg((2, 3, 9)), 4], [Arg((3, 8)), 4], [Arg((1, 2, 5)), 7]]),
    double("adaptive_avg_pool2d_double", lambda x: dl.adaptive_avg_pool2d(x, (3, 2)),
           lambda x: TF.adaptive_avg_pool2d(x, (3, 2)), [[Arg((1, 2, 5, 5), grad=False), Arg((1, 2, 3, 2))]],
           n_wrt=1),
    OpCase("adaptive_max_pool2d", lambda x, s: dl.adaptive_max_pool2d(x, s, True),
           lambda x, s: TF.adaptive_max_pool2d(x, s, True),
           [[D((2, 3, 7, 8)), s] for s in ADAPTIVE_SIZES] + [[D((3, 6, 4)), 2]]),
    OpCase("adaptive_max_pool2d_ties_nan", lambda x: dl.adaptive_max_pool2d(x, (3, 2), True),
           lambda x: TF.adaptive_max_pool2d(x, (3, 2), True),
           [[Arg((2, 3, 7, 8), "custom", fill=_special)]], grad=False),
    OpCase("adaptive_max_pool1d", lambda x, s: dl.adaptive_max_pool1d(x, s, True),
           lambda x, s: TF.adaptive_max_pool1d(x, s, True), [[D((2, 3, 9)), 4], [D((3, 8)), 3]]),
]
