"""Side-by-side timing: danlu and a baseline (PyTorch, or NumPy) in one process, interleaved.

Each workload gives two zero-argument callables. The runner calibrates an inner repeat count so one
sample takes about ``sample_ms``, warms both up, then alternates A/B samples and reports medians and
the ratio of medians (danlu / baseline). Ratios, not absolute times, are what the project quotes.

Before each sample the runner pauses ``settle_s``: PyTorch's OpenMP threads and NumPy's OpenBLAS
threads keep spinning for a while after a call, and would otherwise slow whichever library runs next in
the same process. After the pause it runs the workload untimed for about half a sample, so that both
libraries are timed in the steady state of a loop (on the development VM, memory and CPU state after an
idle pause make the first calls up to twice as slow, most for code that allocates its results).
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass
from collections.abc import Callable


@dataclass
class Workload:
    group: str
    name: str
    make_danlu: Callable[[], Callable[[], object]]
    make_baseline: Callable[[], Callable[[], object]]
    baseline: str = "PyTorch"
    target: float | None = None      # danlu/baseline time ratio to stay at or below
    unit_divisor: int = 1            # e.g. ops per call, to report per-op times
    note: str = ""


@dataclass
class Result:
    workload: Workload
    danlu_s: float
    base_s: float

    @property
    def ratio(self) -> float:
        return self.danlu_s / self.base_s

    @property
    def ok(self) -> bool | None:
        t = self.workload.target
        return None if t is None else self.ratio <= t


def _calibrate(fn, sample_ms: float) -> int:
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt * 1000 >= sample_ms / 4 or n >= 1 << 20:
            return max(1, int(n * sample_ms / max(dt * 1000, 1e-6)))
        n *= 4


def _sample(fn, n) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def measure(w: Workload, samples: int = 15, sample_ms: float = 40.0, warmup: int = 3,
            settle_s: float = 0.25) -> Result:
    a, b = w.make_danlu(), w.make_baseline()
    for _ in range(warmup):
        a()
        b()
    na, nb = _calibrate(a, sample_ms), _calibrate(b, sample_ms)
    ta, tb = [], []
    gc.collect()
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(samples):
            for fn, n, out in ((a, na, ta), (b, nb, tb)):
                time.sleep(settle_s)
                _sample(fn, max(1, n // 2))
                out.append(_sample(fn, n))
    finally:
        if gc_was:
            gc.enable()
    div = w.unit_divisor
    return Result(w, statistics.median(ta) / div, statistics.median(tb) / div)


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.2f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def table(results: list[Result]) -> str:
    lines = ["| group | workload | danlu | baseline | ratio | target | met |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        w = r.workload
        tgt = "" if w.target is None else f"<= {w.target:g}x"
        met = "" if r.ok is None else ("yes" if r.ok else "NO")
        lines.append(f"| {w.group} | {w.name} | {fmt_time(r.danlu_s)} | {fmt_time(r.base_s)} ({w.baseline}) | "
                     f"{r.ratio:.2f}x | {tgt} | {met} |")
    return "\n".join(lines)
