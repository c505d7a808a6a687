"""TensorFlow 1's programming model on danlu's graph mode: build a :class:`Graph` of placeholders,
variables and ops, then execute parts of it with ``Session.run(fetches, feed_dict)``.

``Session.run`` prunes the graph to what the fetches (and the updates of the operations among them)
need, copies that part into a graph of its own, optimizes and compiles it with danlu's pipeline and
code generator, and caches it by (fetches, fed tensors): later runs call the generated code directly.
Variable values live in the session; results come back as NumPy arrays (NumPy scalars for 0-d
results), as in TF1.

Building: :class:`Graph`, :func:`placeholder` and :func:`gradients` (in :mod:`danlu.graph.session_graph`);
:class:`Variable`, :class:`Operation`, :func:`group` and the initializers (in
:mod:`danlu.graph.session_variables`); :func:`train_op` (in :mod:`danlu.graph.session_train`).
"""

from __future__ import annotations

import logging
import re

import numpy as np

from ..core import dispatch
from ..core import dtypes as _dt
from ..core.dispatch import bump_version
from ..core.errors import DTypeError, ShapeError, format_location, reraise_filtered
from ..core.registry import AVal
from ..core.tensor import Tensor
from . import symbolic as _sym
from .codegen import CompiledGraph, symbol_sources
from .compile import flatten, unflatten
from .ir import Graph as IRGraph
from .ir import GraphError, Value
from .session_graph import SYMBOLIC_HINT, Graph, _shape_str, describe_value, get_default_graph, gradients, graph_of
from .session_graph import placeholder
from .session_variables import (Operation, Variable, global_variables, global_variables_initializer, group,
                                trainable_variables, variables_initializer)
from .session_train import TrainOp, train_op
from .symbolic import SymInt

__all__ = ["Graph", "get_default_graph", "placeholder", "Variable", "Operation", "group", "gradients",
           "global_variables", "trainable_variables", "global_variables_initializer", "variables_initializer",
           "train_op", "TrainOp", "Session", "SYMBOLIC_HINT"]

log = logging.getLogger("danlu.session")
_IDENT = re.compile(r"[A-Za-z_]\w*")


