"""TensorFlow 1's variables and operations in a :class:`~danlu.graph.session_graph.Graph`.

A :class:`Variable` is a tensor whose data is a graph input: its value lives in each session, which
feeds it to every run that reads it. ``assign`` and friends return tensors whose computation stores
a new value when a session runs them; an :class:`Operation` (an initializer, a :func:`group`, a train
op) is run for such effects. Within one run every read sees the value from the start of the run,
and the updates are stored after it.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..core import dtypes as _dt
from ..core.creation import tensor as _tensor
from ..core.dispatch import CONVERT, apply
from ..core.errors import ShapeError, api, reraise_filtered
from ..core.tensor import Tensor, _init
from .ir import GraphError, Value
from .session_graph import Graph, _as_graph_tensor, _current_graph, _shape_str, get_default_graph, graph_of
from .symbolic import SymInt

__all__ = ["Variable", "Operation", "group", "global_variables", "trainable_variables", "variables_initializer",
           "global_variables_initializer"]


# -- variables ----------------------------------------------------------------------------------------

class Variable(Tensor):
    """A graph variable, as ``tf.Variable``: a tensor whose value lives in each Session.

    It is used in ops like any tensor (reads see the value it had when ``Session.run`` started);
    ``sess.run(var)`` reads it; ``var.assign(x)`` / ``assign_add`` / ``assign_sub`` return tensors that,
    when run, update it (to the value they return). Values start uninitialized, as in TF1: run
    ``var.initializer`` or :func:`global_variables_initializer` first. ``initial_value`` may be an array,
    a number, an eager tensor, or a graph tensor (e.g. ``danlu.randn(...)`` built in the graph, drawn
    each time the initializer runs).

    >>> import danlu as dl
    >>> from danlu.graph.session import Graph, Session, Variable, global_variables_initializer
    >>> with Graph() as g:
    ...     w = Variable([1.0, 2.0], name="w")
    ...     step = w.assign_add([0.5, 0.5])
    ...     init = global_variables_initializer()
    >>> sess = Session(g)
    >>> sess.run(init); _ = sess.run(step); sess.run(w)
    array([1.5, 2.5], dtype=float32)
    """

    def __init__(self, initial_value, name: str | None = None, trainable: bool = True, dtype=None):
        try:
            g = _current_graph("Variable")
            name = g._unique(name or "Variable")
            with g.building():
                init = _initial_value(g, initial_value, dtype, name)
            v = g.ir.add_input(init.shape, init.dtype, name)
            _init(self, v)
            if v.dtype.kind == "f":
                self._rg = True
            self.name = name
            self.graph = g
            self.trainable = bool(trainable)
            self.initial_value = init        # an ndarray, or a Value computed when the initializer runs
            self.initializer = Operation(g, f"{name}/initializer", updates=[(self, init)])
            g._variables.append(self)
            g._var_of[v.id] = self
        except Exception as e:
            reraise_filtered(e)
            raise

    def __repr__(self):
        return f"<danlu.Variable '{self.name}' shape={_shape_str(self._data.shape)} dtype={self.dtype.name}>"

    @api
    def assign(self, value, name: str | None = None) -> Tensor:
        """A tensor equal to ``value``; running it (or anything computed from it) stores it in this variable.

        >>> import danlu as dl
        >>> from danlu.graph.session import Graph, Session, Variable
        >>> with Graph() as g:
        ...     v = Variable(0.0)
        ...     a = v.assign(3.0)
        >>> Session(g).run(a)
        np.float32(3.0)
        """
        g = self.graph
        with g.building():
            t = _as_graph_tensor(g, value, self.dtype, f"{self.name}.assign")
            if tuple(t._data.shape) != tuple(self._data.shape) or any(isinstance(s, SymInt) for s in t._data.shape):
                raise ShapeError(f"{self.name}.assign: the value has shape {_shape_str(t._data.shape)} but the "
                                 f"variable has shape {_shape_str(self._data.shape)}; they must be equal (variables "
                                 "keep their shape; reshape or reduce the value first)")
            out = apply(CONVERT, t, dtype=self.dtype)   # a node of its own: its value is this assignment
        g._effects[out._data.id] = (self, out._data)
        return out

    @api
    def assign_add(self, delta, name: str | None = None) -> Tensor:
        """``assign(self + delta)``.

        >>> import danlu as dl
        >>> from danlu.graph.session import Graph, Session, Variable
        >>> with Graph() as g:
        ...     v = Variable(1.0)
        ...     inc = v.assign_add(2.0)
        >>> s = Session(g); s.run(v.initializer); s.run(inc), s.run(inc)
        (np.float32(3.0), np.float32(5.0))
        """
        with self.graph.building():
            return self.assign(self + _as_graph_tensor(self.graph, delta, self.dtype, f"{self.name}.assign_add"))

    @api
    def assign_sub(self, delta, name: str | None = None) -> Tensor:
        """``assign(self - delta)``.

        >>> import danlu as dl
        >>> from danlu.graph.session import Graph, Session, Variable
        >>> with Graph() as g:
        ...     v = Variable(1.0)
        ...     dec = v.assign_sub(0.25)
        >>> s = Session(g); s.run(v.initializer); s.run(dec)
        np.float32(0.75)
        """
        with self.graph.building():
            return self.assign(self - _as_graph_tensor(self.graph, delta, self.dtype, f"{self.name}.assign_sub"))

    def read_value(self) -> Tensor:
        return self

    value = read_value

    @api
    def load(self, value, session) -> None:
        """Set this variable's value in ``session`` directly (no graph op), as TF1's ``Variable.load``.

        >>> import danlu as dl
        >>> from danlu.graph.session import Graph, Session, Variable
        >>> with Graph() as g:
        ...     v = Variable([0.0, 0.0])
        >>> s = Session(g); v.load([1.0, 2.0], s); s.run(v)
        array([1., 2.], dtype=float32)
        """
        session._set_variable(self, value)


def _initial_value(g: Graph, value, dtype, name: str):
    """The initial value of a variable: an ndarray (copied now) or a Value of ``g`` (computed at init)."""
    if isinstance(value, Tensor) and isinstance(value._data, Value):
        if graph_of(value, f"initial value of variable '{name}'") is not g:
            g.tracer.value_of(value)   # raises the cross-graph error
        if dtype is not None and value.dtype is not _dt.as_dtype(dtype):
            value = value.to(_dt.as_dtype(dtype))
        v = value._data
        if any(isinstance(s, SymInt) for s in v.shape):
            raise ShapeError(f"Variable '{name}': the initial value has shape {_shape_str(v.shape)} with an unknown "
                             "dimension; variables need a fully known shape")
        return v
    if isinstance(value, Tensor):
        arr = value._data
        arr = arr.astype(_dt.as_dtype(dtype).np) if dtype is not None else arr.copy()
    else:
        arr = _tensor(value, dtype=None if dtype is None else _dt.as_dtype(dtype))._data
    return np.array(arr, order="C")


# -- operations ---------------------------------------------------------------------------------

_op_ids = itertools.count()


class Operation:
    """Something to run for its effects (``Session.run`` returns None for it), as ``tf.Operation``.

    ``updates``: (variable or captured tensor, Value or ndarray) pairs stored when it runs; ``deps``:
    operations and tensors that run with it; ``resets``: variables it marks uninitialized (optimizer
    slots reset by :func:`global_variables_initializer`).
    """

    def __init__(self, graph: Graph, name: str, updates=(), deps=(), resets=()):
        self.graph = graph
        self.name = name
        self.updates = list(updates)
        self.deps = list(deps)
        self.resets = list(resets)
        self.id = next(_op_ids)

    def __repr__(self):
        return f"<danlu Operation '{self.name}'>"

    def run(self, session, feed_dict=None) -> None:
        """``session.run(self, feed_dict)``."""
        session.run(self, feed_dict)

    def updates_for(self, session) -> list:
        return self.updates


@api
def group(*inputs, name: str = "group") -> Operation:
    """One operation that runs all of ``inputs`` (operations and tensors), as ``tf.group``.

    >>> import danlu as dl
    >>> from danlu.graph.session import Graph, Session, Variable, group
    >>> with Graph() as g:
    ...     a, b = Variable(1.0), Variable(2.0)
    ...     both = group(a.initializer, b.initializer)
    >>> s = Session(g); s.run(both); s.run([a, b])
    [np.float32(1.0), np.float32(2.0)]
    """
    flat = []
    for x in inputs:
        flat.extend(x if isinstance(x, (list, tuple)) else [x])
    g = None
    for x in flat:
        xg = x.graph if isinstance(x, Operation) else graph_of(x, "group input") if isinstance(x, Tensor) else None
        if xg is None:
            raise TypeError(f"group: expected operations and graph tensors, got {type(x).__name__}")
        if g is not None and xg is not g:
            raise GraphError(f"group: inputs come from different graphs ('{g.name}' and '{xg.name}')")
        g = xg
    g = g or get_default_graph()
    return Operation(g, g._unique(name), deps=flat)


def global_variables(graph: Graph | None = None) -> list:
    """Every variable of the (default) graph, in creation order (optimizer slots are not included).

    >>> import danlu as dl
    >>> from danlu.graph.session import Graph, Variable, global_variables
    >>> with Graph():
    ...     _ = Variable(1.0, name="a"); _ = Variable(2.0, name="b", trainable=False)
    ...     [v.name for v in global_variables()]
    ['a', 'b']
    """
    return (graph or get_default_graph()).global_variables()


def trainable_variables(graph: Graph | None = None) -> list:
    """The variables created with ``trainable=True`` in the (default) graph.

    >>> import danlu as dl
    >>> from danlu.graph.session import Graph, Variable, trainable_variables
    >>> with Graph():
    ...     _ = Variable(1.0, name="a"); _ = Variable(2.0, name="b", trainable=False)
    ...     [v.name for v in trainable_variables()]
    ['a']
    """
    return (graph or get_default_graph()).trainable_variables()


@api
def variables_initializer(var_list, name: str = "init") -> Operation:
    """An operation that (re)initializes the variables in ``var_list``.

    >>> import danlu as dl
    >>> from danlu.graph.session import Graph, Session, Variable, variables_initializer
    >>> with Graph() as g:
    ...     a = Variable(1.0)
    ...     init = variables_initializer([a])
    >>> s = Session(g); s.run(init); s.run(a)
    np.float32(1.0)
    """
    var_list = list(var_list)
    for v in var_list:
        if not isinstance(v, Variable):
            raise TypeError(f"variables_initializer: expected danlu Variables, got {type(v).__name__}")
    g = var_list[0].graph if var_list else get_default_graph()
    return Operation(g, g._unique(name), deps=[v.initializer for v in var_list])


@api
def global_variables_initializer() -> Operation:
    """An operation that initializes every variable of the default graph created so far, as TF1's.

    It also resets the state (slots) of the optimizers' train ops built so far, so running it again
    restarts training from the initial values.

    >>> import danlu as dl
    >>> from danlu.graph.session import Graph, Session, Variable, global_variables_initializer
    >>> with Graph() as g:
    ...     w = Variable([[1.0, 2.0]])
    ...     init = global_variables_initializer()
    >>> s = Session(g); s.run(init); s.run(w)
    array([[1., 2.]], dtype=float32)
    """
    g = get_default_graph()
    slots = [s for op in g._train_ops for s in op.slots]
    return Operation(g, g._unique("init"), deps=[v.initializer for v in g._variables], resets=slots)
