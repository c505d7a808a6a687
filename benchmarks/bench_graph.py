"""Graph-mode workloads: compiled training steps and inference against PyTorch eager, a fused
elementwise expression against torch.compile, and compile time / peak memory measurements."""

from __future__ import annotations

import time
import tracemalloc

import torch

import danlu as dl

from .harness import Workload
from .models import LSTMClassifier, batch, copy_weights, mlp, mnist_cnn, scan_lstm_step_fn


def _compiled_train_step(build, xshape, opt_kind="sgd"):
    def make():
        torch.manual_seed(0)
        tm = build(torch)
        m = build(dl)
        copy_weights(m, tm)
        x, y = (dl.tensor(a) for a in batch(xshape, 10))
        opt = dl.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) if opt_kind == "sgd" else \
            dl.optim.Adadelta(m.parameters(), lr=1.0)
        F = dl.nn.functional

        @dl.compile
        def step(x, y):
            opt.zero_grad()
            out = m(x)
            loss = F.nll_loss(out, y) if opt_kind == "adadelta" else F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            return loss

        return lambda: step(x, y)
    return make


def _torch_train_step(build, xshape, opt_kind="sgd"):
    def make():
        torch.manual_seed(0)
        m = build(torch)
        x, y = (torch.tensor(a) for a in batch(xshape, 10))
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) if opt_kind == "sgd" else \
            torch.optim.Adadelta(m.parameters(), lr=1.0)
        F = torch.nn.functional

        def step():
            opt.zero_grad()
            out = m(x)
            loss = F.nll_loss(out, y) if opt_kind == "adadelta" else F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            return loss
        return step
    return make


def _compiled_inference(build, xshape):
    def make():
        torch.manual_seed(0)
        tm = build(torch)
        m = build(dl)
        copy_weights(m, tm)
        m.eval()
        cm = dl.compile(m)
        x = dl.tensor(batch(xshape, 10)[0])

        def run():
            with dl.no_grad():
                cm(x)
        return run
    return make


def _torch_inference(build, xshape):
    def make():
        torch.manual_seed(0)
        m = build(torch).eval()
        x = torch.tensor(batch(xshape, 10)[0])

        def run():
            with torch.no_grad():
                m(x)
        return run
    return make


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


def _compiled_lstm_scan():
    def make():
        torch.manual_seed(0)
        tm = LSTMClassifier.build(torch)
        m = LSTMClassifier.build(dl)
        copy_weights(m, tm)
        fwd = scan_lstm_step_fn(dl, m)
        x, y = (dl.tensor(a) for a in batch((32, 50, 128), 10))
        opt = dl.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)

        @dl.compile
        def step(x, y):
            opt.zero_grad()
            loss = dl.nn.functional.cross_entropy(fwd(x), y)
            loss.backward()
            opt.step()
            return loss
        return lambda: step(x, y)
    return make


def workloads() -> list[Workload]:
    lstm = LSTMClassifier.build
    return [
        Workload("compiled", "MLP train step b128 SGD", _compiled_train_step(mlp, (128, 784)),
                 _torch_train_step(mlp, (128, 784)), baseline="PyTorch eager", target=0.8),
        Workload("compiled", "MNIST CNN train step b64 Adadelta",
                 _compiled_train_step(mnist_cnn, (64, 1, 28, 28), "adadelta"),
                 _torch_train_step(mnist_cnn, (64, 1, 28, 28), "adadelta"), baseline="PyTorch eager", target=0.7),
        Workload("compiled", "MNIST CNN inference b64", _compiled_inference(mnist_cnn, (64, 1, 28, 28)),
                 _torch_inference(mnist_cnn, (64, 1, 28, 28)), baseline="PyTorch eager", target=0.8),
        Workload("compiled", "tanh-GELU on 4M f32", _gelu_danlu, _gelu_torch_compile,
                 baseline="torch.compile", target=1.0),
        Workload("compiled", "LSTM (scan) train step T50 b32", _compiled_lstm_scan(),
                 _torch_train_step(lstm, (32, 50, 128)), baseline="PyTorch eager", target=1.0),
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
