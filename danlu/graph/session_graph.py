"""TensorFlow 1's graph-building half: a user-facing :class:`Graph`, placeholders and symbolic
gradients, on top of danlu's tracing interpreter (variables are in ``session_variables``).

Inside ``with g:`` the graph's interpreter (a :class:`~danlu.graph.tracer.Tracer`) is the current
interpreter of the thread, so every danlu op on a placeholder, a variable, or any other tensor emits
a node into ``g``'s IR graph instead of running. Nothing runs until :class:`~danlu.graph.session.Session`
executes the part of the graph that some fetches need.

Tensors that are not part of the graph (eager tensors, ``nn.Module`` parameters) are *captured*:
they become graph inputs read live at every ``Session.run``, as ``danlu.compile`` does.

Unknown dimensions (``None`` in a placeholder's shape) are symbolic sizes (SymInts), so one compiled
subgraph serves every size. While building, a symbolic size behaves as the example value
``SYMBOLIC_HINT``, and each comparison made with it is recorded as a guard: by the node being built
when the comparison is inside danlu (an op's shape rule), graph-wide when it is in the user's code.
A run whose sizes break a shape-rule guard has its subgraph re-inferred for those sizes (and compiled
again if a shape differs); a run that breaks a guard of the user's code is refused, since the
Python decision cannot be taken again.
"""

from __future__ import annotations

import re
import sys
import threading
import weakref

import numpy as np

from ..core import dispatch
from ..core import dtypes as _dt
from ..core.errors import DTypeError, GraphBreakError, ShapeError, _is_internal, api, fmt_shape, user_frame
from ..core.tensor import Tensor, _wrap
from . import symbolic as _sym
from .ir import Graph as IRGraph
from .ir import GraphError, Value
from .symbolic import ShapeEnv, SymInt
from .tracer import Tracer

__all__ = ["Graph", "get_default_graph", "placeholder", "gradients", "SYMBOLIC_HINT"]

SYMBOLIC_HINT = 2   # example value of a None dimension while building (not 0 or 1: those are special cases)

_GRAPHS: weakref.WeakValueDictionary[int, Graph] = weakref.WeakValueDictionary()  # id(IR graph) -> Graph
_local = threading.local()


def _stack() -> list:
    s = getattr(_local, "stack", None)
    if s is None:
        s = _local.stack = []
    return s


_global_default: list = [None]


def get_default_graph() -> Graph:
    """The innermost graph entered in this thread (``with g:``), else the process-wide default graph.

    >>> import danlu as dl
    >>> from danlu.graph.session import Graph, get_default_graph
    >>> with Graph() as g:
    ...     get_default_graph() is g
    True
    """
    s = _stack()
    if s:
        return s[-1]
    if _global_default[0] is None:
        _global_default[0] = Graph("default")
    return _global_default[0]


def _current_graph(what: str) -> Graph:
    s = _stack()
    if not s:
        raise GraphError(f"{what} must be created inside a graph: `with danlu.Graph() as g:` (outside a graph "
                         "danlu runs eagerly, so there is nothing to hold the symbolic tensor)")
    return s[-1]


def graph_of(x, what: str = "tensor") -> Graph | None:
    """The :class:`Graph` a symbolic tensor belongs to, or None for an eager tensor."""
    d = x._data if isinstance(x, Tensor) else x
    if not isinstance(d, Value):
        return None
    g = _GRAPHS.get(d.graph_id)
    if g is None:
        raise GraphError(f"{what} ({d!r}) belongs to a graph traced by danlu.compile or a control-flow body, not "
                         "to a danlu.Graph; only tensors built inside `with danlu.Graph():` can be used here")
    return g


def _ident(name: str) -> str:
    s = re.sub(r"\W", "_", name)
    return s if s and not s[0].isdigit() else "t_" + s


def _shape_str(shape) -> str:
    return "(" + ", ".join("None" if isinstance(s, SymInt) else str(s) for s in shape) + ("," if len(shape) == 1
                                                                                           else "") + ")"


