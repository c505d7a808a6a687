"""Functional neural-network operations, as ``torch.nn.functional`` (being written)."""

from ..ops.index import one_hot  # noqa: F401

__all__ = ["one_hot"]
