"""Functional neural-network operations, as ``torch.nn.functional`` (``import danlu.nn.functional as F``).

Almost everything here is a composite of danlu primitives, so gradients (of any order) come from the
primitives' rules. The exceptions are the primitives of ``danlu.ops.nn`` (softmax, log_softmax, the
fused cross-entropy, nll_loss, embedding), which earn their own kernels for speed or stability.
Functions of non-smooth activations follow PyTorch's choice of gradient at the kinks where they can.
The convolution and pooling functions live in ``danlu.ops.conv`` and are re-exported here.
"""
# ruff: noqa: A001, A002  (``input``, the argument name of every torch.nn.functional function)

from __future__ import annotations

import math
import warnings

import numpy as np

from ..core import dtypes as _dt
from ..core.dispatch import _no_grad, state as _state
from ..core.errors import DTypeError, ShapeError, api, describe
from ..core.tensor import Tensor
from ..ops import elementwise as _ew
from ..ops import index as _ix
from ..ops import linalg as _la
from ..ops import nn as _nn
from ..ops import random as _rnd
from ..ops import reduce as _rd
from ..ops import shape as _sh
from ..ops._util import norm_dim
from ..ops.index import one_hot

from ..ops.conv import (  # noqa: F401  convolution and pooling live with their primitives
    adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_max_pool1d, adaptive_max_pool2d, avg_pool1d, avg_pool2d,
    conv1d, conv2d, conv_transpose2d, max_pool1d, max_pool2d,
)

_CONV_NAMES = ("conv1d", "conv2d", "conv_transpose2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
               "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d")

__all__ = [
    # activations
    "relu", "relu_", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "softplus", "softsign",
    "tanh", "sigmoid", "hardtanh", "hardsigmoid", "hardswish", "logsigmoid", "hardshrink", "softshrink",
    "tanhshrink", "threshold", "glu", "prelu", "rrelu", "softmax", "softmin", "log_softmax",
    # linear, dropout, embedding, padding
    "linear", "bilinear", "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "embedding",
    "one_hot", "pad",
    # normalization and distances
    "layer_norm", "rms_norm", "group_norm", "batch_norm", "instance_norm", "normalize", "cosine_similarity",
    "pairwise_distance",
    # losses
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "kl_div", "poisson_nll_loss", "gaussian_nll_loss", "margin_ranking_loss",
    "hinge_embedding_loss", "soft_margin_loss", "multilabel_soft_margin_loss", "cosine_embedding_loss",
    "triplet_margin_loss", *_CONV_NAMES,
]


# == helpers ========================================================================================

def _recording(*tensors) -> bool:
    return _state.grad_enabled and any(isinstance(t, Tensor) and t.requires_grad for t in tensors)


def _inplace(fn, input: Tensor, inplace: bool) -> Tensor:
    """``fn(input)``, written back into ``input`` when ``inplace``. Under autograd the composite runs on
    a clone, so the values it saves for backward are not the ones the write-back overwrites."""
    if not inplace:
        return fn(input)
    src = _sh.clone(input) if _recording(input) else input
    return input.copy_(fn(src))


def _const(values, dtype=_dt.int64) -> Tensor:
    from ..core.creation import tensor

    return tensor(np.asarray(values), dtype=dtype)


def _softplus(x: Tensor) -> Tensor:
    """log(1 + exp(x)) without overflow. ``relu(x) + log1p(exp(x - 2 relu(x)))``: the exponent is -|x|,
    spelled so the gradient at 0 is sigmoid(0) = 0.5 (relu passes no gradient at 0)."""
    r = _ew.relu(x)
    return r + _ew.log1p(_ew.exp(x - r * 2))


def _check_float(name, *xs):
    for x in xs:
        if isinstance(x, Tensor) and not x.dtype.is_floating_point:
            raise DTypeError(f"{name}: expected a floating point tensor, got {describe(x)}; convert with .float()")


# == activations ====================================================================================

@api
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """``max(x, 0)``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.relu(dl.tensor([-1.0, 2.0]))
    tensor([0., 2.])
    """
    return input.relu_() if inplace else _ew.relu(input)


@api
def relu_(input: Tensor) -> Tensor:
    """In-place ``relu``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.relu_(dl.tensor([-1.0, 2.0]))
    tensor([0., 2.])
    """
    return input.relu_()


@api
def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """Clamp to ``[min_val, max_val]``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.hardtanh(dl.tensor([-3.0, 0.5, 2.0]))
    tensor([-1.0000,  0.5000,  1.0000])
    """
    if min_val > max_val:
        raise ValueError("hardtanh: min_val cannot be greater than max_val")
    return _inplace(lambda x: _flat_outside(x, min_val, max_val, min_val, max_val, x), input, inplace)


def _flat_outside(x, lo, hi, below, above, inside):
    """``below`` for ``x <= lo``, ``above`` for ``x >= hi``, else ``inside``: at the boundary points the
    gradient is the outer piece's, as PyTorch's (a clamp would pass the inner one)."""
    return _ew.where(x <= lo, below, _ew.where(x >= hi, above, inside))


@api
def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """``min(max(x, 0), 6)``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.relu6(dl.tensor([-1.0, 3.0, 8.0]))
    tensor([0., 3., 6.])
    """
    return hardtanh(input, 0.0, 6.0, inplace)


@api
def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``x`` where positive, else ``negative_slope * x``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.leaky_relu(dl.tensor([-2.0, 2.0]), 0.1)
    tensor([-0.2000,  2.0000])
    """
    return _inplace(lambda x: _ew.where(x > 0, x, x * negative_slope), input, inplace)


def _elu(x, alpha, scale=1.0, input_scale=1.0):
    # expm1 of min(x, 0): the branch where() discards never overflows, so its zero gradient stays finite.
    neg = _ew.expm1(_ew.clamp(x, max=0.0) * input_scale) * (alpha * scale)
    return _ew.where(x > 0, x * scale if scale != 1.0 else x, neg)


@api
def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` where positive, else ``alpha * (exp(x) - 1)``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.elu(dl.tensor([-1.0, 2.0]))
    tensor([-0.6321,  2.0000])
    """
    return _inplace(lambda x: _elu(x, alpha), input, inplace)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@api