class _ShapeEnv(ShapeEnv):
    """Sorts the guards on unknown sizes by who made them. A comparison inside danlu (an op's shape rule)
    belongs to the node being built (``pending`` until then): a run needs it only if it runs that node.
    A comparison in the user's code may have steered any later part of the graph, so ``user_guards``
    apply to every run that mentions its sizes and runs a node built after it."""

    def __init__(self, ir: IRGraph):
        super().__init__()
        self.ir = ir
        self.pending: set = set()
        self.user_guards: dict = {}   # guard -> number of nodes built when it was first made

    def guard(self, a, opname, b, result: bool) -> None:
        super().guard(a, opname, b, result)
        key = (_sym.expr_of(a), opname, _sym.expr_of(b), result)
        caller = sys._getframe(2)   # 0: here, 1: SymInt's comparison, 2: the code that compared
        if _is_internal(caller.f_code.co_filename):
            self.pending.add(key)
        elif key not in self.user_guards:
            self.user_guards[key] = len(self.ir.nodes)


# -- the interpreter that builds a Graph -------------------------------------------------------------

class _Builder(Tracer):
    """The tracing interpreter of one :class:`Graph`.

    Unlike ``danlu.compile``'s tracer it never swaps an eager tensor's data for a graph value: graphs
    live long and the tensors stay usable eagerly. A captured tensor is remembered by identity (and
    kept alive) and read live at each run. In-place ops are functionalized on intermediate values;
    on placeholders, variables and eager tensors they are errors, except while an optimizer step is
    traced (``collecting``), where every rebinding is undone afterwards and read back as an update.
    """

    def __init__(self, owner: Graph):
        super().__init__(owner.ir)
        self.owner = owner
        self.captures: dict[int, tuple] = {}        # id(tensor) -> (tensor, Value)
        self.capture_of: dict[int, Tensor] = {}     # Value id -> tensor
        self.swaps: list | None = None              # [(tensor, original data)] while collecting
        self.live_of: dict[int, tuple] = {}         # Value id -> (getter, dtype): a number read at each run
        self.node_guards: dict[int, tuple] = {}     # id(node) -> guards on unknown sizes made while building it

    def value_of(self, t: Tensor) -> Value:
        d = t._data
        if isinstance(d, Value):
            if d.graph_id != id(self.graph):
                other = _GRAPHS.get(d.graph_id)
                where = f"graph '{other.name}'" if other is not None else "a danlu.compile trace"
                raise GraphError(f"a tensor from {where} ({d!r}) was used in graph '{self.owner.name}'; tensors "
                                 "of different graphs cannot be combined. Build the whole computation inside "
                                 "one `with graph:` block")
            return d
        ent = self.captures.get(id(t))
        if ent is None:
            v = self.graph.add_input(d.shape, d.dtype, self.owner._unique("captured"))
            ent = self.captures[id(t)] = (t, v)
            self.capture_of[v.id] = t
        return ent[1]

    def run(self, op, args, attrs, avals):
        ins = [self.value_of(a) if isinstance(a, Tensor) else a for a in args]
        outs = avals if op.multi_out else (avals,)
        for av in outs:
            if any(s is None for s in av.shape):
                raise GraphBreakError(
                    f"{op.name}: its output shape depends on the data ({av}), so it cannot be a node of graph "
                    f"'{self.owner.name}'. Compute it eagerly (outside the graph) and feed the result, or "
                    "express it with fixed-shape ops (e.g. a mask multiply instead of boolean indexing).")
        vals = self.graph.add_node(op, ins, attrs, outs, loc=user_frame())
        env = self.owner.shape_env
        if env.pending:
            self.node_guards[id(vals[0].producer)] = tuple(env.pending)
            env.pending.clear()
        return vals if op.multi_out else vals[0]

    def write_inplace(self, target: Tensor, res: Tensor) -> None:
        if target._base is not None:
            raise GraphBreakError(
                "in-place modification of a view is not supported in a danlu.Graph (the base would not see "
                "it); write the update out of place, e.g. x[0] = x[0] + 1 instead of x[0].add_(1)")
        if self.swaps is not None:
            self.value_of(target)
            self.swaps.append((target, target._data))
            target._data = res._data
            return
        d = target._data
        if not isinstance(d, Value):
            raise GraphError(
                f"an in-place op on an eager tensor ({tuple(d.shape)} {d.dtype}) inside graph '{self.owner.name}' "
                "would change it when the graph is built, not when it runs. Hold mutable state in a "
                "danlu.Variable and update it with var.assign(...), or modify the tensor outside the graph")
        kind = self.owner._kind_of(d)
        if kind is not None:
            raise GraphError(
                f"in-place op on {kind}: graph inputs are not modified in place. "
                + ("Use var.assign(...) / var.assign_add(...), which return an op to run"
                   if kind.startswith("variable") else "Compute a new tensor instead"))
        self.value_of(target)
        target._data = res._data

    def live_scalar(self, getter, name: str, dtype=None) -> Tensor:
        """A 0-d graph input fed with ``getter()`` at every run (an optimizer's learning rate)."""
        v = self.graph.add_input((), np.dtype(dtype or np.float64), self.owner._unique(name))
        self.live_of[v.id] = (getter, v.dtype)
        return _wrap(v)

    def guard_value(self, getter, value, description: str) -> None:
        """A Python value baked into the graph; train ops check it is unchanged when they run."""
        self.value_guards.append((getter, value, description))

    def on_grad_write(self, owner: Tensor) -> None:
        pass

    def on_grad_read(self, owner: Tensor, g) -> None:
        pass  # the optimizer step reads the symbolic gradients train_op put in .grad

    def note_grad(self, var: Tensor) -> None:
        raise GraphError("backward() inside a danlu.Graph: gradients of a graph are symbolic tensors; use "
                         "danlu.gradients(loss, vars) or train_op(optimizer, loss) instead")


