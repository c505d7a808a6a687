"""``Parameter``: a tensor that a Module registers as one of its trainable parameters."""

from __future__ import annotations

from ..core.tensor import Tensor, _init

__all__ = ["Parameter", "Buffer"]


class Parameter(Tensor):
    """A leaf tensor that modules register as a parameter (requires grad by default).

    It shares memory with the tensor it wraps, as ``torch.nn.Parameter``.

    >>> import danlu as dl
    >>> p = dl.nn.Parameter(dl.zeros(2)); p.requires_grad, p.is_leaf
    (True, True)
    """

    __slots__ = ()

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True):
        from ..ops.creation import empty

        if data is None:
            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter: expected a Tensor, got {type(data).__name__}")
        t = object.__new__(cls)
        _init(t, data._data)
        if data._vc is None:
            data._vc = [0]
        t._vc = data._vc
        if requires_grad:
            t.requires_grad_(True)
        return t

    def __init__(self, data=None, requires_grad: bool = True):
        pass

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol):
        from ..core.tensor import _rebuild

        return (_rebuild, (type(self), self._data, self._rg))


class Buffer(Tensor):
    """Marks a tensor to be registered as a buffer when assigned to a Module attribute.

    >>> import danlu as dl
    >>> m = dl.nn.Module(); m.count = dl.nn.Buffer(dl.zeros(1)); list(dict(m.named_buffers()))
    ['count']
    """

    __slots__ = ()

    def __new__(cls, data: Tensor, *, persistent: bool = True):
        t = object.__new__(cls)
        _init(t, data._data)
        t._extra = {"persistent": persistent}
        return t

    def __init__(self, data=None, *, persistent: bool = True):
        pass
