"""``LRScheduler``: the base class of the learning-rate schedulers, and helpers they share."""

from __future__ import annotations

import warnings
from typing import Any

from ..optimizer import Optimizer

__all__ = ["LRScheduler"]

_EPOCH_DEPRECATION = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being deprecated where possible. "
    "Please use `scheduler.step()` to step the scheduler. During the deprecation, if epoch is different from "
    "None, the closed form is used instead of the new chainable form, where available.")


def _group_lrs(optimizer: Optimizer, key: str = "lr") -> list:
    return [group[key] for group in optimizer.param_groups]


def _per_group(name: str, optimizer: Optimizer, value) -> list:
    """``value`` for each parameter group: a list/tuple of the right length, or one value repeated."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{name} must have the same length as optimizer.param_groups. {name} has "
                             f"{len(value)} values, param_groups has {len(optimizer.param_groups)}.")
        return list(value)
    return [value] * len(optimizer.param_groups)


class LRScheduler:
    """Base class of the learning-rate schedulers, as ``torch.optim.lr_scheduler.LRScheduler``.

    Subclasses implement ``get_lr()`` (the next lrs, called inside ``step()`` after ``last_epoch`` has
    been advanced) and optionally ``_get_closed_form_lr()`` for ``step(epoch)``. With ``last_epoch=-1``
    each group's ``initial_lr`` is set from its ``lr``; resuming (``last_epoch >= 0``) requires it.

    >>> import danlu as dl
    >>> opt = dl.optim.SGD([dl.zeros(1, requires_grad=True)], lr=1.0)
    >>> class Halving(dl.optim.lr_scheduler.LRScheduler):
    ...     def get_lr(self):
    ...         return [lr * 0.5 ** self.last_epoch for lr in self.base_lrs]
    >>> s = Halving(opt)
    >>> opt.step(); s.step(); opt.step(); s.step(); s.get_last_lr(), s.last_epoch
    ([0.25], 2)
    """

    _get_lr_called_within_step = False
    _is_initial = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] when resuming "
                                   "scheduler with last_epoch >= 0: load the optimizer's state (which holds "
                                   "initial_lr) first, or start with last_epoch=-1")
        self.base_lrs: list = _group_lrs(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer, as a dict of plain values.

        >>> import danlu as dl
        >>> opt = dl.optim.SGD([dl.zeros(1, requires_grad=True)], lr=1.0)
        >>> sd = dl.optim.lr_scheduler.StepLR(opt, step_size=2).state_dict()
        >>> sd["last_epoch"], sd["base_lrs"], sd["step_size"]
        (0, [1.0], 2)
        """
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the attributes saved by :meth:`state_dict`.

        >>> import danlu as dl
        >>> opt = dl.optim.SGD([dl.zeros(1, requires_grad=True)], lr=1.0)
        >>> s = dl.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
        >>> s.load_state_dict({**s.state_dict(), "last_epoch": 7}); s.last_epoch
        7
        """
        self.__dict__.update(state_dict)

    def get_last_lr(self) -> list:
        """The lrs most recently set by this scheduler, one per parameter group.

        >>> import danlu as dl
        >>> opt = dl.optim.SGD([dl.zeros(1, requires_grad=True)], lr=0.1)
        >>> dl.optim.lr_scheduler.ConstantLR(opt, factor=0.5).get_last_lr()
        [0.05]
        """
        return self._last_lr

    def get_lr(self) -> list:
        """The next lr of each parameter group (called by :meth:`step`); subclasses define it."""
        raise TypeError(f"{type(self).__name__} must implement get_lr(), the LRScheduler subclass hook that "
                        "returns the next lr of each parameter group")

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or jump to ``epoch``, deprecated) and write the new lrs into the optimizer.

        >>> import danlu as dl
        >>> opt = dl.optim.SGD([dl.zeros(1, requires_grad=True)], lr=1.0)
        >>> s = dl.optim.lr_scheduler.MultiStepLR(opt, milestones=[1, 2], gamma=0.1)
        >>> opt.step(); s.step(); opt.param_groups[0]["lr"]
        0.1
        """
        if self._step_count == 1 and not getattr(self.optimizer, "_opt_called", False):
            warnings.warn(
                "Detected call of `lr_scheduler.step()` before `optimizer.step()`. In PyTorch 1.1.0 and later "
                "(and in danlu), you should call them in the opposite order: `optimizer.step()` before "
                "`lr_scheduler.step()`. Failure to do this will result in skipping the first value of the "
                "learning rate schedule.", UserWarning, stacklevel=2)
        self._step_count += 1
        if epoch is not None:
            warnings.warn(_EPOCH_DEPRECATION, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                closed_form = getattr(self, "_get_closed_form_lr", None)
                values = closed_form() if closed_form is not None else self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = _group_lrs(self.optimizer)

    def _warn_outside_step(self) -> None:
        if not self._get_lr_called_within_step:
            warnings.warn("To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
                          UserWarning, stacklevel=3)
