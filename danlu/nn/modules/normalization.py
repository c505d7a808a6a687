"""Normalization layers: BatchNorm1d/2d/3d, InstanceNorm1d/2d/3d, LayerNorm, GroupNorm and RMSNorm, as
``torch.nn``, with the same parameter and buffer names (weight, bias, running_mean, running_var,
num_batches_tracked), so state dicts move between the two."""

from __future__ import annotations

import numbers
import warnings

from ...autograd.grad_mode import no_grad
from ...core import dtypes as _dt
from ...core.creation import tensor as _tensor
from ...core.tensor import Tensor
from ...ops import reduce as _rd
from ...ops.creation import ones, zeros
from .. import functional as F
from .. import init
from .linear import _param
from .module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
           "LayerNorm", "GroupNorm", "RMSNorm"]


def _affine(module: Module, enabled: bool, bias: bool, shape: tuple, device, dtype) -> None:
    """Register ``weight`` (and ``bias`` if asked) of ``shape``, or both as None without an affine."""
    module.register_parameter("weight", _param(*shape, device=device, dtype=dtype) if enabled else None)
    module.register_parameter("bias", _param(*shape, device=device, dtype=dtype) if enabled and bias else None)


def _reset_affine(module: Module) -> None:
    """The affine starts as the identity: weight 1, bias 0."""
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)


class _NormBase(Module):
    """State shared by batch and instance norm: the per-channel affine and the running statistics."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        _affine(self, affine, bias, (num_features,), device, dtype)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, device=device, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked", _tensor(0, dtype=_dt.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        _reset_affine(self)

    def _check_input_dim(self, input: Tensor) -> None:  # noqa: A002
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        cumulative = False
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            cumulative = self.momentum is None
        # Batch statistics in training, and in eval when no running statistics are kept.
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        keep = (not self.training or self.track_running_stats) and not cumulative
        out = F.batch_norm(input, self.running_mean if keep else None, self.running_var if keep else None,
                           self.weight, self.bias, use_batch_stats, factor, self.eps)
        if cumulative:
            self._cumulative_update(input)
        return out

    def _cumulative_update(self, input: Tensor) -> None:  # noqa: A002
        """momentum=None: the running statistics are the average over all batches seen, i.e. updated with
        the factor 1 / num_batches_tracked. The factor stays a tensor, so a traced graph keeps it live."""
        with no_grad():
            dims = (0,) + tuple(range(2, input.ndim))
            x = input.detach().to(self.running_mean.dtype)
            f = 1.0 / self.num_batches_tracked.to(self.running_mean.dtype)
            self.running_mean.mul_(1.0 - f).add_(_rd.mean(x, dims) * f)
            self.running_var.mul_(1.0 - f).add_(_rd.var(x, dims, correction=1) * f)


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L) input: batch statistics in training (updating the
    running mean and unbiased variance by ``momentum``, or their cumulative average when it is None),
    running statistics in eval.

    >>> import danlu as dl
    >>> m = dl.nn.BatchNorm1d(2); m
    BatchNorm1d(2, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    >>> _ = m(dl.tensor([[0.0, 1.0], [2.0, 3.0]])); m.running_mean, int(m.num_batches_tracked)
    (tensor([0.1000, 0.2000]), 1)
    """

    def _check_input_dim(self, input: Tensor) -> None:  # noqa: A002
        if input.ndim not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.ndim}D input)")


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W) input, per channel.

    >>> import danlu as dl
    >>> dl.nn.BatchNorm2d(3)(dl.randn(4, 3, 2, 2)).shape
    danlu.Size([4, 3, 2, 2])
    """

    def _check_input_dim(self, input: Tensor) -> None:  # noqa: A002
        if input.ndim != 4:
            raise ValueError(f"expected 4D input (got {input.ndim}D input)")


class BatchNorm3d(_BatchNorm):
    """Batch normalization over (N, C, D, H, W) input, per channel.

    >>> import danlu as dl
    >>> dl.nn.BatchNorm3d(2)(dl.randn(2, 2, 2, 2, 2)).shape
    danlu.Size([2, 2, 2, 2, 2])
    """

    def _check_input_dim(self, input: Tensor) -> None:  # noqa: A002
        if input.ndim != 5:
            raise ValueError(f"expected 5D input (got {input.ndim}D input)")


class _InstanceNorm(_NormBase):
    _no_batch_dim: int

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = False,
                 track_running_stats: bool = False, device=None, dtype=None, *, bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype,
                         bias=bias)

    def _apply_instance_norm(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.instance_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                               self.training or not self.track_running_stats,
                               self.momentum if self.momentum is not None else 0.0, self.eps)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        nd = self._no_batch_dim
        if input.ndim not in (nd, nd + 1):
            raise ValueError(f"expected {nd}D or {nd + 1}D input (got {input.ndim}D input)")
        feature_dim = input.ndim - nd
        if input.shape[feature_dim] != self.num_features:
            if self.affine:
                raise ValueError(f"expected input's size at dim={feature_dim} to match num_features "
                                 f"({self.num_features}), but got: {input.shape[feature_dim]}.")
            warnings.warn(f"input's size at dim={feature_dim} does not match num_features. You can silence this "
                          "warning by not passing in num_features, which is not used because affine=False",
                          stacklevel=2)
        if input.ndim == nd:
            return self._apply_instance_norm(input.unsqueeze(0)).squeeze(0)
        return self._apply_instance_norm(input)


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of (N, C, L) or (C, L) input: each channel of each sample over its length.

    >>> import danlu as dl
    >>> dl.nn.InstanceNorm1d(1)(dl.tensor([[[1.0, 3.0]]]))
    tensor([[[-1.0000,  1.0000]]])
    """

    _no_batch_dim = 2


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of (N, C, H, W) or (C, H, W) input.

    >>> import danlu as dl
    >>> dl.nn.InstanceNorm2d(3, affine=True)(dl.randn(2, 3, 4, 4)).shape
    danlu.Size([2, 3, 4, 4])
    """

    _no_batch_dim = 3


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization of (N, C, D, H, W) or (C, D, H, W) input.

    >>> import danlu as dl
    >>> dl.nn.InstanceNorm3d(2)(dl.randn(2, 2, 2, 2, 2)).shape
    danlu.Size([2, 2, 2, 2, 2])
    """

    _no_batch_dim = 4


