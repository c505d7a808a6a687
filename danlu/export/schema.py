"""The export artifact's graph schema: a Graph <-> a JSON tree plus named arrays (see
``docs/export-format.md`` for the full description).

Encoding turns every value of a graph into a local integer id, every attribute into a tagged JSON
value, and every constant into a safetensors entry. Decoding rebuilds the Graph with the registry
ops named in the file, checks every field (a corrupt file fails with the JSON path of the bad
entry), and re-runs each op's ``infer`` rule to confirm the recorded shapes and dtypes. Nothing from
the file is evaluated: size expressions go through :mod:`danlu.export.symbols`, names that reach
generated code are checked identifiers.
"""

from __future__ import annotations

import keyword
import math
import re

import numpy as np

from ..core import dtypes as _dt
from ..core.errors import DanluError
from ..core.random import Generator, default_generator
from ..core.registry import REGISTRY, AVal, Op
from ..core.tensor import _wrap
from ..graph.codegen import symbol_sources
from ..graph.ir import Graph, Value
from ..graph.symbolic import SymInt
from ..io.schema import SerializationError
from . import symbols as _sym

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "METADATA_KEY", "ExportError", "ArtifactError", "UnknownOpError",
           "GraphEncoder", "GraphDecoder", "dtype_name", "check_symbols_defined"]

FORMAT_NAME = "danlu.export"
FORMAT_VERSION = 1
METADATA_KEY = "danlu.export"   # the safetensors __metadata__ entry that holds the JSON document

_DTYPES = {d.name: d for d in _dt.ALL}
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_ASCII_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class ExportError(DanluError):
    """A function or graph that cannot be exported (the message says which part and why)."""


class ArtifactError(SerializationError):
    """An export artifact that cannot be loaded: corrupt, truncated, or from a newer format version."""


class UnknownOpError(ArtifactError):
    """An artifact that uses an op this danlu does not register."""


def dtype_name(npdt) -> str:
    return _dt._FROM_NP[np.dtype(npdt)].name


