"""Making public functions and Tensor methods from registry ops, with the error boundary."""

from __future__ import annotations

from ..core.dispatch import apply, apply_inplace
from ..core.errors import reraise_filtered

__all__ = ["unary_fn", "binary_fn", "inplace_method", "exporter"]


def exporter(namespace: dict, names: list):
    """``export(fn, *methods)`` for an op family module: make ``fn`` a module-level public name (listed
    in ``names``, the module's ``__all__``) and attach it as the Tensor methods ``methods``."""
    from ..core.tensor import Tensor

    def export(fn, *methods):
        namespace[fn.__name__] = fn
        names.append(fn.__name__)
        for m in methods:
            setattr(Tensor, m, fn)
        return fn

    return export


def unary_fn(op, name: str, doc: str = ""):
    def fn(input):
        try:
            return apply(op, input)
        except Exception as e:
            reraise_filtered(e)
            raise

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


def binary_fn(op, name: str, doc: str = ""):
    def fn(input, other):
        try:
            return apply(op, input, other)
        except Exception as e:
            reraise_filtered(e)
            raise

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


def inplace_method(op, name: str):
    """``x.exp_()`` / ``x.add_(y)``: compute the op and write the result into ``x``."""

    def method(self, *args, **attrs):
        try:
            return apply_inplace(op, self, *args, _method=name, **attrs)
        except Exception as e:
            reraise_filtered(e)
            raise

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"In-place version of :func:`danlu.{op.name}`."
    return method