def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """Scaled ELU with the self-normalizing constants.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.selu(dl.tensor([-1.0, 1.0]))
    tensor([-1.1113,  1.0507])
    """
    return _inplace(lambda x: _elu(x, _SELU_ALPHA, _SELU_SCALE), input, inplace)


@api
def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.celu(dl.tensor([-1.0, 1.0]), alpha=2.0)
    tensor([-0.7869,  1.0000])
    """
    if alpha == 0:
        raise ValueError("celu: ZeroDivisionError: alpha cannot be 0 for CELU")
    return _inplace(lambda x: _elu(x, alpha, input_scale=1.0 / alpha), input, inplace)


@api
def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit ``x * Phi(x)``; ``approximate='tanh'`` uses the tanh formula.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.gelu(dl.tensor([-1.0, 1.0])), F.gelu(dl.tensor([1.0]), approximate="tanh")
    (tensor([-0.1587,  0.8413]), tensor([0.8412]))
    """
    if approximate == "none":
        return input * (_ew.erf(input * (1.0 / math.sqrt(2.0))) + 1.0) * 0.5
    if approximate == "tanh":
        inner = (input + input * input * input * 0.044715) * math.sqrt(2.0 / math.pi)
        return input * (_ew.tanh(inner) + 1.0) * 0.5
    raise ValueError(f"gelu: approximate argument must be either none or tanh, got {approximate!r}")


@api
def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * sigmoid(x)`` (swish).

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.silu(dl.tensor([0.0, 1.0]))
    tensor([0.0000, 0.7311])
    """
    return _inplace(lambda x: x * _ew.sigmoid(x), input, inplace)


@api
def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * tanh(softplus(x))``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.mish(dl.tensor([1.0]))
    tensor([0.8651])
    """
    return _inplace(lambda x: x * _ew.tanh(_softplus(x)), input, inplace)


@api
def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta * x)) / beta``, and ``x`` itself where ``beta * x > threshold``; stable for
    large inputs of either sign.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.softplus(dl.tensor([0.0, 100.0]))
    tensor([  0.6931, 100.0000])
    """
    bx = input * beta if beta != 1 else input
    soft = _softplus(bx)
    if beta != 1:
        soft = soft / beta
    return _ew.where(bx > threshold, input, soft)


@api
def softsign(input: Tensor) -> Tensor:
    """``x / (1 + |x|)``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.softsign(dl.tensor([-1.0, 3.0]))
    tensor([-0.5000,  0.7500])
    """
    return input / (_ew.abs(input) + 1.0)


@api
def tanh(input: Tensor) -> Tensor:
    """Hyperbolic tangent.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.tanh(dl.tensor([0.0]))
    tensor([0.])
    """
    return _ew.tanh(input)


@api
def sigmoid(input: Tensor) -> Tensor:
    """Logistic sigmoid ``1 / (1 + exp(-x))``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.sigmoid(dl.tensor([0.0]))
    tensor([0.5000])
    """
    return _ew.sigmoid(input)


@api
def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """Piecewise-linear sigmoid ``clamp(x / 6 + 1/2, 0, 1)``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.hardsigmoid(dl.tensor([-4.0, 0.0, 4.0]))
    tensor([0.0000, 0.5000, 1.0000])
    """
    return _inplace(lambda x: _flat_outside(x, -3.0, 3.0, 0.0, 1.0, x * (1.0 / 6.0) + 0.5), input, inplace)


@api
def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * relu6(x + 3) / 6``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.hardswish(dl.tensor([-4.0, 1.0, 4.0]))
    tensor([0.0000, 0.6667, 4.0000])
    """
    return _inplace(lambda x: _flat_outside(x, -3.0, 3.0, 0.0, x, x * (x + 3.0) * (1.0 / 6.0)), input, inplace)


@api
def logsigmoid(input: Tensor) -> Tensor:
    """``log(sigmoid(x))``, finite for large negative inputs.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.logsigmoid(dl.tensor([-200.0, 0.0]))
    tensor([-200.0000,   -0.6931])
    """
    return -_softplus(-input)


