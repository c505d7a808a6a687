"""Random number generators: ``manual_seed`` and ``Generator`` make runs reproduce.

A Generator wraps NumPy's PCG64 bit generator. Its state is plain integers, so it can be saved in a
checkpoint (as a uint8 tensor of JSON) without pickle.
"""

from __future__ import annotations

import json

import numpy as np

__all__ = ["Generator", "manual_seed", "seed", "initial_seed", "get_rng_state", "set_rng_state",
           "default_generator"]


class Generator:
    """A random number generator, as ``torch.Generator``.

    >>> import danlu as dl
    >>> g = dl.Generator().manual_seed(0)
    >>> a = dl.rand(2, generator=g); _ = g.manual_seed(0); bool((a == dl.rand(2, generator=g)).all())
    True
    """

    def __init__(self, device: str = "cpu"):
        self._seed = 67280421310721  # PyTorch's default seed
        self._np = np.random.Generator(np.random.PCG64(self._seed))
        self.device = device

    def manual_seed(self, seed: int) -> Generator:
        seed = int(seed)
        if seed < 0:
            seed &= 0xFFFFFFFFFFFFFFFF
        self._seed = seed
        self._np = np.random.Generator(np.random.PCG64(seed))
        return self

    def seed(self) -> int:
        s = int(np.random.SeedSequence().entropy) & 0xFFFFFFFFFFFFFFFF
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self):
        from .creation import tensor
        from . import dtypes

        state = dict(self._np.bit_generator.state)
        state["initial_seed"] = self._seed
        raw = json.dumps(state, sort_keys=True).encode()
        return tensor(list(raw), dtype=dtypes.uint8)

    def set_state(self, new_state) -> Generator:
        raw = bytes(np.asarray(new_state, dtype=np.uint8).tolist())
        state = json.loads(raw.decode())
        self._seed = state.pop("initial_seed", self._seed)
        bg = np.random.PCG64()
        bg.state = state
        self._np = np.random.Generator(bg)
        return self

    @property
    def np(self) -> np.random.Generator:
        return self._np


default_generator = Generator()


def _gen(generator) -> np.random.Generator:
    return (generator or default_generator)._np


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (and return it).

    >>> import danlu as dl
    >>> _ = dl.manual_seed(1); a = dl.randn(3); _ = dl.manual_seed(1); bool((a == dl.randn(3)).all())
    True
    """
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(new_state) -> None:
    default_generator.set_state(new_state)
