"""The op registry: one entry per primitive, read by every interpreter.

An entry holds the op's ``name``, its shape/dtype rule ``infer``, its kernels ``impl[backend]``, its
differentiation rule ``vjp`` (written with danlu ops, so it is itself differentiable and traceable),
how inputs are promoted, which values the VJP needs saved, and property flags that passes read
(``elementwise``, ``view``, ``random``...). Later modes add slots (``onnx``, ``batch``) in ``extra``.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Op", "AVal", "register", "REGISTRY", "get_op"]

REGISTRY: dict[str, Op] = {}


class AVal:
    """An abstract value: a shape and a dtype, no data (what ``infer`` takes and returns)."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape = tuple(shape)
        self.dtype = dtype  # a danlu DType

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __eq__(self, other):
        return isinstance(other, AVal) and self.shape == other.shape and self.dtype is other.dtype

    def __hash__(self):
        return hash((self.shape, self.dtype.name))

    def __repr__(self):
        return f"{self.dtype.name}[{', '.join(map(str, self.shape))}]"


class Op:
    """A primitive operation. Create with :func:`register`; never call directly, use ``apply``."""

    __slots__ = ("name", "infer", "impl", "vjp", "promote", "save_in", "save_out", "elementwise",
                 "view", "random", "reduction", "differentiable", "multi_out", "family", "cache",
                 "kernel", "extra", "nondiff_args", "save_for", "__weakref__")

    def __init__(self, name: str, *, infer: Callable, impl: Callable | None = None,
                 vjp: Callable | None = None, promote: Callable | None = None,
                 save_in: tuple = (), save_out: bool = False, elementwise: bool = False,
                 view: bool = False, random: bool = False, reduction: bool = False,
                 differentiable: bool = True, multi_out: bool = False, family: str = "",
                 nondiff_args: tuple = (), extra: dict | None = None, save_for: dict | None = None):
        self.name = name
        self.infer = infer
        self.impl = {}
        if impl is not None:
            self.impl["cpu"] = impl
        self.kernel = impl  # the CPU kernel, read directly on the eager fast path
        self.vjp = vjp
        self.promote = promote
        self.save_in = tuple(save_in)
        self.save_out = save_out
        self.elementwise = elementwise
        self.view = view
        self.random = random
        self.reduction = reduction
        self.differentiable = differentiable
        self.multi_out = multi_out
        self.family = family
        self.nondiff_args = tuple(nondiff_args)
        # {saved input index: input indices whose gradient needs it}; an input is saved only when one of
        # those needs a gradient (so in-place changes to it are allowed otherwise, as in PyTorch)
        self.save_for = dict(save_for or {})
        self.extra = dict(extra or {})
        self.cache = {}

    def __repr__(self):
        return f"<op {self.name}>"

    def __reduce__(self):
        return (get_op, (self.name,))


def register(name: str, **kw) -> Op:
    """Create and register a primitive. ``name`` must be unique."""
    if name in REGISTRY:
        raise ValueError(f"op {name!r} is already registered")
    op = Op(name, **kw)
    REGISTRY[name] = op
    return op


def get_op(name: str) -> Op:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no op named {name!r} is registered") from None