def _float(x: float):
    if math.isfinite(x):
        return x
    return {"t": "float", "v": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


# -- encoding -------------------------------------------------------------------------------------------
class GraphEncoder:
    """Encodes graphs; collects the arrays (safetensors entries) and the generators they use."""

    def __init__(self, symbol_names: dict[str, str]):
        self.symbol_names = symbol_names      # trace symbol (s0) -> artifact symbol name (batch)
        self.arrays: dict[str, np.ndarray] = {}
        self.generators: list = []            # Generator objects, by first use

    def fail(self, where: str, what: str):
        raise ExportError(f"danlu.export.save: {where}: {what}")

    def graph(self, g: Graph, where: str) -> dict:
        ids: dict[int, int] = {}

        def define(v: Value) -> int:
            ids[v.id] = len(ids)
            return ids[v.id]

        def arg(x, at):
            if isinstance(x, Value):
                if x.id not in ids:
                    self.fail(at, f"reads {x!r}, which the graph does not define before it")
                return {"ref": ids[x.id]}
            if isinstance(x, (bool, int, float)):
                return self.attr(x, at)
            self.fail(at, f"a {type(x).__name__} is not a graph input or literal")

        inputs = [{"id": define(v), "name": str(name), "shape": self.shape(v.shape, f"{where} input {name!r}"),
                   "dtype": dtype_name(v.dtype)} for v, name in zip(g.inputs, g.input_names)]
        constants = []
        for k, (vid, arr) in enumerate(g.consts.items()):
            v = g.const_values[vid]
            name = v.name or f"c{k}"
            key = self._key(name)
            # safetensors reads dense C-ordered memory (np.ascontiguousarray would turn 0-d into 1-d)
            self.arrays[key] = arr if arr.flags.c_contiguous else arr.copy(order="C")
            constants.append({"id": define(v), "name": name, "key": key, "shape": [int(s) for s in arr.shape],
                              "dtype": dtype_name(arr.dtype)})
        nodes = []
        for k, n in enumerate(g.nodes):
            at = f"{where} node {k}"
            op = n.op
            if not isinstance(op, Op) or REGISTRY.get(op.name) is not op:
                self.fail(at, f"{getattr(op, 'name', op)!r} is not a registry op (fused nodes are made by the "
                              "optimization pipeline and cannot be exported; export the graph as traced)")
            at = f"{at} ({op.name})"
            entry = {"op": op.name, "inputs": [arg(i, at) for i in n.inputs],
                     "attrs": {a: self.attr(v, f"{at} attribute {a!r}") for a, v in n.attrs.items()},
                     "outputs": [{"id": define(o), "shape": self.shape(o.shape, at), "dtype": dtype_name(o.dtype)}
                                 for o in n.outputs]}
            if n.loc:
                file, line, func, text = n.loc
                entry["loc"] = [str(file), int(line), str(func), str(text)]
            nodes.append(entry)
        outputs = [arg(o, f"{where} output {i}") for i, o in enumerate(g.outputs)]
        return {"name": g.name, "inputs": inputs, "constants": constants, "nodes": nodes, "outputs": outputs}

    def _key(self, name: str) -> str:
        key, n = name, 0
        while key in self.arrays or key == "__metadata__":
            n += 1
            key = f"{name}#{n}"
        return key

    def shape(self, shape, where: str) -> list:
        return [self.expr(s, where) if isinstance(s, SymInt) else int(s) for s in shape]

    def expr(self, s, where: str) -> str:
        """The artifact text of a size expression (a SymInt or its expression string)."""
        text = s.expr if isinstance(s, SymInt) else s
        try:
            tree = _sym.parse(text)
        except _sym.ExprError as e:
            self.fail(where, f"size expression {text!r} cannot be stored ({e})")
        unknown = _sym.names_in(tree) - set(self.symbol_names)
        if unknown:
            self.fail(where, f"size expression {text!r} uses {sorted(unknown)}, which are not dynamic dimensions of "
                             "the exported inputs")
        return _sym.render(tree, self.symbol_names)

    def attr(self, v, where: str):
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, SymInt):
            return {"t": "sym", "expr": self.expr(v, where)}
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float):
            return _float(float(v))
        if isinstance(v, np.generic) and np.dtype(v.dtype) in _dt._FROM_NP:
            item = v.item()
            return {"t": "scalar", "dtype": dtype_name(v.dtype), "v": _float(item) if isinstance(item, float) else item}
        if isinstance(v, _dt.DType):
            return {"t": "dtype", "v": v.name}
        if type(v) in (tuple, list):
            return {"t": type(v).__name__, "items": [self.attr(x, f"{where}[{i}]") for i, x in enumerate(v)]}
        if isinstance(v, slice):
            return {"t": "slice", "start": self.attr(v.start, where), "stop": self.attr(v.stop, where),
                    "step": self.attr(v.step, where)}
        if v is Ellipsis:
            return {"t": "ellipsis"}
        if isinstance(v, Graph):
            return {"t": "graph", "graph": self.graph(v, f"{where} subgraph {v.name!r}")}
        if isinstance(v, Generator):
            for k, g in enumerate(self.generators):
                if g is v:
                    return {"t": "generator", "index": k}
            self.generators.append(v)
            return {"t": "generator", "index": len(self.generators) - 1}
        self.fail(where, f"a value of type {type(v).__module__}.{type(v).__qualname__} cannot be stored in an export "
                         "artifact (attributes may be None, bool, int, float, str, tuples and lists of them, dtypes, "
                         "slices, size expressions, subgraphs and generators)")

    def generator_table(self) -> list:
        return [{"default": g is default_generator} for g in self.generators]


def check_symbols_defined(graph: Graph, where: str, error=ExportError) -> None:
    """Every size symbol a node's attributes or literal inputs read must be readable from the input shapes
    of the graph that holds the node (generated code defines symbols from its inputs)."""
    defined = set(symbol_sources(graph))
    for k, n in enumerate(graph.nodes):
        used: set = set()
        for x in list(n.inputs) + list(n.attrs.values()):
            _symbols_in(x, used, n, error, f"{where} node {k} ({n.op.name})")
        missing = used - defined
        if missing:
            raise error(f"{where} node {k} ({n.op.name}) reads size symbol(s) {sorted(missing)} that no input of "
                        f"{where} carries as a dimension, so the generated code could not compute them; make the "
                        "dimension an input's dimension, or export without it being dynamic")


