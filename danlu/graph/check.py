"""Checking compiled code against eager execution (``danlu.compile(..., check=True)`` and
:func:`assert_same_as_eager`).

Three comparisons, each able to name where things went wrong:
1. eager vs the traced graph, op by op: the eager run is recorded by an interpreter and matched with
   the traced nodes in order; a different op sequence means Python control flow took another path
   than when the graph was traced, a different value means a Python number was frozen at trace time;
2. the traced graph vs the optimized graph, pass by pass: the first pass that changes a result is
   named;
3. eager outputs and state updates vs the compiled call's.
"""

from __future__ import annotations

import numpy as np

from ..core import dispatch
from ..core.errors import DanluError, format_location
from ..core.tensor import Tensor
from .ir import Graph, Value

__all__ = ["GraphDivergenceError", "evaluate", "check_against_eager", "assert_same_as_eager"]


class GraphDivergenceError(DanluError):
    """Compiled code computed something different from eager execution."""


def evaluate(graph: Graph, inputs) -> dict:
    """Run ``graph`` node by node with the registry kernels; {value id: array}."""
    env = {v.id: a for v, a in zip(graph.inputs, inputs)}
    env.update(graph.consts)
    for n in graph.nodes:
        args = [env[i.id] if isinstance(i, Value) else i for i in n.inputs]
        res = n.op.impl["cpu"](*args, **n.attrs)
        res = res if len(n.outputs) > 1 or getattr(n.op, "multi_out", False) else (res,)
        for o, r in zip(n.outputs, res):
            env[o.id] = np.asarray(r)
    return env


def _close(a, b, rtol, atol) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "biu" or b.dtype.kind in "biu":
        return np.array_equal(a, b)
    return np.allclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True)


def _maxdiff(a, b) -> str:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return f"shapes {a.shape} vs {b.shape}"
    d = np.abs(a - b)
    k = int(np.nanargmax(d)) if d.size else 0
    worst = float(d.reshape(-1)[k]) if d.size else 0.0
    return f"max abs difference {worst:.3g} (eager {a.reshape(-1)[k] if a.size else ''} " \
           f"vs graph {b.reshape(-1)[k] if b.size else ''})"


class _Recorder:
    """Eager interpreter that records each primitive call's outputs in order."""

    def __init__(self):
        self.calls = []

    def run(self, op, args, attrs, avals):
        from ..core.errors import user_frame

        res = op.kernel(*[a._data if isinstance(a, Tensor) else a for a in args], **attrs)
        outs = res if op.multi_out else (res,)
        self.calls.append((op, [np.asarray(r) for r in outs], user_frame()))
        return res

    def write_inplace(self, target, res):
        np.copyto(target._data, res._data, casting="unsafe")


def _snapshot(tensors):
    return [(t, t._data.copy(), t._grad) for t in tensors]


def _restore(snap):
    for t, data, grad in snap:
        np.copyto(t._data, data)
        t._grad = grad


def check_against_eager(cf, entry, args, kwargs, rtol=1e-4, atol=1e-5):
    """Run ``cf``'s eager function and the compiled entry on the same state; raise on a difference,
    else return the compiled call's result. The default tolerances are float32's: a compiled graph may
    sum in another order than eager (fused ``linear``, folded constants, chunked kernels), which moves
    float32 results by a few units in the last place, so equality would report differences that are
    not divergences; pass tighter ones for float64 (``assert_same_as_eager(rtol=...)``)."""
    from .compile import flatten

    leaves, _spec = flatten((args, kwargs))
    from .compile import resolve

    state_tensors = [resolve(kind, ref, leaves) for kind, ref in entry.inputs if kind not in ("arg", "live")] + \
                    [x for x in leaves if isinstance(x, Tensor)]
    snap = _snapshot(state_tensors)
    rec = _Recorder()
    prev = dispatch.push_interpreter(rec)
    try:
        eager_out = cf.fn(*args, **kwargs)
    finally:
        dispatch.pop_interpreter(prev)
    eager_leaves, _ = flatten(eager_out)
    eager_state = [t._data.copy() for t in state_tensors]
    _restore(snap)
    traced = entry.traced
    if traced is not None:
        live = {v.id for v, (kind, _r) in zip(traced.inputs, entry.inputs) if kind == "live"}
        _compare_trace(cf.name, traced, rec.calls, rtol, atol, live)
    compiled_out = entry.run(leaves)
    comp_leaves, _ = flatten(compiled_out)
    for k, (a, b) in enumerate(zip(eager_leaves, comp_leaves)):
        if isinstance(a, Tensor) and not _close(a._data, b._data, rtol, atol):
            where = _first_pass_that_differs(entry, leaves)
            raise GraphDivergenceError(f"compiled '{cf.name}': output {k} differs from eager: "
                                       f"{_maxdiff(a._data, b._data)}{where}")
    for t, want in zip(state_tensors, eager_state):
        if not _close(want, t._data, rtol, atol):
            raise GraphDivergenceError(f"compiled '{cf.name}': the update of a tensor it modifies "
                                       f"({t._data.dtype}{list(t._data.shape)}) differs from eager: "
                                       f"{_maxdiff(want, t._data)}")
    # leave the state as the compiled call left it (the call the user asked for happened once)
    return compiled_out


