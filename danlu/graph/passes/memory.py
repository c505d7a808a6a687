"""Memory planning: which node writes its result into which existing buffer, and the peak.

Storage: a value and its views (outputs of ops flagged ``view``) share one buffer. A buffer is live
from its definition to the last use of any of its values; graph inputs and constants are never
written. For each node whose kernel accepts ``out=`` (a NumPy ufunc, or a kernel that declares
``extra["out"]``), the planner gives its output a dead buffer of the same shape and dtype: one that
died earlier (reuse), or, for elementwise ops, one of its own inputs that dies at this node
(in-place). The plan is computed per graph and reported by ``graph.memory_plan()``.

Donation: ``graph.meta["donate"]`` maps a graph input's value id to the index of the graph output
that the caller will copy into that input's array after the call (a parameter or optimizer buffer a
compiled training step updates in place). The node computing such an output writes it straight into
the input's buffer when nothing reads the input afterwards (at the node itself only elementwise, index
for index), so the update needs neither a fresh buffer nor the copy back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import Graph, Value
from .util import canon

__all__ = ["MemoryPlan", "plan_memory", "memory_planning"]


@dataclass
class MemoryPlan:
    assign: dict = field(default_factory=dict)      # value id -> donor value id (write into its buffer)
    inplace: set = field(default_factory=set)       # value ids computed in place over an input
    donated: dict = field(default_factory=dict)     # output value id -> graph input value id it overwrites
    peak_bytes: int = 0                             # intermediates, with the plan
    peak_bytes_unplanned: int = 0                   # every result in a fresh buffer, freed after last use
    buffers: int = 0                                # fresh allocations with the plan
    buffers_unplanned: int = 0

    def __str__(self):
        return (f"MemoryPlan(peak {self.peak_bytes / 1e6:.3f} MB with reuse vs "
                f"{self.peak_bytes_unplanned / 1e6:.3f} MB without; {self.buffers} allocations vs "
                f"{self.buffers_unplanned}; {len(self.assign)} results written into dead buffers, "
                f"{len(self.inplace)} of them in place; {len(self.donated)} outputs written into their inputs)")


def _accepts_out(op) -> bool:
    extra = getattr(op, "extra", {}) or {}
    if "out" in extra:
        return bool(extra["out"])
    impl = getattr(op, "impl", {}).get("cpu") if isinstance(getattr(op, "impl", None), dict) else None
    return isinstance(impl, np.ufunc) and not getattr(op, "multi_out", False)


def _nbytes(v: Value) -> int:
    n = 1
    for s in v.shape:
        n *= int(s)
    return n * v.dtype.itemsize


def plan_memory(graph: Graph) -> MemoryPlan:
    nodes = graph.nodes
    end = len(nodes)
    storage = {}            # value id -> storage id (the id of the value that owns the buffer)
    external = set()
    for v in graph.inputs:
        storage[v.id] = v.id
        external.add(v.id)
    for vid in graph.consts:
        storage[vid] = vid
        external.add(vid)
    for n in nodes:
        for o in n.outputs:
            if getattr(n.op, "view", False) and n.inputs and isinstance(n.inputs[0], Value):
                storage[o.id] = storage.get(n.inputs[0].id, n.inputs[0].id)
            else:
                storage[o.id] = o.id
    last = {}
    for k, n in enumerate(nodes):
        for i in n.inputs:
            if isinstance(i, Value):
                s = storage[i.id]
                last[s] = max(last.get(s, -1), k)
    for o in graph.outputs:
        if isinstance(o, Value):
            last[storage[o.id]] = end
            external.add(storage[o.id])  # returned to the caller: never reused
    info = {}
    for n in nodes:
        for o in n.outputs:
            if storage[o.id] == o.id:
                info[o.id] = (canon(o.shape), o.dtype.str, _nbytes(o))

    plan = MemoryPlan()
    free: list = []          # storage ids whose buffers are dead and reusable
    dying_at: dict = {}
    for s, k in last.items():
        dying_at.setdefault(k, []).append(s)
    phys = {}                # storage id -> physical buffer id
    defined_at = {}
    for k, n in enumerate(nodes):
        for o in n.outputs:
            if storage[o.id] != o.id:
                continue  # a view: no new buffer
            defined_at[o.id] = k
            key = info[o.id][:2]
            donor = None
            if len(n.outputs) == 1 and _accepts_out(n.op) and o.id not in external:
                for j, s in enumerate(free):
                    if info[s][:2] == key:
                        donor = free.pop(j)
                        break
                if donor is None and getattr(n.op, "elementwise", False):
                    for i in n.inputs:
                        if isinstance(i, Value) and i.id == storage[i.id] and i.id in info and \
                                i.id not in external and last.get(i.id) == k and info[i.id][:2] == key and \
                                _read_directly(n, i.id, storage) is not None:
                            donor = i.id
                            plan.inplace.add(o.id)
                            break
            if donor is not None:
                plan.assign[o.id] = donor
                phys[o.id] = phys[donor]
            else:
                phys[o.id] = o.id
        for s in dying_at.get(k, ()):
            if s in info and s not in external and s not in plan.assign.values():
                free.append(s)
    plan.donated = _donations(graph, storage, last, set(plan.assign.values()))
    # peak bytes: a physical buffer lives from its first definition to the last use of any storage in it
    span = {}
    for s, p in phys.items():
        if s in plan.donated:
            continue  # lives in the caller's buffer
        a, b = span.get(p, (defined_at[s], -1))
        span[p] = (min(a, defined_at[s]), max(b, last.get(s, defined_at[s])))
    plan.buffers = len(span)
    plan.peak_bytes = _peak({p: (a, b, info[p][2]) for p, (a, b) in span.items()}, end)
    plan.buffers_unplanned = len(defined_at)
    plan.peak_bytes_unplanned = _peak({s: (defined_at[s], last.get(s, defined_at[s]), info[s][2])
                                       for s in defined_at}, end)
    return plan


def _read_directly(n, buf: int, storage: dict) -> set | None:
    """The input positions at which node ``n`` reads buffer ``buf``; None when it also reads the buffer
    through a view (another layout of the same memory), so writing the result over it is unsafe."""
    pos = {i for i, x in enumerate(n.inputs) if isinstance(x, Value) and storage.get(x.id) == buf}
    return None if any(n.inputs[i].id != buf for i in pos) else pos


def _donations(graph: Graph, storage: dict, last: dict, taken: set) -> dict:
    donate = graph.meta.get("donate")
    if not donate:
        return {}
    producer = {}
    for k, n in enumerate(graph.nodes):
        for p, o in enumerate(n.outputs):
            producer[o.id] = (k, n, p)
    counts = {}
    for o in graph.outputs:
        if isinstance(o, Value):
            counts[o.id] = counts.get(o.id, 0) + 1
    inputs = {v.id: v for v in graph.inputs}
    returned = {storage[o.id] for o in graph.outputs if isinstance(o, Value)}
    per_storage = {}  # how many outputs are (views of) each buffer
    for o in graph.outputs:
        if isinstance(o, Value):
            per_storage[storage[o.id]] = per_storage.get(storage[o.id], 0) + 1
    out = {}
    for d, idx in donate.items():
        o = graph.outputs[idx] if idx < len(graph.outputs) else None
        dv = inputs.get(d)
        if not isinstance(o, Value) or dv is None or o.id not in producer or counts[o.id] != 1 or d in returned \
                or d in taken or storage[o.id] != o.id or o.id in out or per_storage[o.id] != 1:
            continue  # (a returned view of the new value would alias the tensor's array afterwards)
        if canon(o.shape) != canon(dv.shape) or o.dtype != dv.dtype:
            continue
        k, n, p = producer[o.id]
        if last.get(d, -1) > k:
            continue  # read after the node: the old value is still needed
        multi = len(n.outputs) > 1
        if multi and not (hasattr(n.op, "inplace_ok") and getattr(n.op, "extra", {}).get("out")):
            continue
        if not multi and not _accepts_out(n.op):
            continue
        if last.get(d, -1) == k:
            pos = _read_directly(n, d, storage)
            if pos is None or not getattr(n.op, "elementwise", False):
                continue  # read through a view, or by a kernel that may read it out of order
            if hasattr(n.op, "inplace_ok") and not n.op.inplace_ok(p, pos):
                continue
        out[o.id] = d
    return out


def _peak(spans: dict, end: int) -> int:
    events = {}
    for a, b, size in spans.values():
        events[a] = events.get(a, 0) + size
        events[b + 1] = events.get(b + 1, 0) - size
    live = peak = 0
    for k in sorted(events):
        live += events[k]
        peak = max(peak, live)
    return peak


def memory_planning(graph: Graph) -> Graph:
    """The pipeline step: attach the plan for code generation to use."""
    graph.meta["memory_plan"] = plan_memory(graph)
    return graph
