"""``danlu.compile``: trace a function (or Module) once per input signature, optimize the graph,
generate code, and run the generated code on later calls with that signature."""

from __future__ import annotations

import functools
import logging
import os

import numpy as np

from ..core import dispatch
from ..core import dtypes as _dt
from ..core.errors import GraphBreakError, LazyStateError, reraise_filtered
from ..core.tensor import Tensor, _wrap
from .codegen import CompiledGraph
from .ir import Graph
from .tracer import Tracer, tracing

__all__ = ["compile", "CompiledFunction", "mark_dynamic"]

log = logging.getLogger("danlu.compile")
if "recompiles" in os.environ.get("DANLU_LOG", ""):
    logging.basicConfig()
    log.setLevel(logging.INFO)


# -- pytrees: nested tuples/lists/dicts of tensors and plain values -------------------------------

# Module-level recursion (not nested closures): a closure that calls itself is a reference cycle, which
# would keep every argument and result tensor alive until the garbage collector happened to run.

def flatten(obj):
    """(leaves, spec): leaves in order, spec a hashable description of the structure."""
    leaves = []
    return leaves, _flatten(obj, leaves)


def _flatten(o, leaves):
    if isinstance(o, Tensor):
        leaves.append(o)
        return ("T",)
    if isinstance(o, (list, tuple)) and not hasattr(o, "_fields"):
        return ("L" if isinstance(o, list) else "U", tuple(_flatten(x, leaves) for x in o))
    if hasattr(o, "_fields") and isinstance(o, tuple):
        return ("N", type(o), tuple(_flatten(x, leaves) for x in o))
    if isinstance(o, dict):
        keys = tuple(o.keys())
        return ("D", type(o), keys, tuple(_flatten(o[k], leaves) for k in keys))
    leaves.append(o)
    return ("V",)


def unflatten(spec, leaves):
    return _unflatten(spec, iter(leaves))


def _unflatten(s, it):
    tag = s[0]
    if tag in ("T", "V"):
        return next(it)
    if tag == "L":
        return [_unflatten(x, it) for x in s[1]]
    if tag == "U":
        return tuple(_unflatten(x, it) for x in s[1])
    if tag == "N":
        return s[1](*[_unflatten(x, it) for x in s[2]])
    if tag == "D":
        return s[1]((k, _unflatten(x, it)) for k, x in zip(s[2], s[3]))
    raise AssertionError(tag)


def _leaf_key(x, dyn=()):
    if isinstance(x, Tensor):
        shape = tuple(None if d in dyn else s for d, s in enumerate(x._data.shape))
        return ("T", shape, x._data.dtype.str, x._rg)
    try:
        hash(x)
        return ("V", type(x), x)
    except TypeError:
        return ("O", id(x))


def _live_array(getter):
    return np.asarray(getter(), dtype=np.float64)


def resolve(kind, ref, leaves):
    """The tensor an input plan entry names: an argument, a captured tensor, or the current ``.grad``
    of a tensor (a gradient read through ``.grad`` is looked up again at every call)."""
    if kind == "arg":
        return leaves[ref]
    if kind == "cap":
        return ref
    g = ref._grad
    if g is None:
        raise RuntimeError("a compiled function reads the .grad of a tensor whose .grad is None now (it was set "
                           "when the function was traced); run backward before calling it")
    return g


def input_arrays(entry, leaves, copy=False):
    out = []
    for kind, ref in entry.inputs:
        a = _live_array(ref) if kind == "live" else resolve(kind, ref, leaves)._data
        out.append(a.copy() if copy else a)
    return out