# -- the user-facing graph -------------------------------------------------------------------------

class Graph:
    """A TensorFlow-1-style graph: ``with g:`` makes it the default graph of the thread, and danlu ops run
    inside the block build its nodes. Execute it with :class:`~danlu.graph.session.Session`.

    ``g.ir`` is the underlying :class:`danlu.graph.ir.Graph` (every node built so far); ``str(g)``
    prints it. ``g.compiles`` counts the subgraphs compiled for sessions.

    >>> import danlu as dl
    >>> from danlu.graph.session import Graph, Session, placeholder
    >>> with Graph() as g:
    ...     x = placeholder((None, 2), name="x")
    ...     y = (x * 2).sum(1)
    >>> Session(g).run(y, {x: [[1.0, 2.0], [3.0, 4.0]]})
    array([ 6., 14.], dtype=float32)
    """

    def __init__(self, name: str = "graph"):
        self.name = name
        self.ir = IRGraph(name)
        self.shape_env = _ShapeEnv(self.ir)
        self.tracer = _Builder(self)
        self.compiles = 0
        self._names: set[str] = set()
        self._idents: set[str] = set()
        self._placeholders: dict[int, tuple] = {}   # Value id -> (name, tensor)
        self._variables: list = []
        self._var_of: dict[int, object] = {}     # Value id of a variable read -> its Variable
        self._effects: dict[int, tuple] = {}       # Value id -> (Variable, Value): running it assigns
        self._train_ops: list = []
        self._cache: dict = {}
        self._lock = threading.RLock()
        self._entered: list = []
        _GRAPHS[id(self.ir)] = self

    def __repr__(self):
        return (f"<danlu Graph '{self.name}': {len(self._placeholders)} placeholders, {len(self._variables)} "
                f"variables, {len(self.ir.nodes)} nodes>")

    def __str__(self):
        return str(self.ir)

    # -- default graph / current interpreter ---------------------------------------------------
    def __enter__(self) -> Graph:
        _stack().append(self)
        self._entered.append((dispatch.push_interpreter(self.tracer), _sym._CURRENT[0]))
        _sym._CURRENT[0] = self.shape_env
        return self

    def __exit__(self, *exc):
        prev, prev_env = self._entered.pop()
        _sym._CURRENT[0] = prev_env
        dispatch.pop_interpreter(prev)
        _stack().pop()
        return False

    def as_default(self) -> Graph:
        """TF1 spelling: ``with g.as_default():`` is ``with g:``."""
        return self

    def building(self) -> _Building:
        """A context in which this graph's interpreter is current (re-entrant; used by gradients, assign)."""
        return _Building(self)

    # -- names --------------------------------------------------------------------------------------
    def _unique(self, name: str) -> str:
        base, k = name, 0
        while name in self._names or _ident(name) in self._idents:
            k += 1
            name = f"{base}_{k}"
        self._names.add(name)
        self._idents.add(_ident(name))
        return name

    def _kind_of(self, v: Value) -> str | None:
        if v.id in self._placeholders:
            return f"placeholder '{self._placeholders[v.id][0]}'"
        if v.id in self._var_of:
            return f"variable '{self._var_of[v.id].name}'"
        return None

    # -- collections ----------------------------------------------------------------------------------
    def global_variables(self) -> list:
        return list(self._variables)

    def trainable_variables(self) -> list:
        return [v for v in self._variables if v.trainable]

    def placeholders(self) -> list:
        return [t for _n, t in self._placeholders.values()]