class Session:
    """Runs a :class:`Graph`, as ``tf.Session``: ``run(fetches, feed_dict=None)``.

    ``fetches`` is a graph tensor, a variable, an operation (its result is None), or a list, tuple,
    dict or namedtuple of those (nested); the result has the same structure with NumPy arrays.
    ``feed_dict`` maps placeholders (or any graph tensor, to override it) to arrays, numbers, nested
    lists or eager tensors. Variable values live in the session; use it as a context manager, or
    call :meth:`close`.

    >>> import danlu as dl
    >>> from danlu.graph.session import Graph, Session, Variable, placeholder, global_variables_initializer
    >>> with Graph() as g:
    ...     x = placeholder((None,), name="x")
    ...     w = Variable(2.0, name="w")
    ...     y = x * w
    ...     init = global_variables_initializer()
    >>> with Session(g) as sess:
    ...     sess.run(init)
    ...     sess.run({"y": y, "w": w}, feed_dict={x: [1.0, 2.0, 3.0]})
    {'y': array([2., 4., 6.], dtype=float32), 'w': np.float32(2.0)}
    """

    def __init__(self, graph: Graph | None = None):
        graph = get_default_graph() if graph is None else graph
        if not isinstance(graph, Graph):
            raise TypeError(f"Session: graph must be a danlu.Graph (from danlu.graph.session), got "
                            f"{type(graph).__name__}")
        self.graph = graph
        self._values: dict[int, np.ndarray] = {}    # id(variable) -> its value in this session
        self._closed = False

    def __repr__(self):
        state = "closed" if self._closed else f"{len(self._values)} variables set"
        return f"<danlu Session on graph '{self.graph.name}' ({state})>"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        """Release the variable values; running a closed session is an error."""
        self._closed = True
        self._values.clear()

    def _initialized(self, var: Variable) -> bool:
        return id(var) in self._values

    def _set_variable(self, var: Variable, value) -> None:
        self._check_open()
        if not isinstance(var, Variable) or var.graph is not self.graph:
            raise GraphError(f"{var!r} is not a variable of this session's graph '{self.graph.name}'")
        self._values[id(var)] = np.array(_feed_array(self.graph, var._data, value), copy=True)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("Attempted to use a closed Session: create a new Session to run the graph again")

    # -- run ------------------------------------------------------------------------------------------
    def run(self, fetches, feed_dict=None):
        """Compute ``fetches`` (and run the operations among them), with ``feed_dict`` as placeholder values.

        >>> import danlu as dl
        >>> from danlu.graph.session import Graph, Session, placeholder
        >>> with Graph() as g:
        ...     a = placeholder((2,), name="a")
        ...     b = a.sum()
        ...     c = a * 2
        >>> Session(g).run([b, (c,)], {a: [0.5, 1.0]})
        [np.float32(1.5), (array([1., 2.], dtype=float32),)]
        """
        try:
            self._check_open()
            return self._run(fetches, feed_dict)
        except Exception as e:
            reraise_filtered(e)
            raise

    def _run(self, fetches, feed_dict):
        g = self.graph
        leaves, spec = flatten(fetches)
        fetch_vals, ops = [], []
        for i, x in enumerate(leaves):
            if isinstance(x, Operation):
                if x.graph is not g:
                    raise GraphError(f"fetch {i} ({x!r}) is an operation of graph '{x.graph.name}', not of this "
                                     f"session's graph '{g.name}'")
                ops.append(x)
                fetch_vals.append(None)
            elif isinstance(x, Tensor):
                fetch_vals.append(self._graph_value(x, f"fetch {i}"))
            else:
                raise TypeError(f"fetch {i} has invalid type {type(x).__name__} ({x!r:.60}): fetches must be graph "
                                "tensors, variables or operations (or lists, tuples and dicts of them)")
        feeds = self._feeds(feed_dict)
        updates, resets, extra = self._resolve(ops)
        out_vals = [v for v in fetch_vals if v is not None]
        value_updates = [(t, v) for t, v in updates if isinstance(v, Value)]
        key = (tuple(v.id for v in out_vals), tuple(v.id for v in extra),
               tuple((id(t), v.id) for t, v in value_updates), tuple(sorted(feeds)))
        entry = g._cache.get(key)
        if entry is None:
            with g._lock:
                entry = g._cache.get(key)
                if entry is None:
                    entry = g._cache[key] = _Entry(g, out_vals, extra, value_updates, feeds, leaves)
        results, computed, inputs = entry.run(self, feeds) if entry.needed else ([], [], ())
        # Results first, then the updates, all computed from the values the variables had when the run
        # started. A stored value never aliases a returned result, an input or another stored value.
        returned = [a[()] if a.ndim == 0 else a for a in results]
        for var in resets:
            self._values.pop(id(var), None)
        taken = {id(a) for a in results}
        consts = [(t, np.array(v, copy=True)) for t, v in updates if not isinstance(v, Value)]
        for target, arr in consts + computed:
            if not isinstance(target, Variable):
                np.copyto(target._data, arr, casting="unsafe")
                bump_version(target)
                continue
            if id(arr) in taken or id(arr) in inputs or arr.base is not None:
                arr = arr.copy()
            taken.add(id(arr))
            self._values[id(target)] = arr
        it = iter(returned)
        return unflatten(spec, [None if v is None else next(it) for v in fetch_vals])

    def _graph_value(self, x: Tensor, what: str) -> Value:
        g = self.graph
        xg = graph_of(x, what)
        if xg is None:
            raise GraphError(f"{what} is an eager tensor ({x.dtype.name}{list(x.shape)}), not a tensor of graph "
                             f"'{g.name}': eager tensors already hold their values, only graph tensors can be run")
        if xg is not g:
            raise GraphError(f"{what} ({describe_value(xg, x._data)}) belongs to graph '{xg.name}', not to this "
                             f"session's graph '{g.name}'; create the session with Session(graph) for that graph")
        return x._data

    def _feeds(self, feed_dict) -> dict:
        out: dict = {}
        if not feed_dict:
            return out
        g = self.graph
        for key, val in feed_dict.items():
            if not isinstance(key, Tensor):
                raise TypeError(f"feed_dict keys must be graph tensors (placeholders), got {type(key).__name__} "
                                f"({key!r:.60})")
            v = self._graph_value(key, "a feed_dict key")
            out[v.id] = _feed_array(g, v, val)
        return out

    def _resolve(self, ops):
        """(updates, resets, extra Values) of ``ops`` and the operations and tensors they depend on."""
        updates, resets, extra, seen = [], [], [], set()
        stack = list(reversed(ops))
        while stack:
            op = stack.pop()
            if op.id in seen:
                continue
            seen.add(op.id)
            if op.graph is not self.graph:
                raise GraphError(f"{op!r} depends on an operation of another graph ('{op.graph.name}')")
            for d in reversed(op.deps):
                if isinstance(d, Operation):
                    stack.append(d)
            for d in op.deps:
                if isinstance(d, Tensor):
                    extra.append(self._graph_value(d, f"an input of {op!r}"))
            resets.extend(op.resets)
            updates.extend(op.updates_for(self))
        return updates, resets, extra


