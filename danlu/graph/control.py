"""Control flow that graphs can hold: ``cond``, ``while_loop`` and ``scan``.

Eagerly they are ordinary Python control flow (so autograd records the branch or the iterations
taken). While tracing, the branch or loop body is traced once into a subgraph and the whole
construct becomes one node: an RNN over a sequence of any (dynamic) length compiles once, without
unrolling. ``scan`` and ``cond`` are differentiable in graphs too: their VJPs replay the traced body
under autograd to build the backward body. ``scan`` saves the carry of every step and the forward
values its backward reads (so the reverse scan recomputes only loop-invariant values), and sums weight
gradients of the ``A_t^T @ Q_t`` form after the loop as one product of the stacked steps.
"""

from __future__ import annotations

import numpy as np

from ..core import dispatch
from ..core import dtypes as _dt
from ..core.dispatch import apply
from ..core.errors import GraphBreakError, api, describe
from ..core.registry import AVal, register
from ..core.tensor import Tensor, _wrap
from .ir import Graph, Node, Value

__all__ = ["cond", "while_loop", "scan"]


# -- subgraphs ----------------------------------------------------------------------------------

def _tracing():
    from .tracer import Tracer

    interp = dispatch.state.interp if dispatch._active_interps[0] else None
    return interp if isinstance(interp, Tracer) else None


def _make_subtracer(graph, parent):
    from .tracer import Tracer

    class SubTracer(Tracer):
        """Traces a body; values of enclosing graphs and concrete tensors become lifted inputs."""

        def __init__(self):
            super().__init__(graph)
            self.parent = parent
            self.lifted = {}   # outer value id -> (outer Value, inner input Value)

        def value_of(self, t):
            d = t._data
            if isinstance(d, Value):
                if d.graph_id == id(self.graph):
                    return d
                return self._lift(d)
            return self._lift(self.parent.value_of(t))

        def _lift(self, outer):
            ent = self.lifted.get(outer.id)
            if ent is None:
                inner = self.graph.add_input(outer.shape, outer.dtype, f"lift{len(self.lifted)}")
                ent = self.lifted[outer.id] = (outer, inner)
            return ent[1]

        def write_inplace(self, target, res):
            raise GraphBreakError("in-place updates inside a cond/while_loop/scan body are not supported; "
                                  "return the new value from the body instead")

        def note_grad(self, var):
            pass

    return SubTracer()


def trace_subgraph(fn, in_avals, name, *, grad: bool = False):
    """Trace ``fn(*tensors)`` into a Graph. Returns (graph, lifted outer Values, output spec)."""
    from .compile import flatten
    from .tracer import tracing

    parent = _tracing()
    g = Graph(name)
    tr = _make_subtracer(g, parent)
    ins = [_wrap(g.add_input(shape, dtype, f"x{i}")) for i, (shape, dtype) in enumerate(in_avals)]
    prev = dispatch.state.grad_enabled
    dispatch.state.grad_enabled = grad
    try:
        with tracing(tr):
            out = fn(*ins)
            leaves, spec = flatten(out)
            outs = []
            for o in leaves:
                if not isinstance(o, Tensor):
                    raise TypeError(f"{name}: the body must return tensors (and nested tuples/lists/dicts of them), "
                                    f"got {type(o).__name__}")
                outs.append(tr.value_of(o))
    finally:
        dispatch.state.grad_enabled = prev
    g.outputs = outs
    consts = [outer for outer, _inner in tr.lifted.values()]
    g.meta["traced"] = g.copy()
    g.lint()
    return g, consts, spec


def _compiled(graph: Graph):
    cg = graph.meta.get("compiled")
    if cg is None:
        from .codegen import CompiledGraph
        from .passes import run_pipeline

        opt = run_pipeline(graph.copy())
        cg = graph.meta["compiled"] = CompiledGraph(opt, "body")
    return cg


