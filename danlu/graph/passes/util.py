"""Helpers shared by passes: value substitution and canonical keys."""

from __future__ import annotations

from ..ir import Graph, Node, Value
from ..symbolic import SymInt


def substitute(graph: Graph, mapping: dict) -> Graph:
    """Replace every use of Value ids in ``mapping`` (id -> Value or literal) in nodes and outputs."""
    if not mapping:
        return graph

    def sub(x):
        while isinstance(x, Value) and x.id in mapping:
            x = mapping[x.id]
        return x

    new_nodes = []
    for n in graph.nodes:
        ins = tuple(sub(i) for i in n.inputs)
        if any(a is not b for a, b in zip(ins, n.inputs)):
            nn = Node(n.op, ins, n.attrs, n.outputs, n.loc)
            for o in n.outputs:
                o.producer = nn
            n = nn
        new_nodes.append(n)
    graph.nodes = new_nodes
    graph.outputs = [sub(o) for o in graph.outputs]
    return graph


def canon(x):
    """A hashable key that tells symbolic sizes apart from equal plain ints."""
    if isinstance(x, SymInt):
        return ("sym", x.expr)
    if isinstance(x, Value):
        return ("val", x.id)
    if isinstance(x, float):
        return ("f", x) if x == x else ("nan",)
    if isinstance(x, (tuple, list)):
        return tuple(canon(v) for v in x)
    if isinstance(x, dict):
        return tuple((k, canon(v)) for k, v in x.items())
    try:
        hash(x)
        return (type(x).__name__, x)
    except TypeError:
        return ("id", id(x))


def has_symbolic(attrs) -> bool:
    from ..symbolic import is_symbolic

    return any(is_symbolic(v) for v in attrs.values())
