"""Common-subexpression elimination: a node equal to an earlier one (same op, inputs and attrs) is
dropped and its outputs replaced. Random ops are never merged (two samples are two samples)."""

from __future__ import annotations

from ..ir import Graph
from .util import canon, substitute

__all__ = ["common_subexpression_elimination"]


def common_subexpression_elimination(graph: Graph) -> Graph:
    seen: dict = {}
    mapping: dict = {}
    keep = []
    for n in graph.nodes:
        ins = tuple(mapping.get(i.id, i) if hasattr(i, "id") else i for i in n.inputs)
        if getattr(n.op, "random", False) or not getattr(n.op, "name", None):
            keep.append(n)
            continue
        key = (n.op.name, canon(ins), canon(n.attrs))
        prev = seen.get(key)
        if prev is not None:
            for a, b in zip(n.outputs, prev.outputs):
                mapping[a.id] = b
            continue
        seen[key] = n
        keep.append(n)
    graph.nodes = keep
    return substitute(graph, mapping)