@api
def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``x`` where ``|x| > lambd``, else 0.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.hardshrink(dl.tensor([-1.0, 0.2, 1.0]))
    tensor([-1.,  0.,  1.])
    """
    return _ew.where((input > lambd) | (input < -lambd), input, 0.0)


@api
def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """Shrink toward 0 by ``lambd``: ``x - lambd`` above it, ``x + lambd`` below ``-lambd``, else 0.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.softshrink(dl.tensor([-1.0, 0.2, 1.0]))
    tensor([-0.5000,  0.0000,  0.5000])
    """
    if lambd < 0:
        raise RuntimeError(f"softshrink: lambda must be greater or equal to 0, but found to be {lambd}.")
    return _ew.where(input > lambd, input - lambd, _ew.where(input < -lambd, input + lambd, 0.0))


@api
def tanhshrink(input: Tensor) -> Tensor:
    """``x - tanh(x)``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.tanhshrink(dl.tensor([0.0]))
    tensor([0.])
    """
    return input - _ew.tanh(input)


@api
def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """``x`` where ``x > threshold``, else ``value``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.threshold(dl.tensor([0.5, 2.0]), 1.0, -1.0)
    tensor([-1.,  2.])
    """
    return _inplace(lambda x: _ew.where(x > threshold, x, value), input, inplace)


@api
def glu(input: Tensor, dim: int = -1) -> Tensor:
    """Gated linear unit: split ``dim`` in halves ``a, b`` and return ``a * sigmoid(b)``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.glu(dl.tensor([2.0, 0.0]))
    tensor([1.])
    """
    if input.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = norm_dim("glu", dim, input.ndim)
    size = input.shape[d]
    if size % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {d} is size {size}")
    a, b = _sh.split(input, size // 2, d)
    return a * _ew.sigmoid(b)


@api
def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """Leaky ReLU with a learned slope: one for all channels, or one per channel (dimension 1).

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.prelu(dl.tensor([[-2.0, 2.0]]), dl.tensor([0.25]))
    tensor([[-0.5000,  2.0000]])
    """
    if weight.numel() != 1:
        channels = input.shape[1] if input.ndim >= 2 else (input.shape[0] if input.ndim == 1 else 1)
        if weight.ndim != 1 or weight.shape[0] != channels:
            raise RuntimeError(f"prelu: mismatch in parameter count between weight {describe(weight)} and the "
                               f"number of input channels ({channels}) of {describe(input)}")
        if input.ndim >= 2:
            weight = weight.reshape((channels,) + (1,) * (input.ndim - 2))
    elif input.ndim == 0:
        weight = weight.reshape(())
    return _ew.where(input > 0, input, input * weight)


@api
def rrelu(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,
          inplace: bool = False) -> Tensor:
    """Randomized leaky ReLU: negative inputs scaled by a slope drawn uniformly from ``[lower, upper]``
    per element when training, by the mean slope otherwise.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.rrelu(dl.tensor([-1.0, 1.0]), 0.1, 0.3)
    tensor([-0.2000,  1.0000])
    """
    if not training:
        return leaky_relu(input, (lower + upper) / 2, inplace)

    def fn(x):
        with _no_grad():
            slope = _rnd.rand(*x.shape, dtype=x.dtype) * (upper - lower) + lower
        return _ew.where(x >= 0, x, x * slope)

    return _inplace(fn, input, inplace)


def _softmax_dim(name: str, ndim: int) -> int:
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include "
                  "dim=X as an argument.", stacklevel=4)
    return 0 if ndim in (0, 1, 3) else 1


@api
def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """Softmax along ``dim`` (see :func:`danlu.softmax`).

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.softmax(dl.tensor([[0.0, 0.0]]), dim=1)
    tensor([[0.5000, 0.5000]])
    """
    if dim is None:
        dim = _softmax_dim("softmax", input.ndim)
    return _nn.softmax(input, dim, dtype)


@api
def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """``softmax(-x)`` along ``dim``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.softmin(dl.tensor([0.0, 1.0]), dim=0)
    tensor([0.7311, 0.2689])
    """
    if dim is None:
        dim = _softmax_dim("softmin", input.ndim)
    if dtype is not None:
        input = input.to(dtype)
    return _nn.softmax(-input, dim)


@api
def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """Log-softmax along ``dim`` (see :func:`danlu.log_softmax`).

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.log_softmax(dl.tensor([0.0, 0.0]), dim=0)
    tensor([-0.6931, -0.6931])
    """
    if dim is None:
        dim = _softmax_dim("log_softmax", input.ndim)
    return _nn.log_softmax(input, dim, dtype)


# == linear ==========================================================================================

@api
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias``, as ``torch.nn.functional.linear``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.linear(dl.ones(2, 3), dl.ones(4, 3), dl.zeros(4)).shape
    danlu.Size([2, 4])
    """
    if weight.ndim == 2 and input.ndim >= 1 and (bias is None or bias.ndim <= 1):
        return _nn.linear(input, weight, bias)
    out = _la.matmul(input, _sh.t(weight) if weight.ndim == 2 else weight)
    return out + bias if bias is not None else out


@api
def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``y_k = x1 @ weight[k] @ x2 + bias_k`` over the last dimensions, as ``torch.nn.functional.bilinear``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.bilinear(dl.ones(2, 3), dl.ones(2, 4), dl.ones(5, 3, 4)).shape
    danlu.Size([2, 5])
    """
    if weight.ndim != 3 or input1.shape[-1] != weight.shape[1] or input2.shape[-1] != weight.shape[2]:
        raise ShapeError(f"bilinear: expected weight (out, in1, in2) matching input1 {describe(input1)} and input2 "
                         f"{describe(input2)} in their last dimensions, got weight {describe(weight)}")
    n_out, n1, n2 = weight.shape
    # (.., in1) @ (in1, out * in2) -> (.., out, in2), then contract in2 with x2.
    w = _sh.permute(weight, 1, 0, 2).reshape(n1, n_out * n2)
    t = _la.matmul(input1, w).reshape(tuple(input1.shape[:-1]) + (n_out, n2))
    out = _rd.sum(t * input2.unsqueeze(-2), -1)
    return out + bias if bias is not None else out


# == dropout =========================================================================================

def _check_p(p):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _keep_mask(input: Tensor, shape, p: float, scaled: bool = True) -> Tensor:
    """Where kept: ``1 / (1 - p)`` (or 1 when not ``scaled``); 0 where dropped. Shaped ``shape``, drawn
    from danlu's generator."""
    with _no_grad():
        keep = (_rnd.rand(*shape, dtype=input.dtype) >= p).to(input.dtype)
        return keep * (1.0 / (1.0 - p)) if scaled else keep


@api
def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)`` (identity when not
    training).

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.dropout(dl.ones(4), 0.5, training=False)
    tensor([1., 1., 1., 1.])
    """
    _check_p(p)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return _inplace(lambda x: x * 0.0, input, inplace)
    return _inplace(lambda x: x * _keep_mask(x, x.shape, p), input, inplace)


def _feature_dropout(name, input, p, training, inplace, batched_ndim):
    _check_p(p)
    if input.ndim not in (batched_ndim - 1, batched_ndim):
        raise RuntimeError(f"{name}: expected a {batched_ndim - 1}-D (unbatched) or {batched_ndim}-D (batched) "
                           f"input, got {describe(input)}")
    if not training or p == 0.0:
        return input
    lead = 2 if input.ndim == batched_ndim else 1
    shape = tuple(input.shape[:lead]) + (1,) * (input.ndim - lead)
    if p == 1.0:
        return _inplace(lambda x: x * 0.0, input, inplace)
    return _inplace(lambda x: x * _keep_mask(x, shape, p), input, inplace)


@api
def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of an ``(N, C, L)`` (or ``(C, L)``) input with probability ``p``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.dropout1d(dl.ones(1, 2, 3), training=False).shape
    danlu.Size([1, 2, 3])
    """
    return _feature_dropout("dropout1d", input, p, training, inplace, 3)


@api
def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of an ``(N, C, H, W)`` (or ``(C, H, W)``) input with probability ``p``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.dropout2d(dl.ones(1, 2, 3, 3), p=1.0).sum()
    tensor(0.)
    """
    return _feature_dropout("dropout2d", input, p, training, inplace, 4)


@api
def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of an ``(N, C, D, H, W)`` (or ``(C, D, H, W)``) input with probability ``p``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.dropout3d(dl.ones(1, 2, 1, 1, 1), p=0.0).sum()
    tensor(2.)
    """
    return _feature_dropout("dropout3d", input, p, training, inplace, 5)


