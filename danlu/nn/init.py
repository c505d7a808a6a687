"""Parameter initialization, as ``torch.nn.init``.

Every function fills its tensor in place, outside autograd, from danlu's random generator (or the
``generator`` given), and returns it. The formulas (gains, fans, bounds) are PyTorch's, so a layer
initialized here has the same distribution as in PyTorch; the values themselves differ, since the
random streams do.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

from ..autograd.grad_mode import no_grad
from ..core import dtypes as _dt
from ..core.tensor import Tensor
from ..ops import creation as _cr
from ..ops import elementwise as _ew
from ..ops import linalg as _la
from ..ops import random as _rnd
from ..ops import reduce as _rd
from ..ops import shape as _sh

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
           "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
           "sparse_", "uniform", "normal", "constant", "eye", "dirac", "xavier_uniform", "xavier_normal",
           "kaiming_uniform", "kaiming_normal", "orthogonal", "sparse"]

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (``param`` is leaky_relu's negative slope).

    >>> import danlu as dl
    >>> dl.nn.init.calculate_gain("tanh"), dl.nn.init.calculate_gain("leaky_relu", 0.2)
    (1.6666666666666667, 1.3867504905630728)
    """
    if nonlinearity in _LINEAR or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4  # PyTorch's empirical value
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill with U(a, b).

    >>> import danlu as dl
    >>> w = dl.nn.init.uniform_(dl.empty(100), -0.5, 0.5); bool(w.abs().max() <= 0.5)
    True
    """
    with no_grad():
        return tensor.uniform_(a, b, generator=generator)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill with N(mean, std^2).

    >>> import danlu as dl
    >>> dl.nn.init.normal_(dl.empty(2, 3), std=0.02).shape
    danlu.Size([2, 3])
    """
    with no_grad():
        return tensor.normal_(mean, std, generator=generator)


def _norm_cdf(x: float) -> float:
    return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator=None) -> Tensor:
    """Fill with N(mean, std^2) truncated to [a, b], by rejection sampling: normal draws redrawn until
    inside [a, b] when that interval holds enough of the mass, else uniform draws on [a, b] accepted
    with the normal density relative to its peak on the interval.

    >>> import danlu as dl
    >>> w = dl.nn.init.trunc_normal_(dl.empty(1000), std=1.0, a=-0.5, b=0.5); bool(w.abs().max() <= 0.5)
    True
    """
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. The distribution of values "
                      "may be incorrect.", stacklevel=2)
    shape, dtype = tuple(tensor.shape), tensor.dtype
    with no_grad():
        mass = _norm_cdf((b - mean) / std) - _norm_cdf((a - mean) / std)
        if mass > 0.3:
            out = _cr.empty(*shape, dtype=dtype).normal_(mean, std, generator=generator)
            while True:
                bad = (out < a) | (out > b)
                if not bool(bad.any()):
                    break
                out = _ew.where(bad, _cr.empty(*shape, dtype=dtype).normal_(mean, std, generator=generator), out)
        else:
            # Few normal draws would land in [a, b]: propose uniformly on [a, b] instead.
            mode = max(a, min(mean, b))
            log_peak = -0.5 * ((mode - mean) / std) ** 2

            def accepted(x):
                log_u = _ew.log(_cr.empty(*shape, dtype=dtype).uniform_(generator=generator))
                return log_u <= -0.5 * ((x - mean) / std) ** 2 - log_peak

            out = _cr.empty(*shape, dtype=dtype).uniform_(a, b, generator=generator)
            pending = ~accepted(out)
            while bool(pending.any()):
                cand = _cr.empty(*shape, dtype=dtype).uniform_(a, b, generator=generator)
                out = _ew.where(pending, cand, out)
                pending = pending & ~accepted(cand)
        tensor.copy_(out)
    return tensor


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``.

    >>> import danlu as dl
    >>> dl.nn.init.constant_(dl.empty(3), 0.5)
    tensor([0.5000, 0.5000, 0.5000])
    """
    with no_grad():
        return tensor.fill_(val)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with 1.

    >>> import danlu as dl
    >>> dl.nn.init.ones_(dl.empty(2))
    tensor([1., 1.])
    """
    return constant_(tensor, 1.0)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with 0.

    >>> import danlu as dl
    >>> dl.nn.init.zeros_(dl.empty(2))
    tensor([0., 0.])
    """
    with no_grad():
        return tensor.zero_()


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D tensor with the identity matrix (ones on the main diagonal).

    >>> import danlu as dl
    >>> dl.nn.init.eye_(dl.empty(2, 3))
    tensor([[1., 0., 0.],
            [0., 1., 0.]])
    """
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    with no_grad():
        return tensor.copy_(_cr.eye(*tensor.shape, dtype=tensor.dtype))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill a 3-, 4- or 5-D convolution weight with the Dirac delta, so the convolution keeps the
    first ``min(out/groups, in)`` input channels of each group.

    >>> import danlu as dl
    >>> w = dl.nn.init.dirac_(dl.empty(2, 2, 3)); w[:, :, 1]
    tensor([[1., 0.],
            [0., 1.]])
    """
    if tensor.ndim not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    sizes = tuple(tensor.shape)
    if sizes[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    per_group = sizes[0] // groups
    centre = tuple(s // 2 for s in sizes[2:])
    with no_grad():
        tensor.zero_()
        for g in range(groups):
            for d in range(min(per_group, sizes[1])):
                tensor[(g * per_group + d, d) + centre] = 1
    return tensor


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight: dims 1 and 0, times the receptive field (the product of the rest)."""
    if tensor.ndim < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot uniform: U(-a, a) with ``a = gain * sqrt(6 / (fan_in + fan_out))``.

    >>> import danlu as dl
    >>> w = dl.nn.init.xavier_uniform_(dl.empty(3, 5)); bool(w.abs().max() <= 1.0)
    True
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot normal: N(0, std^2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    >>> import danlu as dl
    >>> dl.nn.init.xavier_normal_(dl.empty(3, 5)).shape
    danlu.Size([3, 5])
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def _kaiming_std(tensor, a, mode, nonlinearity) -> float | None:
    if 0 in tuple(tensor.shape):
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return None
    return calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator=None) -> Tensor:
    """He uniform: U(-b, b) with ``b = gain * sqrt(3 / fan)`` (``fan`` by ``mode``, ``a`` the leaky_relu slope).

    >>> import danlu as dl
    >>> w = dl.nn.init.kaiming_uniform_(dl.empty(4, 6), nonlinearity="relu"); bool(w.abs().max() <= 1.0)
    True
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    return tensor if std is None else uniform_(tensor, -math.sqrt(3.0) * std, math.sqrt(3.0) * std, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator=None) -> Tensor:
    """He normal: N(0, std^2) with ``std = gain / sqrt(fan)``.

    >>> import danlu as dl
    >>> dl.nn.init.kaiming_normal_(dl.empty(4, 6), mode="fan_out").shape
    danlu.Size([4, 6])
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    return tensor if std is None else normal_(tensor, 0.0, std, generator)