def _feed_array(g: Graph, v: Value, val) -> np.ndarray:
    """``val`` as an array for ``v``: converted to its dtype when that keeps the kind, its shape checked."""
    if isinstance(val, Tensor):
        if isinstance(val._data, Value):
            raise TypeError(f"cannot feed a graph tensor to {describe_value(g, v)}: feed a value (an array, a "
                            "number, or an eager tensor); to compute it, fetch it first")
        arr = val._data
    else:
        arr = np.asarray(val)
    if arr.dtype != v.dtype:
        if arr.dtype.kind not in "biuf" or not np.can_cast(arr.dtype, v.dtype, "same_kind"):
            src = _dt._FROM_NP[arr.dtype].name if arr.dtype in _dt._FROM_NP else str(arr.dtype)
            raise DTypeError(f"cannot feed a value of dtype {src} and shape {tuple(arr.shape)} to "
                             f"{describe_value(g, v)}: converting {src} to {_dt._FROM_NP[v.dtype].name} would change "
                             "its kind; convert it explicitly (e.g. arr.astype(...))")
        arr = arr.astype(v.dtype)
    shape = v.shape
    ok = arr.ndim == len(shape) and all(isinstance(s, SymInt) or s == d for s, d in zip(shape, arr.shape, strict=True))
    if not ok:
        raise ShapeError(f"cannot feed a value of shape {tuple(arr.shape)} to {describe_value(g, v)}, which has "
                         f"shape {_shape_str(shape)}" + (" (None: any size)" if any(isinstance(s, SymInt) for s in
                                                                                     shape) else ""))
    return arr


# -- compiled subgraphs --------------------------------------------------------------------------------

