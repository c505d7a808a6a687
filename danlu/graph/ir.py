"""The graph IR: SSA values, immutable nodes over registry ops, and the Graph that holds them.

A :class:`Value` carries an abstract value (shape + NumPy dtype); a :class:`Node` is
``(op, inputs, attrs, outputs, source location)``. Inputs are Values or Python scalar literals. A
Graph prints two ways: a typed summary (``%3: f32[128, 512] = matmul(%1, %2)``) and runnable Python
(see ``codegen``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np

from ..core import dtypes as _dt
from ..core.errors import DanluError, format_location

__all__ = ["Value", "Node", "Graph", "GraphError", "short_dtype"]

_SHORT = {"float16": "f16", "float32": "f32", "float64": "f64", "int8": "i8", "int16": "i16", "int32": "i32",
          "int64": "i64", "uint8": "u8", "bool": "b1"}


def short_dtype(npdt) -> str:
    return _SHORT.get(np.dtype(npdt).name, str(npdt))


class GraphError(DanluError):
    """A malformed graph, or a traced value used where it cannot be."""


_ids = itertools.count()


class Value:
    """An SSA value in a graph: an abstract tensor (shape and dtype), no data."""

    __slots__ = ("id", "shape", "dtype", "producer", "index", "name", "graph_id", "__weakref__")

    def __init__(self, shape, dtype, producer=None, index=0, name=None, graph_id=None):
        self.id = next(_ids)
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.producer = producer
        self.index = index
        self.name = name
        self.graph_id = graph_id

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def aval_str(self) -> str:
        return f"{short_dtype(self.dtype)}[{', '.join(str(s) for s in self.shape)}]"

    def __repr__(self):
        return f"%{self.name or self.id}: {self.aval_str()}"

    def __array__(self, *args, **kwargs):
        raise GraphError(
            f"a value traced into a graph ({self!r}) was used outside its trace: a tensor created while "
            "compiling escaped the compiled function (returned through a global, a list, or an attribute), or "
            "a danlu.Graph tensor was used outside its `with` block. Return it from the function, or run it "
            "with Session.run.")

    def __bool__(self):
        self.__array__()


class Node:
    """One primitive call in a graph (immutable by convention: passes build new nodes)."""

    __slots__ = ("op", "inputs", "attrs", "outputs", "loc")

    def __init__(self, op, inputs: tuple, attrs: dict, outputs: tuple, loc=None):
        self.op = op
        self.inputs = tuple(inputs)
        self.attrs = attrs
        self.outputs = tuple(outputs)
        self.loc = loc

    def __repr__(self):
        return f"<Node {self.op.name} -> {', '.join(repr(o) for o in self.outputs)}>"


class Graph:
    """A dataflow graph: inputs, nodes in a valid execution order, outputs, and constants."""

    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: list[Value] = []
        self.input_names: list[str] = []
        self.outputs: list = []          # Values, or Python scalars returned as constants
        self.output_names: list[str] = []
        self.nodes: list[Node] = []
        self.consts: dict[int, np.ndarray] = {}   # Value.id -> array (captured constants)
        self.const_values: dict[int, Value] = {}
        self.meta: dict = {}

    # -- building -------------------------------------------------------------------------------
    def add_input(self, shape, dtype, name: str) -> Value:
        v = Value(shape, dtype, name=name, graph_id=id(self))
        self.inputs.append(v)
        self.input_names.append(name)
        return v

    def add_const(self, array: np.ndarray, name: str | None = None) -> Value:
        v = Value(array.shape, array.dtype, name=name, graph_id=id(self))
        self.consts[v.id] = array
        self.const_values[v.id] = v
        return v

    def add_node(self, op, inputs, attrs, out_avals, loc=None) -> tuple:
        outs = tuple(Value(av.shape, av.dtype.np, graph_id=id(self)) for av in out_avals)
        node = Node(op, tuple(inputs), attrs, outs, loc)
        for i, o in enumerate(outs):
            o.producer, o.index = node, i
        self.nodes.append(node)
        return outs

    def copy(self) -> Graph:
        """A new Graph with the same nodes and values (passes may change the copy freely)."""
        g = Graph(self.name)
        g.inputs, g.input_names = list(self.inputs), list(self.input_names)
        g.outputs, g.output_names = list(self.outputs), list(self.output_names)
        g.nodes = list(self.nodes)
        g.consts, g.const_values = dict(self.consts), dict(self.const_values)
        g.meta = {k: v for k, v in self.meta.items() if k != "memory_plan"}
        return g

    # -- queries --------------------------------------------------------------------------------
    def values(self) -> Iterable[Value]:
        yield from self.inputs
        yield from self.const_values.values()
        for n in self.nodes:
            yield from n.outputs

    def users(self) -> dict:
        """Value id -> list of nodes that read it."""
        out: dict = {}
        for n in self.nodes:
            for i in n.inputs:
                if isinstance(i, Value):
                    out.setdefault(i.id, []).append(n)
        return out

    def lint(self) -> None:
        """Check SSA form: every input defined before use, outputs defined, avals consistent."""
        defined = {v.id for v in self.inputs} | set(self.consts)
        for k, n in enumerate(self.nodes):
            for i in n.inputs:
                if isinstance(i, Value) and i.id not in defined:
                    raise GraphError(f"lint: node {k} ({n.op.name}) reads {i!r}, which is not defined before it")
                if not isinstance(i, (Value, int, float, bool)):
                    raise GraphError(f"lint: node {k} ({n.op.name}) has an input of type {type(i).__name__}")
            for o in n.outputs:
                if o.id in defined:
                    raise GraphError(f"lint: {o!r} is defined twice (second time by node {k}, {n.op.name})")
                if o.producer is not n:
                    raise GraphError(f"lint: {o!r} does not point back at its producer node {k}")
                defined.add(o.id)
        for o in self.outputs:
            if isinstance(o, Value) and o.id not in defined:
                raise GraphError(f"lint: graph output {o!r} is never defined")

    # -- printing -------------------------------------------------------------------------------
    def _names(self) -> dict:
        names = {}
        for i, v in enumerate(self.inputs):
            names[v.id] = self.input_names[i] if i < len(self.input_names) else f"in{i}"
        for k, v in enumerate(self.const_values.values()):
            names[v.id] = f"c{k}"
        k = 0
        for n in self.nodes:
            for o in n.outputs:
                names[o.id] = f"{k}"
                k += 1
        return names

    def __str__(self) -> str:
        names = self._names()

        def ref(x):
            return f"%{names[x.id]}" if isinstance(x, Value) else repr(x)

        lines = [f"graph {self.name}("
                 + ", ".join(f"%{names[v.id]}: {v.aval_str()}" for v in self.inputs) + "):"]
        for v in self.const_values.values():
            lines.append(f"  %{names[v.id]}: {v.aval_str()} = constant")
        for n in self.nodes:
            lhs = ", ".join(f"%{names[o.id]}: {o.aval_str()}" for o in n.outputs)
            attrs = "".join(f", {k}={_fmt_attr(v)}" for k, v in n.attrs.items())
            lines.append(f"  {lhs} = {n.op.name}({', '.join(ref(i) for i in n.inputs)}{attrs})")
            if hasattr(n.op, "describe"):
                lines.append(f"      # {n.op.describe()}")
        lines.append("  return " + ", ".join(ref(o) for o in self.outputs))
        return "\n".join(lines)

    def summary(self) -> str:
        return str(self)

    def python_source(self, fn_name: str = "forward") -> str:
        """Runnable Python for this graph (see ``danlu.graph.codegen.python_source``)."""
        from .codegen import python_source

        return python_source(self, fn_name)

    def __repr__(self):
        return f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self.nodes)} nodes, {len(self.outputs)} outputs>"

    def memory_plan(self):
        """The buffer plan code generation follows: reuse, in-place writes, and peak bytes."""
        plan = self.meta.get("memory_plan")
        if plan is None:
            from .passes.memory import plan_memory

            plan = self.meta["memory_plan"] = plan_memory(self)
        return plan

    def node_location(self, node: Node) -> str:
        return format_location(node.loc)


def _fmt_attr(v) -> str:
    if isinstance(v, _dt.DType):
        return f"danlu.{v.name}"
    if isinstance(v, float):
        return repr(v)
    s = repr(v)
    return s if len(s) < 60 else s[:57] + "..."
