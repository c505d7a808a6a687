"""Adadelta: step sizes from running averages of squared gradients and squared updates."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..core.tensor import Tensor
from ..ops.elementwise import zeros_like
from .optimizer import Optimizer, addcmul_, check_range, new_step

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """Adadelta, as ``torch.optim.Adadelta`` (``lr`` scales the update; 1.0 is the paper's method).

    ``v = rho v + (1 - rho) g^2``, ``d = sqrt(u + eps) / sqrt(v + eps) * g``,
    ``u = rho u + (1 - rho) d^2``, ``p -= lr * d``. State: ``step``, ``square_avg``, ``acc_delta``.

    >>> import danlu as dl
    >>> w = dl.tensor([1.0, -2.0], requires_grad=True, dtype=dl.float64)
    >>> opt = dl.optim.Adadelta([w])
    >>> (w * w).sum().backward(); opt.step(); w
    tensor([ 0.9968, -1.9968], dtype=danlu.float64, requires_grad=True)
    """

    def __init__(self, params: Iterable, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, *, maximize: bool = False) -> None:
        check_range(0.0 <= lr, "learning rate", lr)
        check_range(0.0 <= rho <= 1.0, "rho value", rho)
        check_range(0.0 <= eps, "epsilon value", eps)
        check_range(0.0 <= weight_decay, "weight_decay value", weight_decay)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, p: Tensor, grad: Tensor, group: dict[str, Any]) -> None:
        state = self.state[p]
        if not state:
            state["step"] = new_step()
            state["square_avg"] = zeros_like(p)
            state["acc_delta"] = zeros_like(p)
        rho, eps = group["rho"], group["eps"]
        state["step"].add_(1)
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad + p * group["weight_decay"]
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        addcmul_(square_avg.mul_(rho), grad, grad, 1 - rho)
        std = (square_avg + eps).sqrt_()
        delta = (acc_delta + eps).sqrt_().div_(std).mul_(grad)
        addcmul_(acc_delta.mul_(rho), delta, delta, 1 - rho)
        p.add_(delta * -group["lr"])