class _Building:
    __slots__ = ("g", "prev", "env", "active")

    def __init__(self, g: Graph):
        self.g = g

    def __enter__(self):
        self.active = dispatch.state.interp is not self.g.tracer
        if self.active:
            self.prev = dispatch.push_interpreter(self.g.tracer)
            self.env, _sym._CURRENT[0] = _sym._CURRENT[0], self.g.shape_env
        return self.g

    def __exit__(self, *exc):
        if self.active:
            _sym._CURRENT[0] = self.env
            dispatch.pop_interpreter(self.prev)
        return False


# -- placeholders ---------------------------------------------------------------------------------

@api
def placeholder(shape, dtype=None, name: str | None = None) -> Tensor:
    """A graph input that ``Session.run`` must be fed (``feed_dict={ph: array}``), as ``tf.placeholder``.

    ``None`` in ``shape`` is an unknown dimension: one compiled subgraph serves every size. Floating
    placeholders require grad, so :func:`gradients` can differentiate with respect to them.

    >>> import danlu as dl
    >>> from danlu.graph.session import Graph, placeholder
    >>> with Graph():
    ...     x = placeholder((None, 784), name="x")
    >>> x.shape, x.dtype
    (danlu.Size([x_dim0, 784]), danlu.float32)
    """
    g = _current_graph("placeholder")
    if shape is None:
        raise ShapeError("placeholder: a shape is required (use None for unknown dimensions, e.g. (None, 784)); "
                         "placeholders of unknown rank are not supported")
    if isinstance(shape, int):
        shape = (shape,)
    dt = _dt.as_dtype(dtype)
    name = g._unique(name or "Placeholder")
    dims = []
    for d, s in enumerate(tuple(shape)):
        if s is None or (isinstance(s, int) and s == -1):
            sym = g._unique(f"{_ident(name)}_dim{d}")
            dims.append(SymInt(SYMBOLIC_HINT, _ident(sym)))
        elif isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0:
            dims.append(int(s))
        else:
            raise ShapeError(f"placeholder '{name}': dimension {d} of shape {tuple(shape)} must be a size >= 0 or "
                             f"None (unknown), got {s!r}")
    v = g.ir.add_input(tuple(dims), dt.np, name)
    t = _wrap(v)
    if dt.is_floating_point:
        t._rg = True
    g._placeholders[v.id] = (name, t)
    return t


def _as_graph_tensor(g: Graph, value, dtype, what: str) -> Tensor:
    """``value`` as a tensor of ``g`` (a constant for arrays and numbers, cast to ``dtype``); its dtype
    must be castable to ``dtype`` without changing kind (float to int is refused)."""
    if isinstance(value, Tensor):
        t = value
        if isinstance(t._data, Value):
            g.tracer.value_of(t)
        else:
            t = _wrap(g.ir.add_const(np.array(t._data)))
        src = t._data.dtype
    else:
        arr = np.asarray(value)
        src = arr.dtype
        if np.can_cast(src, dtype.np, "same_kind"):
            arr = arr.astype(dtype.np)
        t = _wrap(g.ir.add_const(np.array(arr, order="C")))
    if src != dtype.np and not np.can_cast(src, dtype.np, "same_kind"):
        name = _dt._FROM_NP[src].name if src in _dt._FROM_NP else str(src)
        raise DTypeError(f"{what}: a value of dtype {name} cannot be used as {dtype.name} (that would change "
                         "its kind, e.g. float to int); convert it explicitly with .to(...)")
    return t


