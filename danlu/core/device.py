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


def _tune_allocator() -> None:
    """Keep freed memory for reuse instead of returning it to the OS at once (glibc only).

    Tensors are NumPy arrays from malloc. With glibc's defaults a training step's large temporaries are
    often mapped fresh each time and every page is faulted in again, which made whole steps several times
    slower on the machines danlu is measured on; raising the trim and mmap thresholds keeps those pages in
    the heap (at the cost of holding up to the trim threshold of freed memory). ``DANLU_MALLOC_TUNE=0``
    leaves the allocator alone.
    """
    import os
    import sys

    if os.environ.get("DANLU_MALLOC_TUNE", "1") == "0" or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 64 << 20)
        libc.mallopt(m_trim_threshold, 512 << 20)
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        pass


_tune_allocator()


def backend_of(dev) -> object:
    """The array namespace of a device (NumPy for the CPU)."""
    return BACKENDS[device(dev).type if not isinstance(dev, device) else dev.type]
