"""nn primitives (being written)."""

__all__ = []
