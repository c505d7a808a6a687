"""Linear algebra, as ``torch.linalg`` (being written)."""

__all__ = []
