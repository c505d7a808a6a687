"""Algebraic simplification, driven by the rules ops register (``op.extra["simplify"]``).

A rule ``simplify(ins, attrs, out, producer)`` returns None (no change), an existing Value or literal
that equals the node's output, or a list of ``(op, inputs, attrs)`` to emit instead, whose last
entry produces the output (``None`` among a step's inputs stands for the previous step's output).
``producer(v)`` gives the node that computed ``v`` (or None). The pass
knows no op by name: x*1, x+0, double negation, pow(x, 3) -> x*x*x, chained reshapes and permutes
and the like are each op's own rules.
"""

from __future__ import annotations

from ..ir import Graph, Node, Value
from .util import substitute

__all__ = ["algebraic_simplification", "same_aval", "is_const"]


def same_aval(out: Value, x) -> bool:
    return isinstance(x, Value) and tuple(out.shape) == tuple(x.shape) and out.dtype == x.dtype


def is_const(v, c) -> bool:
    return not isinstance(v, (Value, bool)) and isinstance(v, (int, float)) and v == c


def algebraic_simplification(graph: Graph) -> Graph:
    mapping: dict = {}
    producer: dict = {}
    new_nodes = []

    def resolve(x):
        while isinstance(x, Value) and x.id in mapping:
            x = mapping[x.id]
        return x

    def emit(node):
        for o in node.outputs:
            o.producer = node
            producer[o.id] = node
        new_nodes.append(node)

    for n in graph.nodes:
        ins = tuple(resolve(i) for i in n.inputs)
        rule = n.op.extra.get("simplify") if hasattr(n.op, "extra") else None
        res = None
        if rule is not None and len(n.outputs) == 1:
            res = rule(ins, n.attrs, n.outputs[0], lambda v: producer.get(v.id) if isinstance(v, Value) else None)
        if res is None:
            emit(Node(n.op, ins, n.attrs, n.outputs, n.loc) if ins != n.inputs else n)
        elif isinstance(res, list):
            out = n.outputs[0]
            prev = None
            for k, (op, rins, rattrs) in enumerate(res):
                o = out if k == len(res) - 1 else Value(out.shape, out.dtype)
                emit(Node(op, tuple(prev if i is None else resolve(i) for i in rins), rattrs, (o,), n.loc))
                prev = o
        else:
            mapping[n.outputs[0].id] = res
    graph.nodes = new_nodes
    return substitute(graph, mapping)