class _Entry:
    """One pruned, compiled subgraph for one (fetches, updates, fed tensors) combination.

    ``plan`` says where each input comes from: ("feed", value id), ("var", Variable) or ("cap", tensor).
    ``compiled`` is generated for symbolic sizes; sizes that break a guard recorded while building get
    a copy re-inferred for them (``by_sizes`` caches the choice per tuple of sizes).
    """

    def __init__(self, g: Graph, out_vals, extra, value_updates, feeds, leaves):
        self.g = g
        roots = list(out_vals) + list(extra) + [v for _t, v in value_updates]
        nodes, last_node, inputs, consts, effects = _prune(g, roots, feeds, leaves)
        updates = list(value_updates)
        seen = {(id(t), v.id) for t, v in updates}
        for t, v in effects:
            if (id(t), v.id) not in seen:
                seen.add((id(t), v.id))
                updates.append((t, v))
        self.needed = bool(out_vals or updates or extra)
        if not self.needed:
            return
        sub = IRGraph(f"{g.name}_run")
        env, self.plan = {}, []
        for kind, ref, v, name in inputs:
            env[v.id] = sub.add_input(v.shape, v.dtype, name)
            self.plan.append((kind, ref))
        for v in consts:
            env[v.id] = sub.add_const(g.ir.consts[v.id])
        for n in nodes:
            ins = [env[i.id] if isinstance(i, Value) else i for i in n.inputs]
            avals = [AVal(o.shape, _dt._FROM_NP[o.dtype]) for o in n.outputs]
            for o, new in zip(n.outputs, sub.add_node(n.op, ins, n.attrs, avals, loc=n.loc), strict=True):
                env[o.id] = new
        sub.outputs = [env[v.id] for v in out_vals] + [env[v.id] for v in extra] + [env[v.id] for _t, v in updates]
        self.n_out = len(out_vals)
        first_update = len(out_vals) + len(extra)
        self.updates = [(t, first_update + k) for k, (t, _v) in enumerate(updates)]
        self.sub = sub
        sources = symbol_sources(sub)
        used = _symbols_used(sub)
        missing = sorted(used - set(sources))
        if missing:
            raise GraphError(f"the fed tensors do not determine the unknown sizes {', '.join(missing)} that this run "
                             "needs; feed the placeholders they come from instead of (or as well as) computed tensors")
        self.symbols = list(sources)
        self.sym_pos = [sources[s] for s in self.symbols]
        names = set(self.symbols)
        self.guards = sorted({gd for n in nodes for gd in g.tracer.node_guards.get(id(n), ())}, key=str)
        self.user_guards = [gd for gd, built in g.shape_env.user_guards.items() if last_node >= built
                            and (ids := set(_IDENT.findall(gd[0])) | set(_IDENT.findall(gd[2]))) and ids <= names]
        self.compiled = None      # generated for symbolic sizes when first used
        self.by_sizes: dict = {}

    def run(self, sess: Session, feeds: dict):
        arrays = []
        for kind, ref in self.plan:
            if kind == "feed":
                arrays.append(feeds[ref])
            elif kind == "var":
                a = sess._values.get(id(ref))
                if a is None:
                    raise GraphError(f"attempting to use uninitialized variable '{ref.name}' "
                                     f"({ref.dtype.name}{_shape_str(ref._data.shape)}): run "
                                     "global_variables_initializer() (or its .initializer) in this session first")
                arrays.append(a)
            elif kind == "live":
                arrays.append(np.asarray(ref[0](), ref[1]))
            else:
                d = ref._data
                cap = self.g.tracer.captures[id(ref)][1]
                if not isinstance(d, np.ndarray) or d.shape != cap.shape or d.dtype != cap.dtype:
                    raise GraphError(f"a tensor captured by graph '{self.g.name}' (an eager tensor used in it, "
                                     f"{_dt._FROM_NP[cap.dtype].name}{list(cap.shape)}) changed shape or dtype "
                                     "since the graph was built; build a new graph")
                arrays.append(d)
        sizes = tuple(arrays[p].shape[d] for p, d in self.sym_pos)
        cg = self.by_sizes.get(sizes)
        if cg is None:
            cg = self.by_sizes[sizes] = self._choose(sizes)
        with _eager():
            res = cg(*arrays)
        # A kernel's fresh result owns its memory; an input returned as is, or a view (of an input, a
        # variable's value), is copied so that nothing handed out or stored shares memory with another.
        inputs = {id(a) for a in arrays}
        results = []
        for k in range(self.n_out):
            a = np.asarray(res[k])
            if id(a) in inputs or a.base is not None:
                a = a.copy()
            results.append(a)
        return results, [(t, np.asarray(res[k])) for t, k in self.updates], inputs

    def _choose(self, sizes: tuple):
        env = dict(zip(self.symbols, sizes, strict=True))
        for a, opname, b, expected in self.user_guards:
            if _CMP[opname](_sym.evaluate(a, env), _sym.evaluate(b, env)) != expected:
                fed = ", ".join(f"{k}={v}" for k, v in env.items())
                raise GraphError(
                    f"graph '{self.g.name}' was built by Python code that decided on an unknown size: "
                    f"`{a} {_SYM[opname]} {b}` was {expected} with the example size {SYMBOLIC_HINT} used while "
                    f"building, and is {not expected} for the fed sizes ({fed}), so the graph does not compute "
                    "what that code would. Express the decision with danlu.cond, or give the placeholder a "
                    "fixed size")
        for a, opname, b, expected in self.guards:
            if _CMP[opname](_sym.evaluate(a, env), _sym.evaluate(b, env)) != expected:
                # A shape rule inside danlu compared sizes differently for these sizes (broadcasting a size
                # 1, or a comparison whose outcome did not matter): re-infer every node for them. When every
                # shape agrees with the symbolic one, the symbolic code is right for these sizes too;
                # otherwise a copy compiled for them computes what eager execution would.
                spec = _specialize(self.sub, env)
                if _same_shapes(self.sub, spec, env):
                    break
                log.info("graph '%s': for sizes %s the shape rules decide differently than with symbolic sizes "
                         "(guard %s %s %s); compiling a copy for these sizes", self.g.name, env, a, opname, b)
                return _compile(self.g, spec)
        if self.compiled is None:
            self.compiled = _compile(self.g, self.sub)
        return self.compiled