class _Entry:
    """One compiled graph for one signature, with the plans to feed it and to use its results."""

    def __init__(self):
        self.compiled: CompiledGraph | None = None
        self.graph: Graph | None = None
        self.inputs: list = []        # ("arg", leaf index), ("cap", tensor) or ("grad", owner tensor)
        self.n_user = 0
        self.out_spec = None
        self.out_leaf_kind: list = []  # per user-output leaf: ("T", out index) or ("V", value)
        self.writes: list = []        # (kind, ref, out index): write back into a tensor's array
        self.grads: list = []         # (kind, ref, out index): set .grad
        self.guards: list = []        # (kind, ref, shape, dtype str, grad is None or None for "not read")
        self.value_guards: list = []  # (getter, traced value, description)
        self.diff_in: list = []       # inputs the compiled function differentiates: ("arg"|"cap", ref)
        self.diff_out_index: list = []
        self.n_residual = 0
        self.backward = None
        self.backward_graph = None
        self.env = None
        self.traced = None            # the graph as traced, before optimization (for check=True)

    def guards_ok(self, leaves=None):
        if self.env is not None and self.env.guards and leaves is not None:
            sizes = {name: leaves[i]._data.shape[d] for name, (i, d) in self.env.symbols.items()}
            why = self.env.check(sizes)
            if why:
                return why
        for getter, value, what in self.value_guards:
            now = getter()
            if now != value:
                return f"{what} changed from {value!r} to {now!r}"
        for kind, t, shape, dt, grad_none in self.guards:
            if kind == "grad":
                if t._grad is None:
                    return "a .grad the function reads is None now"
                t = t._grad
            d = t._data
            if d.shape != shape or d.dtype.str != dt or (grad_none is not None and (t._grad is None) != grad_none):
                return f"captured tensor {tuple(d.shape)} {d.dtype} changed (was {shape} {dt}, grad None={grad_none})"
        return None

    def run(self, leaves):
        res = self.compiled(*input_arrays(self, leaves))
        for kind, ref, k in self.writes:
            t = resolve(kind, ref, leaves)
            if res[k] is not t._data:  # else the graph updated the array in place
                np.copyto(t._data, res[k], casting="unsafe")
            dispatch.bump_version(t)
        for kind, ref, k in self.grads:
            t = resolve(kind, ref, leaves)
            t._grad = _wrap(res[k])
        outs = [_wrap(res[v]) if kind == "T" else v for kind, v in self.out_leaf_kind]
        if self.backward is not None and dispatch.state.grad_enabled:
            from .autodiff import attach_backward

            attach_backward(self, leaves, outs, res)
        return unflatten(self.out_spec, outs)