_ALPHA_PRIME = -_SELU_ALPHA * _SELU_SCALE


@api
def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False) -> Tensor:
    """Dropout for SELU networks: dropped elements take SELU's negative saturation value and an affine
    map keeps the mean and variance.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.alpha_dropout(dl.ones(3), 0.5)
    tensor([1., 1., 1.])
    """
    _check_p(p)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return _inplace(lambda x: x * 0.0, input, inplace)
    a = ((1.0 - p) * (1.0 + p * _ALPHA_PRIME ** 2)) ** -0.5
    b = -a * _ALPHA_PRIME * p

    def fn(x):
        keep = _keep_mask(x, x.shape, p, scaled=False)
        return (x * keep + (1.0 - keep) * _ALPHA_PRIME) * a + b

    return _inplace(fn, input, inplace)


# == embedding, one_hot, pad =========================================================================

@api
def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of ``weight`` at the indices ``input``; the ``padding_idx`` row gets no gradient. With
    ``max_norm``, the looked-up rows are first renormalized in place, as PyTorch does. danlu has no
    sparse tensors: ``sparse=True`` gives the same gradient, stored dense.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.embedding(dl.tensor([[0, 2]]), dl.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))
    tensor([[[1., 1.],
             [3., 3.]]])
    """
    n = weight.shape[0]
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise ValueError(f"embedding: padding_idx must be within num_embeddings ({n}), got {padding_idx}")
        padding_idx %= n
    if max_norm is not None:
        _embedding_renorm_(weight, input, max_norm, norm_type)
    return _nn.embedding_lookup(input, weight, padding_idx, scale_grad_by_freq)


def _embedding_renorm_(weight, input, max_norm, norm_type):
    """Scale, in place, each looked-up row whose ``norm_type``-norm exceeds ``max_norm``."""
    with _no_grad():
        idx = input.reshape(-1)
        rows = _ix.index_select(weight, 0, idx)
        norms = _rd.norm(rows, norm_type, dim=1, keepdim=True)
        scale = _ew.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).to(weight.dtype)
        weight.index_put_((idx,), rows * scale)


def _pad_index(mode: str, size: int, lo: int, hi: int, dim: int, shape) -> np.ndarray:
    """Source positions along one dimension for the output positions ``-lo .. size + hi - 1``."""
    pos = np.arange(-lo, size + hi)
    if mode == "reflect":
        if lo >= size or hi >= size:
            raise RuntimeError(f"pad: Argument #4: Padding size should be less than the corresponding input dimension, "
                               f"but got: padding ({lo}, {hi}) at dimension {dim} of input {list(shape)}")
        period = 2 * (size - 1)
        pos = np.abs(pos) % period if period else np.zeros_like(pos)
        return np.where(pos >= size, period - pos, pos)
    if mode == "replicate":
        if size == 0:
            raise RuntimeError(f"pad: input dimension {dim} of size 0 can't be padded with mode 'replicate'")
        return np.clip(pos, 0, size - 1)
    if lo > size or hi > size:
        raise RuntimeError("pad: Padding value causes wrapping around more than once.")
    return pos % size


@api
def pad(input: Tensor, pad, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last ``len(pad) // 2`` dimensions: ``pad = (left, right, top, bottom, ...)`` starting
    from the last dimension. ``mode`` is 'constant' (with ``value``), 'reflect', 'replicate' or
    'circular'; negative pads crop.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> x = dl.tensor([[[1.0, 2.0, 3.0]]])
    >>> F.pad(x, (1, 1)), F.pad(x, (2, 1), mode="reflect")
    (tensor([[[0., 1., 2., 3., 0.]]]), tensor([[[3., 2., 1., 2., 3., 2.]]]))
    """
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2:
        raise RuntimeError("pad: Padding length must be divisible by 2")
    if len(pad) // 2 > input.ndim:
        raise RuntimeError(f"pad: Padding length should be less than or equal to two times the input dimension but "
                           f"got padding length {len(pad)} and input of dimension {input.ndim}")
    if mode == "constant":
        return _sh.pad_constant(input, pad, 0.0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"pad: Unrecognised padding mode {mode}")
    if value is not None and value != 0:
        raise RuntimeError(f'pad: Padding mode "{mode}" doesn\'t take in value argument')
    npad = len(pad) // 2
    if npad > 3 or input.ndim not in (npad + 1, npad + 2):
        raise NotImplementedError(f"pad: padding size {len(pad)} is not supported for {input.ndim}D input tensor with "
                                  f"mode {mode!r}; non-constant padding pads the last 1, 2 or 3 dimensions of an input "
                                  "with one or two more dimensions (e.g. (N, C, W) with 2 pad values)")
    out = input
    shape = tuple(input.shape)
    for i in range(npad):
        d = input.ndim - 1 - i
        lo, hi = pad[2 * i], pad[2 * i + 1]
        if lo == 0 and hi == 0:
            continue
        idx = _pad_index(mode, shape[d], lo, hi, d, shape)
        out = _ix.index_select(out, d, _const(idx))
    return out


# == normalization ===================================================================================

def _stats(x, dims):
    """Mean and biased variance over ``dims`` (kept)."""
    return _rd.mean(x, dims, keepdim=True), _rd.var(x, dims, correction=0, keepdim=True)


def _affine(x, weight, bias, shape):
    if weight is not None:
        x = x * (weight.reshape(shape) if shape is not None else weight)
    if bias is not None:
        x = x + (bias.reshape(shape) if shape is not None else bias)
    return x


