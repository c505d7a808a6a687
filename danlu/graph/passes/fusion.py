"""Elementwise fusion: chains of ops flagged ``elementwise`` in the registry, over one iteration
space, become one fused node whose kernel runs them chunk by chunk (see ``danlu.graph.fused``).
The pass reads registry flags only, never op names."""

from __future__ import annotations

from ...core.registry import AVal
from ...core import dtypes as _dt
from ..fused import FusedOp
from ..ir import Graph, Node, Value
from ..symbolic import SymInt
from .util import has_symbolic

__all__ = ["elementwise_fusion"]

MIN_GROUP = 2


def _fusable(n: Node) -> bool:
    op = n.op
    return (getattr(op, "elementwise", False) and not getattr(op, "random", False)
            and len(n.outputs) == 1 and not isinstance(op, FusedOp) and "cpu" in getattr(op, "impl", {})
            # a symbolic size used as a number must be evaluated by the generated code, not frozen
            and not any(isinstance(i, SymInt) for i in n.inputs) and not has_symbolic(n.attrs))


def elementwise_fusion(graph: Graph) -> Graph:
    users: dict = {}
    for k, n in enumerate(graph.nodes):
        for i in n.inputs:
            if isinstance(i, Value):
                users.setdefault(i.id, []).append(k)
    out_ids = {o.id for o in graph.outputs if isinstance(o, Value)}

    groups = []           # lists of node indices
    group_of = {}         # value id -> group index (for values produced inside an open group)
    current = None
    start = 0
    produced_at = {}
    for k, n in enumerate(graph.nodes):
        for o in n.outputs:
            produced_at[o.id] = k
    for k, n in enumerate(graph.nodes):
        if not _fusable(n):
            current = None
            continue
        shape = tuple(n.outputs[0].shape)
        ok = False
        if current is not None and tuple(graph.nodes[groups[current][0]].outputs[0].shape) == shape:
            # every input comes from inside the group or from before it started (no cycles)
            ok = all(not isinstance(i, Value) or group_of.get(i.id) == current or produced_at.get(i.id, -1) < start
                     for i in n.inputs)
        if not ok:
            groups.append([k])
            current = len(groups) - 1
            start = k
        else:
            groups[current].append(k)
        group_of[n.outputs[0].id] = current

    replace = {}
    for g in groups:
        if len(g) < MIN_GROUP:
            continue
        nodes = [graph.nodes[k] for k in g]
        inside = {n.outputs[0].id: j for j, n in enumerate(nodes)}
        ext, ext_index, program = [], {}, []
        for n in nodes:
            refs = []
            for i in n.inputs:
                if isinstance(i, Value) and i.id in inside:
                    refs.append(("t", inside[i.id]))
                elif isinstance(i, Value):
                    if i.id not in ext_index:
                        ext_index[i.id] = len(ext)
                        ext.append(i)
                    refs.append(("in", ext_index[i.id]))
                else:
                    refs.append(("lit", i))
            program.append((n.op, tuple(refs), dict(n.attrs), n.outputs[0].dtype))
        last = g[-1]
        outs = [j for j, n in enumerate(nodes)
                if n.outputs[0].id in out_ids or any(u > last for u in users.get(n.outputs[0].id, ()))]
        if not outs:
            continue
        out_vals = [nodes[j].outputs[0] for j in outs]
        avals = [AVal(v.shape, _dt._FROM_NP[v.dtype]) for v in out_vals]
        op = FusedOp(program, outs, avals, name=f"fused{len(replace)}")
        fused = Node(op, tuple(ext), {}, tuple(out_vals), nodes[-1].loc)
        for i, v in enumerate(out_vals):
            v.producer, v.index = fused, i
        replace[g[0]] = fused
        for k in g[1:]:
            replace[k] = None
    if not replace:
        return graph
    new = []
    for k, n in enumerate(graph.nodes):
        if k in replace:
            if replace[k] is not None:
                new.append(replace[k])
        else:
            new.append(n)
    graph.nodes = new
    return graph
