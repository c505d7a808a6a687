"""``danlu.export.save``: trace a function for example inputs and write a self-contained artifact."""

from __future__ import annotations

import inspect
import json
import os
import re
import warnings

from ..autograd import no_grad
from ..core.errors import api
from ..core.tensor import Tensor
from ..graph.compile import CompiledFunction, flatten, input_arrays, trace_entry
from ..graph.ir import Graph, Value
from ..graph.passes import run_pipeline
from ..graph.passes.cse import common_subexpression_elimination
from ..graph.passes.dce import dead_code_elimination
from ..graph.symbolic import SymInt
from ..io import files
from . import symbols as _sym
from .schema import (FORMAT_NAME, FORMAT_VERSION, METADATA_KEY, ExportError, GraphEncoder, check_symbols_defined,
                     dtype_name)

__all__ = ["save"]

# Passes run before writing: they only remove work (no rewrites that a later danlu might do better).
# Loading runs the full optimization pipeline of the loading danlu.
SAVE_PIPELINE = [dead_code_elimination, common_subexpression_elimination, dead_code_elimination]


@api
def save(compiled_or_fn, example_inputs, path, *, input_names=None, output_names=None, dynamic=None) -> None:
    """Trace ``compiled_or_fn`` for ``example_inputs`` and write an artifact that runs without its code.

    ``compiled_or_fn`` is a ``danlu.compile``\\ d function, a plain function or a Module. It is traced
    once, under ``danlu.no_grad()``, for ``example_inputs`` (a tuple of tensors; one tensor is also
    accepted). Module parameters and buffers, and any other tensor the function reads, are stored as
    constants with their current values. The artifact is one file: a safetensors file holding the
    constants, with the graph as versioned JSON in its metadata (``docs/export-format.md``); it is
    written atomically (a temporary file next to ``path`` is renamed over it).

    ``input_names`` / ``output_names`` name the inputs and the tensor outputs (defaults: the function's
    parameter names; ``output``, ``output0``, ... or the keys of a returned dict). ``dynamic`` marks
    dimensions that may change size, as in ``danlu.compile``: ``True`` (dimension 0 of every input),
    or ``{input: dims}`` where ``input`` is a position or a name and ``dims`` is a dimension, a list of
    them, or ``{dim: symbol name}`` (dimensions given the same name must be equal). With dynamic
    dimensions the function is traced a second time, at other sizes, to check that no size was turned
    into a constant (``ExportError`` names the node if one was).

    >>> import os, tempfile, danlu as dl
    >>> from danlu import export
    >>> w = dl.tensor([[1.0], [2.0]])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.dlx")
    >>> export.save(lambda x: x @ w, (dl.ones(3, 2),), path, input_names=["x"], dynamic={"x": {0: "batch"}})
    >>> m = export.load(path); m.signature
    '<lambda>(x: float32[batch, 2]) -> (output: float32[batch, 1])'
    >>> m(dl.ones(5, 2)).shape
    danlu.Size([5, 1])
    """
    doc, arrays = build_artifact(compiled_or_fn, example_inputs, input_names=input_names, output_names=output_names,
                                 dynamic=dynamic)
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"danlu.export.save: {path!r} is a directory; an export artifact is one file "
                                "(e.g. model.dlx)")
    metadata = {METADATA_KEY: json.dumps(doc, separators=(",", ":"), allow_nan=False, ensure_ascii=False)}
    files.write(path, arrays, metadata)


def build_artifact(compiled_or_fn, example_inputs, *, input_names=None, output_names=None, dynamic=None):
    """(JSON document, {key: array}) of the artifact ``save`` writes."""
    from .. import __version__

    fn, dynamic, fname = _unwrap(compiled_or_fn, dynamic)
    args = _example_args(example_inputs)
    names = _input_names(fn, args, input_names)
    dims = _dynamic_dims(dynamic, args, names)
    leaves, spec = flatten((args, {}))
    with no_grad():  # an inference graph: no backward is traced or attached
        entry = trace_entry(fn, leaves, spec, fname, optimize=False, dynamic={i: set(d) for i, d in dims.items()})
        if entry.env.symbols:
            _verify_dynamic(fn, args, leaves, spec, fname, dims, entry)
    graph, out_names = _export_graph(fn, entry, leaves, names, output_names)
    sym_names, table = _symbol_table(entry.env, dims, args, names)
    enc = GraphEncoder(sym_names)
    check_symbols_defined(graph, "the graph")
    doc = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "danlu_version": __version__,
        "name": fname,
        "inputs": [{"name": n, "shape": enc.shape(v.shape, f"input {n!r}"), "dtype": dtype_name(v.dtype)}
                   for n, v in zip(names, graph.inputs)],
        "outputs": [{"name": n, **_value_spec(enc, o, f"output {n!r}")} for n, o in zip(out_names, graph.outputs)],
        "output_structure": _structure(entry, enc),
        "symbols": table,
        "guards": [{"lhs": enc.expr(a, "a shape guard"), "cmp": op,
                    "rhs": enc.expr(b, "a shape guard"), "holds": bool(expected)}
                   for a, op, b, expected in entry.env.guards],
    }
    doc["graph"] = enc.graph(graph, "the graph")
    doc["generators"] = enc.generator_table()
    return doc, enc.arrays


