"""Graph passes: named functions Graph -> Graph in one explicit pipeline.

``DANLU_DUMP_GRAPH=dir`` writes the graph after each pass to ``dir/<graph>.<k>.<pass>.txt``.
"""

from __future__ import annotations

import os

from ..ir import Graph
from .cse import common_subexpression_elimination
from .dce import dead_code_elimination
from .fold import constant_folding
from .fusion import elementwise_fusion
from .memory import memory_planning
from .simplify import algebraic_simplification

__all__ = ["PIPELINE", "run_pipeline"]

PIPELINE = [
    dead_code_elimination,
    algebraic_simplification,
    constant_folding,
    common_subexpression_elimination,
    dead_code_elimination,
    elementwise_fusion,
    memory_planning,
]


def run_pipeline(graph: Graph, pipeline=None) -> Graph:
    dump = os.environ.get("DANLU_DUMP_GRAPH")
    if dump:
        os.makedirs(dump, exist_ok=True)
        _dump(dump, graph, 0, "traced")
    for k, p in enumerate(pipeline if pipeline is not None else PIPELINE, 1):
        graph = p(graph)
        if dump:
            _dump(dump, graph, k, p.__name__)
    graph.lint()
    return graph


def _dump(d, graph, k, name):
    with open(os.path.join(d, f"{graph.name}.{k:02d}.{name}.txt"), "w") as f:
        f.write(str(graph) + "\n")