def _orthonormal_columns(a: Tensor, block: int = 32) -> Tensor:
    """Q of the QR factorization of a tall ``a`` with R's diagonal made positive, by block Gram-Schmidt:
    each block of columns is orthogonalized twice against the columns already done (two big matmuls,
    enough for orthogonality to rounding), then column by column within itself."""
    done = None
    for start in range(0, a.shape[1], block):
        blk = a[:, start:start + block]
        if done is not None:
            for _ in range(2):
                blk = blk - _la.matmul(done, _la.matmul(done.mT, blk))
        cols: list = []
        for j in range(blk.shape[1]):
            v = blk[:, j:j + 1]
            if cols:
                basis = _sh.cat(cols, 1)
                for _ in range(2):
                    v = v - _la.matmul(basis, _la.matmul(basis.mT, v))
            cols.append(v / _rd.norm(v))
        q = _sh.cat(cols, 1)
        done = q if done is None else _sh.cat([done, q], 1)
    return done


def orthogonal_(tensor: Tensor, gain: float = 1, generator=None) -> Tensor:
    """Fill with a (semi-)orthogonal matrix from the Haar distribution (the Q of a Gaussian matrix's QR
    with R's diagonal made positive), times ``gain``; trailing dimensions are flattened.

    >>> import danlu as dl
    >>> w = dl.nn.init.orthogonal_(dl.empty(3, 3))
    >>> bool(((w @ w.T) - dl.eye(3)).abs().max() < 1e-5)
    True
    """
    if tensor.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    work = tensor.dtype if tensor.dtype in (_dt.float32, _dt.float64) else _dt.float32
    with no_grad():
        flat = _cr.empty(rows, cols, dtype=work).normal_(0, 1, generator=generator)
        q = _orthonormal_columns(flat.mT if rows < cols else flat)
        if rows < cols:
            q = q.mT
        tensor.copy_((q * gain).reshape(tuple(tensor.shape)).to(tensor.dtype))
    return tensor


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01, generator=None) -> Tensor:
    """Fill a 2-D tensor with N(0, std^2) and zero ``ceil(sparsity * rows)`` random rows of each column.

    >>> import danlu as dl
    >>> w = dl.nn.init.sparse_(dl.empty(4, 3), 0.5); int((w == 0).sum())
    6
    """
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    rows, cols = tensor.shape
    num_zeros = math.ceil(sparsity * rows)
    with no_grad():
        tensor.normal_(0, std, generator=generator)
        for c in range(cols):
            zero_rows = _rnd.randperm(rows, generator=generator)[:num_zeros]
            tensor[zero_rows, c] = 0
    return tensor


_DEPRECATED_EXAMPLE = """

    >>> import danlu as dl, warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = dl.nn.init.normal(dl.empty(2))
    >>> caught[0].category.__name__
    'FutureWarning'
    """


def _deprecated(fn: Callable) -> Callable:
    new, old = fn.__name__, fn.__name__[:-1]

    def deprecated_init(*args, **kwargs):
        warnings.warn(f"`nn.init.{old}` is now deprecated in favor of `nn.init.{new}`.", FutureWarning, stacklevel=2)
        return fn(*args, **kwargs)

    deprecated_init.__name__ = old
    deprecated_init.__doc__ = f"Deprecated alias of ``{new}``; warns with a FutureWarning." + _DEPRECATED_EXAMPLE
    return deprecated_init


uniform = _deprecated(uniform_)
normal = _deprecated(normal_)
constant = _deprecated(constant_)
eye = _deprecated(eye_)
dirac = _deprecated(dirac_)
xavier_uniform = _deprecated(xavier_uniform_)
xavier_normal = _deprecated(xavier_normal_)
kaiming_uniform = _deprecated(kaiming_uniform_)
kaiming_normal = _deprecated(kaiming_normal_)
orthogonal = _deprecated(orthogonal_)
sparse = _deprecated(sparse_)
