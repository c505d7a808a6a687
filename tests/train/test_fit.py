"""danlu.train.fit: learning, metrics, callbacks, exact resume (epoch boundary and mid-epoch), Ctrl-C."""

import csv
import os

import numpy as np
import pytest

import danlu as dl
from danlu.train import (Accuracy, CSVLogger, EarlyStopping, LearningRateScheduler, ModelCheckpoint, TopKAccuracy,
                         fit)


class Net(dl.nn.Module):
    def __init__(self, d=4, k=3):
        super().__init__()
        self.w1 = dl.nn.Parameter(dl.randn(d, 16) * 0.5)
        self.b1 = dl.nn.Parameter(dl.zeros(16))
        self.w2 = dl.nn.Parameter(dl.randn(16, k) * 0.5)

    def forward(self, x):
        h = dl.nn.functional.dropout((x @ self.w1 + self.b1).relu(), 0.1, self.training)
        return h @ self.w2


class Shuffled:
    """A minimal shuffling loader that draws its order from danlu's default generator each epoch."""

    def __init__(self, x, y, bs):
        self.x, self.y, self.bs = x, y, bs

    def __len__(self):
        return (len(self.x) + self.bs - 1) // self.bs

    def __iter__(self):
        perm = dl.randperm(len(self.x))
        for i in range(0, len(self.x), self.bs):
            idx = perm[i:i + self.bs]
            yield self.x[idx], self.y[idx]


def data(n=96, d=4, k=3, seed=0):
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, d)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5).astype(np.int64)
    return dl.tensor(x), dl.tensor(y)


def setup(seed=0, lr=0.1):
    dl.manual_seed(seed)
    model = Net()
    opt = dl.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return model, opt, dl.nn.functional.cross_entropy


def weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_fit_learns_and_reports_metrics():
    x, y = data()
    model, opt, loss = setup()
    hist = fit(model, opt, loss, Shuffled(x, y, 16), epochs=8, val_data=Shuffled(x, y, 32),
               metrics=["accuracy", TopKAccuracy(2)], progress=False)
    h = hist.history
    assert set(h) >= {"loss", "accuracy", "top2", "val_loss", "val_accuracy", "val_top2"}
    assert h["loss"][-1] < h["loss"][0]
    assert h["val_accuracy"][-1] > 0.8
    assert all(a <= t for a, t in zip(h["accuracy"], h["top2"]))


def test_resume_at_epoch_boundary_gives_identical_weights(tmp_path):
    x, y = data()
    model, opt, loss = setup(1)
    fit(model, opt, loss, Shuffled(x, y, 16), epochs=4, progress=False)
    uninterrupted = weights(model)

    model, opt, loss = setup(1)
    ck = str(tmp_path / "ck.safetensors")
    fit(model, opt, loss, Shuffled(x, y, 16), epochs=2, progress=False,
        callbacks=[ModelCheckpoint(ck, save_best_only=False, monitor="loss")])
    dl.manual_seed(123)  # a fresh process would start elsewhere: the checkpoint restores the RNG
    model, opt, loss = setup(99)
    hist = fit(model, opt, loss, Shuffled(x, y, 16), epochs=4, resume_from=ck, progress=False)
    assert_same_weights(uninterrupted, weights(model))
    assert len(hist.history["loss"]) == 4


class InterruptAt:
    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def on_train_begin(self, t): ...
    def on_train_end(self, t): ...
    def on_epoch_begin(self, t, e): ...
    def on_epoch_end(self, t, e, logs): ...
    def state_dict(self): return {}
    def load_state_dict(self, s): ...

    def on_batch_end(self, t, b, logs):
        if t.epoch == self.epoch and b == self.batch:
            raise KeyboardInterrupt


def test_ctrl_c_mid_epoch_saves_and_resume_is_exact(tmp_path, capsys):
    x, y = data()
    model, opt, loss = setup(2)
    sched_opt = opt
    sched = dl.optim.lr_scheduler.StepLR(sched_opt, step_size=1, gamma=0.7)
    fit(model, opt, loss, Shuffled(x, y, 16), epochs=3, progress=False, metrics=["accuracy"],
        callbacks=[LearningRateScheduler(sched)])
    uninterrupted = weights(model)

    model, opt, loss = setup(2)
    sched = dl.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    ck = str(tmp_path / "int.safetensors")
    hist = fit(model, opt, loss, Shuffled(x, y, 16), epochs=3, progress=False, metrics=["accuracy"],
               callbacks=[LearningRateScheduler(sched), InterruptAt(1, 3)], checkpoint=ck)
    assert os.path.exists(ck) and "interrupted" in capsys.readouterr().err
    assert len(hist.history["loss"]) == 1  # stopped during the second epoch

    dl.manual_seed(7)
    model, opt, loss = setup(5)
    sched = dl.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    fit(model, opt, loss, Shuffled(x, y, 16), epochs=3, progress=False, metrics=["accuracy"],
        callbacks=[LearningRateScheduler(sched)], resume_from=ck)
    assert_same_weights(uninterrupted, weights(model))


def test_early_stopping_and_best_checkpoint(tmp_path):
    x, y = data()
    model, opt, loss = setup(3, lr=0.0)  # no learning: val_loss never improves after the first epoch
    best = str(tmp_path / "best-{epoch}.safetensors")
    mc = ModelCheckpoint(best, monitor="val_loss", save_best_only=True)
    es = EarlyStopping(monitor="val_loss", patience=2)
    hist = fit(model, opt, loss, Shuffled(x, y, 32), epochs=20, val_data=[(x, y)], callbacks=[es, mc], progress=False)
    assert len(hist.history["loss"]) == 3 and es.stopped_epoch == 2
    assert mc.saved == [str(tmp_path / "best-1.safetensors")]


def test_csv_logger_and_history_plot(tmp_path):
    x, y = data()
    model, opt, loss = setup(4)
    path = str(tmp_path / "log.csv")
    hist = fit(model, opt, loss, Shuffled(x, y, 32), epochs=3, metrics=[Accuracy()], callbacks=[CSVLogger(path)],
               progress=False)
    rows = list(csv.reader(open(path)))
    assert rows[0][0] == "epoch" and "accuracy" in rows[0] and len(rows) == 4
    pytest.importorskip("matplotlib")  # History.plot's optional dependency; installed by the test extra
    png = hist.plot(str(tmp_path / "curves.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_progress_bar_shows_loss_metrics_and_rate(capsys):
    x, y = data(32)
    model, opt, loss = setup(5)
    fit(model, opt, loss, [(x[:16], y[:16]), (x[16:], y[16:])], epochs=1, metrics=["accuracy"])
    err = capsys.readouterr().err
    assert "Epoch 1/1" in err and "loss=" in err and "accuracy=" in err and "samples/s=" in err


def test_compiled_training_step_matches_eager():
    x, y = data()
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 96, 16)]
    def run(compile_):
        m, o, lf = setup(6)
        t = dl.train.Trainer(m, o, lf, compile=compile_, progress=False)
        m.train = lambda mode=True: dl.nn.Module.train(m, False)  # keep eval mode during fit
        t.fit(batches, 3)
        return weights(m)

    a, b = run(False), run(True)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)
