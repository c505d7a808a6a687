"""The benchmark models, built identically in danlu and PyTorch (same architecture and init)."""

from __future__ import annotations

import numpy as np


def mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


def mnist_cnn(lib):
    """The PyTorch MNIST example's network (conv 32, conv 64, max-pool, fc 9216->128->10)."""
    nn, F = lib.nn, lib.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.dropout1 = nn.Dropout(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.relu(self.conv2(x))
            x = F.max_pool2d(x, 2)
            x = self.dropout1(x)
            x = lib.flatten(x, 1)
            x = F.relu(self.fc1(x))
            x = self.dropout2(x)
            x = self.fc2(x)
            return F.log_softmax(x, dim=1)

    return Net()


class LSTMClassifier:
    """LSTM(128 -> 256, 1 layer) over 50 steps, batch 32, a linear head on the last output."""

    @staticmethod
    def build(lib):
        nn = lib.nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(128, 256, batch_first=True)
                self.head = nn.Linear(256, 10)

            def forward(self, x):
                out, _ = self.lstm(x)
                return self.head(out[:, -1])

        return M()


def copy_weights(dl_model, torch_model):
    """Give the danlu model the PyTorch model's initial weights (same names in both)."""
    import danlu as dl

    sd = {k: dl.tensor(v.detach().numpy()) for k, v in torch_model.state_dict().items()}
    dl_model.load_state_dict(sd)


def batch(shape, classes, seed=0):
    g = np.random.default_rng(seed)
    return g.standard_normal(shape).astype(np.float32), g.integers(0, classes, shape[0])


def scan_lstm_step_fn(lib_dl, model):
    """A danlu train step whose LSTM runs as ``danlu.scan`` over time (one graph node when compiled),
    using the weights of ``model.lstm`` (an nn.LSTM) and ``model.head``."""
    dl = lib_dl
    lstm, head = model.lstm, model.head

    def forward(x):
        w_ih, w_hh = lstm.weight_ih_l0, lstm.weight_hh_l0
        b = lstm.bias_ih_l0 + lstm.bias_hh_l0
        xs = (x @ w_ih.T + b).transpose(0, 1)          # (T, B, 4H): the input projection in one GEMM
        B, H = x.shape[0], w_hh.shape[1]
        h0 = dl.zeros(B, H)

        def cell(carry, xp):
            h, c = carry
            gates = xp + h @ w_hh.T
            i, f, g, o = gates.chunk(4, 1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()
            h = o.sigmoid() * c.tanh()
            return (h, c), None

        (h, _c), _ = dl.scan(cell, (h0, h0), xs)
        return head(h)

    return forward
