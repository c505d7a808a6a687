"""Dead-code elimination: drop nodes whose outputs nothing reads (random ops included: an unused
sample changes no result, only the generator's position, which PyTorch does not promise either)."""

from __future__ import annotations

from ..ir import Graph, Value

__all__ = ["dead_code_elimination"]


def dead_code_elimination(graph: Graph) -> Graph:
    live = {o.id for o in graph.outputs if isinstance(o, Value)}
    keep = []
    for n in reversed(graph.nodes):
        if any(o.id in live for o in n.outputs):
            keep.append(n)
            for i in n.inputs:
                if isinstance(i, Value):
                    live.add(i.id)
    graph.nodes = keep[::-1]
    for vid in [v for v in graph.consts if v not in live]:
        del graph.consts[vid]
        del graph.const_values[vid]
    return graph
