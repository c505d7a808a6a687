"""Gradient clipping, as ``torch.nn.utils``: by the total norm of all gradients, or elementwise by value.

Everything runs on danlu ops outside autograd, so the same code serves any backend.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Iterable

from ...autograd.grad_mode import no_grad
from ...core.creation import tensor as _tensor
from ...core.tensor import Tensor
from ...ops import elementwise as _ew
from ... import linalg as _la
from ...ops import shape as _sh

__all__ = ["clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]

_TensorOrTensors = Tensor | Iterable[Tensor]


def _as_list(tensors) -> list:
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def get_total_norm(tensors: _TensorOrTensors, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> Tensor:
    """The ``norm_type``-norm of the norms of ``tensors`` (= the norm of all their elements together).
    ``foreach`` is accepted for PyTorch compatibility and ignored.

    >>> import danlu as dl
    >>> dl.nn.utils.get_total_norm([dl.tensor([3.0]), dl.tensor([4.0])])
    tensor(5.)
    """
    tensors = _as_list(tensors)
    norm_type = float(norm_type)
    if not tensors:
        return _tensor(0.0)
    with no_grad():
        norms = [_la.vector_norm(t, norm_type) for t in tensors]
        total = _la.vector_norm(_sh.stack(norms), norm_type)
    if error_if_nonfinite and bool(~_ew.isfinite(total)):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so "
                           "it cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           "norm anyway, set `error_if_nonfinite=False`")
    return total


def clip_grads_with_norm_(parameters: _TensorOrTensors, max_norm: float, total_norm: Tensor,
                          foreach: bool | None = None) -> None:
    """Scale every gradient in place by ``min(1, max_norm / (total_norm + 1e-6))``.

    >>> import danlu as dl
    >>> p = dl.nn.Parameter(dl.zeros(2)); p.grad = dl.tensor([3.0, 4.0])
    >>> dl.nn.utils.clip_grads_with_norm_([p], 1.0, dl.tensor(5.0)); p.grad
    tensor([0.6000, 0.8000])
    """
    params = [p for p in _as_list(parameters) if p.grad is not None]
    if not params:
        return
    with no_grad():
        # The 1e-6 keeps the division finite when every gradient is zero (PyTorch's choice).
        coef = _ew.clamp(float(max_norm) / (total_norm + 1e-6), max=1.0)
        for p in params:
            _scale_grad(p, coef)


def _scale_grad(p: Tensor, coef) -> None:
    """``p.grad *= coef`` in place, as PyTorch; a gradient that is a view of another tensor (as in a
    traced graph, where in-place writes to views are not allowed) is replaced by the product instead."""
    if p.grad._base is None:
        p.grad.mul_(coef)
    else:
        p.grad = p.grad * coef


def clip_grad_norm_(parameters: _TensorOrTensors, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Scale the gradients of ``parameters`` in place so that their total ``norm_type``-norm (inf: the
    largest absolute value) is at most ``max_norm``; returns the total norm before clipping.

    >>> import danlu as dl
    >>> p = dl.nn.Parameter(dl.zeros(2)); p.grad = dl.tensor([3.0, 4.0])
    >>> dl.nn.utils.clip_grad_norm_([p], max_norm=1.0), p.grad
    (tensor(5.), tensor([0.6000, 0.8000]))
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    else:
        was_generator = isinstance(parameters, types.GeneratorType)
        parameters = list(parameters)
        if was_generator and not parameters:
            warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=2)
    grads = [p.grad for p in parameters if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total, foreach)
    return total


def clip_grad_norm(parameters: _TensorOrTensors, max_norm: float, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Deprecated alias of ``clip_grad_norm_`` (warns with a FutureWarning).

    >>> import danlu as dl, warnings
    >>> p = dl.nn.Parameter(dl.zeros(1)); p.grad = dl.tensor([2.0])
    >>> with warnings.catch_warnings(record=True):
    ...     warnings.simplefilter("always")
    ...     dl.nn.utils.clip_grad_norm([p], 1.0)
    tensor(2.)
    """
    warnings.warn("`torch.nn.utils.clip_grad_norm` is now deprecated in favor of `torch.nn.utils.clip_grad_norm_`.",
                  FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters: _TensorOrTensors, clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient of ``parameters`` in place to ``[-clip_value, clip_value]``.

    >>> import danlu as dl
    >>> p = dl.nn.Parameter(dl.zeros(3)); p.grad = dl.tensor([-2.0, 0.5, 3.0])
    >>> dl.nn.utils.clip_grad_value_([p], 1.0); p.grad
    tensor([-1.0000,  0.5000,  1.0000])
    """
    clip_value = float(clip_value)
    with no_grad():
        for p in _as_list(parameters):
            if p.grad is None:
                continue
            if p.grad._base is None:
                p.grad.clamp_(min=-clip_value, max=clip_value)
            else:  # a view (see _scale_grad)
                p.grad = _ew.clamp(p.grad, min=-clip_value, max=clip_value)
