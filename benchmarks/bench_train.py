"""Training-stack workloads: MLP, the MNIST CNN, an LSTM, and a DataLoader with worker processes."""

from __future__ import annotations

import torch

import danlu as dl

from .harness import Workload
from .models import LSTMClassifier, batch, copy_weights, mlp, mnist_cnn


def _train_step(lib, build, xshape, classes=10, opt_kind="sgd", compiled=False, forward=None):
    """A train step on one fixed batch (weights copied from PyTorch's model so both start equal).
    ``compiled``: the whole step through ``danlu.compile``; ``forward(lib, model)``: the function to train
    instead of the model's own forward."""
    def make():
        lib.manual_seed(0)
        torch.manual_seed(0)
        tm = build(torch)
        m = build(lib) if lib is dl else tm
        if lib is dl:
            copy_weights(m, tm)
        x, y = batch(xshape, classes)
        x, y = lib.tensor(x), lib.tensor(y)
        opt = lib.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) if opt_kind == "sgd" else \
            lib.optim.Adadelta(m.parameters(), lr=1.0)
        F = lib.nn.functional
        m.train()
        fwd = m if forward is None else forward(lib, m)

        def step(x, y):
            opt.zero_grad()
            out = fwd(x)
            loss = F.nll_loss(out, y) if opt_kind == "adadelta" else F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            return loss
        fn = dl.compile(step) if compiled else step
        return lambda: fn(x, y)
    return make


def _inference(lib, build, xshape, compiled=False):
    def make():
        torch.manual_seed(0)
        tm = build(torch)
        m = build(lib) if lib is dl else tm
        if lib is dl:
            copy_weights(m, tm)
        m.eval()
        fn = dl.compile(m) if compiled else m
        x = lib.tensor(batch(xshape, 10)[0])

        def run():
            with lib.no_grad():
                fn(x)
        return run
    return make


def _loader_step(workers: int):
    """danlu MLP train step fed by a DataLoader (workers > 0) vs by in-memory batches (the baseline)."""
    import numpy as np

    def make():
        dl.manual_seed(0)
        m = mlp(dl)
        opt = dl.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        g = np.random.default_rng(0)
        n = 128 * 64
        X = dl.tensor(g.standard_normal((n, 784)).astype(np.float32))
        Y = dl.tensor(g.integers(0, 10, n))
        if workers:
            loader = dl.data.DataLoader(dl.data.TensorDataset(X, Y), batch_size=128, shuffle=True,
                                        num_workers=workers, persistent_workers=True, prefetch_factor=4)
        else:
            batches = [(X[i:i + 128], Y[i:i + 128]) for i in range(0, n, 128)]
            loader = batches
        it = [iter(loader)]

        def step():
            try:
                xb, yb = next(it[0])
            except StopIteration:
                it[0] = iter(loader)
                xb, yb = next(it[0])
            opt.zero_grad()
            dl.nn.functional.cross_entropy(m(xb), yb).backward()
            opt.step()
        return step
    return make


def workloads() -> list[Workload]:
    lstm = LSTMClassifier.build
    return [
        Workload("train step", "MLP 784-512-512-10 b128 SGD", _train_step(dl, mlp, (128, 784), 10),
                 _train_step(torch, mlp, (128, 784), 10), target=1.0),
        Workload("train step", "MNIST CNN b64 Adadelta", _train_step(dl, mnist_cnn, (64, 1, 28, 28), 10, "adadelta"),
                 _train_step(torch, mnist_cnn, (64, 1, 28, 28), 10, "adadelta"), target=1.0),
        Workload("inference", "MNIST CNN b64", _inference(dl, mnist_cnn, (64, 1, 28, 28)),
                 _inference(torch, mnist_cnn, (64, 1, 28, 28)), target=1.0),
        Workload("train step", "LSTM 128->256 T50 b32", _train_step(dl, lstm, (32, 50, 128), 10),
                 _train_step(torch, lstm, (32, 50, 128), 10), target=1.2),
        Workload("data", "MLP step fed by DataLoader(2 workers)", _loader_step(2), _loader_step(0),
                 baseline="danlu in-memory batches", target=1.1),
    ]