def replay(graph: Graph, inputs, env=None):
    """Run a traced graph's nodes through ``apply`` (so autograd records them). ``env``, if given,
    receives every value's tensor by the graph's value id."""
    env = {} if env is None else env
    env.update({v.id: t for v, t in zip(graph.inputs, inputs)})
    for vid, arr in graph.consts.items():
        env[vid] = _wrap(arr)
    for n in graph.nodes:
        args = [env[i.id] if isinstance(i, Value) else i for i in n.inputs]
        res = apply(n.op, *args, **n.attrs)
        res = res if n.op.multi_out else (res,)
        for o, r in zip(n.outputs, res):
            env[o.id] = r
    return [env[o.id] if isinstance(o, Value) else o for o in graph.outputs]


def _aval(v):
    return AVal(v.shape, _dt._FROM_NP[v.dtype])


def _avals_of(tensors):
    return [(tuple(t._data.shape), t._data.dtype) for t in tensors]


# -- scan ---------------------------------------------------------------------------------------

def _scan_infer(*ins, body, n_carry, n_x, length, reverse, save, n_res=0):
    outs = body.outputs
    carries = [_aval(v) for v in outs[:n_carry]]
    ys = [AVal((length,) + tuple(v.shape), _dt._FROM_NP[v.dtype]) for v in outs[n_carry:]]
    hist = [AVal((length,) + tuple(a.shape), a.dtype) for a in carries] if save else []
    return tuple(carries + ys + hist)


def _scan_impl(*arrays, body, n_carry, n_x, length, reverse, save, n_res=0):
    cg = _compiled(body)
    carry = list(arrays[:n_carry])
    xs = arrays[n_carry:n_carry + n_x]
    consts = arrays[n_carry + n_x:]
    n = xs[0].shape[0] if n_x else int(length)
    outs = body.outputs
    ys = None  # allocated from the first step's results (their sizes may be dynamic)
    hist = [np.empty((n,) + c.shape, c.dtype) for c in carry] if save else []
    order = range(n - 1, -1, -1) if reverse else range(n)
    for t in order:
        for h, c in zip(hist, carry):
            h[t] = c
        res = cg(*carry, *[x[t] for x in xs], *consts)
        carry = [np.asarray(r) for r in res[:n_carry]]
        if ys is None:
            ys = [np.empty((n,) + np.shape(r), v.dtype) for v, r in zip(outs[n_carry:], res[n_carry:])]
        for y, r in zip(ys, res[n_carry:]):
            y[t] = r
    if ys is None:  # zero steps: the per-step shapes come from the carries' actual sizes where symbolic
        ys = [np.empty((0,) + tuple(int(s) for s in v.shape), v.dtype) for v in outs[n_carry:]]
    return tuple(carry + ys + hist)


