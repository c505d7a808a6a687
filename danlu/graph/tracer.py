"""Tracing: run a Python function with tensors whose data are graph Values, through the one dispatch
seam, recording every primitive call as a graph node instead of running it.

Tensors the function reads that are not its arguments (module parameters, optimizer state, closures)
are *captured*: they become graph inputs read live at every call, never baked constants. A captured or
argument tensor that the function modifies in place (an optimizer step, a running-statistics update)
gets its new value as a graph output that is written back after each call; a ``.grad`` that the
function sets becomes an output assigned after each call.
"""

from __future__ import annotations

from ..core import dispatch
from ..core.errors import GraphBreakError, user_frame
from ..core.tensor import Tensor, _wrap
from .ir import Graph, GraphError, Value

__all__ = ["Tracer", "tracing"]


class Tracer:
    """The tracing interpreter: ``run`` emits a node and returns its output Value(s)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.bound: dict[int, tuple] = {}     # id(tensor) -> (tensor, initial Value, original data, grad)
        self.order: list[int] = []
        self.backward_ran = False
        self.grad_owner: dict[int, Tensor] = {}   # id(grad tensor) -> the tensor whose .grad it was read as
        self.live: list = []          # (input Value, getter): Python numbers read afresh at every call
        self.orig_grad: dict[int, tuple] = {}  # id(tensor) -> (tensor, its .grad before the trace touched it)
        self.value_guards: list = []  # (getter, value at trace time, description)

    # -- binding tensors to graph inputs ------------------------------------------------------
    def bind(self, t: Tensor, name: str, shape=None) -> Value:
        """Make ``t`` a graph input: its data becomes an input Value for the duration of the trace.

        ``shape`` may hold SymInts for dynamic dimensions."""
        if id(t) in self.bound:
            return t._data
        d = t._data
        if isinstance(d, Value):
            if d.graph_id != id(self.graph):
                raise GraphError(f"{name}: a tensor from another trace was passed in")
            return d
        v = self.graph.add_input(d.shape if shape is None else shape, d.dtype, name)
        self.remember_grad(t)
        # Inside the trace a bound tensor is a leaf: its eager history (grad_fn, accumulator and hooks)
        # stays outside the graph and is reconnected by the compiled function's own tape node.
        self.bound[id(t)] = (t, v, d, t._grad, t._node, t._out, t._acc)
        self.order.append(id(t))
        t._data, t._node, t._out, t._acc = v, None, 0, None
        return v

    def value_of(self, t: Tensor) -> Value:
        d = t._data
        if isinstance(d, Value):
            if d.graph_id != id(self.graph):
                raise GraphError(f"a value from another graph ({d!r}) was used while tracing; tensors created "
                                 "while compiling one function cannot be used in another")
            return d
        return self.bind(t, f"cap{len(self.bound)}")

    def remember_grad(self, t: Tensor) -> None:
        """Note ``t.grad`` as it was before the trace first touched it (restored afterwards)."""
        if id(t) not in self.orig_grad:
            self.orig_grad[id(t)] = (t, t._grad)

    def original_grad(self, t: Tensor):
        return self.orig_grad[id(t)][1] if id(t) in self.orig_grad else t._grad

    def restore(self) -> None:
        """Give every bound tensor its original data, and every touched tensor its original .grad, back."""
        for t, _v, data, _grad, node, out, acc in self.bound.values():
            t._data, t._node, t._out, t._acc = data, node, out, acc
        for t, grad in self.orig_grad.values():
            t._grad = grad

    # -- the interpreter protocol ---------------------------------------------------------------
    def run(self, op, args, attrs, avals):
        ins = [self.value_of(a) if isinstance(a, Tensor) else a for a in args]
        outs = avals if op.multi_out else (avals,)
        for av in outs:
            if any(s is None for s in av.shape):
                raise GraphBreakError(
                    f"{op.name}: its output shape depends on the data ({av}), so it cannot be traced into a "
                    "static graph. Compute it outside the compiled function, or compile with "
                    "fallback='eager'.")
        vals = self.graph.add_node(op, ins, attrs, outs, loc=user_frame())
        return vals if op.multi_out else vals[0]

    def write_inplace(self, target: Tensor, res: Tensor) -> None:
        """Functionalization: the target gets a new Value. For a view, the new values are scattered into
        its base through the view ops' registered inverses, and other views of the base follow lazily."""
        if target._base is not None:
            from ..core.dispatch import _no_grad, _view_chain

            chain = _view_chain(target)
            if chain is None or any("view_inverse" not in info[1].extra for _t, info in chain):
                raise GraphBreakError(
                    "in-place modification of this view is not supported when compiling (its values cannot be "
                    "scattered back into the base); write the update out of place, e.g. x[0] = x[0] + 1")
            base = target._base
            self.value_of(base)
            new = res
            with _no_grad():
                for _t, (parent, vop, vattrs, idx) in chain:
                    alias = _wrap(self.value_of(parent) if parent is not base else base._data)
                    new = vop.extra["view_inverse"](alias, new, vattrs, idx)
            base._data = new._data
            if base._extra is None:
                base._extra = {}
            base._extra["rebase"] = base._extra.get("rebase", 0) + 1
            target._data = res._data
            target._extra["rebase"] = base._extra["rebase"]
            return
        self.value_of(target)
        target._data = res._data

    def live_scalar(self, getter, name: str, dtype=None) -> Tensor:
        """A graph input fed with ``getter()`` at every call (e.g. a learning rate a scheduler changes)."""
        import numpy as np

        v = self.graph.add_input((), np.dtype(dtype or np.float64), name)
        self.live.append((v, getter))
        return _wrap(v)

    def guard_value(self, getter, value, description: str) -> None:
        """The trace used ``value`` (from ``getter()``); a later call where it differs retraces."""
        self.value_guards.append((getter, value, description))

    def on_grad_write(self, owner: Tensor) -> None:
        self.remember_grad(owner)

    def on_grad_read(self, owner: Tensor, g: Tensor) -> None:
        """``owner.grad`` was read while tracing: bind that gradient by its path, not by identity, so later
        calls read whatever ``owner.grad`` is then (backward replaces the tensor)."""
        self.remember_grad(owner)
        if g is None or isinstance(g._data, Value) or id(g) in self.bound:
            return
        self.grad_owner[id(g)] = owner
        self.bind(g, f"{self._name_of(owner)}.grad")

    def _name_of(self, t):
        ent = self.bound.get(id(t))
        if ent is not None:
            return self.graph.input_names[self.graph.inputs.index(ent[1])]
        return f"cap{len(self.bound)}"

    def note_grad(self, var: Tensor) -> None:
        """The engine set ``var.grad`` while tracing."""
        self.backward_ran = True
        self.remember_grad(var)
        if id(var) not in self.bound and not isinstance(var._data, Value):
            self.value_of(var)

    # -- results ----------------------------------------------------------------------------------
    def mutations(self):
        """(tensor, initial Value, final Value) for bound tensors whose data was rebound."""
        out = []
        for k in self.order:
            t, v0 = self.bound[k][:2]
            if t._data is not v0:
                out.append((t, v0, t._data))
        return out

    def grad_outputs(self):
        """(tensor, final grad Value) for bound tensors whose .grad is now a traced value."""
        out = []
        for k in self.order:
            t = self.bound[k][0]
            g0 = self.original_grad(t)
            g = t._grad
            if g is not None and g is not g0 and isinstance(g._data, Value):
                out.append((t, g._data))
        return out


class tracing:
    """Context manager that makes ``tracer`` the current interpreter of this thread."""

    def __init__(self, tracer: Tracer):
        self.tracer = tracer

    def __enter__(self):
        self._prev = dispatch.push_interpreter(self.tracer)
        return self.tracer

    def __exit__(self, *exc):
        dispatch.pop_interpreter(self._prev)
        return False


def traced_tensor(value: Value, requires_grad: bool = False) -> Tensor:
    t = _wrap(value)
    t._rg = requires_grad
    return t
