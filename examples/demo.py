"""The danlu demo (``make demo``):

1. autograd: recover an unknown exponent by gradient descent (examples/quickstart.py);
2. training: a CNN on the 8x8 Digits with ``danlu.train.fit`` (progress bars, metrics, checkpoint);
3. graph mode: compile the trained CNN, check the compiled graph against eager execution, export it,
   reload the artifact in a fresh process that never imports the model's code, and compare speeds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import danlu as dl
import danlu.nn as nn
import danlu.nn.functional as F
from danlu.data import DataLoader
from danlu.data.datasets import Digits
from danlu.data.transforms import ToTensor
from danlu.graph.check import assert_same_as_eager

HERE = os.path.dirname(os.path.abspath(__file__))


class DigitsCNN(nn.Module):
    """A small CNN for 8x8 digits: two 3x3 convolutions, max-pooling, two linear layers."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.dropout = nn.Dropout(0.25)
        self.fc1 = nn.Linear(64 * 4 * 4, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.dropout(x.flatten(1))
        x = self.dropout(F.relu(self.fc1(x)))
        return self.fc2(x)


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 76 - len(title)), flush=True)


def main() -> None:
    t_start = time.perf_counter()
    section("1. autograd: recover p from noisy samples of y = x ** p")
    sys.path.insert(0, HERE)
    import quickstart

    quickstart.main()

    section("2. training: a CNN on Digits with danlu.train.fit")
    dl.manual_seed(0)
    train_set, test_set = Digits(train=True, transform=ToTensor()), Digits(train=False, transform=ToTensor())
    train = DataLoader(train_set, batch_size=64, shuffle=True)
    test = DataLoader(test_set, batch_size=256)
    model = DigitsCNN()
    opt = dl.optim.Adam(model.parameters(), lr=2e-3)
    sched = dl.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    tmp = tempfile.mkdtemp(prefix="danlu-demo-")
    t0 = time.perf_counter()
    hist = dl.train.fit(model, opt, F.cross_entropy, train, epochs=12, val_data=test, metrics=["accuracy"],
                        callbacks=[dl.train.LearningRateScheduler(sched),
                                   dl.train.ModelCheckpoint(os.path.join(tmp, "best.safetensors"),
                                                            monitor="val_accuracy", save_best_only=True)])
    print(f"trained in {time.perf_counter() - t0:.1f} s; test accuracy {hist.history['val_accuracy'][-1]:.2%}")

    section("3. graph mode: compile, check against eager, export, reload without the model's code")
    model.eval()
    x_test = dl.stack([test_set[i][0] for i in range(len(test_set))])
    y_test = np.array([test_set[i][1] for i in range(len(test_set))])
    compiled = dl.compile(model, dynamic={0: 0})
    with dl.no_grad():
        assert_same_as_eager(compiled, x_test[:64])
        print("compiled graph == eager on the test inputs and on fresh random inputs of the same signature")
        graph = compiled.graph_for(x_test[:64])
        print(f"optimized graph: {len(graph.nodes)} nodes; {graph.memory_plan()}")
        path = os.path.join(tmp, "digits_cnn.dlx")
        dl.export.save(model, (x_test[:64],), path, dynamic={0: 0})
        np.save(os.path.join(tmp, "x.npy"), x_test.numpy())
        np.save(os.path.join(tmp, "y.npy"), y_test)
        print(f"exported to {path} ({os.path.getsize(path) / 1e3:.0f} kB)")

        # a fresh interpreter that imports danlu and NumPy only: no DigitsCNN, no demo code
        child = (
            "import sys, numpy as np, danlu as dl\n"
            f"prog = dl.export.load({path!r})\n"
            f"x, y = np.load({os.path.join(tmp, 'x.npy')!r}), np.load({os.path.join(tmp, 'y.npy')!r})\n"
            "pred = prog(dl.from_numpy(x)).argmax(1).numpy()\n"
            "print(f'fresh process: artifact accuracy {(pred == y).mean():.2%} on {len(y)} test images; '\n"
            "      f'model code imported: {\"demo\" in sys.modules or \"quickstart\" in sys.modules}')\n")
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(dl.__file__))))
        out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, cwd=tmp, env=env)
        if out.returncode:
            raise RuntimeError(f"the fresh process failed:\n{out.stderr}")
        print(out.stdout.strip())

        def timeit(fn, n=30):
            for _ in range(3):
                fn()
            ts = []
            for _ in range(n):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
            return float(np.median(ts))

        xb = x_test[:256]
        t_eager = timeit(lambda: model(xb))
        t_comp = timeit(lambda: compiled(xb))
        print(f"inference on 256 images: eager {t_eager * 1e3:.2f} ms, compiled {t_comp * 1e3:.2f} ms "
              f"({t_eager / t_comp:.2f}x speedup)")
    print(f"\ndemo finished in {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
