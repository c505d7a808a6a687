"""``fit``: a Keras-style training loop over danlu modules, optimizers and data loaders.

A checkpoint holds everything needed to continue exactly: model and optimizer state, callback state
(schedulers, early stopping), the history, metric totals, the position (epoch, batch) and the random
number generators' states, including the state at the start of the interrupted epoch so its batches
come back in the same order. Ctrl-C saves such a checkpoint and returns cleanly.
"""

from __future__ import annotations

import math
import sys
import time

from ..autograd.grad_mode import no_grad
from ..core import random as _random
from ..core.tensor import Tensor
from .callbacks import Callback
from .history import History
from .metrics import MeanLoss, make_metric

__all__ = ["Trainer", "fit"]

INTERRUPT_PATH = "danlu-interrupted.safetensors"


def _split(batch):
    """(inputs tuple, target) from a batch: (x, y), (x1, x2, ..., y), or {'input': x, 'target': y}."""
    if isinstance(batch, dict):
        return (batch["input"],), batch["target"]
    if isinstance(batch, (list, tuple)) and len(batch) >= 2:
        return tuple(batch[:-1]), batch[-1]
    raise TypeError("fit: each batch must be (inputs..., target) or {'input': ..., 'target': ...}, got "
                    f"{type(batch).__name__}")


def _batch_size(t) -> int:
    return int(t.shape[0]) if isinstance(t, Tensor) and t.ndim else 1


def _generators(data):
    """The danlu Generators a data loader draws its order from (besides the default one)."""
    out = []
    for obj in (data, getattr(data, "sampler", None), getattr(getattr(data, "batch_sampler", None), "sampler", None)):
        g = getattr(obj, "generator", None)
        if g is not None and hasattr(g, "get_state") and all(g is not x for x in out):
            out.append(g)
    return out


