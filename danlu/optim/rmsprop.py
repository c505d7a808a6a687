"""RMSprop, optionally centered and with momentum."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..core.tensor import Tensor
from ..ops.elementwise import zeros_like
from .optimizer import Optimizer, addcdiv_, addcmul_, check_range, lerp_, new_step

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop``.

    ``v = alpha v + (1 - alpha) g^2``; the step divides ``g`` by ``sqrt(v) + eps`` (``centered``
    subtracts the squared running mean of ``g`` from ``v`` first), then applies momentum if given.
    State: ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0), ``grad_avg`` (centered).

    >>> import danlu as dl
    >>> w = dl.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = dl.optim.RMSprop([w], lr=0.01)
    >>> (w * w).sum().backward(); opt.step(); w
    tensor([ 0.9000, -1.9000], requires_grad=True)
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        check_range(0.0 <= lr, "learning rate", lr)
        check_range(0.0 <= eps, "epsilon value", eps)
        check_range(0.0 <= momentum, "momentum value", momentum)
        check_range(0.0 <= weight_decay, "weight_decay value", weight_decay)
        check_range(0.0 <= alpha, "alpha value", alpha)
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, p: Tensor, grad: Tensor, group: dict[str, Any]) -> None:
        state = self.state[p]
        if not state:
            state["step"] = new_step()
            state["square_avg"] = zeros_like(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = zeros_like(p)
        alpha, momentum = group["alpha"], group["momentum"]
        if group["maximize"]:
            grad = -grad
        state["step"].add_(1)
        if group["weight_decay"] != 0:
            grad = grad + p * group["weight_decay"]
        square_avg = state["square_avg"]
        addcmul_(square_avg.mul_(alpha), grad, grad, 1 - alpha)
        if group["centered"]:
            grad_avg = lerp_(state["grad_avg"], grad, 1 - alpha)
            avg = (square_avg - grad_avg * grad_avg).sqrt()
        else:
            avg = square_avg.sqrt()
        avg = avg.add_(group["eps"])
        if momentum > 0:
            buf = state["momentum_buffer"]
            addcdiv_(buf.mul_(momentum), grad, avg)
            p.add_(buf * -group["lr"])
        else:
            addcdiv_(p, grad, avg, -group["lr"])