def _scan_bwd_graph(body: Graph, n_carry: int, n_x: int, residuals: bool):
    """Trace one reverse step of a scan body: a graph from (g_carry, g_acc, carry_t, x_t, g_y_t
    [, residuals_t], consts) to (g_carry_prev, g_acc + g_consts_t, g_x_t), built by replaying the
    traced forward body under autograd.

    With ``residuals`` the forward values the backward reads (each step's gate activations, say)
    become scanned inputs instead of being recomputed from the saved carry: returns (graph, the
    forward body's Values to stack for it). Loop-invariant values (functions of the constants
    only) are still computed in the step."""
    from ..autograd.engine import grad as _grad
    from ..ops.elementwise import zeros_like

    traced = body.meta["traced"]
    n_c = len(body.inputs) - n_carry - n_x
    n_y = len(traced.outputs) - n_carry
    env = {}

    def bwd_step(*flat):
        gc = list(flat[:n_carry])
        gacc = list(flat[n_carry:n_carry + n_c])
        c_t = flat[n_carry + n_c:2 * n_carry + n_c]
        x_t = flat[2 * n_carry + n_c:2 * n_carry + n_c + n_x]
        gy_t = flat[2 * n_carry + n_c + n_x:2 * n_carry + n_c + n_x + n_y]
        cs = flat[2 * n_carry + n_c + n_x + n_y:]
        req = [t.detach().requires_grad_(t.dtype.is_floating_point) for t in list(c_t) + list(x_t) + list(cs)]
        out = replay(traced, req, env)
        pairs = [(o, g) for o, g in zip(out, gc + list(gy_t)) if o.requires_grad]
        diff = [t for t in req if t.requires_grad]
        grads = _grad([o for o, _ in pairs], diff, [g for _, g in pairs], allow_unused=True) if pairs and diff else ()
        it = iter(grads)
        full = [next(it) if t.requires_grad else None for t in req]
        full = [g if g is not None else zeros_like(t) for g, t in zip(full, req)]
        g_c_prev = full[:n_carry]
        g_x = full[n_carry:n_carry + n_x]
        g_cs = full[n_carry + n_x:]
        return tuple(g_c_prev) + tuple(ga + gc_ for ga, gc_ in zip(gacc, g_cs)) + tuple(g_x)

    av = [(v.shape, v.dtype) for v in body.inputs]
    in_avals = (av[:n_carry] + av[n_carry + n_x:] + av[:n_carry] + av[n_carry:n_carry + n_x]
                + [(v.shape, v.dtype) for v in traced.outputs[n_carry:]] + av[n_carry + n_x:])
    bwd, lifted, _ = trace_subgraph(bwd_step, in_avals, body.name + "_bwd", grad=True)
    if lifted:
        raise GraphBreakError("scan: the backward body captured outer values unexpectedly")
    if not residuals:
        return bwd, []
    return _use_residuals(bwd, traced, env, n_carry, n_c, n_x)


def _use_residuals(bwd: Graph, traced: Graph, env: dict, n_carry: int, n_c: int, n_x: int):
    fwd_value = {v.id: v for n in traced.nodes for v in n.outputs}
    replayed = {}                      # backward value id -> forward body Value
    for vid, t in env.items():
        if vid in fwd_value and isinstance(t, Tensor) and isinstance(t._data, Value):
            replayed[t._data.id] = fwd_value[vid]
    # 0: loop-invariant (constants only), 1: forward (a step's carry or x), 2: backward (cotangents)
    ins = bwd.inputs
    kind = {v.id: 2 for v in ins[:n_carry + n_c]}
    kind.update({v.id: 1 for v in ins[n_carry + n_c:2 * n_carry + n_c + n_x]})
    kind.update({v.id: 2 for v in ins[2 * n_carry + n_c + n_x:len(ins) - n_c]})
    kind.update({v.id: 0 for v in ins[len(ins) - n_c:]})
    kind.update({vid: 0 for vid in bwd.consts})
    for n in bwd.nodes:
        k = max([kind.get(i.id, 0) for i in n.inputs if isinstance(i, Value)], default=0)
        if getattr(n.op, "random", False):
            k = max(k, 1)  # a fresh draw each step: the backward must see the forward's draw, saved
        for o in n.outputs:
            kind[o.id] = k
    is_replay = [all(o.id in replayed for o in n.outputs) for n in bwd.nodes]
    needed = {}
    for n, rep in zip(bwd.nodes, is_replay):
        if not rep:
            for i in n.inputs:
                if isinstance(i, Value) and i.id in replayed and kind[i.id] == 1:
                    needed.setdefault(i.id, i)
    for o in bwd.outputs:
        if isinstance(o, Value) and o.id in replayed and kind[o.id] == 1:
            needed.setdefault(o.id, o)
    if not needed:
        return bwd, []
    subst, saved = {}, []
    at = len(ins) - n_c
    for k, v in enumerate(needed.values()):
        r = Value(v.shape, v.dtype, name=f"res{k}", graph_id=id(bwd))
        bwd.inputs.insert(at + k, r)
        bwd.input_names.insert(at + k, f"res{k}")
        subst[v.id] = r
        saved.append(replayed[v.id])
    nodes = []
    for n, rep in zip(bwd.nodes, is_replay):
        if not rep and any(isinstance(i, Value) and i.id in subst for i in n.inputs):
            n = Node(n.op, tuple(subst.get(i.id, i) if isinstance(i, Value) else i for i in n.inputs),
                     n.attrs, n.outputs, n.loc)
            for o in n.outputs:
                o.producer = n
        nodes.append(n)
    bwd.nodes = nodes
    bwd.outputs = [subst.get(o.id, o) if isinstance(o, Value) else o for o in bwd.outputs]
    bwd.meta["traced"] = bwd.copy()
    bwd.lint()
    return bwd, saved


