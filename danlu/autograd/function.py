"""Custom differentiable operations: subclass ``Function`` with static ``forward`` and ``backward``."""

from __future__ import annotations

from ..core.dispatch import _edge, state
from ..core.errors import reraise_filtered
from ..core.tape import FunctionNode
from ..core.tensor import Tensor

__all__ = ["Function", "FunctionCtx", "once_differentiable"]


class FunctionCtx:
    """The ``ctx`` of a custom Function: ``save_for_backward``, ``saved_tensors``, ``needs_input_grad``,
    ``mark_non_differentiable``, and any attributes you set."""

    def __init__(self):
        self._saved = ()
        self._versions = ()
        self.needs_input_grad = ()
        self._non_diff = set()
        self.materialize_grads = True

    def save_for_backward(self, *tensors):
        self._saved = tensors
        self._versions = tuple(t._version if isinstance(t, Tensor) else 0 for t in tensors)

    @property
    def saved_tensors(self):
        from ..autograd.engine import _version_error

        for i, (t, v) in enumerate(zip(self._saved, self._versions, strict=True)):
            if isinstance(t, Tensor) and t._version != v:
                raise _version_error(self._node, i, t, v)
        return self._saved

    def mark_non_differentiable(self, *tensors):
        self._non_diff.update(id(t) for t in tensors)

    def mark_dirty(self, *tensors):
        pass  # in-place outputs are ordinary outputs here; their new history starts at this node

    def set_materialize_grads(self, value: bool):
        self.materialize_grads = value


class _FunctionOp:
    """Stands in for a registry op in the tape node of a custom Function."""

    __slots__ = ("name", "cls")
    multi_out = True

    def __init__(self, cls):
        self.cls = cls
        self.name = cls.__name__

    def vjp(self, node, *grads):
        ctx = node.attrs
        out = self.cls.backward(ctx, *grads)
        if not isinstance(out, tuple):
            out = (out,)
        n = len(node.edges)
        if len(out) < n:
            raise RuntimeError(f"function {self.name}.backward returned {len(out)} gradients, but forward "
                               f"took {n} inputs; return one per input (None where not differentiable)")
        return tuple(out[:n])


class _FunctionMeta(type):
    def __init__(cls, name, bases, ns):
        super().__init__(name, bases, ns)
        cls._op = _FunctionOp(cls)


class Function(metaclass=_FunctionMeta):
    """Define a differentiable op in Python, as ``torch.autograd.Function``.

    >>> import danlu as dl
    >>> class Cube(dl.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 3 * x ** 2 * g
    >>> x = dl.tensor([2.0], requires_grad=True)
    >>> Cube.apply(x).backward(); x.grad
    tensor([12.])
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("subclasses of Function must define forward(ctx, ...)")

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError("subclasses of Function must define backward(ctx, *grads)")

    @classmethod
    def apply(cls, *args, **kwargs):
        try:
            return _apply(cls, args, kwargs)
        except Exception as e:
            reraise_filtered(e)
            raise


def _apply(cls, args, kwargs):
    ctx = FunctionCtx()
    ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a._rg for a in args)
    record = state.grad_enabled and any(ctx.needs_input_grad)
    prev = state.grad_enabled
    state.grad_enabled = False
    try:
        out = cls.forward(ctx, *args, **kwargs)
    finally:
        state.grad_enabled = prev
    if not record:
        return out
    single = isinstance(out, Tensor)
    outs = (out,) if single else tuple(out)
    node = FunctionNode(cls._op, ctx, tuple(_edge(a) if isinstance(a, Tensor) and a._rg else None for a in args),
                        tuple((tuple(a.shape), a.dtype) if isinstance(a, Tensor) else None for a in args))
    # The engine fills a missing cotangent with zeros only where out_meta names a dtype: leaving the
    # dtype out is how ctx.set_materialize_grads(False) makes backward receive None instead.
    mat = ctx.materialize_grads
    node.out_meta = tuple((tuple(o.shape), o.dtype if mat else None) if isinstance(o, Tensor) else ((), None)
                          for o in outs)
    ctx._node = node
    if state.anomaly:
        from ..core.errors import user_frame

        node.loc = user_frame()
    new_outs = []
    for i, o in enumerate(outs):
        if isinstance(o, Tensor):
            if any(o is a for a in args):
                o = o.detach()  # an input returned as is: the output is a new tensor sharing its data
            if o.dtype.is_floating_point and id(o) not in ctx._non_diff:
                o._rg, o._node, o._out = True, node, i
        new_outs.append(o)
    return new_outs[0] if single else tuple(new_outs)


def once_differentiable(fn):
    """Mark a backward as not itself differentiable (runs it with grad mode off)."""
    import functools

    @functools.wraps(fn)
    def wrapper(ctx, *grads):
        prev = state.grad_enabled
        state.grad_enabled = False
        try:
            return fn(ctx, *grads)
        finally:
            state.grad_enabled = prev
    return wrapper