class CompiledFunction:
    """The callable ``danlu.compile`` returns."""

    def __init__(self, fn, *, fallback: str = "error", check: bool = False, name: str | None = None,
                 optimize: bool = True, dynamic=None, warmup: int = 1):
        if fallback not in ("error", "eager"):
            raise ValueError(f"compile: fallback must be 'error' or 'eager', got {fallback!r}")
        self.fn = fn
        self.fallback = fallback
        self.check = check
        self.optimize = optimize
        self.dynamic = dynamic
        self.warmup = warmup
        self.calls: dict = {}
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        self.cache: dict = {}
        self.eager_signatures: dict = {}
        self.compiles = 0
        functools.update_wrapper(self, fn, updated=()) if callable(fn) and hasattr(fn, "__name__") else None

    def _modules(self):
        from ..nn.modules.module import Module

        fn = self.fn
        if isinstance(fn, Module):
            return [fn]
        owner = getattr(fn, "__self__", None)
        return [owner] if isinstance(owner, Module) else []

    def _dynamic_dims(self, leaves, spec):
        """{leaf index: set of dynamic dims}, from ``dynamic=`` and ``danlu.mark_dynamic``."""
        out = {}
        top = _top_level_leaves(spec)
        for i, x in enumerate(leaves):
            if not isinstance(x, Tensor):
                continue
            dims = set((x._extra or {}).get("dynamic", ()))
            if self.dynamic is True and x.ndim:
                dims.add(0)
            elif isinstance(self.dynamic, dict) and top.get(i) in self.dynamic:
                d = self.dynamic[top[i]]
                dims.update((d,) if isinstance(d, int) else d)
            dims = {dd % x.ndim for dd in dims} if x.ndim else set()
            if dims:
                out[i] = dims
        return out

    def _signature(self, leaves, spec):
        mods = tuple(tuple(m.training for m in mod.modules()) for mod in self._modules())
        dyn = self._dynamic_dims(leaves, spec) if self.dynamic is not None or any(
            isinstance(x, Tensor) and x._extra and "dynamic" in x._extra for x in leaves) else {}
        return (spec, tuple(_leaf_key(x, dyn.get(i, ())) for i, x in enumerate(leaves)),
                dispatch.state.grad_enabled, mods, _dt.get_default_dtype().name)

    def __call__(self, *args, **kwargs):
        try:
            leaves, spec = flatten((args, kwargs))
            sig = self._signature(leaves, spec)
            if sig in self.eager_signatures:
                return self.fn(*args, **kwargs)
            entries = self.cache.get(sig)
            entry = reason = None
            for e in entries or ():
                reason = e.guards_ok(leaves)
                if reason is None:
                    entry = e
                    break
            if entry is None and self.calls.get(sig, 0) < self.warmup:
                # Warm-up: run eagerly first, so state that code creates lazily on its first call
                # (optimizer buffers, caches) exists as ordinary tensors before the function is traced.
                self.calls[sig] = self.calls.get(sig, 0) + 1
                return self.fn(*args, **kwargs)
            if entry is None:
                log.info("compile %s: %s", self.name, reason or self._why_new(sig))
                entry = self._compile(sig, leaves, spec, args, kwargs)
                if entry is None:
                    return self.fn(*args, **kwargs)
            if self.check:
                from .check import check_against_eager, check_fresh_inputs

                if not getattr(entry, "fresh_checked", False):
                    check_fresh_inputs(self, entry, leaves, spec)  # state is restored afterwards
                    entry.fresh_checked = True
                entry.traced.meta["check_inputs"] = input_arrays(entry, leaves, copy=True)
                return check_against_eager(self, entry, args, kwargs, getattr(self, "check_rtol", 1e-4),
                                           getattr(self, "check_atol", 1e-5))
            return entry.run(leaves)
        except Exception as e:
            reraise_filtered(e)
            raise

    def _why_new(self, sig):
        if not self.cache:
            return "first call"
        prev = next(reversed(self.cache))
        return f"new input signature {_diff(prev, sig)}"

    def _compile(self, sig, leaves, spec, args, kwargs):
        try:
            dyn = self._dynamic_dims(leaves, spec)
            entry = trace_entry(self.fn, leaves, spec, self.name, optimize=self.optimize, dynamic=dyn)
        except LazyStateError as e:
            log.info("compile %s: %s; this call runs eagerly, the next one is traced", self.name,
                     str(e).splitlines()[0])
            return None
        except GraphBreakError as e:
            if self.fallback == "eager":
                log.info("compile %s: running eagerly for this signature: %s", self.name, str(e).splitlines()[0])
                self.eager_signatures[sig] = str(e)
                return None
            raise
        self.cache.setdefault(sig, []).append(entry)
        self.compiles += 1
        return entry

    def graph_for(self, *args, **kwargs) -> Graph:
        """The optimized graph this function runs for these arguments (compiling it if needed)."""
        return self.entry_for(*args, **kwargs).graph

    def entry_for(self, *args, **kwargs):
        leaves, spec = flatten((args, kwargs))
        sig = self._signature(leaves, spec)
        for e in self.cache.get(sig, ()):
            if e.guards_ok(leaves) is None:
                return e
        return self._compile(sig, leaves, spec, args, kwargs)

    def source_for(self, *args, **kwargs) -> str:
        return self.entry_for(*args, **kwargs).compiled.source


def _diff(a, b) -> str:
    """A short description of how two signatures differ (for the recompile log)."""
    if a[0] != b[0]:
        return "(argument structure changed)"
    for i, (x, y) in enumerate(zip(a[1], b[1])):
        if x != y:
            return f"(argument {i}: {x[1:]} was {y[1:]})" if x[0] == y[0] == "T" else f"(argument {i} changed)"
    if a[2] != b[2]:
        return "(grad mode changed)"
    if a[3] != b[3]:
        return "(module training mode changed)"
    return "(default dtype changed)"


def _top_level_leaves(spec):
    """{leaf index: positional argument index} for tensors passed directly as positional arguments."""
    out, k = {}, 0
    args_spec = spec[1][0]  # ("U", (args tuple spec, kwargs dict spec))
    for pos, s in enumerate(args_spec[1]):
        if s[0] == "T":
            out[k] = pos
        k += _count_leaves(s)
    return out


def _count_leaves(s):
    if s[0] in ("T", "V"):
        return 1
    if s[0] in ("L", "U"):
        return sum(_count_leaves(x) for x in s[1])
    if s[0] == "N":
        return sum(_count_leaves(x) for x in s[2])
    return sum(_count_leaves(x) for x in s[3])

