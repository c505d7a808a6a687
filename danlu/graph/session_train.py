"""Train ops: a danlu optimizer's ``step()`` traced into a :class:`~danlu.graph.session_graph.Graph`.

``train_op(optimizer, loss)`` builds the symbolic gradients of ``loss`` with respect to the
optimizer's parameters, puts them in ``.grad``, and runs ``optimizer.step()`` under the graph's
interpreter: its in-place updates of the parameters and of its state become the op's updates,
written back when a session runs it.

PyTorch optimizers create their state on the first step, and some take another path then (SGD's
momentum buffer starts as the gradient itself). So the step is traced twice: once with empty state
(the *first step*, whose state becomes new slot variables) and once with the state held in those
slot variables (every later step). A session runs the first-step variant while the slots are
uninitialized in it, the other afterwards; :func:`global_variables_initializer` resets the slots.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..core.errors import api
from ..core.tensor import Tensor
from .ir import GraphError, Value
from .session_graph import Graph, gradients, graph_of
from .session_variables import Operation, Variable

__all__ = ["train_op", "TrainOp"]


class TrainOp(Operation):
    """The operation :func:`train_op` returns: one optimizer step over the graph's variables."""

    def __init__(self, graph: Graph, name: str, first: list, steady: list, slots: list, optimizer, var_list):
        super().__init__(graph, name, updates=steady)
        self.first = first
        self.slots = slots
        self.optimizer = optimizer
        self.var_list = var_list
        self.guards: list = []      # (getter, value, description) of hyperparameters baked into the step

    def updates_for(self, session) -> list:
        for getter, value, what in self.guards:
            now = getter()
            if now != value:
                raise GraphError(f"{self.name}: {what} is {now!r} but was {value!r} when the train op was built, "
                                 "and it is part of the graph; build a new train op after changing it (only the "
                                 "learning rate is read at every run)")
        if self.slots and not all(session._initialized(s) for s in self.slots):
            return self.first
        return self.updates


