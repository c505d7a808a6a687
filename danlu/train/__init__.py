"""Keras-style training: ``fit``, metrics, callbacks, History."""

from .callbacks import Callback, CSVLogger, EarlyStopping, LearningRateScheduler, ModelCheckpoint
from .fit import Trainer, fit
from .history import History
from .metrics import Accuracy, MeanLoss, Metric, TopKAccuracy

__all__ = ["fit", "Trainer", "History", "Callback", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler",
           "CSVLogger", "Metric", "Accuracy", "TopKAccuracy", "MeanLoss"]