def trace_entry(fn, leaves, spec, name, optimize=True, dynamic=None) -> _Entry:
    """Trace ``fn`` on the given arguments into an optimized, compiled :class:`_Entry`."""
    from .passes import run_pipeline
    from .symbolic import ShapeEnv, shape_env

    graph = Graph(name)
    tracer = Tracer(graph)
    tracer.state_must_exist = True  # optimizer state made while tracing: run this call eagerly instead
    entry = _Entry()
    env = entry.env = ShapeEnv()
    arg_ids = {}
    try:
        with tracing(tracer), shape_env(env):
            for i, x in enumerate(leaves):
                if isinstance(x, Tensor) and id(x) not in arg_ids:
                    shape = None
                    if dynamic and i in dynamic:
                        shape = tuple(env.new_symbol(s, i, d) if d in dynamic[i] else s
                                      for d, s in enumerate(x._data.shape))
                    tracer.bind(x, f"arg{i}", shape)
                    arg_ids[id(x)] = i
            for m in _param_owners(fn):
                for pname, p in list(m.named_parameters()) + list(m.named_buffers()):
                    tracer.bind(p, pname)
            args, kwargs = unflatten(spec, leaves)
            out = fn(*args, **kwargs)
            out_leaves, out_spec = flatten(out)
            outputs = []
            for o in out_leaves:
                if isinstance(o, Tensor):
                    entry.out_leaf_kind.append(("T", len(outputs)))
                    outputs.append(tracer.value_of(o))
                else:
                    entry.out_leaf_kind.append(("V", o))
            entry.n_user = len(outputs)
            entry.out_spec = out_spec
            diff = _differentiable_outputs(out_leaves, tracer)
            donate = {}
            for t, v0, v in tracer.mutations():
                ref = _ref(t, arg_ids, tracer)
                if ref[0] == "cap":
                    donate[v0.id] = (len(outputs), tracer.bound[id(t)][2])
                entry.writes.append((*ref, len(outputs)))
                outputs.append(v)
            for t, v in tracer.grad_outputs():
                entry.grads.append((*_ref(t, arg_ids, tracer), len(outputs)))
                outputs.append(v)
            graph.outputs = outputs
            if diff is not None:
                diff_out, diff_in = diff
                cots = [tracer_input(tracer, o, f"grad_out{i}") for i, o in enumerate(diff_out)]
                from ..autograd.engine import grad as _grad

                grads = _grad(diff_out, diff_in, cots, allow_unused=True)
                entry.diff_in = [_ref(t, arg_ids, tracer) for t in diff_in]
                entry.grad_values = [None if g is None else tracer.value_of(g) for g in grads]
                entry.cot_values = [c._data for c in cots]
                entry.diff_out_index = [outputs.index(tracer.value_of(o)) for o in diff_out]
    finally:
        # A trace depends on a tensor's .grad from before the call only if it kept (and so may have read
        # or accumulated into) that very grad; a zero_grad(set_to_none) or a fresh backward replaces it.
        kept_grad = {k: tracer.bound[k][0]._grad is tracer.original_grad(tracer.bound[k][0]) for k in tracer.order}
        tracer.restore()
    entry.value_guards = list(tracer.value_guards)
    live_of = {v.id: getter for v, getter in tracer.live}
    order = [("bound", k) for k in tracer.order] + [("live", v.id) for v, _g in tracer.live]
    order.sort(key=lambda e: graph.inputs.index(tracer.bound[e[1]][1] if e[0] == "bound" else
                                                next(v for v, _g in tracer.live if v.id == e[1])))
    for kind, k in order:
        if kind == "live":
            entry.inputs.append(("live", live_of[k]))
            continue
        t, v, data = tracer.bound[k][:3]
        if id(t) in arg_ids:
            entry.inputs.append(("arg", arg_ids[id(t)]))
        else:
            ref = _ref(t, arg_ids, tracer)
            entry.inputs.append(ref)
            entry.guards.append((ref[0], ref[1], tuple(data.shape), data.dtype.str,
                                 (t._grad is None) if kept_grad[k] else None))
    graph.lint()
    if not entry.diff_in and donate:
        graph.meta["donate"] = _donatable(donate, [tracer.bound[k][2] for k in tracer.order])
    if entry.diff_in:
        from .autodiff import split_forward_backward

        graph, bwd = split_forward_backward(graph, entry)
        if optimize:
            bwd = run_pipeline(bwd)
        entry.backward_graph = bwd
        entry.backward = CompiledGraph(bwd, "backward")
    entry.traced = graph.copy()
    if optimize:
        graph = run_pipeline(graph)
    entry.graph = graph
    entry.compiled = CompiledGraph(graph)
    return entry


