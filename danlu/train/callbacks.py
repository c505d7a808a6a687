"""Callbacks for ``fit``: hooks at the start/end of training, epochs and batches."""

from __future__ import annotations

import csv
import math
import os

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "CSVLogger"]


class Callback:
    """Base class. ``trainer`` gives access to the model, optimizer, history and ``stop_training``."""

    def on_train_begin(self, trainer) -> None: ...
    def on_train_end(self, trainer) -> None: ...
    def on_epoch_begin(self, trainer, epoch: int) -> None: ...
    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None: ...
    def on_batch_end(self, trainer, batch: int, logs: dict) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _better(mode, value, best, min_delta):
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _mode(monitor, mode):
    if mode == "auto":
        return "max" if "acc" in monitor or monitor.startswith("top") or "val_top" in monitor else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs; optionally put
    back the best weights.

    >>> EarlyStopping(monitor="val_loss", patience=2).mode
    'min'
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = False):
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(min_delta)
        self.mode = _mode(monitor, mode)
        self.restore_best_weights = restore_best_weights
        self.best, self.wait, self.stopped_epoch, self.best_weights = None, 0, None, None

    def on_epoch_end(self, trainer, epoch, logs):
        value = logs.get(self.monitor)
        if value is None:
            raise KeyError(f"EarlyStopping: monitored value {self.monitor!r} is not in the logs {sorted(logs)}; "
                           "pass val_data for val_* metrics")
        if _better(self.mode, value, self.best, self.min_delta):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                trainer.stop_training = True
                if self.restore_best_weights and self.best_weights is not None:
                    trainer.model.load_state_dict(self.best_weights)

    def state_dict(self):
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state):
        self.best, self.wait = state.get("best"), state.get("wait", 0)


class ModelCheckpoint(Callback):
    """Save a full training checkpoint (model, optimizer, schedulers, RNG, position) after each epoch:
    to ``path`` always (``save_best_only=False``), or only when ``monitor`` improves. ``{epoch}`` and
    metric names in ``path`` are formatted (``"ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"``).
    ``last_path`` (optional) always receives the latest state. Writes are atomic.

    >>> ModelCheckpoint("best.safetensors", monitor="val_accuracy", save_best_only=True).mode
    'max'
    """

    def __init__(self, path: str, monitor: str = "val_loss", mode: str = "auto", save_best_only: bool = False,
                 last_path: str | None = None):
        self.path, self.monitor, self.save_best_only, self.last_path = path, monitor, save_best_only, last_path
        self.mode = _mode(monitor, mode)
        self.best = None
        self.saved: list[str] = []

    def on_epoch_end(self, trainer, epoch, logs):
        if self.last_path:
            trainer.save_checkpoint(self.last_path)
        value = logs.get(self.monitor)
        if self.save_best_only:
            if value is None:
                raise KeyError(f"ModelCheckpoint: monitored value {self.monitor!r} is not in the logs {sorted(logs)}")
            if not _better(self.mode, value, self.best, 0.0):
                return
            self.best = value
        path = self.path.format(epoch=epoch + 1, **logs)
        trainer.save_checkpoint(path)
        self.saved.append(path)

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = state.get("best")


class LearningRateScheduler(Callback):
    """Step a ``danlu.optim.lr_scheduler`` scheduler (or call ``fn(epoch) -> lr``) each epoch, or each
    batch with ``per="batch"``. ReduceLROnPlateau gets ``monitor``'s value.

    >>> LearningRateScheduler(lambda epoch: 0.1 * 0.5 ** epoch).per
    'epoch'
    """

    def __init__(self, scheduler, per: str = "epoch", monitor: str = "val_loss"):
        if per not in ("epoch", "batch"):
            raise ValueError(f"per must be 'epoch' or 'batch', got {per!r}")
        self.scheduler, self.per, self.monitor = scheduler, per, monitor

    def _step(self, trainer, epoch, logs):
        s = self.scheduler
        if callable(s) and not hasattr(s, "step"):
            lr = float(s(epoch + 1))
            for g in trainer.optimizer.param_groups:
                g["lr"] = lr
        elif type(s).__name__ == "ReduceLROnPlateau":
            s.step(logs[self.monitor])
        else:
            s.step()

    def on_train_begin(self, trainer):
        s = self.scheduler
        if callable(s) and not hasattr(s, "step"):
            for g in trainer.optimizer.param_groups:
                g["lr"] = float(s(0))

    def on_epoch_end(self, trainer, epoch, logs):
        logs["lr"] = trainer.optimizer.param_groups[0]["lr"]
        if self.per == "epoch":
            self._step(trainer, epoch, logs)

    def on_batch_end(self, trainer, batch, logs):
        if self.per == "batch":
            self._step(trainer, trainer.epoch, logs)

    def state_dict(self):
        s = self.scheduler
        return {"scheduler": s.state_dict()} if hasattr(s, "state_dict") else {}

    def load_state_dict(self, state):
        if "scheduler" in state and hasattr(self.scheduler, "load_state_dict"):
            self.scheduler.load_state_dict(state["scheduler"])


class CSVLogger(Callback):
    """Append one row per epoch (epoch and every logged value) to a CSV file.

    >>> CSVLogger("log.csv").append
    False
    """

    def __init__(self, path: str, append: bool = False, separator: str = ","):
        self.path, self.append, self.sep = path, append, separator
        self._keys = None

    def on_train_begin(self, trainer):
        if not self.append and not trainer.resumed and os.path.exists(self.path):
            os.remove(self.path)

    def on_epoch_end(self, trainer, epoch, logs):
        keys = sorted(logs)
        exists = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        if exists and self._keys is None:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f, delimiter=self.sep), None)
            self._keys = header[1:] if header else keys
        if self._keys is None:
            self._keys = keys
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f, delimiter=self.sep)
            if not exists:
                w.writerow(["epoch"] + self._keys)
            w.writerow([epoch + 1] + [_fmt(logs.get(k)) for k in self._keys])


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float) and math.isfinite(v):
        return f"{v:.6g}"
    return v
