"""Constant folding: nodes whose inputs are all constants (or literals) are evaluated once, at
compile time, and become constants. Random ops, ops with symbolic sizes and results larger than
``MAX_ELEMENTS`` are left alone (a huge folded constant costs memory for nothing)."""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Value
from .util import has_symbolic

__all__ = ["constant_folding", "MAX_ELEMENTS"]

MAX_ELEMENTS = 1 << 16


def constant_folding(graph: Graph) -> Graph:
    keep = []
    for n in graph.nodes:
        foldable = (not getattr(n.op, "random", True) and getattr(n.op, "impl", None)
                    and all(not isinstance(i, Value) or i.id in graph.consts for i in n.inputs)
                    and not has_symbolic(n.attrs)
                    and all(o.size <= MAX_ELEMENTS for o in n.outputs))
        if not foldable:
            keep.append(n)
            continue
        args = [graph.consts[i.id] if isinstance(i, Value) else i for i in n.inputs]
        res = n.op.impl["cpu"](*args, **n.attrs)
        res = res if n.op.multi_out else (res,)
        for o, r in zip(n.outputs, res):
            r = np.asarray(r)
            r.flags.writeable = False  # shared by every call: nothing may write into it
            o.producer = None
            graph.consts[o.id] = r
            graph.const_values[o.id] = o
    graph.nodes = keep
    return graph