_SYM = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_CMP = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}


_SIZE_VALUE_PASSES = ("algebraic_simplification", "elementwise_fusion")


class _eager:
    """No interpreter and no guard recording while compiling or running (a session may run inside
    ``with graph:``, whose interpreter and shape environment are then current)."""

    def __enter__(self):
        self.prev = dispatch.push_interpreter(None)
        self.env, _sym._CURRENT[0] = _sym._CURRENT[0], None

    def __exit__(self, *exc):
        _sym._CURRENT[0] = self.env
        dispatch.pop_interpreter(self.prev)


def _compile(g: Graph, sub: IRGraph) -> CompiledGraph:
    from .passes import PIPELINE, run_pipeline

    pipeline = None
    if any(isinstance(i, SymInt) for n in sub.nodes for i in n.inputs):
        # A symbolic size used as a number (x / x.shape[0]): fusion would freeze its example value into the
        # fused kernel, and simplification rules compare it by value (x ** n with n == 2 becomes x * x).
        pipeline = [p for p in PIPELINE if p.__name__ not in _SIZE_VALUE_PASSES]
    with _eager():
        cg = CompiledGraph(run_pipeline(sub.copy(), pipeline), "run")
    g.compiles += 1
    return cg


def _prune(g: Graph, roots, feeds: dict, leaves):
    """The nodes (in graph order), inputs, constants and assign effects that ``roots`` need.

    Inputs are (kind, ref, Value, name): fed tensors first (by value id), then variables and captured
    tensors in the order met. A placeholder that is needed but not fed is an error."""
    needed, seen, effects = set(), set(), []
    fed, others, consts = [], [], []
    stack = list(reversed(roots))
    while stack:
        v = stack.pop()
        if v.id in seen:
            continue
        seen.add(v.id)
        eff = g._effects.get(v.id)
        if eff is not None:
            effects.append(eff)
        if v.id in feeds:
            ph = g._placeholders.get(v.id)
            fed.append(("feed", v.id, v, ph[0] if ph else f"fed{len(fed)}"))
            continue
        n = v.producer
        if n is not None:
            if id(n) not in needed:
                needed.add(id(n))
                stack.extend(i for i in reversed(n.inputs) if isinstance(i, Value))
            continue
        if v.id in g.ir.consts:
            consts.append(v)
        elif v.id in g._placeholders:
            who = _who_needs(g, roots, v, leaves, feeds)
            raise GraphError(f"you must feed a value for {describe_value(g, v)}: {who} depends on it "
                             "(feed_dict={placeholder: array})")
        elif v.id in g._var_of:
            var = g._var_of[v.id]
            others.append(("var", var, v, var.name))
        elif v.id in g.tracer.live_of:
            others.append(("live", g.tracer.live_of[v.id], v, f"live{len(others)}"))
        elif v.id in g.tracer.capture_of:
            t = g.tracer.capture_of[v.id]
            others.append(("cap", t, v, f"captured{len(others)}"))
        else:
            raise GraphError(f"{v!r} is an input of graph '{g.name}' of unknown kind")
    positions = [k for k, n in enumerate(g.ir.nodes) if id(n) in needed]
    nodes = [g.ir.nodes[k] for k in positions]
    fed.sort(key=lambda e: e[1])
    return nodes, (positions[-1] if positions else -1), fed + others, consts, effects


