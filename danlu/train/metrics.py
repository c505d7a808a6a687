"""Metrics for ``fit``: accumulated over an epoch, reset at its start."""

from __future__ import annotations

from ..autograd.grad_mode import no_grad

__all__ = ["Metric", "Accuracy", "TopKAccuracy", "MeanLoss", "make_metric"]


class Metric:
    """Base class: ``update(output, target)`` per batch, ``compute()`` for the epoch, ``reset()``."""

    name = "metric"

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def __init__(self):
        self.reset()

    def update(self, output, target) -> None:
        raise NotImplementedError("Metric subclasses implement update(output, target)")

    def compute(self) -> float:
        return self.total / self.count if self.count else float("nan")


class Accuracy(Metric):
    """Fraction of samples whose arg-max class equals the target (class-index targets), or, for one
    output per sample, whose ``output > threshold`` equals a 0/1 target.

    >>> import danlu as dl
    >>> m = Accuracy(); m.update(dl.tensor([[0.1, 0.9], [0.8, 0.2]]), dl.tensor([1, 1])); m.compute()
    0.5
    """

    name = "accuracy"

    def __init__(self, threshold: float = 0.0):
        self.threshold = threshold
        super().__init__()

    def update(self, output, target) -> None:
        with no_grad():
            if output.ndim >= 2 and output.shape[1] > 1:
                pred = output.argmax(1)
            else:
                pred = (output.reshape(target.shape) > self.threshold).long()
                target = target.long()
            self.total += float((pred == target).sum().item())
            self.count += int(target.numel())


class TopKAccuracy(Metric):
    """Fraction of samples whose target is among the ``k`` highest scores.

    >>> import danlu as dl
    >>> m = TopKAccuracy(2); m.update(dl.tensor([[0.1, 0.5, 0.4], [0.8, 0.15, 0.05]]), dl.tensor([2, 2])); m.compute()
    0.5
    """

    def __init__(self, k: int = 5):
        self.k = k
        self.name = f"top{k}"
        super().__init__()

    def update(self, output, target) -> None:
        with no_grad():
            scores = output
            ts = scores.gather(1, target.long().reshape(-1, 1))
            rank = (scores > ts).sum(1)  # classes scoring strictly higher than the target
            self.total += float((rank < self.k).sum().item())
            self.count += int(target.numel())


class MeanLoss(Metric):
    """The mean of per-batch losses weighted by batch size (``fit`` reports it as ``loss``)."""

    name = "loss"

    def update(self, loss, batch_size: int) -> None:
        self.total += float(loss) * batch_size
        self.count += batch_size


def make_metric(m) -> Metric:
    """A Metric from a Metric, a class, or a name: 'accuracy', 'acc', 'top5', 'top_k'..."""
    if isinstance(m, Metric):
        return m
    if isinstance(m, type) and issubclass(m, Metric):
        return m()
    if isinstance(m, str):
        s = m.lower()
        if s in ("accuracy", "acc"):
            return Accuracy()
        if s.startswith("top"):
            digits = "".join(ch for ch in s if ch.isdigit())
            return TopKAccuracy(int(digits) if digits else 5)
    raise ValueError(f"unknown metric {m!r}: use 'accuracy', 'top5' (any k), or a danlu.train.Metric")
