"""Optimizers and learning-rate schedulers, as ``torch.optim``.

>>> import danlu as dl
>>> w = dl.tensor([3.0], requires_grad=True)
>>> opt = dl.optim.SGD([w], lr=0.25)
>>> sched = dl.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
>>> for _ in range(3):
...     opt.zero_grad(); (w * w).sum().backward(); opt.step(); sched.step()
>>> w, sched.get_last_lr()
(tensor([0.9844], requires_grad=True), [0.03125])
"""

from . import lr_scheduler  # noqa: F401
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "lr_scheduler"]