class Trainer:
    """The object behind :func:`fit` (Keras-like): ``Trainer(model, optimizer, loss_fn).fit(data, epochs)``.

    >>> import danlu as dl
    >>> model = dl.nn.Linear(2, 1)
    >>> t = Trainer(model, dl.optim.SGD(model.parameters(), lr=0.1), dl.nn.functional.mse_loss, progress=False)
    >>> t.evaluate([(dl.zeros(4, 2), dl.zeros(4, 1))], prefix="test_").keys()
    dict_keys(['test_loss'])
    """

    def __init__(self, model, optimizer, loss_fn, metrics=(), callbacks=(), *, compile: bool = False,  # noqa: A002
                 progress: bool = True, grad_clip: float | None = None):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.metrics = [make_metric(m) for m in metrics]
        self.callbacks: list[Callback] = list(callbacks)
        self.progress = progress
        self.grad_clip = grad_clip
        self.history = History()
        self.stop_training = False
        self.resumed = False
        self.epoch = 0
        self.batch_in_epoch = 0
        self._loss_metric = MeanLoss()
        self._rng_epoch = None
        self._loader = None
        self._step = self._train_step
        if compile:
            from ..graph import compile as _compile

            self._step = _compile(self._train_step, dynamic=True, name="train_step")

    # -- one step ---------------------------------------------------------------------------------
    def _train_step(self, inputs, target):
        self.optimizer.zero_grad()
        out = self.model(*inputs)
        loss = self.loss_fn(out, target)
        loss.backward()
        if self.grad_clip is not None:
            from ..nn.utils import clip_grad_norm_

            clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return loss.detach(), out.detach()

    # -- checkpoints ------------------------------------------------------------------------------
    def state(self) -> dict:
        gens = [_random.default_generator] + _generators(self._loader)
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "callbacks": [cb.state_dict() for cb in self.callbacks],
            "history": self.history.state_dict(),
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "metrics": [[m.total, m.count] for m in [self._loss_metric] + self.metrics],
            "rng_now": [g.get_state() for g in gens],
            "rng_epoch_start": self._rng_epoch if self._rng_epoch is not None else [g.get_state() for g in gens],
        }

    def save_checkpoint(self, path: str) -> str:
        from ..io import save

        save(self.state(), path)
        return path

    def load_checkpoint(self, path: str) -> dict:
        from ..io import load

        ckpt = load(path)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        for cb, st in zip(self.callbacks, ckpt.get("callbacks", [])):
            cb.load_state_dict(st)
        self.history.load_state_dict(ckpt.get("history", {}))
        self.epoch = int(ckpt.get("epoch", 0))
        self.batch_in_epoch = int(ckpt.get("batch_in_epoch", 0))
        self.resumed = True
        return ckpt

    # -- evaluation -------------------------------------------------------------------------------
    def evaluate(self, data, prefix: str = "val_") -> dict:
        """Mean loss and metrics over ``data`` in eval mode, without gradients."""
        was_training = self.model.training
        self.model.eval()
        loss_m = MeanLoss()
        metrics = [make_metric(type(m)(m.k) if hasattr(m, "k") else type(m)()) for m in self.metrics]
        with no_grad():
            for batch in data:
                inputs, target = _split(batch)
                out = self.model(*inputs)
                loss_m.update(self.loss_fn(out, target).item(), _batch_size(target))
                for m in metrics:
                    m.update(out, target)
        self.model.train(was_training)
        logs = {f"{prefix}loss": loss_m.compute()}
        for m in metrics:
            logs[f"{prefix}{m.name}"] = m.compute()
        return logs

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self, train_data, epochs: int, val_data=None, *, resume_from: str | None = None,
            checkpoint: str | None = None) -> History:
        """Train for ``epochs`` epochs (counting from the start of training, resumed or not)."""
        self._loader = train_data
        ckpt = self.load_checkpoint(resume_from) if resume_from else None
        for cb in self.callbacks:
            cb.on_train_begin(self)
        self.stop_training = False
        try:
            while self.epoch < epochs and not self.stop_training:
                self._run_epoch(train_data, epochs, val_data, ckpt)
                ckpt = None
        except KeyboardInterrupt:
            path = checkpoint or INTERRUPT_PATH
            self.save_checkpoint(path)
            print(f"\ninterrupted: training state saved to {path}; continue with fit(..., resume_from={path!r})",
                  file=sys.stderr)
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    def _run_epoch(self, train_data, epochs, val_data, ckpt):
        gens = [_random.default_generator] + _generators(train_data)
        skip = 0
        if ckpt is not None and self.batch_in_epoch > 0:
            # Resume inside an epoch: replay its order from the epoch's starting RNG state, skip the
            # batches already trained on, then continue with the RNG state of the interruption.
            for g, st in zip(gens, ckpt["rng_epoch_start"]):
                g.set_state(st)
            skip = self.batch_in_epoch
            for m, (total, count) in zip([self._loss_metric] + self.metrics, ckpt["metrics"]):
                m.total, m.count = total, count
        else:
            if ckpt is not None:
                for g, st in zip(gens, ckpt["rng_now"]):
                    g.set_state(st)
            self._loss_metric.reset()
            for m in self.metrics:
                m.reset()
            self.batch_in_epoch = 0
        self._rng_epoch = [g.get_state() for g in gens]
        epoch = self.epoch
        for cb in self.callbacks:
            cb.on_epoch_begin(self, epoch)
        self.model.train()
        it = iter(train_data)
        for _ in range(skip):
            next(it)
        if skip and ckpt is not None:
            for g, st in zip(gens, ckpt["rng_now"]):
                g.set_state(st)
        bar = self._bar(train_data, epoch, epochs, skip)
        t0, seen = time.perf_counter(), 0
        for batch in it:
            inputs, target = _split(batch)
            loss, out = self._step(inputs, target)
            n = _batch_size(target)
            seen += n
            lv = loss.item()
            self._loss_metric.update(lv, n)
            for m in self.metrics:
                m.update(out, target)
            self.batch_in_epoch += 1
            logs = {"loss": lv}
            for cb in self.callbacks:
                cb.on_batch_end(self, self.batch_in_epoch, logs)
            if bar is not None:
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                post = {"loss": f"{self._loss_metric.compute():.4f}"}
                post.update({m.name: f"{m.compute():.4f}" for m in self.metrics})
                post["samples/s"] = f"{rate:,.0f}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
        logs = {"loss": self._loss_metric.compute()}
        logs.update({m.name: m.compute() for m in self.metrics})
        if val_data is not None:
            logs.update(self.evaluate(val_data))
        if bar is not None:
            post = {k: (f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else v) for k, v in logs.items()}
            post["samples/s"] = f"{seen / max(time.perf_counter() - t0, 1e-9):,.0f}"
            bar.set_postfix(post)
            bar.close()
        self.epoch += 1
        self.batch_in_epoch = 0
        self._rng_epoch = None
        self.history.append(epoch, logs)
        for cb in self.callbacks:
            cb.on_epoch_end(self, epoch, logs)

    def _bar(self, data, epoch, epochs, skip):
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        try:
            total = len(data)
        except TypeError:
            total = None
        return tqdm(total=total, initial=skip, desc=f"Epoch {epoch + 1}/{epochs}", unit="batch", leave=True,
                    dynamic_ncols=True, file=sys.stderr)


def fit(model, optimizer, loss_fn, train_data, epochs: int, val_data=None, metrics=(), callbacks=(), *,
        resume_from: str | None = None, checkpoint: str | None = None, progress: bool = True,
        compile: bool = False, grad_clip: float | None = None) -> History:  # noqa: A002
    """Train ``model`` Keras-style: per epoch, a progress bar with loss, metrics and samples/s, then
    validation on ``val_data``; returns a :class:`History`.

    ``metrics``: 'accuracy', 'top5', ... or Metric objects. ``callbacks``: EarlyStopping,
    ModelCheckpoint, LearningRateScheduler, CSVLogger, or your own. ``resume_from``: a checkpoint to
    continue from exactly. Ctrl-C saves a checkpoint to ``checkpoint`` (or ``danlu-interrupted.safetensors``)
    and returns. ``compile=True`` runs each training step as one compiled graph.

    >>> import danlu as dl
    >>> model = dl.nn.Linear(2, 1)
    >>> data = [(dl.randn(8, 2), dl.randn(8, 1)) for _ in range(4)]
    >>> h = fit(model, dl.optim.SGD(model.parameters(), lr=0.1), dl.nn.functional.mse_loss, data, epochs=2,
    ...         progress=False)
    >>> len(h.history["loss"])
    2
    """
    trainer = Trainer(model, optimizer, loss_fn, metrics, callbacks, compile=compile, progress=progress,
                      grad_clip=grad_clip)
    return trainer.fit(train_data, epochs, val_data, resume_from=resume_from, checkpoint=checkpoint)
