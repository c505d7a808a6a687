"""Graph-mode workloads: compiled training steps and inference against PyTorch eager, a fused
elementwise expression against torch.compile, and compile time / peak memory measurements."""

from __future__ import annotations

import time
import tracemalloc

import torch

import danlu as dl

from .bench_train import _inference, _train_step
from .harness import Workload
from .models import LSTMClassifier, batch, mlp, mnist_cnn, scan_lstm_step_fn


def _gelu(x, lib):
    return 0.5 * x * (1 + lib.tanh(0.79788456 * (x + 0.044715 * x ** 3)))


def _gelu_danlu():
    x = dl.randn(4 * 1024 * 1024)
    f = dl.compile(lambda t: _gelu(t, dl))
    return lambda: f(x)


def _gelu_torch_compile():
    x = torch.randn(4 * 1024 * 1024)
    f = torch.compile(lambda t: _gelu(t, torch))
    return lambda: f(x)


def workloads() -> list[Workload]:
    lstm = LSTMClassifier.build
    return [
        Workload("compiled", "MLP train step b128 SGD", _train_step(dl, mlp, (128, 784), compiled=True),
                 _train_step(torch, mlp, (128, 784)), baseline="PyTorch eager", target=0.8),
        Workload("compiled", "MNIST CNN train step b64 Adadelta",
                 _train_step(dl, mnist_cnn, (64, 1, 28, 28), opt_kind="adadelta", compiled=True),
                 _train_step(torch, mnist_cnn, (64, 1, 28, 28), opt_kind="adadelta"), baseline="PyTorch eager",
                 target=0.7),
        Workload("compiled", "MNIST CNN inference b64", _inference(dl, mnist_cnn, (64, 1, 28, 28), compiled=True),
                 _inference(torch, mnist_cnn, (64, 1, 28, 28)), baseline="PyTorch eager", target=0.8),
        Workload("compiled", "tanh-GELU on 4M f32", _gelu_danlu, _gelu_torch_compile,
                 baseline="torch.compile", target=1.0),
        Workload("compiled", "LSTM (scan) train step T50 b32",
                 _train_step(dl, lstm, (32, 50, 128), compiled=True, forward=scan_lstm_step_fn),
                 _train_step(torch, lstm, (32, 50, 128)), baseline="PyTorch eager", target=1.0),
    ]


def extra_measurements() -> list[tuple[str, str]]:
    """Not ratios: compile time of the CNN train step and peak memory of the MLP train step."""
    out = []
    # trace + optimize + codegen of the CNN train step
    torch.manual_seed(0)
    m = mnist_cnn(dl)
    x, y = (dl.tensor(a) for a in batch((64, 1, 28, 28), 10))
    opt = dl.optim.Adadelta(m.parameters(), lr=1.0)

    def step(x, y):
        opt.zero_grad()
        loss = dl.nn.functional.nll_loss(m(x), y)
        loss.backward()
        opt.step()
        return loss

    cs = dl.compile(step)
    cs(x, y)  # warm-up (eager) call creates the optimizer state
    t0 = time.perf_counter()
    cs.entry_for(x, y)
    elapsed = time.perf_counter() - t0
    out.append(("trace + optimize + codegen, MNIST CNN train step", f"{elapsed:.2f} s (target <= 2 s)"))

    # peak memory of one MLP train step, eager vs compiled (tracemalloc sees NumPy's buffers)
    def peak(fn):
        fn()
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        p = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        return p

    m = mlp(dl)
    o = dl.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    xb, yb = (dl.tensor(a) for a in batch((128, 784), 10))

    def eager_step():
        o.zero_grad()
        dl.nn.functional.cross_entropy(m(xb), yb).backward()
        o.step()

    comp = dl.compile(eager_step)
    comp()
    comp()
    e, c = peak(eager_step), peak(comp)
    out.append(("peak memory above baseline, MLP train step", f"eager {e / 1e6:.2f} MB, compiled {c / 1e6:.2f} MB"))
    return out