def _unwrap(obj, dynamic):
    """(function to trace, dynamic spec, name) for a compiled function, a Module or a plain function."""
    if isinstance(obj, CompiledFunction):
        return obj.fn, dynamic if dynamic is not None else obj.dynamic, obj.name
    if not callable(obj):
        raise TypeError(f"danlu.export.save: expected a compiled function, a Module or a function, got "
                        f"{type(obj).__name__}")
    from ..nn.modules.module import Module

    name = type(obj).__name__ if isinstance(obj, Module) else getattr(obj, "__name__", type(obj).__name__)
    return obj, dynamic, name


def _example_args(example_inputs) -> tuple:
    args = (example_inputs,) if isinstance(example_inputs, Tensor) else example_inputs
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"danlu.export.save: example_inputs must be a tuple of tensors, got "
                        f"{type(example_inputs).__name__}")
    args = tuple(args)
    for i, a in enumerate(args):
        if not isinstance(a, Tensor):
            raise TypeError(f"danlu.export.save: example input {i} is a {type(a).__name__}; the inputs of an exported "
                            "graph are tensors (bind other arguments with a closure or functools.partial)")
        if isinstance(a._data, Value):
            raise TypeError(f"danlu.export.save: example input {i} is a traced tensor; export outside danlu.compile")
    seen = {}
    for i, a in enumerate(args):
        if id(a) in seen:
            raise ValueError(f"danlu.export.save: example inputs {seen[id(a)]} and {i} are the same tensor; pass "
                             "distinct tensors (e.g. x.clone()), so the artifact has one input for each")
        seen[id(a)] = i
    return args


def _input_names(fn, args, given) -> list:
    if given is not None:
        names = [str(n) for n in given]
        if len(names) != len(args):
            raise ValueError(f"danlu.export.save: {len(names)} input_names for {len(args)} example inputs")
    else:
        names = []
        from ..nn.modules.module import Module

        try:
            params = list(inspect.signature(fn.forward if isinstance(fn, Module) else fn).parameters.values())
        except (TypeError, ValueError):
            params = []
        for p in params:
            if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                break
            names.append(p.name)
        names = names[:len(args)]
        names += [f"input{i}" for i in range(len(names), len(args))]
    if len(set(names)) != len(names) or not all(names):
        raise ValueError(f"danlu.export.save: input names must be distinct non-empty strings, got {names}")
    return names


