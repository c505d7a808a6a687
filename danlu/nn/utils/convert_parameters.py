"""Flatten parameters into one vector and back, as ``torch.nn.utils``."""

from __future__ import annotations

from collections.abc import Iterable

from ...core.tensor import Tensor
from ...ops import shape as _sh

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated into one 1-D tensor (differentiable).

    >>> import danlu as dl
    >>> dl.nn.utils.parameters_to_vector([dl.ones(2, 2), dl.zeros(1)])
    tensor([1., 1., 1., 1., 0.])
    """
    return _sh.cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Make each parameter's data the next slice of ``vec`` (shared with ``vec``, not copied).

    >>> import danlu as dl
    >>> p, q = dl.nn.Parameter(dl.zeros(2)), dl.nn.Parameter(dl.zeros(1))
    >>> dl.nn.utils.vector_to_parameters(dl.tensor([1.0, 2.0, 3.0]), [p, q]); p.data, q.data
    (tensor([1., 2.]), tensor([3.]))
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected danlu.Tensor, but got: {type(vec).__module__}.{type(vec).__name__}")
    pointer = 0
    for param in parameters:
        n = param.numel()
        param.data = vec[pointer:pointer + n].view_as(param).data
        pointer += n
