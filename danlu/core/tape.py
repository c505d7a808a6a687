"""Tape nodes: what eager (and traced) execution records for reverse-mode differentiation.

A :class:`Node` is one recorded primitive call. It is also the ``ctx`` its op's ``vjp`` receives:
``ctx.inputs`` (the saved inputs, ``None`` where the op did not ask to save one), ``ctx.out`` /
``ctx.outs`` (saved outputs), ``ctx.attrs`` and the input shapes and dtypes. Edges point at the
nodes that produced the inputs, kept in input order. Leaves that require grad get an
:class:`AccumulateGrad` node that adds into ``.grad``.
"""

from __future__ import annotations

__all__ = ["Node", "AccumulateGrad", "FunctionNode"]


class Node:
    __slots__ = ("op", "attrs", "edges", "saved", "versions", "in_meta", "out_data", "out_meta",
                 "pre_hooks", "released", "loc", "out_vc", "out_versions", "__weakref__")

    def __init__(self, op, attrs, edges, in_meta):
        self.op = op
        self.attrs = attrs
        self.edges = edges          # tuple aligned with inputs: (node, output index) or None
        self.in_meta = in_meta      # tuple aligned with inputs: (shape, DType) or None (scalars)
        self.saved = None           # tuple aligned with inputs: saved Tensor or None
        self.versions = None
        self.out_data = None        # saved output array(s) when the op's VJP reads them
        self.out_meta = None        # (shape, DType) per output, to build zero cotangents
        self.pre_hooks = None       # {output index: [hook, ...]} from Tensor.register_hook
        self.released = False
        self.loc = None             # user's source line (anomaly mode / tracing)
        self.out_vc = None          # version counters of saved outputs, and their versions when saved
        self.out_versions = None

    # -- what the VJP rule reads -------------------------------------------------------------
    @property
    def inputs(self):
        return self.saved

    @property
    def in_shapes(self):
        return tuple(m[0] if m is not None else () for m in self.in_meta)

    @property
    def in_dtypes(self):
        return tuple(m[1] if m is not None else None for m in self.in_meta)

    @property
    def out(self):
        """The (first) output, rebuilt from its saved array and linked to this node."""
        from .tensor import Tensor

        data = self.out_data[0] if self.op.multi_out else self.out_data
        if data is None:
            raise RuntimeError(f"{self.name()}: the output was not saved for backward")
        return Tensor._from_node(data, self, 0)

    @property
    def outs(self):
        from .tensor import Tensor

        return tuple(Tensor._from_node(d, self, i) if d is not None else None
                     for i, d in enumerate(self.out_data))

    def name(self) -> str:
        return _backward_name(self.op.name)

    def __repr__(self):
        return f"<{self.name()} object>"

    @property
    def next_functions(self):
        return tuple((e[0], e[1]) if e is not None else (None, 0) for e in self.edges)

    def register_prehook(self, index, hook):
        if self.pre_hooks is None:
            self.pre_hooks = {}
        self.pre_hooks.setdefault(index, []).append(hook)


class AccumulateGrad(Node):
    """The node of a leaf tensor that requires grad: backward adds into ``variable.grad``."""

    __slots__ = ("variable",)

    def __init__(self, variable):
        super().__init__(None, None, (), ())
        self.variable = variable

    def name(self) -> str:
        return "AccumulateGrad"


class FunctionNode(Node):
    """The node of a user-defined ``autograd.Function`` call (``attrs`` holds its ctx)."""

    __slots__ = ()

    def name(self) -> str:
        return f"{self.op.name}Backward"


def _backward_name(op_name: str) -> str:
    return "".join(p.capitalize() for p in op_name.split("_")) + "Backward0"