def _donatable(donate: dict, arrays: list) -> dict:
    """{input value id: output index} for captured tensors (parameters, optimizer state) the step
    writes, whose arrays overlap no other input's: the compiled graph may update those in place."""
    out = {}
    for vid, (k, a) in donate.items():
        if isinstance(a, np.ndarray) and a.flags.writeable and sum(b is a for b in arrays) == 1 and \
                not any(b is not a and isinstance(b, np.ndarray) and np.may_share_memory(a, b) for b in arrays):
            out[vid] = k
    return out


def _differentiable_outputs(out_leaves, tracer):
    """(outputs that need a backward, bound tensors that require grad), or None."""
    if not dispatch.state.grad_enabled or tracer.backward_ran:
        return None
    outs = [o for o in out_leaves if isinstance(o, Tensor) and o._rg and o._node is not None]
    if not outs:
        return None
    ins = [tracer.bound[k][0] for k in tracer.order if tracer.bound[k][0]._rg]
    return (outs, ins) if ins else None


def tracer_input(tracer, like: Tensor, name: str) -> Tensor:
    v = tracer.graph.add_input(like._data.shape, like._data.dtype, name)
    return _wrap(v)


def _ref(t, arg_ids, tracer=None):
    if id(t) in arg_ids:
        return ("arg", arg_ids[id(t)])
    owner = tracer.grad_owner.get(id(t)) if tracer is not None else None
    return ("grad", owner) if owner is not None else ("cap", t)


def _param_owners(fn):
    from ..nn.modules.module import Module

    if isinstance(fn, Module):
        return [fn]
    owner = getattr(fn, "__self__", None)
    return [owner] if isinstance(owner, Module) else []


def compile(fn=None, *, fallback: str = "error", check: bool = False, name: str | None = None,  # noqa: A001
            optimize: bool = True, dynamic=None, warmup: int = 1):
    """Compile a function or Module into an optimized graph, traced once per input signature.

    Usable as ``dl.compile(fn)`` or as a decorator (with or without arguments). The first ``warmup``
    calls of each signature run eagerly (so lazily created state, such as optimizer buffers, exists
    before tracing); later calls run the compiled graph. ``dynamic`` marks dimensions that may change
    without retracing (``True``: dim 0 of every tensor argument; ``{arg index: dims}``); ``fallback=
    "eager"`` runs functions with data-dependent Python control flow eagerly (logged); ``check=True``
    compares every call with eager execution and names the first node that differs.

    >>> import danlu as dl
    >>> @dl.compile
    ... def f(x):
    ...     return (x * 2 + 1).sum()
    >>> f(dl.ones(3))
    tensor(9.)
    """
    kw = dict(fallback=fallback, check=check, name=name, optimize=optimize, dynamic=dynamic, warmup=warmup)
    if fn is None:
        return lambda f: CompiledFunction(f, **kw)
    return CompiledFunction(fn, **kw)


def mark_dynamic(t: Tensor, dim) -> Tensor:
    """Declare dimension(s) ``dim`` of ``t`` dynamic for ``danlu.compile`` (new sizes do not retrace).

    >>> import danlu as dl
    >>> x = dl.mark_dynamic(dl.zeros(8, 3), 0)
    >>> f = dl.compile(lambda t: t.sum(1))
    >>> _ = f(x); _ = f(dl.mark_dynamic(dl.zeros(5, 3), 0)); f.compiles
    1
    """
    if t._extra is None:
        t._extra = {}
    dims = set(t._extra.get("dynamic", ()))
    dims.update((dim,) if isinstance(dim, int) else dim)
    t._extra["dynamic"] = tuple(sorted(dims))
    return t
