"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..core.tensor import Tensor
from .optimizer import Optimizer, check_range

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent (optionally with momentum), as ``torch.optim.SGD``.

    With momentum ``mu``: ``b = mu * b + (1 - dampening) * g`` (``b = g`` on the first step), then
    ``p -= lr * b``, or ``p -= lr * (g + mu * b)`` with ``nesterov=True``. State: ``momentum_buffer``.

    >>> import danlu as dl
    >>> w = dl.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = dl.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     opt.zero_grad(); (w * w).sum().backward(); opt.step()
    >>> w
    tensor([ 0.4600, -0.9200], requires_grad=True)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False) -> None:
        check_range(lr >= 0.0, "learning rate", lr)
        check_range(momentum >= 0.0, "momentum value", momentum)
        check_range(weight_decay >= 0.0, "weight_decay value", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, p: Tensor, grad: Tensor, group: dict[str, Any]) -> None:
        if group["maximize"]:
            grad = -grad
        weight_decay = group["weight_decay"]
        if weight_decay != 0:
            grad = grad + p * weight_decay
        momentum = group["momentum"]
        if momentum != 0:
            state = self.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.detach().clone()
            else:
                dampening = group["dampening"]
                buf.mul_(momentum).add_(grad if dampening == 0 else grad * (1 - dampening))
            grad = grad + buf * momentum if group["nesterov"] else buf
        lr = group["lr"]
        if isinstance(lr, Tensor):      # a compiled step's live learning rate
            p.add_(grad * -lr)
        else:
            p.add_(grad, alpha=-lr)