def _dynamic_dims(dynamic, args, names) -> dict:
    """{input position: {dim: symbol name or None}} from ``dynamic=`` and ``danlu.mark_dynamic``."""
    out: dict = {}

    def add(pos, dim, name):
        t = args[pos]
        if not isinstance(dim, int) or isinstance(dim, bool) or not -t.ndim <= dim < max(t.ndim, 1) or not t.ndim:
            raise ValueError(f"danlu.export.save: dynamic dimension {dim!r} of input {names[pos]!r} "
                             f"({t.dtype.name}{list(t.shape)}) is out of range")
        if name is not None and not _sym.is_symbol_name(name):
            raise ValueError(f"danlu.export.save: dynamic dimension name {name!r} must be an identifier "
                             "(letters, digits and _)")
        d = out.setdefault(pos, {})
        dim %= t.ndim
        if name is not None or dim not in d:
            d[dim] = name

    for pos, t in enumerate(args):
        for dim in (t._extra or {}).get("dynamic", ()):
            add(pos, dim, None)
    if dynamic is True:
        for pos, t in enumerate(args):
            if t.ndim:
                add(pos, 0, None)
    elif isinstance(dynamic, dict):
        for key, dims in dynamic.items():
            if isinstance(key, str):
                if key not in names:
                    raise ValueError(f"danlu.export.save: dynamic names input {key!r}, but the inputs are {names}")
                pos = names.index(key)
            elif isinstance(key, int) and 0 <= key < len(args):
                pos = key
            else:
                raise ValueError(f"danlu.export.save: dynamic key {key!r} is not an input position "
                                 f"(0..{len(args) - 1}) or name")
            if isinstance(dims, dict):
                for dim, name in dims.items():
                    add(pos, dim, name)
            else:
                for dim in ((dims,) if isinstance(dims, int) else dims):
                    add(pos, dim, None)
    elif dynamic not in (None, False):
        raise TypeError(f"danlu.export.save: dynamic must be None, True or a dict, got {type(dynamic).__name__}")
    first: dict = {}
    for pos, d in out.items():
        for dim, name in d.items():
            size = int(args[pos].shape[dim])
            if name is None:
                continue
            p0, d0 = first.setdefault(name, (pos, dim))
            if int(args[p0].shape[d0]) != size:
                raise ValueError(f"danlu.export.save: dynamic dimension name {name!r} is given to dimension {dim} of "
                                 f"{names[pos]!r} (size {size}) and dimension {d0} of {names[p0]!r} (size "
                                 f"{int(args[p0].shape[d0])}); dimensions that share a name must have the same size")
    return out


def _symbol_table(env, dims, args, names):
    """({trace symbol: artifact name}, the JSON symbols table)."""
    chosen = {}
    for sym, (pos, dim) in env.symbols.items():
        chosen[sym] = dims.get(pos, {}).get(dim)
    taken = {n for n in chosen.values() if n is not None}
    rename, k = {}, 0
    for sym, name in chosen.items():
        if name is None:
            name = sym
            while name in taken:
                k += 1
                name = f"s{len(env.symbols) + k}"
            taken.add(name)
        rename[sym] = name
    table: dict = {}
    for sym, (pos, dim) in env.symbols.items():
        ent = table.setdefault(rename[sym], {"name": rename[sym], "sources": [], "example": int(args[pos].shape[dim])})
        ent["sources"].append([pos, dim])
    return rename, list(table.values())


def _export_graph(fn, entry, leaves, names, output_names) -> tuple[Graph, list]:
    """The traced graph with captured tensors turned into constants, outputs limited to the user's."""
    g = entry.traced
    if len(entry.inputs) != len(g.inputs):
        raise ExportError(f"danlu.export.save: the trace of {g.name} has {len(g.inputs)} inputs but "
                          f"{len(entry.inputs)} input plans (an internal inconsistency of the tracer)")
    inputs = []
    # captured tensors, gradients read through .grad, and live Python numbers (optimizer hyperparameters)
    # are read at every call of a compiled function; an artifact freezes their current values
    current = input_arrays(entry, leaves)
    known = _variable_names(fn)
    for (kind, ref), v, vname, arr in zip(entry.inputs, g.inputs, g.input_names, current):
        if kind == "arg":
            inputs.append(v)
        else:
            v.name = known.get(id(ref), vname) if kind == "cap" else vname
            g.consts[v.id] = arr
            g.const_values[v.id] = v
    g.inputs = inputs
    g.input_names = list(names)
    for v, n in zip(inputs, names):
        v.name = n
    side = entry.writes + entry.grads
    if side:
        warnings.warn(f"danlu.export.save: {g.name} modifies {len(side)} tensor(s) in place (e.g. running statistics "
                      "in training mode); the exported graph computes its outputs only and does not write them back. "
                      "Call module.eval() before exporting for inference.", stacklevel=5)
    g.outputs = g.outputs[:entry.n_user]
    g = run_pipeline(g, SAVE_PIPELINE)
    n_out = len(g.outputs)
    if output_names is not None:
        out_names = [str(n) for n in output_names]
        if len(out_names) != n_out:
            raise ValueError(f"danlu.export.save: {len(out_names)} output_names for {n_out} tensor outputs")
    else:
        out_names = _default_output_names(entry.out_spec)
    if len(set(out_names)) != len(out_names) or not all(out_names):
        raise ValueError(f"danlu.export.save: output names must be distinct non-empty strings, got {out_names}")
    g.output_names = out_names
    return g, out_names


