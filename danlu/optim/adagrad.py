"""Adagrad: per-coordinate learning rates from the sum of squared gradients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..core.tensor import Tensor
from ..ops.elementwise import full_like
from .optimizer import Optimizer, addcdiv_, addcmul_, check_range, new_step, step_value

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad, as ``torch.optim.Adagrad``.

    ``s += g^2``, ``p -= clr * g / (sqrt(s) + eps)`` with ``clr = lr / (1 + (t - 1) * lr_decay)``.
    The state (``step``, ``sum`` filled with ``initial_accumulator_value``) is created when a
    parameter group is added, not at the first step.

    >>> import danlu as dl
    >>> w = dl.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = dl.optim.Adagrad([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step(); w
    tensor([ 0.9000, -1.9000], requires_grad=True)
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, *, maximize: bool = False) -> None:
        check_range(0.0 <= lr, "learning rate", lr)
        check_range(0.0 <= lr_decay, "lr_decay value", lr_decay)
        check_range(0.0 <= weight_decay, "weight_decay value", weight_decay)
        check_range(0.0 <= initial_accumulator_value, "initial_accumulator_value value", initial_accumulator_value)
        check_range(0.0 <= eps, "epsilon value", eps)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """As :meth:`Optimizer.add_param_group`, and create the group's state (``step`` and ``sum``).

        >>> import danlu as dl
        >>> opt = dl.optim.Adagrad([dl.zeros(2, requires_grad=True)], initial_accumulator_value=0.5)
        >>> opt.state_dict()["state"][0]["sum"]
        tensor([0.5000, 0.5000])
        """
        super().add_param_group(param_group)
        for p in param_group["params"]:
            self._init_state(p, param_group)

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> None:
        # The group's own initial_accumulator_value (PyTorch uses the constructor's for every group).
        state = self.state[p]
        state["step"] = new_step()
        state["sum"] = full_like(p, group["initial_accumulator_value"])

    def _update(self, p: Tensor, grad: Tensor, group: dict[str, Any]) -> None:
        state = self.state[p]
        if not state:  # e.g. after load_state_dict with a state that did not cover this parameter
            self._init_state(p, group)
        step_t = state["step"]
        step_t.add_(1)
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad + p * group["weight_decay"]
        clr = group["lr"] / (1 + (step_value(step_t) - 1) * group["lr_decay"])
        state_sum = addcmul_(state["sum"], grad, grad)
        std = state_sum.sqrt().add_(group["eps"])
        addcdiv_(p, grad, std, -clr)