def _compare_trace(name, traced: Graph, calls, rtol, atol, live=frozenset()):
    """Match the eager op sequence with the traced nodes; report the first divergence. Nodes computed
    from live Python numbers alone (``-lr`` of a learning rate read at every call) are Python arithmetic
    in eager code, so they have no eager call to match."""
    scalar = set(live)
    nodes = []
    for n in traced.nodes:
        vals = [i for i in n.inputs if isinstance(i, Value)]
        if vals and all(i.id in scalar for i in vals):
            scalar.update(o.id for o in n.outputs)
        else:
            nodes.append(n)
    inputs = traced.meta.get("check_inputs")
    if inputs is None:
        return
    env = evaluate(traced, inputs)
    for k, (n, (op, outs, loc)) in enumerate(zip(nodes, calls)):
        if op is not n.op:
            raise GraphDivergenceError(
                f"compiled '{name}': eager execution ran '{op.name}' at\n  {format_location(loc)}\nwhere the "
                f"graph traced '{n.op.name}' at\n  {format_location(n.loc)}\n(call {k}). Python control flow "
                "took a different path than when the function was traced: use danlu.cond / while_loop for "
                "data-dependent branches, or compile with fallback='eager'.")
        for o, r in zip(n.outputs, outs):
            g = env.get(o.id)
            if g is not None and not _close(r, g, rtol, atol):
                raise GraphDivergenceError(
                    f"compiled '{name}': node {k} ({n.op.name}) recorded at\n  {format_location(n.loc)}\n"
                    f"gives a different value than eager: {_maxdiff(r, g)}. A Python value used there "
                    "was probably frozen when the function was traced (a number read from a tensor, a "
                    "global, or an attribute that changes between calls).")
    if len(calls) != len(nodes):
        raise GraphDivergenceError(
            f"compiled '{name}': eager execution ran {len(calls)} ops, the traced graph has {len(nodes)}; "
            "Python control flow took a different path than when the function was traced.")


def _first_pass_that_differs(entry, leaves) -> str:
    from .passes import PIPELINE

    traced = entry.traced
    if traced is None:
        return ""
    from .compile import input_arrays

    arrays = input_arrays(entry, leaves)
    g = traced.copy()
    ref = evaluate(g, arrays)
    want = [ref[o.id] if isinstance(o, Value) else o for o in g.outputs]
    for p in PIPELINE:
        g = p(g)
        env = evaluate(g, arrays)
        got = [env[o.id] if isinstance(o, Value) else o for o in g.outputs]
        for k, (a, b) in enumerate(zip(want, got)):
            if isinstance(a, np.ndarray) and not _close(a, b, 1e-4, 1e-5):
                return f"\nthe optimization pass '{p.__name__}' changed graph output {k}: {_maxdiff(a, b)}"
    return "\n(the optimized graph alone reproduces eager; the difference comes from the generated code)"


def check_fresh_inputs(cf, entry, leaves, spec, n: int = 2) -> None:
    """``check=True`` on a signature's first call: compare eager and compiled on ``n`` freshly drawn
    inputs of the same signature, then put every tensor the function touches back as it was."""
    from .compile import input_arrays, resolve, unflatten

    state = [resolve(kind, ref, leaves) for kind, ref in entry.inputs if kind not in ("arg", "live")]
    snap = _snapshot(state)
    rtol, atol = getattr(cf, "check_rtol", 1e-4), getattr(cf, "check_atol", 1e-5)
    try:
        for _ in range(n):
            fresh = [_fresh_like(x) for x in leaves]
            a, k = unflatten(spec, fresh)
            entry.traced.meta["check_inputs"] = input_arrays(entry, fresh, copy=True)
            check_against_eager(cf, entry, a, k, rtol, atol)
            _restore(snap)
    finally:
        _restore(snap)


def _fresh_like(x):
    from ..ops.random import randint, randn

    if not isinstance(x, Tensor):
        return x
    if x.dtype.is_floating_point:
        t = randn(*x.shape, dtype=x.dtype)
    elif x.dtype.name == "bool":
        t = randint(0, 2, tuple(x.shape)).bool()
    else:  # within the given values' range, so that class indices and the like stay valid
        a = x.detach().numpy()
        lo, hi = (int(a.min()), int(a.max()) + 1) if a.size else (0, 5)
        t = randint(lo, hi, tuple(x.shape), dtype=x.dtype)
    return t.requires_grad_(x.requires_grad) if x.dtype.is_floating_point else t


def assert_same_as_eager(fn, *args, fresh: int = 2, rtol: float = 1e-4, atol: float = 1e-5, **kwargs):
    """Compile ``fn`` and check it against eager on these inputs and on ``fresh`` random inputs of the
    same signature (same shapes and dtypes); raises :class:`GraphDivergenceError` naming the node.

    >>> import danlu as dl
    >>> from danlu.graph.check import assert_same_as_eager
    >>> assert_same_as_eager(lambda x: (x * 2).relu().sum(), dl.randn(4))
    """
    from .compile import CompiledFunction, flatten, input_arrays, unflatten

    cf = fn if isinstance(fn, CompiledFunction) else CompiledFunction(fn)
    cf.check_rtol, cf.check_atol = rtol, atol
    runs = [(args, kwargs)]
    leaves, spec = flatten((args, kwargs))
    for _ in range(fresh):
        runs.append(unflatten(spec, [_fresh_like(x) for x in leaves]))
    for a, k in runs:
        entry = cf.entry_for(*a, **k)
        lv, _ = flatten((a, k))
        entry.traced.meta["check_inputs"] = input_arrays(entry, lv, copy=True)
        check_against_eager(cf, entry, a, k, rtol, atol)