def _variable_names(fn) -> dict:
    """{id(tensor): variable name} for tensors the function reads from its closure or its module's globals,
    so that captured constants are stored under names a reader recognizes (``w`` rather than ``cap1``)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return {}
    out = {}
    for name in code.co_names:
        t = getattr(fn, "__globals__", {}).get(name)
        if isinstance(t, Tensor):
            out.setdefault(id(t), name)
    for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
        try:
            t = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(t, Tensor):
            out[id(t)] = name
    return out


def _default_output_names(spec) -> list:
    names = []

    def go(s, path):
        tag = s[0]
        if tag == "T":
            names.append(".".join(path) or "output")
        elif tag in ("L", "U"):
            for i, x in enumerate(s[1]):
                go(x, path + (str(i),) if path else (f"output{i}",))
        elif tag == "N":
            for f, x in zip(s[1]._fields, s[2]):
                go(x, path + (f,))
        elif tag == "D":
            for k, x in zip(s[2], s[3]):
                go(x, path + (str(k),))

    go(spec, ())
    return names


def _structure(entry, enc: GraphEncoder):
    """The JSON form of the function's output structure (see docs/export-format.md)."""
    kinds = iter(entry.out_leaf_kind)

    def go(s, where):
        tag = s[0]
        if tag in ("T", "V"):
            kind, v = next(kinds)
            if kind == "T":
                return {"output": v}
            return {"literal": enc.attr(v, f"output {where}")}
        if tag in ("L", "U"):
            items = [go(x, f"{where}[{i}]") for i, x in enumerate(s[1])]
            return {"t": "list" if tag == "L" else "tuple", "items": items}
        if tag == "N":  # a namedtuple comes back as a plain tuple: its class is code, not data
            return {"t": "tuple", "items": [go(x, f"{where}.{f}") for f, x in zip(s[1]._fields, s[2])]}
        items = []
        for k, x in zip(s[2], s[3]):
            if not (k is None or isinstance(k, (str, int, float, bool))):
                raise ExportError(f"danlu.export.save: the output dict key {k!r} at {where} is a {type(k).__name__}; "
                                  "keys may be str, int, float, bool or None")
            items.append([enc.attr(k, f"output {where}"), go(x, f"{where}[{k!r}]")])
        return {"t": "dict", "items": items}

    return go(entry.out_spec, "")


def _value_spec(enc, o, where) -> dict:
    if isinstance(o, Value):
        return {"shape": enc.shape(o.shape, where), "dtype": dtype_name(o.dtype)}
    raise ExportError(f"danlu.export.save: {where} is not a tensor computed by the graph ({o!r})")


# -- checking that dynamic dimensions really are dynamic -----------------------------------------------------

def _verify_dynamic(fn, args, leaves, spec, fname, dims, entry) -> None:
    """Trace again with other sizes for the dynamic dimensions and require the same graph, with every size
    in it an expression of the symbols. A size that the function turned into a plain int (an int() call, a
    NumPy call on a shape, an op that resolves sizes eagerly) would otherwise be baked into the artifact,
    which would then compute wrong results for other sizes without any error."""
    from ..ops.creation import zeros

    env = entry.env
    groups: dict = {}  # one new size per group of dimensions that must stay equal
    for sym, (pos, dim) in env.symbols.items():
        key = dims.get(pos, {}).get(dim) or sym
        groups.setdefault(key, []).append(sym)
    base = {sym: int(args[pos].shape[dim]) for sym, (pos, dim) in env.symbols.items()}
    refused = []
    for bump in (1, 2, 5):
        sizes = {}
        for syms in groups.values():
            for sym in syms:
                sizes[sym] = base[syms[0]] + bump
        try:
            why = env.check(sizes)
        except ZeroDivisionError:
            why = "a guard divides by zero"
        if why is not None:
            refused.append(why)  # the trace's own guards exclude these sizes; calls with them will be refused
            continue
        shapes = [list(a.shape) for a in args]
        for sym, (pos, dim) in env.symbols.items():
            shapes[pos][dim] = sizes[sym]
        other = [zeros(*shp, dtype=a.dtype) for shp, a in zip(shapes, args)]
        leaves2, spec2 = flatten((tuple(other), {}))
        try:
            entry2 = trace_entry(fn, leaves2, spec2, fname, optimize=False,
                                 dynamic={i: set(d) for i, d in dims.items()})
        except Exception:  # noqa: BLE001 - sizes the function cannot take say nothing about these ones
            continue
        if entry2.env.symbols.keys() != env.symbols.keys():
            continue
        where = ", ".join(f"{dims.get(p, {}).get(d) or s}={base[s]}" for s, (p, d) in env.symbols.items())
        other_where = ", ".join(f"{dims.get(p, {}).get(d) or s}={sizes[s]}" for s, (p, d) in env.symbols.items())
        _same_graph(entry.traced, entry2.traced, sizes, f"traced for {where}", f"for {other_where}", "the graph")
        return
    if len(refused) == 3:
        names = {sym: key for key, syms in groups.items() for sym in syms}
        why = re.sub(r"\bs\d+\b", lambda m: names.get(m.group(0), m.group(0)), refused[0])
        warnings.warn(f"danlu.export.save: {fname}: the dynamic dimensions are pinned to the example's sizes by an "
                      f"assumption made while tracing ({why}); the artifact will refuse other sizes. Some op "
                      "in the function does not keep the size symbolic.", stacklevel=5)