# -- gradients ------------------------------------------------------------------------------------------

@api
def gradients(ys, xs, grad_ys=None) -> list:
    """Symbolic gradients of ``sum(ys)`` with respect to each of ``xs``, as ``tf.gradients``.

    Built by the same engine as eager autograd (each op's VJP rule runs under the graph's
    interpreter), so the results are graph tensors; they can be differentiated again. Returns a
    list aligned with ``xs``, with None where an x does not affect ys. ``grad_ys`` weights each y
    (default: ones).

    >>> import danlu as dl
    >>> from danlu.graph.session import Graph, Session, placeholder, gradients
    >>> with Graph() as g:
    ...     x = placeholder((3,), name="x")
    ...     (dx,) = gradients((x ** 3).sum(), [x])
    >>> Session(g).run(dx, {x: [1.0, 2.0, 3.0]})
    array([ 3., 12., 27.], dtype=float32)
    """
    from ..autograd.engine import grad as _grad
    from ..ops.elementwise import ones_like

    ys = [ys] if isinstance(ys, Tensor) else list(ys)
    xs = [xs] if isinstance(xs, Tensor) else list(xs)
    if grad_ys is not None:
        grad_ys = [grad_ys] if not isinstance(grad_ys, (list, tuple)) else list(grad_ys)
        if len(grad_ys) != len(ys):
            raise ValueError(f"gradients: {len(ys)} ys but {len(grad_ys)} grad_ys")
    g = None
    for i, y in enumerate(ys):
        if not isinstance(y, Tensor):
            raise TypeError(f"gradients: ys[{i}] is a {type(y).__name__}, expected a graph tensor")
        yg = graph_of(y, f"ys[{i}]")
        if yg is None:
            raise GraphError(f"gradients: ys[{i}] is an eager tensor, not a graph tensor; use "
                             "danlu.autograd.grad for eager tensors")
        if g is not None and yg is not g:
            raise GraphError("gradients: ys come from different graphs")
        g = yg
    if g is None:
        return [None] * len(xs)
    for i, x in enumerate(xs):
        if not isinstance(x, Tensor):
            raise TypeError(f"gradients: xs[{i}] is a {type(x).__name__}, expected a tensor")
    with g.building():
        outs, cots = [], []
        for i, y in enumerate(ys):
            if not y._rg:
                continue   # does not depend on anything differentiable: contributes nothing
            gy = grad_ys[i] if grad_ys is not None else None
            if gy is None:
                gy = ones_like(y)
            else:
                gy = _as_graph_tensor(g, gy, y.dtype, f"gradients: grad_ys[{i}]")
                gy = gy if gy.dtype is y.dtype else gy.to(y.dtype)
            outs.append(y)
            cots.append(gy)
        wrt = [k for k, x in enumerate(xs) if x._rg]
        result = [None] * len(xs)
        if not outs or not wrt:
            return result
        prev = dispatch.state.grad_enabled
        dispatch.state.grad_enabled = True
        try:
            grads = _grad(outs, [xs[k] for k in wrt], cots, retain_graph=True, create_graph=True, allow_unused=True)
        finally:
            dispatch.state.grad_enabled = prev
        for k, gr in zip(wrt, grads, strict=True):
            result[k] = gr
    return result


def describe_value(g: Graph, v: Value) -> str:
    """'placeholder 'x' float32(None, 784)' and the like, for error messages."""
    kind = g._kind_of(v)
    dt = _dt._FROM_NP[v.dtype].name
    if kind is not None:
        return f"{kind} ({dt}{_shape_str(v.shape)})"
    if v.producer is not None:
        from ..core.errors import format_location

        loc = v.producer.loc
        where = f", built at {format_location(loc).splitlines()[0]}" if loc else ""
        return f"tensor {dt}{fmt_shape(v.shape)} from op '{v.producer.op.name}'{where}"
    return f"tensor {dt}{fmt_shape(v.shape)}"