def _scan_vjp(ctx, *gs):
    a = ctx.attrs
    body, n_carry, n_x, reverse = a["body"], a["n_carry"], a["n_x"], a["reverse"]
    n_res = a.get("n_res", 0)
    ins = ctx.inputs
    xs = ins[n_carry:n_carry + n_x]
    consts = ins[n_carry + n_x:]
    outs = ctx.outs
    n_y = len(body.outputs) - n_carry - n_res
    residuals = list(outs[n_carry + n_y:n_carry + n_y + n_res])
    hist = outs[n_carry + n_y + n_res:]
    from ..ops.elementwise import zeros_like

    # outputs without a cotangent (integer carries, unused results) get zeros
    gs = [g if g is not None else zeros_like(o) for g, o in zip(gs, outs)]
    g_carry = list(gs[:n_carry])
    g_ys = list(gs[n_carry:n_carry + n_y])

    n_c = len(consts)
    pre = body.meta.get("bwd") if n_res else None
    if pre is not None:
        bwd = pre.copy()
    else:
        bwd, residuals = _scan_bwd_graph(body, n_carry, n_x, residuals=False)[0], []
    outer_xs = list(hist) + list(xs) + list(g_ys) + residuals
    hoisted, extra = _hoist_accumulations(bwd, n_carry, n_c, n_x)
    acc0 = [zeros_like(c) for c in consts]
    res = apply(SCAN, *g_carry, *acc0, *outer_xs, *consts, body=bwd, n_carry=n_carry + n_c,
                n_x=len(outer_xs), length=a["length"], reverse=not reverse, save=False)
    g_init = res[:n_carry]
    g_consts = list(res[n_carry:n_carry + n_c])
    g_xs = res[n_carry + n_c:n_carry + n_c + n_x]
    stacked = res[n_carry + n_c:]
    for j, terms in hoisted.items():
        total = None
        for (ka, a_ref), (kq, q_ref), transposed in terms:
            a_all = outer_xs[a_ref] if ka == "x" else stacked[extra[a_ref.id]]
            q_all = outer_xs[q_ref] if kq == "x" else stacked[extra[q_ref.id]]
            term = a_all.reshape(-1, a_all.shape[-1]).T @ q_all.reshape(-1, q_all.shape[-1])
            term = term.T if transposed else term
            total = term if total is None else total + term
        g_consts[j] = total
    return tuple(g_init) + tuple(g_xs) + tuple(g_consts)


