"""Core workloads: per-op overhead (no grad, and forward+backward), GEMM, conv2d, cross-entropy."""

from __future__ import annotations

import numpy as np
import torch

import danlu as dl

from .harness import Workload

# (name, fn(lib, a, b)) on 4-element float32 tensors; the same call form for both libraries.
SMALL_OPS = [
    ("add", lambda m, a, b: a + b),
    ("mul", lambda m, a, b: a * b),
    ("sub scalar", lambda m, a, b: a - 1.5),
    ("div", lambda m, a, b: a / b),
    ("exp", lambda m, a, b: a.exp()),
    ("tanh", lambda m, a, b: m.tanh(a)),
    ("relu", lambda m, a, b: m.relu(a)),
    ("sum", lambda m, a, b: a.sum()),
    ("mean dim", lambda m, a, b: a.reshape(2, 2).mean(1)),
    ("reshape", lambda m, a, b: a.reshape(2, 2)),
    ("slice", lambda m, a, b: a[1:3]),
    ("index int", lambda m, a, b: a[2]),
    ("matmul 1-D", lambda m, a, b: a @ b),
    ("cat", lambda m, a, b: m.cat([a, b])),
    ("where", lambda m, a, b: m.where(a > b, a, b)),
]

GRAD_OPS = [
    ("add", lambda m, a, b: a + b),
    ("mul", lambda m, a, b: a * b),
    ("div", lambda m, a, b: a / b),
    ("exp", lambda m, a, b: a.exp()),
    ("tanh", lambda m, a, b: m.tanh(a)),
    ("relu", lambda m, a, b: m.relu(a)),
    ("sum", lambda m, a, b: a.sum()),
    ("matmul 1-D", lambda m, a, b: a @ b),
]


def _small(lib, requires_grad=False):
    g = np.random.default_rng(0)
    mk = (lambda a: dl.tensor(a, requires_grad=requires_grad)) if lib is dl else \
        (lambda a: torch.tensor(a, requires_grad=requires_grad))
    return mk(g.uniform(0.5, 1.5, 4).astype(np.float32)), mk(g.uniform(0.5, 1.5, 4).astype(np.float32))


def _noop_grad_factory(lib, fn):
    def make():
        a, b = _small(lib)
        return lambda: fn(lib, a, b)
    return make


def _fwd_bwd_factory(lib, fn):
    def make():
        a, b = _small(lib, requires_grad=True)

        def step():
            y = fn(lib, a, b)
            y.backward(lib.ones_like(y))
            a.grad = None
            b.grad = None
        return step
    return make


def _chain_factory(lib, n_pairs=10):
    def make():
        a, b = _small(lib, requires_grad=True)

        def step():
            z = a
            for _ in range(n_pairs):
                z = lib.tanh(z * b)
            z.backward(lib.ones_like(z))
            a.grad = None
            b.grad = None
        return step
    return make


def _matmul(lib):
    def make():
        g = np.random.default_rng(0)
        x = g.standard_normal((2048, 2048)).astype(np.float32)
        y = g.standard_normal((2048, 2048)).astype(np.float32)
        if lib is dl:
            a, b = dl.from_numpy(x), dl.from_numpy(y)
        else:
            a, b = x, y
        return lambda: a @ b
    return make


def _conv(lib):
    def make():
        g = np.random.default_rng(0)
        xs = g.standard_normal((64, 32, 26, 26)).astype(np.float32)
        ws = (g.standard_normal((64, 32, 3, 3)) * 0.05).astype(np.float32)
        bs = g.standard_normal(64).astype(np.float32)
        F = dl.nn.functional if lib is dl else torch.nn.functional
        x, w, b = (lib.tensor(v, requires_grad=True) for v in (xs, ws, bs))
        ones = None

        def step():
            nonlocal ones
            y = F.conv2d(x, w, b)
            if ones is None:
                ones = lib.ones_like(y)
            y.backward(ones)
            x.grad = w.grad = b.grad = None
        return step
    return make


def _cross_entropy(lib):
    def make():
        g = np.random.default_rng(0)
        F = dl.nn.functional if lib is dl else torch.nn.functional
        logits = lib.tensor(g.standard_normal((128, 10000)).astype(np.float32), requires_grad=True)
        target = lib.tensor(g.integers(0, 10000, 128))

        def step():
            F.cross_entropy(logits, target).backward()
            logits.grad = None
        return step
    return make


def workloads() -> list[Workload]:
    out = []
    for name, fn in SMALL_OPS:
        out.append(Workload("op overhead, no grad (4 elems)", name, _noop_grad_factory(dl, fn),
                            _noop_grad_factory(torch, fn), target=1.5))
    for name, fn in GRAD_OPS:
        out.append(Workload("op fwd+bwd (4 elems)", name, _fwd_bwd_factory(dl, fn), _fwd_bwd_factory(torch, fn),
                            target=1.0))
    out.append(Workload("op fwd+bwd (4 elems)", "chain of 20 ops, per op", _chain_factory(dl), _chain_factory(torch),
                        target=1.0, unit_divisor=20))
    out.append(Workload("GEMM", "matmul 2048x2048 f32", _matmul(dl), _matmul(np), baseline="NumPy",
                        target=round(1 / 0.9, 3), note="target: >= 0.9x NumPy's throughput"))
    out.append(Workload("conv2d", "fwd+bwd b64 32->64 3x3 26x26", _conv(dl), _conv(torch), target=1.5))
    out.append(Workload("cross_entropy", "fwd+bwd (128, 10000) f32", _cross_entropy(dl), _cross_entropy(torch),
                        target=1.2))
    return out