def _who_needs(g: Graph, roots, target: Value, leaves, feeds) -> str:
    for r in roots:
        stack, seen = [r], set()
        while stack:
            v = stack.pop()
            if v.id in seen or v.id in feeds:
                continue
            seen.add(v.id)
            if v is target:
                k = next((i for i, x in enumerate(leaves) if isinstance(x, Tensor) and x._data is r), None)
                what = f"fetch {k}" if k is not None else "an operation being run"
                return f"{what} ({describe_value(g, r)})" if r is not target else f"{what}"
            if v.producer is not None:
                stack.extend(i for i in v.producer.inputs if isinstance(i, Value))
    return "the run"


def _symbols_used(graph: IRGraph) -> set:
    out: set = set()

    def scan(x):
        if isinstance(x, SymInt):
            out.update(_IDENT.findall(x.expr))
        elif isinstance(x, (tuple, list)):
            for y in x:
                scan(y)

    for v in graph.inputs:
        scan(v.shape)
    for n in graph.nodes:
        scan(n.inputs)
        scan(tuple(n.attrs.values()))
        for o in n.outputs:
            scan(o.shape)
    return out


def _conc(x, env: dict):
    """``x`` with every SymInt replaced by its value for the sizes in ``env``."""
    if isinstance(x, SymInt):
        return _sym.evaluate(x.expr, env)
    if isinstance(x, tuple):
        vals = [_conc(y, env) for y in x]
        return x._make(vals) if hasattr(x, "_make") else type(x)(vals)
    if isinstance(x, list):
        return [_conc(y, env) for y in x]
    return x


def _same_shapes(sub: IRGraph, spec: IRGraph, env: dict) -> bool:
    """Whether every value of ``spec`` (``sub`` re-inferred for the sizes ``env``) has the shape that its
    symbolic counterpart in ``sub`` evaluates to."""
    for n, m in zip(sub.nodes, spec.nodes, strict=True):
        for o, p in zip(n.outputs, m.outputs, strict=True):
            if _conc(o.shape, env) != tuple(p.shape) or o.dtype != p.dtype:
                return False
    return True


def _specialize(sub: IRGraph, env: dict) -> IRGraph:
    """A copy of ``sub`` for concrete sizes: each node's shapes re-inferred by its op's rule, as eager would."""
    out = IRGraph(sub.name + "_" + "_".join(f"{k}{v}" for k, v in env.items()))
    vals = {}
    for v, name in zip(sub.inputs, sub.input_names, strict=True):
        vals[v.id] = out.add_input(_conc(v.shape, env), v.dtype, name)
    for vid, arr in sub.consts.items():
        vals[vid] = out.add_const(arr)
    for n in sub.nodes:
        ins = [vals[i.id] if isinstance(i, Value) else _conc(i, env) for i in n.inputs]
        attrs = {k: _conc(a, env) for k, a in n.attrs.items()}
        avals = [AVal(i.shape, _dt._FROM_NP[i.dtype]) if isinstance(i, Value) else i for i in ins]
        try:
            res = n.op.infer(*avals, **attrs)
        except Exception as e:
            sizes = ", ".join(f"{k}={v}" for k, v in env.items())
            raise type(e)(f"{e}\n(with the fed sizes {sizes}, in the op built at {format_location(n.loc)})") from None
        res = res if n.op.multi_out else (res,)
        for o, new in zip(n.outputs, out.add_node(n.op, ins, attrs, res, loc=n.loc), strict=True):
            vals[o.id] = new
    out.outputs = [vals[o.id] if isinstance(o, Value) else o for o in sub.outputs]
    return out