@api
def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalize over the trailing ``normalized_shape`` dimensions (biased variance), then scale and shift.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.layer_norm(dl.tensor([[1.0, 3.0]]), (2,))
    tensor([[-1.0000,  1.0000]])
    """
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(int(s) for s in normalized_shape)
    k = len(ns)
    if k == 0 or input.ndim < k or tuple(input.shape[input.ndim - k:]) != ns:
        raise RuntimeError(f"layer_norm: Given normalized_shape={list(ns)}, expected input with shape [*, "
                           f"{', '.join(map(str, ns))}], but got input of size{list(input.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != ns:
            raise RuntimeError(f"layer_norm: Expected {name} to be of same shape as normalized_shape, but got "
                               f"{name} of shape {list(t.shape)} and normalized_shape = {list(ns)}")
    _check_float("layer_norm", input)
    dims = tuple(range(input.ndim - k, input.ndim))
    mean, var = _stats(input, dims)
    return _affine((input - mean) * _ew.rsqrt(var + eps), weight, bias, None)


@api
def rms_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, eps: float | None = None) -> Tensor:
    """``x / sqrt(mean(x^2) + eps)`` over the trailing ``normalized_shape`` dimensions, times ``weight``;
    ``eps`` defaults to the dtype's machine epsilon.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.rms_norm(dl.tensor([[3.0, 4.0]]), (2,))
    tensor([[0.8485, 1.1314]])
    """
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(int(s) for s in normalized_shape)
    k = len(ns)
    if k == 0 or input.ndim < k or tuple(input.shape[input.ndim - k:]) != ns:
        raise RuntimeError(f"rms_norm: Given normalized_shape={list(ns)}, expected input with shape [*, "
                           f"{', '.join(map(str, ns))}], but got input of size{list(input.shape)}")
    _check_float("rms_norm", input)
    if eps is None:
        eps = _dt.finfo(input.dtype).eps
    dims = tuple(range(input.ndim - k, input.ndim))
    out = input * _ew.rsqrt(_rd.mean(input * input, dims, keepdim=True) + eps)
    return out * weight if weight is not None else out


def _channel_shape(input):
    return (1, input.shape[1]) + (1,) * (input.ndim - 2)


@api
def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalize each group of ``C / num_groups`` channels of every sample, then a per-channel affine.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.group_norm(dl.tensor([[[1.0], [3.0]]]), 1).reshape(-1)
    tensor([-1.0000,  1.0000])
    """
    if input.ndim < 2:
        raise RuntimeError(f"group_norm: expected an input with at least 2 dimensions (N, C, ...), got "
                           f"{describe(input)}")
    n, c = input.shape[0], input.shape[1]
    if num_groups <= 0 or c % num_groups:
        raise RuntimeError(f"group_norm: Expected number of channels in input to be divisible by num_groups, but got "
                           f"input of shape {list(input.shape)} and num_groups={num_groups}")
    _check_float("group_norm", input)
    rest = (c // num_groups) * math.prod(input.shape[2:])
    x = input.reshape(n, num_groups, rest)
    mean, var = _stats(x, (2,))
    out = ((x - mean) * _ew.rsqrt(var + eps)).reshape(tuple(input.shape))
    return _affine(out, weight, bias, (c,) + (1,) * (input.ndim - 2))


@api
def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each channel (dimension 1) by the batch statistics when ``training`` (updating the
    running statistics in place: the mean, and the unbiased variance, by ``momentum``), by the running
    statistics otherwise; then a per-channel affine.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> rm, rv = dl.zeros(1), dl.ones(1)
    >>> F.batch_norm(dl.tensor([[1.0], [3.0]]), rm, rv, training=True).reshape(-1), rm, rv
    (tensor([-1.0000,  1.0000]), tensor([0.2000]), tensor([1.1000]))
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected 2D or more input (N, C, ...), got {describe(input)}")
    _check_float("batch_norm", input)
    c = input.shape[1]
    shape = _channel_shape(input)
    dims = (0,) + tuple(range(2, input.ndim))
    if training:
        count = input.numel() // max(c, 1)
        if count <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                             f"{list(input.shape)}")
        mean, var = _stats(input, dims)
        _update_running(running_mean, running_var, mean, var, count, momentum)
    else:
        if running_mean is None or running_var is None:
            raise RuntimeError("batch_norm: running_mean and running_var must be defined in evaluation mode")
        mean, var = running_mean.reshape(shape), running_var.reshape(shape)
    out = (input - mean) * _ew.rsqrt(var + eps)
    return _affine(out, weight, bias, shape)


def _update_running(running_mean, running_var, mean, var, count, momentum):
    """``r = (1 - momentum) r + momentum * batch_stat`` in place, without autograd; the variance is
    stored unbiased."""
    m = 0.0 if momentum is None else float(momentum)
    with _no_grad():
        if running_mean is not None:
            running_mean.mul_(1.0 - m).add_(mean.reshape(tuple(running_mean.shape)).to(running_mean.dtype) * m)
        if running_var is not None:
            unbiased = var * (count / (count - 1))
            running_var.mul_(1.0 - m).add_(unbiased.reshape(tuple(running_var.shape)).to(running_var.dtype) * m)


