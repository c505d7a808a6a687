"""State dicts move between PyTorch and danlu through safetensors files, for real layer stacks."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file as torch_load_file
from safetensors.torch import save_file as torch_save_file

import danlu as dl


def mnist_cnn(lib):
    """The PyTorch MNIST example's network."""
    nn, F = lib.nn, lib.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
            return F.log_softmax(self.fc2(F.relu(self.fc1(lib.flatten(x, 1)))), dim=1)
    return Net()


def lstm_net(lib):
    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = lib.nn.Embedding(20, 8)
            self.lstm = lib.nn.LSTM(8, 16, num_layers=2, batch_first=True, bidirectional=True)
            self.norm = lib.nn.LayerNorm(32)
            self.head = lib.nn.Linear(32, 3)

        def forward(self, x):
            out, _ = self.lstm(self.emb(x))
            return self.head(self.norm(out[:, -1]))
    return M()


def bn_net(lib):
    return lib.nn.Sequential(lib.nn.Conv2d(3, 8, 3), lib.nn.BatchNorm2d(8), lib.nn.ReLU(), lib.nn.Flatten(),
                             lib.nn.Linear(8 * 6 * 6, 4))


CASES = [("mnist_cnn", mnist_cnn, lambda g: g.standard_normal((2, 1, 28, 28)).astype(np.float32)),
         ("lstm_net", lstm_net, lambda g: g.integers(0, 20, (3, 5))),
         ("bn_net", bn_net, lambda g: g.standard_normal((2, 3, 8, 8)).astype(np.float32))]


@pytest.mark.parametrize("name,build,make_x", CASES, ids=[c[0] for c in CASES])
def test_torch_to_danlu_and_back(tmp_path, name, build, make_x):
    torch.manual_seed(0)
    tm = build(torch).eval()
    if name == "bn_net":  # non-trivial running statistics
        tm.train()
        with torch.no_grad():
            tm(torch.randn(16, 3, 8, 8))
        tm.eval()
    x = make_x(np.random.default_rng(0))
    path = str(tmp_path / "torch.safetensors")
    torch_save_file({k: v.contiguous() for k, v in tm.state_dict().items()}, path)

    dm = build(dl).eval()
    result = dm.load_state_dict(dl.load(path))
    assert not result.missing_keys and not result.unexpected_keys
    with torch.no_grad():
        want = tm(torch.tensor(x)).numpy()
    with dl.no_grad():
        got = dm(dl.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    back = str(tmp_path / "danlu.safetensors")
    dl.save(dm.state_dict(), back)
    tm2 = build(torch).eval()
    tm2.load_state_dict(torch_load_file(back))
    with torch.no_grad():
        np.testing.assert_allclose(tm2(torch.tensor(x)).numpy(), want, rtol=1e-6, atol=1e-7)