@api
def train_op(optimizer, loss: Tensor, var_list=None, name: str = "train") -> TrainOp:
    """An op that, when run, applies one step of ``optimizer`` to minimize ``loss``, as TF1's
    ``optimizer.minimize(loss)``.

    The parameters are the optimizer's (``danlu.Variable``\\ s of the graph, or eager tensors such as
    module parameters, which are then updated in place); ``var_list`` restricts the step to some of
    them. Hyperparameters (``lr``, momentum, ...) are read when the op is built; set a group's
    ``'lr'`` to a placeholder or variable to vary it while training.

    >>> import danlu as dl
    >>> from danlu.graph.session import Graph, Session, Variable, global_variables_initializer, train_op
    >>> with Graph() as g:
    ...     w = Variable([3.0], name="w")
    ...     loss = (w * w).sum()
    ...     train = train_op(dl.optim.SGD([w], lr=0.25), loss)
    ...     init = global_variables_initializer()
    >>> s = Session(g); s.run(init)
    >>> for _ in range(2):
    ...     s.run(train)
    >>> s.run(w)
    array([0.75], dtype=float32)
    """
    if not isinstance(loss, Tensor):
        raise TypeError(f"train_op: loss must be a graph tensor, got {type(loss).__name__}")
    g = graph_of(loss, "loss")
    if g is None:
        raise GraphError("train_op: loss is an eager tensor; build it inside `with danlu.Graph():` from "
                         "placeholders and variables (for eager training call loss.backward() and optimizer.step())")
    params = list(dict.fromkeys(p for group in optimizer.param_groups for p in group["params"]))
    if var_list is None:
        targets = params
    else:
        targets = list(var_list)
        ids = {id(p) for p in params}
        for p in targets:
            if id(p) not in ids:
                raise ValueError(f"train_op: var_list holds {_name(p, -1)}, which the optimizer does not optimize; "
                                 "pass it to the optimizer (its params or param_groups)")
    for i, p in enumerate(params):
        pg = graph_of(p, f"optimizer parameter {i}")
        if pg is not None and (pg is not g or not isinstance(p, Variable)):
            raise GraphError(f"train_op: optimizer parameter {i} is a computed tensor "
                             f"({'of another graph' if pg is not g else 'not a Variable'}); the parameters must "
                             "be danlu.Variables of the loss's graph or eager tensors")
    grads = gradients(loss, targets)
    if all(gr is None for gr in grads):
        raise ValueError("train_op: no gradients for any variable: loss does not depend on "
                         + ", ".join(_name(p, i) for i, p in enumerate(targets)))
    saved_state = optimizer.state
    saved_grads = [p._grad for p in params]
    n_guards = len(g.tracer.value_guards)
    try:
        with g.building():
            first, state1 = _trace_step(g, optimizer, params, targets, grads, defaultdict(dict))
            slots, state, slot_of = [], defaultdict(dict), {}
            for i, p in enumerate(params):
                for key, val in state1.get(id(p), {}).items():
                    if isinstance(val, (Value, np.ndarray)):
                        slot = _slot(g, f"{p.name if isinstance(p, Variable) else f'param{i}'}/{key}", val)
                        slots.append(slot)
                        slot_of[(id(p), key)] = slot
                        first.append((slot, val))
                        state[p][key] = slot
                    else:
                        state[p][key] = val
            steady = first
            if slots:
                steady, state2 = _trace_step(g, optimizer, params, targets, grads, state)
                for p in params:
                    for key, val in state2.get(id(p), {}).items():
                        slot = slot_of.get((id(p), key))
                        if isinstance(val, (Value, np.ndarray)) and slot is None:
                            raise GraphError(f"train_op: {type(optimizer).__name__} created state '{key}' after its "
                                             "first step; its step cannot be traced into a graph")
                        if slot is not None and val is not slot._data:
                            steady.append((slot, val))
    finally:
        optimizer.state = saved_state
        for p, gr in zip(params, saved_grads, strict=True):
            p._grad = gr
    op = TrainOp(g, g._unique(name), first, steady, slots, optimizer, targets)
    op.guards = list(g.tracer.value_guards[n_guards:])
    g._train_ops.append(op)
    return op


def _trace_step(g: Graph, optimizer, params, targets, grads, state):
    """Trace one ``optimizer.step()``: ([(parameter, new Value)], {id(param): {state key: Value/array/other}})."""
    tracer = g.tracer
    optimizer.state = state
    for p in params:
        p._grad = None
    for p, gr in zip(targets, grads, strict=True):
        p._grad = gr
    before = [p._data for p in targets]
    tracer.swaps = []
    try:
        optimizer.step()
        updates = [(p, p._data) for p, d in zip(targets, before, strict=True) if p._data is not d]
        after = {}
        for p in params:
            ent = {}
            for key, val in optimizer.state.get(p, {}).items():
                if isinstance(val, Tensor):
                    d = val._data
                    if isinstance(d, Value):
                        tracer.value_of(val)   # a value of another graph is an error here
                    ent[key] = d if isinstance(d, Value) else np.array(d)
                else:
                    ent[key] = val
            after[id(p)] = ent
    finally:
        for t, d in reversed(tracer.swaps):
            t._data = d
        tracer.swaps = None
    return updates, after


def _slot(g: Graph, name: str, like) -> Variable:
    """A non-trainable variable that holds optimizer state (not in global_variables: the train op sets it)."""
    with g:
        slot = Variable(np.zeros(like.shape, like.dtype), name=name, trainable=False)
    g._variables[:] = [v for v in g._variables if v is not slot]
    slot._rg = False
    return slot


def _name(p, i: int) -> str:
    if isinstance(p, Variable):
        return f"'{p.name}'"
    return f"param{i}" if i >= 0 else f"a tensor of shape {tuple(p.shape)}"