def _same_graph(g1: Graph, g2: Graph, sizes: dict, was: str, now: str, where: str) -> None:
    def fail(what):
        raise ExportError(f"danlu.export.save: {where}: {what}; the function treats a dynamic dimension's size as a "
                          "plain number there (e.g. int(x.shape[0]), or an op that resolves sizes eagerly), so the "
                          "artifact would give wrong results for other sizes. Export without that dimension dynamic, "
                          "or compute the size from tensor shapes.")

    if len(g1.nodes) != len(g2.nodes) or len(g1.inputs) != len(g2.inputs) or len(g1.outputs) != len(g2.outputs):
        fail(f"changes with the dynamic sizes ({len(g1.nodes)} nodes {was}, {len(g2.nodes)} {now})")
    ids = {a.id: b.id for a, b in zip(g1.inputs, g2.inputs)}
    for a, b in zip(g1.inputs, g2.inputs):
        if not _same(a.shape, b.shape, sizes, ids):
            fail(f"input {a.name!r} has shape {list(a.shape)} {was} but {list(b.shape)} {now}")
    for k, (n1, n2) in enumerate(zip(g1.nodes, g2.nodes)):
        at = f"node {k} ({n1.op.name}, {_short_loc(n1.loc)})"
        if n1.op is not n2.op or n1.attrs.keys() != n2.attrs.keys():
            fail(f"changes with the dynamic sizes at {at}")
        if len(n1.inputs) != len(n2.inputs):
            fail(f"changes with the dynamic sizes at {at}")
        for i, (a, b) in enumerate(zip(n1.inputs, n2.inputs)):
            if not _same(a, b, sizes, ids):
                fail(f"{at} has input {i} = {_show(a)} {was} but {_show(b)} {now}")
        for a, v in n1.attrs.items():
            if isinstance(v, Graph) and isinstance(n2.attrs[a], Graph):
                _same_graph(v, n2.attrs[a], sizes, was, now, f"{where}, {at} subgraph {a!r}")
            elif not _same(v, n2.attrs[a], sizes, ids):
                fail(f"{at} has {a}={v!r} {was} but {a}={n2.attrs[a]!r} {now}")
        for o1, o2 in zip(n1.outputs, n2.outputs):
            if not _same(o1.shape, o2.shape, sizes, ids):
                fail(f"{at} gives shape {list(o1.shape)} {was} but {list(o2.shape)} {now}")
            ids[o1.id] = o2.id
    for a in g1.consts:
        ids.setdefault(a, None)


def _same(x, y, sizes: dict, ids: dict) -> bool:
    """Whether x (from the first trace, evaluated at ``sizes``) equals y (from the second)."""
    if isinstance(x, SymInt):
        return isinstance(y, int) and _sym.evaluate(_sym.parse(x.expr), sizes) == int(y)
    if isinstance(x, Value):
        return isinstance(y, Value) and (x.id not in ids or ids[x.id] == y.id)
    if isinstance(x, (tuple, list)):
        return type(x) is type(y) and len(x) == len(y) and all(_same(a, b, sizes, ids) for a, b in zip(x, y))
    if isinstance(x, float) and x != x:
        return isinstance(y, float) and y != y
    if isinstance(x, Graph):
        return isinstance(y, Graph)
    if isinstance(x, int) and not isinstance(x, bool):
        return type(y) is not bool and isinstance(y, int) and int(x) == int(y)
    return type(x) is type(y) and (x is y or x == y)


def _show(x) -> str:
    return f"value {x.aval_str()}" if isinstance(x, Value) else repr(x)


def _short_loc(loc) -> str:
    return f"{os.path.basename(loc[0])}:{loc[1]}" if loc else "unknown location"
