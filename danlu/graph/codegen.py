"""Code generation: a Graph becomes a Python function that calls backend kernels directly (no Tensor
wrappers, no tape), frees each buffer after its last use, and whose source is registered with
linecache so tracebacks show the generated lines; an error raised inside names the user's line that
recorded the failing node."""

from __future__ import annotations

import keyword
import linecache
import re
import sys

import numpy as np

from ..core import dtypes as _dt
from ..core.errors import format_location
from .ir import Graph, Value

__all__ = ["generate_source", "build", "CompiledGraph"]

_counter = [0]


def _ident(name: str, used: set) -> str:
    s = re.sub(r"\W", "_", name)
    if not s or s[0].isdigit() or keyword.iskeyword(s):
        s = "v_" + s
    base, k = s, 1
    while s in used:
        k += 1
        s = f"{base}_{k}"
    used.add(s)
    return s


def _literal(v, ns: dict, hint: str):
    """Source text for an attribute value; values without a literal form go into the namespace."""
    if v is None or isinstance(v, (bool, int, str)):
        return repr(v)
    if isinstance(v, float):
        return repr(v) if np.isfinite(v) else f"float({str(v)!r})"
    if isinstance(v, _dt.DType):
        ns[f"dtype_{v.name}"] = v
        return f"dtype_{v.name}"
    if isinstance(v, tuple):
        parts = [_literal(x, ns, hint) for x in v]
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
    name = f"attr_{hint}"
    ns[name] = v
    return name


def symbol_sources(graph: Graph) -> dict:
    """{symbol: (input position, dim)}: where each size symbol can be read from the inputs."""
    from .symbolic import SymInt

    out = {}
    for pos, v in enumerate(graph.inputs):
        for d, s in enumerate(v.shape):
            if isinstance(s, SymInt) and s.expr.isidentifier() and s.expr not in out:
                out[s.expr] = (pos, d)
    return out


