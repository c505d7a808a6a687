"""Differentiation in graphs.

The backward graph is not written by hand: the same engine that runs eager backward runs under the
tracing interpreter, so each op's registry VJP rule emits backward nodes into the graph. This module
splits such a joint graph into a forward graph (which also returns the residuals the backward needs)
and a backward graph, and connects a compiled call to eager autograd as one tape node.
"""

from __future__ import annotations

from ..core.dispatch import _edge, state
from ..core.tape import FunctionNode
from ..core.tensor import _wrap
from .ir import Graph, Value

__all__ = ["split_forward_backward", "attach_backward"]


def split_forward_backward(joint: Graph, entry):
    cot_ids = {v.id for v in entry.cot_values}
    # nodes that depend on a cotangent are backward nodes
    tainted = set(cot_ids)
    bwd_nodes, fwd_nodes = [], []
    for n in joint.nodes:
        if any(isinstance(i, Value) and i.id in tainted for i in n.inputs):
            bwd_nodes.append(n)
            tainted.update(o.id for o in n.outputs)
        else:
            fwd_nodes.append(n)
    grad_vals = [g for g in entry.grad_values if g is not None]
    # residuals: forward-side values read by the backward (or returned as gradients directly)
    residuals, seen = [], set()
    for x in [i for n in bwd_nodes for i in n.inputs] + grad_vals:
        if isinstance(x, Value) and x.id not in tainted and x.id not in seen:
            seen.add(x.id)
            residuals.append(x)

    fwd = Graph(joint.name)
    for v, name in zip(joint.inputs, joint.input_names):
        if v.id not in cot_ids:
            fwd.inputs.append(v)
            fwd.input_names.append(name)
    fwd.nodes = fwd_nodes
    fwd_consts = {i.id for n in fwd_nodes for i in n.inputs if isinstance(i, Value)}
    for vid, arr in joint.consts.items():
        if vid in fwd_consts:
            fwd.consts[vid] = arr
            fwd.const_values[vid] = joint.const_values[vid]
    entry.residual_start = len(joint.outputs)
    fwd.outputs = list(joint.outputs) + residuals

    bwd = Graph(joint.name + "_backward")
    for k, r in enumerate(residuals):
        if r.id in joint.consts:
            bwd.consts[r.id] = joint.consts[r.id]
            bwd.const_values[r.id] = r
            continue
        bwd.inputs.append(r)
        bwd.input_names.append(f"saved{k}")
    entry.residual_inputs = [r for r in residuals if r.id not in joint.consts]
    entry.residual_index = [fwd.outputs.index(r, entry.residual_start) for r in entry.residual_inputs]
    for k, c in enumerate(entry.cot_values):
        bwd.inputs.append(c)
        bwd.input_names.append(f"grad_out{k}")
    bwd.nodes = bwd_nodes
    bwd.outputs = grad_vals
    entry.grad_slots = [None if g is None else k for k, g in
                        zip(range(len(entry.grad_values)), _positions(entry.grad_values))]
    return fwd, bwd


def _positions(vals):
    k = 0
    for v in vals:
        if v is None:
            yield None
        else:
            yield k
            k += 1


class _CompiledOp:
    """Stands in for a registry op in the tape node of a compiled call."""

    multi_out = True

    def __init__(self, entry, name):
        self.entry = entry
        self.name = f"Compiled{name}"

    def vjp(self, node, *gs):
        if state.grad_enabled:
            raise RuntimeError(
                f"{self.name}: double backward (create_graph=True) through a compiled function is not "
                "supported; differentiate the eager function instead, or compile the whole computation "
                "including its gradient")
        entry = self.entry
        res = entry.backward(*node.out_data, *[g._data for g in gs])
        return tuple(None if k is None else _wrap(res[k]) for k in entry.grad_slots)


def attach_backward(entry, leaves, outs, res) -> None:
    from .compile import resolve

    diff = [resolve(kind, ref, leaves) for kind, ref in entry.diff_in]
    if not any(t._rg for t in diff):
        return
    op = entry.__dict__.setdefault("_op", _CompiledOp(entry, entry.graph.name))
    node = FunctionNode(op, None, tuple(_edge(t) if t._rg else None for t in diff),
                        tuple((t._data.shape, t.dtype) for t in diff))
    node.out_data = tuple(res[k] for k in entry.residual_index)
    by_index = {}
    for k, (kind, v) in enumerate(entry.out_leaf_kind):
        if kind == "T":
            by_index[v] = outs[k]
    meta = []
    for j, k in enumerate(entry.diff_out_index):
        o = by_index[k]
        o._rg, o._node, o._out = True, node, j
        meta.append((o._data.shape, o.dtype))
    node.out_meta = tuple(meta)