def _hoist_accumulations(bwd: Graph, n_carry: int, n_c: int, n_x: int):
    """Move the per-step ``A_t^T @ Q_t`` terms that the backward body adds into a constant's gradient
    out of the loop: summed over steps they are one matrix product of the stacked ``A`` and ``Q``
    (``(T*B, m)^T @ (T*B, n)``), which runs several times faster than T small products and T
    accumulations, and is how an RNN's weight gradient is best computed.

    An accumulator qualifies when its new value is ``acc + (sum of such terms)`` and every ``A`` and
    ``Q`` is a per-step value: a scanned input (used straight from the outer stacked tensor) or a
    value computed in the body (appended to the body's outputs, so the scan stacks it). The
    accumulator then passes through the loop unchanged. Returns ({accumulator: [(A ref, Q ref,
    transposed)]}, {value id: its index among the body's stacked outputs}); the body graph is
    rewritten in place."""
    producer = {o.id: n for n in bwd.nodes for o in n.outputs}
    pos_in = {v.id: i for i, v in enumerate(bwd.inputs)}
    x_lo = n_carry + n_c
    x_hi = len(bwd.inputs) - n_c          # scanned inputs: [x_lo, x_hi)

    def node_of(v, name):
        n = producer.get(v.id) if isinstance(v, Value) else None
        return n if n is not None and n.op.name == name else None

    def transposed2d(v):
        n = node_of(v, "permute")
        if n is not None and len(v.shape) == 2 and tuple(n.attrs.get("dims", ())) == (1, 0):
            return n.inputs[0]
        return None

    def per_step(v):
        i = pos_in.get(v.id)
        if i is not None:
            return ("x", i - x_lo) if x_lo <= i < x_hi else None
        return ("y", v)

    def leaves(v, acc, out):
        n = node_of(v, "add")
        if n is not None and len(n.inputs) == 2 and all(isinstance(i, Value) for i in n.inputs) \
                and all(tuple(i.shape) == tuple(v.shape) for i in n.inputs):
            for i in n.inputs:
                if i is acc:
                    out.append("acc")
                else:
                    leaves(i, acc, out)
            return out
        out.append(v)
        return out

    uses = {}
    for n in bwd.nodes:
        for i in n.inputs:
            if isinstance(i, Value):
                uses[i.id] = uses.get(i.id, 0) + 1
    plan, extra = {}, {}
    for j in range(n_c):
        acc, new = bwd.inputs[n_carry + j], bwd.outputs[n_carry + j]
        parts = leaves(new, acc, [])
        if parts.count("acc") != 1 or len(parts) < 2 or uses.get(acc.id) != 1:
            continue
        terms = []
        for t in parts:
            if t == "acc":
                continue
            tr = transposed2d(t)
            mm = node_of(tr if tr is not None else t, "matmul")
            if mm is None:
                break
            p, q = mm.inputs
            a = transposed2d(p) if isinstance(p, Value) and isinstance(q, Value) and len(q.shape) == 2 else None
            ra, rq = (per_step(a), per_step(q)) if a is not None else (None, None)
            if ra is None or rq is None or a.shape[0] != q.shape[0]:
                break
            terms.append((ra, rq, tr is not None))
        else:
            plan[j] = terms
    if not plan:
        return {}, {}
    outs = list(bwd.outputs)
    ys = outs[n_carry + n_c:]
    for j, terms in plan.items():
        outs[n_carry + j] = bwd.inputs[n_carry + j]
        for ra, rq, _tr in terms:
            for r in (ra, rq):
                if r[0] == "y" and r[1].id not in extra:
                    k = next((k for k, y in enumerate(ys) if y is r[1]), None)
                    if k is None:
                        k = len(ys)
                        ys.append(r[1])
                    extra[r[1].id] = k
    bwd.outputs = outs[:n_carry + n_c] + ys
    bwd.meta["traced"] = bwd.copy()
    bwd.meta.pop("compiled", None)
    bwd.lint()
    return plan, extra



SCAN = register("scan", infer=_scan_infer, impl=_scan_impl, vjp=_scan_vjp, save_in=range(0, 4096), save_out=True,
                multi_out=True, family="control")