def _symbols_in(x, out: set, node, error, where) -> None:
    if isinstance(x, SymInt):
        try:
            out.update(_sym.names_in(_sym.parse(x.expr)))
        except _sym.ExprError as e:
            raise error(f"{where}: bad size expression {x.expr!r} ({e})") from None
    elif isinstance(x, (tuple, list)):
        for y in x:
            _symbols_in(y, out, node, error, where)
    elif isinstance(x, slice):
        for y in (x.start, x.stop, x.step):
            _symbols_in(y, out, node, error, where)
    elif isinstance(x, Graph):
        check_symbols_defined(x, f"{where} subgraph {x.name!r}", error)



# -- decoding -------------------------------------------------------------------------------------------
class GraphDecoder:
    """Rebuilds graphs from their JSON; every malformed entry raises :class:`ArtifactError`."""

    def __init__(self, arrays: dict, symbols: dict, generators: list, source: str, exporter: str):
        self.arrays = arrays
        self.symbols = symbols        # artifact symbol name -> (internal name, example value)
        self.generators = generators  # Generator objects, by index
        self.source = source
        self.exporter = exporter      # "danlu 0.1.0": who wrote the file, for error messages
        self.used_keys: set = set()

    def fail(self, path: str, what: str):
        raise ArtifactError(f"{self.source}: corrupt export artifact at {path}: {what}")

    def code_name(self, name: str) -> str:
        """A graph input name that is a Python identifier and no size symbol's name (codegen uses both)."""
        s = re.sub(r"[^A-Za-z0-9_]", "_", name)
        s = s if s and not s[0].isdigit() and not keyword.iskeyword(s) else "in_" + s
        internal = {ent[0] for ent in self.symbols.values()}
        while s in internal:
            s += "_in"
        return s

    # small checked readers
    def field(self, obj, name: str, kind, path: str):
        if not isinstance(obj, dict) or name not in obj:
            self.fail(path, f"missing field {name!r}")
        val = obj[name]
        if kind is int and (type(val) is not int):
            self.fail(f"{path}.{name}", f"expected an integer, got {_short(val)}")
        if kind is not int and not isinstance(val, kind):
            self.fail(f"{path}.{name}", f"expected {_kind_name(kind)}, got {_short(val)}")
        return val

    def dtype(self, name, path: str) -> _dt.DType:
        if not isinstance(name, str) or name not in _DTYPES:
            self.fail(path, f"unknown dtype {_short(name)}")
        return _DTYPES[name]

    def expr(self, text, path: str):
        try:
            tree = _sym.parse(text)
        except _sym.ExprError as e:
            self.fail(path, f"bad size expression {_short(text)} ({e})")
        unknown = _sym.names_in(tree) - set(self.symbols)
        if unknown:
            self.fail(path, f"size expression {_short(text)} uses undeclared symbols {sorted(unknown)}")
        internal = {name: ent[0] for name, ent in self.symbols.items()}
        try:
            value = _sym.evaluate(tree, {name: ent[1] for name, ent in self.symbols.items()})
        except ZeroDivisionError:
            self.fail(path, f"size expression {_short(text)} divides by zero for the example sizes")
        if not _sym.names_in(tree):
            return value
        return SymInt(value, _sym.render(tree, internal))

    def shape(self, dims, path: str) -> tuple:
        if not isinstance(dims, list):
            self.fail(path, f"a shape is a list, got {_short(dims)}")
        out = []
        for i, d in enumerate(dims):
            if type(d) is int:
                s = d
            elif isinstance(d, str):
                s = self.expr(d, f"{path}[{i}]")
            else:
                self.fail(f"{path}[{i}]", f"a dimension is an integer or a size expression, got {_short(d)}")
            if int(s) < 0:
                self.fail(f"{path}[{i}]", f"negative dimension {d}")
            out.append(s)
        return tuple(out)

    def attr(self, j, path: str):
        if j is None or isinstance(j, (bool, int, float, str)):
            return j
        if not isinstance(j, dict) or not isinstance(j.get("t"), str):
            self.fail(path, f"expected a value or a tagged object, got {_short(j)}")
        tag = j["t"]
        if tag == "float":
            if j.get("v") not in _NONFINITE:
                self.fail(path, f"bad non-finite float {_short(j.get('v'))}")
            return _NONFINITE[j["v"]]
        if tag in ("tuple", "list"):
            items = self.field(j, "items", list, path)
            out = [self.attr(x, f"{path}[{i}]") for i, x in enumerate(items)]
            return tuple(out) if tag == "tuple" else out
        if tag == "dtype":
            return self.dtype(j.get("v"), path)
        if tag == "sym":
            return self.expr(self.field(j, "expr", str, path), path)
        if tag == "scalar":
            dt = self.dtype(j.get("dtype"), path)
            v = self.attr(j.get("v"), path)
            if isinstance(v, (str, tuple, list)) or v is None:
                self.fail(path, f"a NumPy scalar holds a number, got {_short(j.get('v'))}")
            return dt.np.type(v)
        if tag == "slice":
            parts = [self.attr(j.get(k), f"{path}.{k}") for k in ("start", "stop", "step")]
            if not all(p is None or type(p) is int or isinstance(p, SymInt) for p in parts):
                self.fail(path, "slice bounds are integers or null")
            return slice(*parts)
        if tag == "ellipsis":
            return Ellipsis
        if tag == "graph":
            return self.graph(self.field(j, "graph", dict, path), f"{path}.graph")
        if tag == "generator":
            k = self.field(j, "index", int, path)
            if not 0 <= k < len(self.generators):
                self.fail(path, f"generator index {k} is not in the generators table")
            return self.generators[k]
        self.fail(path, f"unknown tag {tag!r} (written by a newer danlu? this artifact comes from {self.exporter})")

    def graph(self, j: dict, path: str) -> Graph:
        name = self.field(j, "name", str, path)
        g = Graph(name)
        env: dict[int, Value] = {}

        def define(v: Value, vid, at):
            if type(vid) is not int or vid in env:
                self.fail(at, f"value id {_short(vid)} is not a fresh integer")
            env[vid] = v

        def arg(x, at):
            if isinstance(x, dict) and "ref" in x:
                ref = x["ref"]
                if type(ref) is not int or ref not in env:
                    self.fail(at, f"reference {_short(ref)} names no value defined before it")
                return env[ref]
            lit = self.attr(x, at)
            if not isinstance(lit, (bool, int, float)) or isinstance(lit, np.generic):
                self.fail(at, f"a literal input is a number, got {_short(x)}")
            return lit

        for i, e in enumerate(self.field(j, "inputs", list, path)):
            at = f"{path}.inputs[{i}]"
            iname = self.field(e, "name", str, at)
            v = g.add_input(self.shape(e.get("shape"), f"{at}.shape"), self.dtype(e.get("dtype"), f"{at}.dtype").np,
                            self.code_name(iname))
            define(v, e.get("id"), f"{at}.id")
        for i, e in enumerate(self.field(j, "constants", list, path)):
            at = f"{path}.constants[{i}]"
            key = self.field(e, "key", str, at)
            if key not in self.arrays:
                self.fail(f"{at}.key", f"the artifact holds no tensor {key!r}")
            arr = self.arrays[key]
            dt = self.dtype(e.get("dtype"), f"{at}.dtype")
            if dt.np != arr.dtype or e.get("shape") != list(arr.shape):
                self.fail(at, f"the entry says {dt.name}{e.get('shape')} but tensor {key!r} holds "
                              f"{dtype_name(arr.dtype)}{list(arr.shape)}")
            self.used_keys.add(key)
            arr.flags.writeable = False  # shared by every call of the loaded graph
            define(g.add_const(arr, self.field(e, "name", str, at)), e.get("id"), f"{at}.id")
        for k, e in enumerate(self.field(j, "nodes", list, path)):
            at = f"{path}.nodes[{k}]"
            opname = self.field(e, "op", str, at)
            op = REGISTRY.get(opname)
            if op is None:
                raise UnknownOpError(
                    f"{self.source}: the artifact uses op {opname!r} (at {at}), which this danlu does not register; "
                    f"it was exported by {self.exporter}. Load it with a danlu version that has {opname!r} (upgrade "
                    "danlu), or re-export the model without that op.")
            ins = [arg(x, f"{at}.inputs[{i}]") for i, x in enumerate(self.field(e, "inputs", list, at))]
            raw_attrs = self.field(e, "attrs", dict, at)
            attrs = {}
            for a, v in raw_attrs.items():
                # attribute names become keyword arguments in generated code: identifiers only
                if not _ASCII_NAME.match(a) or keyword.iskeyword(a):
                    self.fail(f"{at}.attrs", f"attribute name {_short(a)} is not an identifier")
                attrs[a] = self.attr(v, f"{at}.attrs.{a}")
            outs = self.field(e, "outputs", list, at)
            avals = []
            for i, o in enumerate(outs):
                dt = self.dtype(o.get("dtype") if isinstance(o, dict) else None, f"{at}.outputs[{i}].dtype")
                avals.append(AVal(self.shape(o.get("shape"), f"{at}.outputs[{i}].shape"), dt))
            self._check_infer(op, ins, attrs, avals, at)
            loc = self._loc(e.get("loc"), f"{at}.loc")
            for o, v in zip(outs, g.add_node(op, ins, attrs, avals, loc)):
                define(v, o.get("id"), f"{at}.outputs")
        g.outputs = [arg(x, f"{path}.outputs[{i}]") for i, x in enumerate(self.field(j, "outputs", list, path))]
        try:
            g.lint()
        except DanluError as err:
            self.fail(path, str(err))
        return g

    def _check_infer(self, op: Op, ins, attrs, avals, at: str) -> None:
        """The op's shape rule must give what the file records (a corrupt file, or an op that changed)."""
        args = [_wrap(i) if isinstance(i, Value) else i for i in ins]
        try:
            got = op.infer(*args, **attrs)
        except Exception as err:  # noqa: BLE001 - any failure of the rule means the node does not fit this danlu
            raise ArtifactError(
                f"{self.source}: node at {at} ({op.name}) does not fit this danlu's {op.name!r} op: "
                f"{type(err).__name__}: {err}. The artifact was exported by {self.exporter}; re-export it with this "
                "danlu version, or load it with the version that wrote it.") from None
        got = tuple(got) if op.multi_out else (got,)
        want = [f"{a.dtype.name}[{', '.join(str(s) for s in a.shape)}]" for a in avals]
        have = [f"{a.dtype.name}[{', '.join(str(s) for s in a.shape)}]" for a in got]
        if len(got) != len(avals) or any(
                a.dtype is not b.dtype or len(a.shape) != len(b.shape)
                or any(int(x) != int(y) for x, y in zip(a.shape, b.shape)) for a, b in zip(got, avals)):
            self.fail(at, f"{op.name} gives {have} for these inputs, but the artifact records {want}")

    def _loc(self, loc, path: str):
        if loc is None:
            return None
        if (not isinstance(loc, list) or len(loc) != 4 or not isinstance(loc[0], str) or type(loc[1]) is not int
                or not isinstance(loc[2], str) or not isinstance(loc[3], str)):
            self.fail(path, f"a source location is [file, line, function, text], got {_short(loc)}")
        return tuple(loc)


_RESERVED = re.compile(r"(v\d+|const\d+|k_|dtype_|attr_|_)")  # prefixes of the names codegen makes


def internal_symbol_names(names) -> dict:
    """{artifact symbol name: name in the rebuilt graph}. Generated code defines each symbol as a local
    variable, so a name that could clash with codegen's own names or with a builtin gets ``s<k>``."""
    import builtins

    out, taken = {}, set()
    for k, name in enumerate(names):
        cand = name
        if _RESERVED.match(cand) or hasattr(builtins, cand) or cand in taken:
            cand = f"s{k}"
            while cand in taken or cand in names:
                cand += "_"
        taken.add(cand)
        out[name] = cand
    return out


def _kind_name(kind) -> str:
    return {str: "a string", list: "a list", dict: "an object", bool: "a boolean"}.get(kind, kind.__name__)


def _short(x) -> str:
    r = repr(x)
    return r if len(r) <= 60 else r[:57] + "..."
