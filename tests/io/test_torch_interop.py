"""State dicts move between PyTorch and danlu as safetensors files, in both directions."""

from collections import OrderedDict

import numpy as np
import pytest

import danlu as dl
from danlu.io import load, save

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(5, 8)
        self.fc2 = torch.nn.Linear(8, 3)
        self.register_buffer("shift", torch.randn(3))
        self.register_buffer("steps", torch.tensor(11))  # an int64 buffer, as BatchNorm's counter

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x))) + self.shift


class Linear(dl.nn.Module):
    """Parameters named as torch.nn.Linear's (danlu.nn.Linear is not written yet)."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = dl.nn.Parameter(dl.randn(n_out, n_in))
        self.bias = dl.nn.Parameter(dl.randn(n_out))

    def forward(self, x):
        return x @ self.weight.t() + self.bias


class DanluNet(dl.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = Linear(5, 8)
        self.fc2 = Linear(8, 3)
        self.register_buffer("shift", dl.randn(3))
        self.register_buffer("steps", dl.tensor(0))

    def forward(self, x):
        return self.fc2(self.fc1(x).relu()) + self.shift


def test_torch_to_danlu(tmp_path):
    tnet = TorchNet()
    path = tmp_path / "torch.safetensors"
    st_torch.save_file(tnet.state_dict(), str(path))

    loaded = load(path)
    assert type(loaded) is dict and sorted(loaded) == sorted(tnet.state_dict())
    assert all(isinstance(v, dl.Tensor) for v in loaded.values())
    assert loaded["steps"].dtype == dl.int64 and loaded["steps"].item() == 11

    dnet = DanluNet()
    result = dnet.load_state_dict(loaded)
    assert not result.missing_keys and not result.unexpected_keys
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    expected = tnet(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(dnet(dl.from_numpy(x)).detach().numpy(), expected, rtol=1e-6, atol=1e-6)


def test_torch_file_with_foreign_metadata(tmp_path):
    # files written by Hugging Face tools carry {"format": "pt"}; that metadata is not danlu's and is ignored
    sd = TorchNet().state_dict()
    path = tmp_path / "hf.safetensors"
    st_torch.save_file(sd, str(path), metadata={"format": "pt"})
    loaded = load(path)
    for k, v in sd.items():
        np.testing.assert_array_equal(loaded[k].numpy(), v.numpy())


def test_danlu_to_torch(tmp_path):
    dnet = DanluNet()
    dnet.steps.add_(5)
    path = tmp_path / "danlu.safetensors"
    save(dnet.state_dict(), path)

    loaded = st_torch.load_file(str(path))
    assert sorted(loaded) == sorted(dnet.state_dict())
    assert loaded["steps"].dtype == torch.int64 and loaded["steps"].item() == 5
    tnet = TorchNet()
    tnet.load_state_dict(loaded)  # strict: every name present, shapes match
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(tnet(torch.from_numpy(x)).detach().numpy(), dnet(dl.from_numpy(x)).detach().numpy(),
                               rtol=1e-6, atol=1e-6)


def test_every_dtype_reaches_torch(tmp_path):
    sd = OrderedDict((d.name, dl.from_numpy(np.arange(6).reshape(2, 3).astype(d.np)))
                     for d in (dl.float16, dl.float32, dl.float64, dl.int8, dl.int16, dl.int32, dl.int64, dl.uint8,
                               dl.bool))
    sd["scalar"] = dl.tensor(2.5)
    sd["empty"] = dl.zeros(0, 4)
    path = tmp_path / "dtypes.safetensors"
    save(sd, path)
    loaded = st_torch.load_file(str(path))
    for k, v in sd.items():
        assert str(loaded[k].dtype) == "torch." + v.dtype.name
        assert tuple(loaded[k].shape) == tuple(v.shape)
        np.testing.assert_array_equal(loaded[k].numpy(), v.numpy())
    # and back: torch's copy of the file loads into the same danlu tensors
    st_torch.save_file(loaded, str(tmp_path / "back.safetensors"))
    back = load(tmp_path / "back.safetensors")
    for k, v in sd.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        np.testing.assert_array_equal(back[k].numpy(), v.numpy())