@api
def scan(f, init, xs=None, length=None, reverse: bool = False):
    """Loop ``carry, y = f(carry, x)`` over the leading axis of ``xs``; returns ``(carry, stacked ys)``.

    ``init``/``xs`` may be nested tuples/lists/dicts of tensors. Eagerly this is a Python loop; in a
    compiled function it is one node (no unrolling, any sequence length).

    >>> import danlu as dl
    >>> def step(c, x):
    ...     c = c + x
    ...     return c, c * 2
    >>> dl.scan(step, dl.zeros(()), dl.tensor([1.0, 2.0, 3.0]))
    (tensor(6.), tensor([ 2.,  6., 12.]))
    """
    from ..ops.shape import stack
    from .compile import flatten, unflatten

    c_leaves, c_spec = flatten(init)
    x_leaves, x_spec = flatten(xs)
    x_leaves_t = [x for x in x_leaves if isinstance(x, Tensor)]
    if length is None:
        if not x_leaves_t:
            raise ValueError("scan: give xs (tensors with a leading axis) or length")
        length = x_leaves_t[0].shape[0]
    for x in x_leaves_t:
        if x.ndim == 0 or x.shape[0] != length:
            raise ValueError(f"scan: every xs tensor needs leading dimension {length}, got {describe(x)}")
    tracer = _tracing()
    if tracer is None:
        carry, ys = init, []
        order = range(length - 1, -1, -1) if reverse else range(length)
        for t in order:
            x_t = None if xs is None else unflatten(x_spec, [x[t] if isinstance(x, Tensor) else x for x in x_leaves])
            carry, y = f(carry, x_t)
            ys.append(y)
        if reverse:
            ys.reverse()
        if not ys:
            return carry, None
        y_leaves0, y_spec = flatten(ys[0])
        cols = [[flatten(y)[0][k] for y in ys] for k in range(len(y_leaves0))]
        return carry, unflatten(y_spec, [stack(col) if isinstance(col[0], Tensor) else col for col in cols])

    n_carry, n_x = len(c_leaves), len(x_leaves_t)
    specs = {}

    def body(*flat):
        c = unflatten(c_spec, list(flat[:n_carry]))
        it = iter(flat[n_carry:])
        x = unflatten(x_spec, [next(it) if isinstance(v, Tensor) else v for v in x_leaves]) if xs is not None else None
        c2, y = f(c, x)
        c2_leaves, c2_spec = flatten(c2)
        y_leaves, y_spec = flatten(y) if y is not None else ([], None)
        if c2_spec != c_spec or len(c2_leaves) != n_carry:
            raise TypeError("scan: the body must return a carry with the same structure as init")
        for a_, b_ in zip(c2_leaves, flat[:n_carry]):
            if tuple(a_.shape) != tuple(b_.shape) or a_.dtype is not b_.dtype:
                raise TypeError(f"scan: the body changed the carry from {describe(b_)} to {describe(a_)}; "
                                "carries must keep their shape and dtype")
        specs["y"] = y_spec
        return tuple(c2_leaves) + tuple(y_leaves)

    for c in c_leaves:
        if not isinstance(c, Tensor):
            raise TypeError(f"scan: init must hold tensors, got {type(c).__name__}")
    in_avals = _avals_of(c_leaves) + [(tuple(x._data.shape[1:]), x._data.dtype) for x in x_leaves_t]
    graph, consts, _ = trace_subgraph(body, in_avals, "scan_body")
    const_tensors = [_outer_tensor(tracer, v) for v in consts]
    save = dispatch.state.grad_enabled and any(t._rg for t in c_leaves + x_leaves_t + const_tensors)
    n_y = len(graph.outputs) - n_carry
    n_res = 0
    if save:
        bwd, saved = _scan_bwd_graph(graph, n_carry, n_x, residuals=True)
        graph.outputs = list(graph.outputs) + saved
        graph.meta["bwd"] = bwd
        n_res = len(saved)
    res = apply(SCAN, *c_leaves, *x_leaves_t, *const_tensors, body=graph, n_carry=n_carry, n_x=n_x,
                length=length, reverse=bool(reverse), save=bool(save), n_res=n_res)
    carry = unflatten(c_spec, list(res[:n_carry]))
    ys = unflatten(specs["y"], list(res[n_carry:n_carry + n_y])) if specs["y"] is not None else None
    return carry, ys


def _outer_tensor(tracer, v: Value) -> Tensor:
    """A tensor holding the enclosing trace's Value ``v``: the bound tensor itself when there is one
    (so autograd links to parameters are kept), else a plain wrapper."""
    for ent in tracer.bound.values():
        t = ent[0]
        if t._data is v:
            return t
    return _wrap(v)


# -- cond ---------------------------------------------------------------------------------------

def _cond_infer(pred, *ins, true_graph, false_graph, n_ops, true_idx, false_idx):
    return tuple(_aval(v) for v in true_graph.outputs)


def _cond_impl(pred, *arrays, true_graph, false_graph, n_ops, true_idx, false_idx):
    ops, consts = arrays[:n_ops], arrays[n_ops:]
    if bool(np.asarray(pred)):
        res = _compiled(true_graph)(*ops, *[consts[i] for i in true_idx])
    else:
        res = _compiled(false_graph)(*ops, *[consts[i] for i in false_idx])
    return tuple(np.asarray(r) for r in res)


