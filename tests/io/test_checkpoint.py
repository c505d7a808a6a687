"""save_checkpoint / load_checkpoint: training state by name, restored in place."""

import numpy as np
import pytest

import danlu as dl
from danlu.io import load, load_checkpoint, save_checkpoint

from .helpers import assert_same


class Model(dl.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = dl.nn.Parameter(dl.randn(2, 3))
        self.register_buffer("seen", dl.tensor(0))

    def forward(self, x):
        return x @ self.weight.t()


class ToyOptimizer:
    """The state_dict protocol of an optimizer, in PyTorch's layout (danlu.optim is written elsewhere)."""

    def __init__(self):
        self.state = {0: {"step": dl.tensor(0.0), "momentum_buffer": dl.zeros(2, 3)}}
        self.param_groups = [{"lr": 0.1, "betas": (0.9, 0.99), "params": [0]}]

    def state_dict(self):
        return {"state": self.state, "param_groups": self.param_groups}

    def load_state_dict(self, sd):
        self.state, self.param_groups = sd["state"], sd["param_groups"]


def test_resume(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    model, opt, gen = Model(), ToyOptimizer(), dl.Generator().manual_seed(5)
    opt.state[0]["step"].add_(3.0)
    dl.rand(3, generator=gen)
    save_checkpoint(path, model=model, optimizer=opt, rng=gen, epoch=4, history=[0.5, 0.25])
    expected_noise = dl.rand(3, generator=gen)

    model2, opt2, gen2 = Model(), ToyOptimizer(), dl.Generator()
    ckpt = load_checkpoint(path, model=model2, optimizer=opt2, rng=gen2)
    assert ckpt["epoch"] == 4 and ckpt["history"] == [0.5, 0.25]
    assert_same(model.state_dict(), model2.state_dict())
    assert_same(opt.state_dict(), opt2.state_dict())
    np.testing.assert_array_equal(dl.rand(3, generator=gen2).numpy(), expected_noise.numpy())
    assert sorted(load(path)) == ["epoch", "history", "model", "optimizer", "rng"]  # an ordinary danlu file


def test_missing_entry_and_unrestorable_target(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, epoch=1)
    with pytest.raises(KeyError, match=r"no entry 'model'; its entries are \['epoch'\]"):
        load_checkpoint(path, model=Model())
    with pytest.raises(TypeError, match="can't restore epoch=list in place"):
        load_checkpoint(path, epoch=[])


def test_module_shape_mismatch_is_reported(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model={"weight": dl.zeros(5), "seen": dl.tensor(0)})
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        load_checkpoint(path, model=Model())