class LayerNorm(Module):
    """Normalization over the trailing ``normalized_shape`` dimensions, with an elementwise affine.

    >>> import danlu as dl
    >>> m = dl.nn.LayerNorm(2); m
    LayerNorm((2,), eps=1e-05, elementwise_affine=True, bias=True)
    >>> m(dl.tensor([[1.0, 3.0]]))
    tensor([[-1.0000,  1.0000]], grad_fn=<AddBackward0>)
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _affine(self, elementwise_affine, bias, self.normalized_shape, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class GroupNorm(Module):
    """Normalization over groups of channels of each sample, with a per-channel affine.

    >>> import danlu as dl
    >>> m = dl.nn.GroupNorm(2, 4); m
    GroupNorm(2, 4, eps=1e-05, affine=True, bias=True)
    >>> m(dl.randn(3, 4, 5)).shape
    danlu.Size([3, 4, 5])
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, device=None,
                 dtype=None, *, bias: bool = True) -> None:
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        _affine(self, affine, bias, (num_channels,), device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class RMSNorm(Module):
    """Root-mean-square normalization over the trailing ``normalized_shape`` dimensions, times a weight;
    ``eps=None`` uses the input dtype's machine epsilon.

    >>> import danlu as dl
    >>> m = dl.nn.RMSNorm(2); m
    RMSNorm((2,), eps=None, elementwise_affine=True)
    >>> m(dl.tensor([[3.0, 4.0]]))
    tensor([[0.8485, 1.1314]], grad_fn=<MulBackward0>)
    """

    def __init__(self, normalized_shape, eps: float | None = None, elementwise_affine: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = _param(*self.normalized_shape, device=device, dtype=dtype)
        else:
            self.register_parameter("weight", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.elementwise_affine:
            init.ones_(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
