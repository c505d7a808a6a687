"""Learning-rate schedulers, as ``torch.optim.lr_scheduler``.

A scheduler writes ``group['lr']`` of its optimizer's parameter groups each time ``step()`` is called
(once at construction too). Most schedulers are *chainable*: ``get_lr`` updates the current lr
recursively, so several schedulers may drive the same optimizer; the recursive formulas are PyTorch's,
so the lr sequences agree exactly. ``step(epoch)`` (deprecated in PyTorch) uses the closed form where
one exists. State dicts hold only plain Python values (numbers, strings, lists, dicts).
"""

from .base import LRScheduler
from .composite import ChainedScheduler, SequentialLR
from .cyclic import CosineAnnealingLR, CosineAnnealingWarmRestarts, OneCycleLR
from .decay import (ConstantLR, ExponentialLR, LambdaLR, LinearLR, MultiplicativeLR, MultiStepLR, PolynomialLR,
                    StepLR)
from .plateau import ReduceLROnPlateau

__all__ = ["LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR",
           "ExponentialLR", "SequentialLR", "PolynomialLR", "CosineAnnealingLR", "ChainedScheduler",
           "ReduceLROnPlateau", "CosineAnnealingWarmRestarts", "OneCycleLR"]