def generate_source(graph: Graph, fn_name: str = "forward"):
    """(source, namespace, line->node index map) for ``graph``."""
    ns: dict = {"_asarray": np.asarray, "__name__": "danlu.graph.generated"}
    used: set = set(ns)
    names: dict = {}
    params = []
    for v, n in zip(graph.inputs, graph.input_names):
        names[v.id] = _ident(n, used)
        params.append(names[v.id])
    for k, (vid, arr) in enumerate(graph.consts.items()):
        names[vid] = _ident(f"const{k}", used)
        ns[names[vid]] = arr
    # last use of each value, to free buffers early
    last = {}
    for k, n in enumerate(graph.nodes):
        for i in n.inputs:
            if isinstance(i, Value):
                last[i.id] = k
    keep = {o.id for o in graph.outputs if isinstance(o, Value)} | {v.id for v in graph.inputs} | set(graph.consts)
    plan = graph.meta.get("memory_plan")
    assign = plan.assign if plan is not None else {}
    donated = plan.donated if plan is not None else {}
    donors = set(assign.values())
    lines = [f"def {fn_name}({', '.join(params)}):"]
    for sym, (pos, dim) in symbol_sources(graph).items():
        lines.append(f"    {sym} = {params[pos]}.shape[{dim}]")
    line_node = {}
    for k, n in enumerate(graph.nodes):
        kname = f"k_{n.op.name}"
        if kname not in ns:
            kname = _ident(kname, used)
            ns[kname] = n.op.impl["cpu"] if isinstance(getattr(n.op, "impl", None), dict) else n.op.kernel
        for o in n.outputs:
            names[o.id] = _ident(f"v{o.id}", used)
        args = [names[i.id] if isinstance(i, Value) else _literal(i, ns, f"{k}_in") for i in n.inputs]
        args += [f"{a}={_literal(v, ns, f'{k}_{a}')}" for a, v in n.attrs.items()]
        donor = assign.get(n.outputs[0].id) if len(n.outputs) == 1 else None
        if donor is not None:
            args.append(f"out={names[donor]}")
        elif any(o.id in donated for o in n.outputs):
            outs = [names[donated[o.id]] if o.id in donated else "None" for o in n.outputs]
            args.append(f"out={outs[0]}" if len(outs) == 1 else f"out=({', '.join(outs)})")
        lhs = ", ".join(names[o.id] for o in n.outputs) + ("," if len(n.outputs) == 1 and n.op.multi_out else "")
        lines.append(f"    {lhs} = {kname}({', '.join(args)})")
        line_node[len(lines)] = k
        for o in n.outputs:
            if o.shape == () and donor is None:
                lines.append(f"    {names[o.id]} = _asarray({names[o.id]})")
        dead = [i for i in dict.fromkeys(x for x in n.inputs if isinstance(x, Value))
                if last.get(i.id) == k and i.id not in keep and (i.id not in donors or i.id == donor)]
        dead += [o for o in n.outputs if o.id not in last and o.id not in keep and o.id not in donors]
        if donor is not None and donor not in {i.id for i in dead}:
            dead.append(_ValueRef(donor))
        if dead:
            lines.append(f"    del {', '.join(dict.fromkeys(names[v.id] for v in dead))}")
    outs = [names[o.id] if isinstance(o, Value) else repr(o) for o in graph.outputs]
    lines.append(f"    return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
    return "\n".join(lines) + "\n", ns, line_node


def python_source(graph: Graph, fn_name: str = "forward") -> str:
    """Standalone, runnable Python for ``graph``: kernels are looked up in the op registry by name and
    constants are array literals (large ones come from a ``CONSTS`` dict the caller provides)."""
    src, ns, _ = generate_source(graph, fn_name)
    head = ["import numpy as np", "from danlu.core.registry import get_op", "from danlu.core import dtypes", ""]
    for name, v in ns.items():
        if name.startswith("k_"):
            op_name = name[2:]
            if getattr(v, "__self__", None) is not None or op_name.startswith("fused"):
                head.append(f"{name} = CONSTS[{name!r}]  # fused kernel: {getattr(v, '__name__', '')}")
            else:
                head.append(f"{name} = get_op({_op_name_of(graph, name)!r}).impl['cpu']")
        elif name.startswith("dtype_"):
            head.append(f"{name} = dtypes.{name[6:] if name[6:] != 'bool' else 'bool_'}")
        elif name == "_asarray":
            head.append("_asarray = np.asarray")
        elif isinstance(v, np.ndarray) and v.size <= 16:
            head.append(f"{name} = np.array({v.tolist()!r}, dtype=np.{v.dtype.name})")
        else:
            head.append(f"{name} = CONSTS[{name!r}]")
    return "\n".join(head) + "\n\n" + src


def _op_name_of(graph: Graph, kname: str) -> str:
    for n in graph.nodes:
        if f"k_{n.op.name}" == kname or kname.startswith(f"k_{n.op.name}_"):
            return n.op.name
    return kname[2:]


def source_namespace(graph: Graph) -> dict:
    """The CONSTS mapping :func:`python_source` expects."""
    _src, ns, _ = generate_source(graph)
    return {k: v for k, v in ns.items()}


class _ValueRef:
    __slots__ = ("id",)

    def __init__(self, vid):
        self.id = vid


class CompiledGraph:
    """A graph turned into a Python function over backend arrays.

    ``cg(*arrays)`` returns a tuple of arrays; ``cg.source`` is the generated code.
    """

    def __init__(self, graph: Graph, fn_name: str = "forward"):
        self.graph = graph
        src, ns, line_node = generate_source(graph, fn_name)
        _counter[0] += 1
        self.filename = f"<danlu-graph-{_counter[0]}:{graph.name}>"
        linecache.cache[self.filename] = (len(src), None, src.splitlines(True), self.filename)
        code = compile(src, self.filename, "exec")
        exec(code, ns)
        self.fn = ns[fn_name]
        self.source = src
        self.line_node = line_node

    def __call__(self, *arrays):
        try:
            return self.fn(*arrays)
        except RuntimeWarning:
            with np.errstate(all="ignore"):  # as eager: nan/inf results raise no NumPy warnings
                return self.fn(*arrays)
        except Exception as e:
            self._annotate(e)
            raise

    def _annotate(self, e: BaseException) -> None:
        tb = e.__traceback__
        node_k = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self.filename:
                node_k = self.line_node.get(tb.tb_lineno)
            tb = tb.tb_next
        if node_k is None:
            return
        n = self.graph.nodes[node_k]
        msg = (f"error in compiled graph '{self.graph.name}', node {node_k} ({n.op.name}), recorded from:\n"
               f"  {format_location(n.loc)}")
        if sys.version_info >= (3, 11):
            e.add_note(msg)
        try:
            e.danlu_node = n
        except AttributeError:
            pass


def build(graph: Graph, fn_name: str = "forward") -> CompiledGraph:
    return CompiledGraph(graph, fn_name)


