"""Benchmark (not a test): training step time with batches from a DataLoader with worker processes versus
batches already in memory, for an MLP 784-512-512-10 at batch size 128.

    PYTHONPATH=. .venv/bin/python benchmarks/loader_overhead.py [--workers 2] [--steps 150] [--repeats 5]

Prints the step times and the loader's CPU cost per batch (main process and workers). Run it on a quiet
machine: on a 2-core machine other processes make wall-clock step times meaningless.
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    import numpy as np

    import danlu as dl
    import danlu.nn.functional as F
    from danlu.data import DataLoader, TensorDataset
    from danlu.optim import SGD

    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    dl.manual_seed(0)
    n = 60000
    rng = np.random.default_rng(0)
    ds = TensorDataset(dl.from_numpy(rng.random((n, 784), dtype=np.float32)),
                       dl.from_numpy(rng.integers(0, 10, n)))
    params = [dl.randn(784, 512) * 0.05, dl.zeros(512), dl.randn(512, 512) * 0.05, dl.zeros(512),
              dl.randn(512, 10) * 0.05, dl.zeros(10)]
    for p in params:
        p.requires_grad_()
    opt = SGD(params, lr=0.01)

    def step(x, y):
        w1, b1, w2, b2, w3, b3 = params
        h = (x @ w1 + b1).relu()
        h = (h @ w2 + b2).relu()
        loss = F.cross_entropy(h @ w3 + b3, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def timed(batches) -> float:
        t0 = time.perf_counter()
        for _ in range(args.steps):
            x, y = next(batches)
            step(x, y)
        return (time.perf_counter() - t0) / args.steps * 1e3

    def forever(loader):
        while True:
            yield from loader

    memory = [ds[i * 128:(i + 1) * 128] for i in range(args.steps)]
    loader = DataLoader(ds, batch_size=128, shuffle=True, num_workers=args.workers,
                        persistent_workers=args.workers > 0)
    batches = forever(loader)
    for _ in range(10):
        step(*next(batches))
    ratios, mems, loads = [], [], []
    for _ in range(args.repeats):
        t_mem = timed(iter(memory))
        t_loader = timed(batches)
        ratios.append(t_loader / t_mem)
        mems.append(t_mem)
        loads.append(t_loader)
        print(f"in memory {t_mem:7.3f} ms/step   DataLoader(num_workers={args.workers}) {t_loader:7.3f} ms/step   "
              f"ratio {t_loader / t_mem:.3f}", flush=True)
    # On a shared machine the fastest run of each is the least disturbed one.
    print(f"median ratio {np.median(ratios):.3f}; best runs: in memory {min(mems):.3f} ms/step, DataLoader "
          f"{min(loads):.3f} ms/step, ratio {min(loads) / min(mems):.3f}")

    # CPU spent on loading, per batch, with a sleeping consumer (independent of the machine's load).
    def cpu(pid: int) -> float:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    if args.workers and os.path.exists("/proc/self/stat"):
        it = iter(loader)
        pids = it.worker_pids
        w0, m0, k = [cpu(p) for p in pids], time.process_time(), 0
        for _ in it:
            k += 1
            time.sleep(0.002)
        main_cpu = (time.process_time() - m0) / k * 1e3
        worker_cpu = sum(cpu(p) - c for p, c in zip(pids, w0, strict=True)) / k * 1e3
        print(f"loader CPU per batch: main process {main_cpu:.3f} ms (includes the consumer's loop), "
              f"workers {worker_cpu:.3f} ms")


if __name__ == "__main__":
    main()