def _cond_vjp(ctx, *gs):
    a = ctx.attrs
    pred = ctx.inputs[0]
    ins = ctx.inputs[1:]
    n_ops = a["n_ops"]
    from ..autograd.engine import grad as _grad
    from ..ops.elementwise import zeros_like

    def make_bwd(graph, idx):
        traced = graph.meta["traced"]

        def bwd(*flat):
            xs = flat[:len(ins)]
            g = flat[len(ins):]
            req = [t.detach().requires_grad_(t.dtype.is_floating_point) for t in xs]
            use = list(req[:n_ops]) + [req[n_ops + i] for i in idx]
            out = replay(traced, use)
            pairs = [(o, gg) for o, gg in zip(out, g) if o.requires_grad]
            diff = [t for t in req if t.requires_grad]
            grads = _grad([o for o, _ in pairs], diff, [gg for _, gg in pairs], allow_unused=True) \
                if pairs and diff else ()
            it = iter(grads)
            full = [next(it) if t.requires_grad else None for t in req]
            return tuple(gg if gg is not None else zeros_like(t) for gg, t in zip(full, req))
        return bwd

    avals = _avals_of(ins) + _avals_of(gs)
    tg, tl, _ = trace_subgraph(make_bwd(a["true_graph"], a["true_idx"]), avals, "cond_true_bwd", grad=True)
    fg, fl, _ = trace_subgraph(make_bwd(a["false_graph"], a["false_idx"]), avals, "cond_false_bwd", grad=True)
    n_all = len(ins) + len(gs)
    res = apply(COND, pred, *ins, *gs, true_graph=tg, false_graph=fg, n_ops=n_all, true_idx=(), false_idx=())
    return (None,) + tuple(res)


COND = register("cond", infer=_cond_infer, impl=_cond_impl, vjp=_cond_vjp, save_in=range(0, 4096),
                multi_out=True, family="control")


@api
def cond(pred, true_fn, false_fn, *operands):
    """``true_fn(*operands)`` if ``pred`` else ``false_fn(*operands)``; in a compiled function both
    branches are traced and the choice is made at run time from the value of ``pred``.

    >>> import danlu as dl
    >>> x = dl.tensor([1.0, -2.0])
    >>> dl.cond(x.sum() > 0, lambda t: t * 2, lambda t: -t, x)
    tensor([-1.,  2.])
    """
    from .compile import flatten, unflatten

    tracer = _tracing()
    if tracer is None or not (isinstance(pred, Tensor) and isinstance(pred._data, Value)):
        return true_fn(*operands) if bool(pred) else false_fn(*operands)
    if pred.numel() != 1:
        raise ValueError(f"cond: pred must have one element, got {describe(pred)}")
    if pred.dtype is not _dt.bool_:
        pred = pred != 0
    ops = list(operands)
    for o in ops:
        if not isinstance(o, Tensor):
            raise TypeError(f"cond: operands must be tensors, got {type(o).__name__}")
    specs = {}

    def wrap(fn, key):
        def run(*xs):
            out = fn(*xs)
            leaves, spec = flatten(out)
            specs[key] = spec
            return tuple(leaves)
        return run

    avals = _avals_of(ops)
    tg, tc, _ = trace_subgraph(wrap(true_fn, "t"), avals, "cond_true")
    fg, fc, _ = trace_subgraph(wrap(false_fn, "f"), avals, "cond_false")
    if specs["t"] != specs["f"] or [(tuple(v.shape), v.dtype) for v in tg.outputs] != \
            [(tuple(v.shape), v.dtype) for v in fg.outputs]:
        raise TypeError("cond: both branches must return the same structure of tensors with the same shapes and "
                        f"dtypes; got {[v.aval_str() for v in tg.outputs]} and {[v.aval_str() for v in fg.outputs]}")
    consts, index = [], {}
    for v in tc + fc:
        if v.id not in index:
            index[v.id] = len(consts)
            consts.append(v)
    t_idx = tuple(index[v.id] for v in tc)
    f_idx = tuple(index[v.id] for v in fc)
    const_tensors = [_outer_tensor(tracer, v) for v in consts]
    res = apply(COND, pred, *ops, *const_tensors, true_graph=tg, false_graph=fg, n_ops=len(ops),
                true_idx=t_idx, false_idx=f_idx)
    return unflatten(specs["t"], list(res))


