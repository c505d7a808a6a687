"""Devices and backends. A backend is a namespace of array functions plus kernel overrides; the CPU
backend is NumPy. Kernels are looked up per backend in each op's ``impl`` table."""

from __future__ import annotations

import numpy as np

__all__ = ["device", "CPU", "backend_of"]


class device:
    """A device, as ``torch.device``: only ``'cpu'`` exists on this build.

    >>> import danlu as dl
    >>> dl.device("cpu")
    device(type='cpu')
    """

    __slots__ = ("type", "index")

    def __init__(self, type: str = "cpu", index: int | None = None):  # noqa: A002 - PyTorch's name
        if isinstance(type, device):
            type, index = type.type, type.index
        if ":" in type:
            type, idx = type.split(":", 1)
            index = int(idx)
        if type != "cpu":
            raise RuntimeError(f"device {type!r} is not available: danlu has only the 'cpu' backend on "
                               "this build")
        self.type, self.index = type, index

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and other.type == self.type

    def __hash__(self):
        return hash(self.type)

    def __repr__(self):
        return f"device(type='{self.type}')" if self.index is None else \
            f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self.type


CPU = device("cpu")

BACKENDS = {"cpu": np}


def backend_of(dev) -> object:
    """The array namespace of a device (NumPy for the CPU)."""
    return BACKENDS[device(dev).type if not isinstance(dev, device) else dev.type]