@api
def instance_norm(input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
                  weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each channel of each sample over its spatial dimensions, then a per-channel affine.
    Given running statistics, they are updated with the batch average of the per-instance statistics.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.instance_norm(dl.tensor([[[1.0, 3.0]]]))
    tensor([[[-1.0000,  1.0000]]])
    """
    if input.ndim < 3:
        raise ValueError(f"instance_norm: expected an input (N, C, ...) with at least one spatial dimension, got "
                         f"{describe(input)}")
    _check_float("instance_norm", input)
    shape = _channel_shape(input)
    dims = tuple(range(2, input.ndim))
    if use_input_stats:
        count = math.prod(input.shape[2:])
        if count <= 1:
            raise ValueError(f"Expected more than 1 spatial element when training, got input size {list(input.shape)}")
        mean, var = _stats(input, dims)
        if running_mean is not None or running_var is not None:
            _update_running(running_mean, running_var, _rd.mean(mean, 0), _rd.mean(var, 0), count, momentum)
    else:
        if running_mean is None or running_var is None:
            raise RuntimeError("instance_norm: Expected running_mean and running_var to be defined when "
                               "use_input_stats is false")
        mean, var = running_mean.reshape(shape), running_var.reshape(shape)
    return _affine((input - mean) * _ew.rsqrt(var + eps), weight, bias, shape)


@api
def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None) -> Tensor:
    """``x / max(||x||_p, eps)`` along ``dim``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.normalize(dl.tensor([[3.0, 4.0]]))
    tensor([[0.6000, 0.8000]])
    """
    denom = _ew.clamp(_rd.norm(input, p, dim, keepdim=True), min=eps)
    res = input / denom
    return out.copy_(res) if out is not None else res


def _norm_floor(n: Tensor, eps: float) -> Tensor:
    """``max(n, eps)`` in value with the gradient of ``n`` (PyTorch clamps the norm outside autograd)."""
    return n + (_ew.clamp(n, min=eps) - n).detach()


@api
def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Cosine of the angle between ``x1`` and ``x2`` along ``dim`` (broadcast); each norm is floored at
    ``eps``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.cosine_similarity(dl.tensor([[1.0, 0.0]]), dl.tensor([[1.0, 1.0]]))
    tensor([0.7071])
    """
    if not x1.dtype.is_floating_point:
        x1 = x1.to(_dt.get_default_dtype())
    if not x2.dtype.is_floating_point:
        x2 = x2.to(_dt.get_default_dtype())
    x1, x2 = _sh.broadcast_tensors(x1, x2)
    n1 = _norm_floor(_rd.norm(x1, 2, dim, keepdim=True), eps)
    n2 = _norm_floor(_rd.norm(x2, 2, dim, keepdim=True), eps)
    return _rd.sum((x1 / n1) * (x2 / n2), dim)


@api
def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """``||x1 - x2 + eps||_p`` over the last dimension.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.pairwise_distance(dl.tensor([[0.0, 0.0]]), dl.tensor([[3.0, 4.0]]), eps=0.0)
    tensor([5.])
    """
    nd = max(x1.ndim, x2.ndim)
    return _rd.norm(x1 - x2 + eps, p, nd - 1 if nd else None, keepdim=keepdim)


# == losses ==========================================================================================

def _legacy_reduction(size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    warnings.warn("size_average and reduce args will be deprecated, please use reduction='mean', 'sum' or "
                  "'none' instead.", stacklevel=4)
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "mean":
        return _rd.mean(loss)
    if reduction == "sum":
        return _rd.sum(loss)
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _check_reduction(reduction, allowed=("none", "mean", "sum")):
    if reduction not in allowed:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _broadcast_pair(name, input, target):
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(f"{name}: Using a target size ({list(target.shape)}) that is different to the input size "
                      f"({list(input.shape)}). This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", stacklevel=4)
    return _sh.broadcast_tensors(input, target)


def _weighted(loss, weight, reduction, mean_by_weight):
    """PyTorch's optional elementwise ``weight`` of the regression losses: 'mean' divides by the weights'
    sum (mse, l1) or by the element count (huber)."""
    if tuple(weight.shape) != tuple(loss.shape):
        raise ValueError("Weights and input must have the same size.")
    loss = loss * weight
    if reduction == "mean" and mean_by_weight:
        return _rd.sum(loss) / _rd.sum(weight)
    return _reduce(loss, reduction)


def _check_weight(name, weight):
    if weight is not None and _recording(weight):
        raise RuntimeError(f"{name}: the function is not differentiable with respect to argument 'weight'. This "
                           "input cannot have requires_grad True (pass weight.detach(), or run under no_grad)")


def _class_layout(name, input, target):
    """Bring ``input (N, C, d1..)`` / ``(C,)`` and its class-index target to 2-D ``(M, C)`` and ``(M,)``;
    returns them and how to give a 'none' loss its shape back."""
    if input.ndim == 0:
        raise RuntimeError(f"{name}: expected an input of at least one dimension (C,) or (N, C, ...), got "
                           f"{describe(input)}")
    if target.dtype is _dt.uint8:
        target = target.long()
    if input.ndim == 1:
        if target.ndim != 0:
            raise RuntimeError(f"{name}: for an unbatched input {describe(input)}, expected a 0-D target, got "
                               f"{describe(target)}")
        return input.unsqueeze(0), target.reshape(1), ()
    n, c = input.shape[0], input.shape[1]
    if input.ndim == 2:
        if target.ndim != 1 or target.shape[0] != n:
            if target.ndim == 1:
                raise ValueError(f"Expected input batch_size ({n}) to match target batch_size ({target.shape[0]}).")
            raise RuntimeError(f"{name}: expected a 1-D target of {n} class indices for input {describe(input)}, "
                               f"got {describe(target)}")
        return input, target, None
    rest = tuple(input.shape[2:])
    if tuple(target.shape) != (n,) + rest:
        raise RuntimeError(f"Expected target size {[n, *rest]}, got {list(target.shape)}")
    x2 = _sh.movedim(input, 1, -1).reshape(-1, c)
    return x2, target.reshape(-1), (n,) + rest


def _class_output(loss, shape):
    if shape is None:
        return loss
    return loss.reshape(shape)


@api
def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                  ignore_index: int = -100, reduce=None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between logits ``input`` ((N, C), (C,) or (N, C, d1, ...)) and either int64 class
    indices or class probabilities (a float target of the input's shape), as
    ``torch.nn.functional.cross_entropy``: class ``weight``, ``ignore_index``, ``label_smoothing`` and
    'mean' divided by the summed weights of the non-ignored targets. Class indices run through one
    fused, numerically stable primitive.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.cross_entropy(dl.tensor([[2.0, 0.0], [0.0, 2.0]]), dl.tensor([0, 0]))
    tensor(1.1269)
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if target.dtype.is_floating_point:
        return _cross_entropy_probs(input, target, weight, ignore_index, reduction, label_smoothing)
    if target.dtype is _dt.uint8:
        target = target.long()
    if target.dtype is not _dt.int64:
        raise DTypeError(f"cross_entropy: expected target dtype to be Long (int64) class indices, got "
                         f"{describe(target)}; convert it with .long()")
    _check_weight("cross_entropy", weight)
    x2, t2, shape = _class_layout("cross_entropy", input, target)
    loss = _nn.cross_entropy_indices(x2, t2, weight, reduction, ignore_index, label_smoothing)
    if reduction != "none":
        return loss
    return loss.reshape(()) if shape == () else _class_output(loss, shape)


def _cross_entropy_probs(input, target, weight, ignore_index, reduction, label_smoothing):
    if ignore_index != -100:
        raise RuntimeError("cross_entropy: ignore_index is not supported for floating point target")
    if tuple(target.shape) != tuple(input.shape):
        raise RuntimeError(f"cross_entropy: a probability target must have the input's shape, got input "
                           f"{describe(input)} and target {describe(target)}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    class_dim = 1 if input.ndim >= 2 else 0
    c = input.shape[class_dim]
    logp = _nn.log_softmax(input, class_dim)
    if label_smoothing > 0.0:
        target = target * (1.0 - label_smoothing) + label_smoothing / c
    prod = logp * target
    if weight is not None:
        prod = prod * weight.reshape((c,) + (1,) * (input.ndim - 2) if input.ndim >= 2 else (c,))
    loss = -_rd.sum(prod, class_dim)
    if reduction == "mean":
        return _rd.sum(loss) / (input.numel() / c if c else math.nan)
    return _reduce(loss, reduction)


@api
def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
             ignore_index: int = -100, reduce=None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` ((N, C), (C,) or (N, C, d1, ...)) at int64
    class indices, with class ``weight`` and ``ignore_index``; 'mean' divides by the summed weights.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.nll_loss(dl.tensor([[-0.5, -1.0], [-2.0, -0.1]]), dl.tensor([0, 1]))
    tensor(0.3000)
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _check_weight("nll_loss", weight)
    x2, t2, shape = _class_layout("nll_loss", input, target)
    loss = _nn.nll_loss_indices(x2, t2, weight, reduction, ignore_index)
    if reduction != "none":
        return loss
    return loss.reshape(()) if shape == () else _class_output(loss, shape)


@api
def mse_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
             weight: Tensor | None = None) -> Tensor:
    """Mean squared error (optionally weighted elementwise; a weighted 'mean' divides by the weights' sum).

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.mse_loss(dl.tensor([1.0, 2.0]), dl.tensor([0.0, 0.0]))
    tensor(2.5000)
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    x, y = _broadcast_pair("mse_loss", input, target)
    d = x - y
    loss = d * d
    return _weighted(loss, weight, reduction, True) if weight is not None else _reduce(loss, reduction)


@api
def l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
            weight: Tensor | None = None) -> Tensor:
    """Mean absolute error (optionally weighted elementwise; a weighted 'mean' divides by the weights' sum).

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.l1_loss(dl.tensor([1.0, -2.0]), dl.tensor([0.0, 0.0]))
    tensor(1.5000)
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    x, y = _broadcast_pair("l1_loss", input, target)
    loss = _ew.abs(x - y)
    return _weighted(loss, weight, reduction, True) if weight is not None else _reduce(loss, reduction)


def _quadratic_linear(d, knee, scale_quadratic):
    """Huber-type: quadratic for ``|d| < knee``, linear beyond, continuous at the knee."""
    a = _ew.abs(d)
    quad = d * d * (0.5 / knee if scale_quadratic else 0.5)
    lin = a - 0.5 * knee if scale_quadratic else (a - 0.5 * knee) * knee
    return _ew.where(a < knee, quad, lin)


@api
def smooth_l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - beta / 2`` (plain L1 when ``beta == 0``).

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.smooth_l1_loss(dl.tensor([0.5, 3.0]), dl.tensor([0.0, 0.0]), reduction="none")
    tensor([0.1250, 2.5000])
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    x, y = _broadcast_pair("smooth_l1_loss", input, target)
    loss = _ew.abs(x - y) if beta == 0 else _quadratic_linear(x - y, beta, True)
    return _reduce(loss, reduction)


@api
def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """``0.5 d^2`` where ``|d| < delta``, else ``delta (|d| - delta / 2)`` (optionally weighted).

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.huber_loss(dl.tensor([0.5, 3.0]), dl.tensor([0.0, 0.0]), reduction="none", delta=2.0)
    tensor([0.1250, 4.0000])
    """
    _check_reduction(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    x, y = _broadcast_pair("huber_loss", input, target)
    loss = _quadratic_linear(x - y, delta, False)
    return _weighted(loss, weight, reduction, False) if weight is not None else _reduce(loss, reduction)


def _clamped_log(x: Tensor) -> Tensor:
    """``max(log(x), -100)``; ``log`` never sees 0, so the value and the gradient at 0 stay finite."""
    pos = x > 0
    return _ew.clamp(_ew.where(pos, _ew.log(_ew.where(pos, x, 1.0)), -math.inf), min=-100.0)


@api
def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                         reduce=None, reduction: str = "mean") -> Tensor:
    """``-w (t log(x) + (1 - t) log(1 - x))`` for probabilities ``x``; each log is clamped at -100, as
    PyTorch, so that 0 and 1 give finite losses.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.binary_cross_entropy(dl.tensor([0.5, 0.0]), dl.tensor([1.0, 1.0]), reduction="none")
    tensor([  0.6931, 100.0000])
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Using a target size ({list(target.shape)}) that is different to the input size "
                         f"({list(input.shape)}) is deprecated. Please ensure they have the same size.")
    _check_float("binary_cross_entropy", input, target)
    if isinstance(input._data, np.ndarray):  # a value check: eager only (a traced input has no values yet)
        with _no_grad():
            if input.numel() and bool(((input < 0) | (input > 1)).any()):
                raise RuntimeError("binary_cross_entropy: all elements of input should be between 0 and 1")
    from ..ops.nn import binary_cross_entropy_elementwise

    loss = binary_cross_entropy_elementwise(input, target)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


@api
def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average=None, reduce=None, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """Binary cross-entropy of ``sigmoid(input)``, computed stably from the logits as
    ``(1 - t) x + (1 + (pos_weight - 1) t) softplus(-x)``, times ``weight``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.binary_cross_entropy_with_logits(dl.tensor([0.0, 100.0]), dl.tensor([1.0, 0.0]), reduction="none")
    tensor([  0.6931, 100.0000])
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Target size ({list(target.shape)}) must be the same as input size ({list(input.shape)})")
    sp = _softplus(-input)
    if pos_weight is not None:
        loss = (1.0 - target) * input + ((pos_weight - 1.0) * target + 1.0) * sp
    else:
        loss = (1.0 - target) * input + sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def _xlogx(t):
    """``t log t`` with ``0 log 0 = 0`` (and a finite gradient at 0 for the kept branch)."""
    pos = t > 0
    return _ew.where(pos, t * _ew.log(_ew.where(pos, t, 1.0)), 0.0)


@api
def kl_div(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """Pointwise KL divergence ``t (log t - x)`` for log-probabilities ``x`` (and probabilities ``t``, or
    log-probabilities with ``log_target``); 'batchmean' divides the sum by the batch size.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.kl_div(dl.tensor([[-1.0, -1.0]]), dl.tensor([[0.5, 0.5]]), reduction="batchmean")
    tensor(0.3069)
    """
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce, reduction)
    elif reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=3)
    _check_reduction(reduction, ("none", "mean", "sum", "batchmean"))
    if log_target:
        loss = _ew.exp(target) * (target - input)
    else:
        loss = _xlogx(target) - target * input
    if reduction == "batchmean":
        total = _rd.sum(loss)
        return total / input.shape[0] if input.ndim else total
    return _reduce(loss, reduction)


@api
def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False, size_average=None,
                     eps: float = 1e-8, reduce=None, reduction: str = "mean") -> Tensor:
    """Poisson negative log-likelihood: ``exp(x) - t x`` for log-rates (or ``x - t log(x + eps)``), plus
    the Stirling term for ``t > 1`` when ``full``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.poisson_nll_loss(dl.tensor([0.0]), dl.tensor([2.0]))
    tensor(1.)
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if log_input:
        loss = _ew.exp(input) - target * input
    else:
        loss = input - target * _ew.log(input + eps)
    if full:
        safe = _ew.where(target > 1, target, 1.0)
        stirling = safe * _ew.log(safe) - safe + _ew.log(safe * (2.0 * math.pi)) * 0.5
        loss = loss + _ew.where(target > 1, stirling, 0.0)
    return _reduce(loss, reduction)


@api
def gaussian_nll_loss(input: Tensor, target: Tensor, var, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean") -> Tensor:
    """Gaussian negative log-likelihood ``0.5 (log(max(var, eps)) + (x - t)^2 / max(var, eps))`` (+ the
    constant when ``full``); ``var`` is per element, per sample (one fewer dimension) or a number.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.gaussian_nll_loss(dl.tensor([1.0]), dl.tensor([0.0]), dl.tensor([1.0]))
    tensor(0.5000)
    """
    _check_reduction(reduction)
    if not isinstance(var, Tensor):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = _ew.full_like(input, float(var))
    elif tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = var.unsqueeze(-1)
        elif not (tuple(input.shape[:-1]) == tuple(var.shape[:-1]) and var.shape[-1] == 1):
            raise ValueError("var is of incorrect size")
    with _no_grad():
        if var.numel() and bool((var < 0).any()):
            raise ValueError("var has negative entry/entries")
    # PyTorch clamps var outside autograd: the value is floored, the gradient is var's own.
    var = var + (_ew.clamp(var, min=eps) - var).detach()
    d = input - target
    loss = (_ew.log(var) + d * d / var) * 0.5
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


@api
def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0, size_average=None,
                        reduce=None, reduction: str = "mean") -> Tensor:
    """``max(0, -y (x1 - x2) + margin)`` for labels ``y`` in {1, -1}.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.margin_ranking_loss(dl.tensor([1.0, 1.0]), dl.tensor([2.0, 0.0]), dl.tensor([1.0, 1.0]))
    tensor(0.5000)
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    return _reduce(_ew.clamp(-target * (input1 - input2) + margin, min=0.0), reduction)


@api
def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean") -> Tensor:
    """``x`` where ``y == 1`` plus ``max(0, margin - x)`` where ``y == -1``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.hinge_embedding_loss(dl.tensor([0.3, 0.3]), dl.tensor([1.0, -1.0]), reduction="none")
    tensor([0.3000, 0.7000])
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    hinge = _ew.where(target != 1, _ew.clamp(margin - input, min=0.0), 0.0)
    own = _ew.where(target != -1, input, 0.0)
    return _reduce(hinge + own, reduction)


@api
def soft_margin_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
                     reduction: str = "mean") -> Tensor:
    """Two-class logistic loss ``log(1 + exp(-y x))`` for labels ``y`` in {1, -1}.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.soft_margin_loss(dl.tensor([0.0]), dl.tensor([1.0]))
    tensor(0.6931)
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    return _reduce(_softplus(-target * input), reduction)


@api
def multilabel_soft_margin_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                                reduce=None, reduction: str = "mean") -> Tensor:
    """Per-sample mean over classes of the binary logistic loss of each label in {0, 1}.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.multilabel_soft_margin_loss(dl.tensor([[0.0, 0.0]]), dl.tensor([[1.0, 0.0]]))
    tensor(0.6931)
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    loss = -(target * logsigmoid(input) + (1.0 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    loss = _rd.mean(loss, input.ndim - 1) if input.ndim else loss
    return _reduce(loss, reduction)


@api
def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0, size_average=None,
                          reduce=None, reduction: str = "mean") -> Tensor:
    """``1 - cos(x1, x2)`` where ``y == 1`` and ``max(0, cos(x1, x2) - margin)`` where ``y == -1``, with
    the cosine over the last dimension.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> F.cosine_embedding_loss(dl.tensor([[1.0, 0.0]]), dl.tensor([[0.0, 1.0]]), dl.tensor([1.0]))
    tensor(1.)
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if input1.ndim not in (1, 2) or tuple(input1.shape) != tuple(input2.shape):
        raise RuntimeError(f"cosine_embedding_loss: expected 1D or 2D inputs of the same shape, got "
                           f"{describe(input1)} and {describe(input2)}")
    d = input1.ndim - 1
    tiny = 1e-12  # PyTorch's guard against zero vectors
    prod = _rd.sum(input1 * input2, d)
    mag = (_rd.sum(input1 * input1, d) + tiny) * (_rd.sum(input2 * input2, d) + tiny)
    cos = prod / _ew.sqrt(mag)
    pos = _ew.where(target == 1, 1.0 - cos, 0.0)
    neg = _ew.where(target == -1, _ew.clamp(cos - margin, min=0.0), 0.0)
    return _reduce(pos + neg, reduction)


@api
def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, p: float = 2,
                        eps: float = 1e-6, swap: bool = False, size_average=None, reduce=None,
                        reduction: str = "mean") -> Tensor:
    """``max(d(a, p) - d(a, n) + margin, 0)`` with ``d`` the pairwise p-norm distance; ``swap`` uses the
    smaller of ``d(a, n)`` and ``d(p, n)``.

    >>> import danlu as dl, danlu.nn.functional as F
    >>> a, pos, neg = dl.tensor([[0.0, 0.0]]), dl.tensor([[3.0, 4.0]]), dl.tensor([[0.0, 1.0]])
    >>> F.triplet_margin_loss(a, pos, neg, eps=0.0)
    tensor(5.)
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = _ew.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce(_ew.clamp(d_pos - d_neg + margin, min=0.0), reduction)