# -- while_loop -----------------------------------------------------------------------------------

def _while_infer(*ins, cond_graph, body_graph, n_carry, cond_idx, body_idx):
    return tuple(_aval(v) for v in body_graph.outputs)


def _while_impl(*arrays, cond_graph, body_graph, n_carry, cond_idx, body_idx):
    carry, consts = list(arrays[:n_carry]), arrays[n_carry:]
    cg, bg = _compiled(cond_graph), _compiled(body_graph)
    cc = [consts[i] for i in cond_idx]
    bc = [consts[i] for i in body_idx]
    while bool(np.asarray(cg(*carry, *cc)[0])):
        carry = [np.asarray(r) for r in bg(*carry, *bc)]
    return tuple(carry)


def _while_vjp(ctx, *gs):
    raise RuntimeError("while_loop: differentiating through a while_loop inside a compiled function is not "
                       "supported (the number of iterations is unknown when the graph is built); use scan with "
                       "a fixed length, or run the loop eagerly")


WHILE_LOOP = register("while_loop", infer=_while_infer, impl=_while_impl, vjp=_while_vjp, multi_out=True,
                      family="control")


@api
def while_loop(cond_fn, body_fn, init):
    """``carry = init; while cond_fn(carry): carry = body_fn(carry)``; returns the final carry.

    In a compiled function both functions are traced once and the loop runs in the generated code.

    >>> import danlu as dl
    >>> dl.while_loop(lambda c: c[0] < 10, lambda c: (c[0] * 2, c[1] + 1), (dl.tensor(1), dl.tensor(0)))
    (tensor(16), tensor(4))
    """
    from .compile import flatten, unflatten

    tracer = _tracing()
    if tracer is None:
        carry = init
        while bool(cond_fn(carry)):
            carry = body_fn(carry)
        return carry
    leaves, spec = flatten(init)
    for c in leaves:
        if not isinstance(c, Tensor):
            raise TypeError(f"while_loop: init must hold tensors, got {type(c).__name__}")
    avals = _avals_of(leaves)

    def cond_run(*xs):
        out = cond_fn(unflatten(spec, list(xs)))
        if not isinstance(out, Tensor) or out.numel() != 1:
            raise TypeError("while_loop: cond_fn must return a one-element tensor")
        return (out if out.dtype is _dt.bool_ else out != 0,)

    def body_run(*xs):
        out = body_fn(unflatten(spec, list(xs)))
        o_leaves, o_spec = flatten(out)
        if o_spec != spec:
            raise TypeError("while_loop: body_fn must return the same structure as init")
        for a_, b_ in zip(o_leaves, xs):
            if tuple(a_.shape) != tuple(b_.shape) or a_.dtype is not b_.dtype:
                raise TypeError(f"while_loop: the body changed a carry from {describe(b_)} to {describe(a_)}")
        return tuple(o_leaves)

    cg, cc, _ = trace_subgraph(cond_run, avals, "while_cond")
    bg, bc, _ = trace_subgraph(body_run, avals, "while_body")
    consts, index = [], {}
    for v in cc + bc:
        if v.id not in index:
            index[v.id] = len(consts)
            consts.append(v)
    const_tensors = [_outer_tensor(tracer, v) for v in consts]
    res = apply(WHILE_LOOP, *leaves, *const_tensors, cond_graph=cg, body_graph=bg, n_carry=len(leaves),
                cond_idx=tuple(index[v.id] for v in cc), body_idx=tuple(index[v.id] for v in bc))
    return unflatten(spec, list(res))
