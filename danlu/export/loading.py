"""``danlu.export.load``: rebuild an exported graph from its artifact and run it."""

from __future__ import annotations

import json
import operator
import os
from dataclasses import dataclass

import numpy as np

from ..core import dtypes as _dt
from ..core.errors import DTypeError, ShapeError, api, describe, reraise_filtered
from ..core.random import Generator, default_generator
from ..core.tensor import Tensor, _wrap
from ..graph.codegen import CompiledGraph
from ..graph.ir import Graph, Value
from ..io import files
from . import symbols as _sym
from .schema import (FORMAT_NAME, FORMAT_VERSION, METADATA_KEY, ArtifactError, GraphDecoder, check_symbols_defined,
                     internal_symbol_names)

__all__ = ["load", "ExportedProgram", "TensorSpec"]

_CMP = {"eq": (operator.eq, "=="), "ne": (operator.ne, "!="), "lt": (operator.lt, "<"), "le": (operator.le, "<="),
        "gt": (operator.gt, ">"), "ge": (operator.ge, ">=")}
_DTYPES = {d.name: d for d in _dt.ALL}


@dataclass(frozen=True)
class TensorSpec:
    """The name, shape and dtype an exported graph expects or returns. A dynamic dimension is the
    name (or expression) of its size symbol, a string; a static one an int."""

    name: str
    shape: tuple
    dtype: _dt.DType

    def __str__(self) -> str:
        return f"{self.name}: {self.dtype.name}[{', '.join(str(s) for s in self.shape)}]"


@api
def load(path) -> ExportedProgram:
    """Load an artifact written by ``danlu.export.save``; the result runs the graph on tensors.

    The graph is rebuilt from registry ops named in the file (no code of the exported model is
    needed, and nothing from the file is executed), optimized by this danlu's pipeline and compiled.
    Inputs are checked against the recorded names, shapes (dynamic dimensions may take any size the
    trace allows) and dtypes. A corrupt file, an op this danlu lacks, or a newer format version raises
    an error that says so.

    >>> import os, tempfile, danlu as dl
    >>> from danlu import export
    >>> path = os.path.join(tempfile.mkdtemp(), "double.dlx")
    >>> export.save(lambda x: x * 2, (dl.ones(2),), path)
    >>> prog = export.load(path); prog(dl.tensor([1.0, 3.0]))
    tensor([2., 6.])
    >>> prog.input_specs[0]
    TensorSpec(name='x', shape=(2,), dtype=danlu.float32)
    """
    path = os.fspath(path)
    source = repr(path)
    if not os.path.exists(path):
        raise FileNotFoundError(2, "danlu.export.load: no such file", path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"danlu.export.load: {source} is a directory; an export artifact is one file")
    arrays, metadata = files.read(path)
    raw = metadata.get(METADATA_KEY)
    if raw is None:
        hint = ("it was written by danlu.save; load it with danlu.load" if "danlu" in metadata else
                "it is a safetensors file without an exported graph")
        raise ArtifactError(f"{source}: not a danlu export artifact ({hint})")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise ArtifactError(f"{source}: corrupt export artifact: the graph metadata is not valid JSON") from None
    return ExportedProgram(doc, arrays, source)


class ExportedProgram:
    """A graph loaded from an export artifact: call it with tensors (positionally, or by input name).

    Attributes: ``input_specs`` / ``output_specs`` (tuples of :class:`TensorSpec`), ``signature``,
    ``graph`` (the graph as stored, rebuilt), ``optimized_graph``, ``source`` (the generated code),
    ``generators`` (fresh generators that stand for the exported function's own random generators;
    seed them to reproduce random ops), ``metadata`` (format, version, exporting danlu version).
    Outputs do not track gradients (an artifact is an inference graph); like eager views, an output
    that is a view of an input shares its memory, while values computed only from the stored
    constants are copied for each call.
    """

    def __init__(self, doc, arrays: dict, source: str):
        self._source_name = source
        try:
            graph = self._parse(doc, arrays, source)
        except ArtifactError:
            raise
        except RecursionError:
            raise ArtifactError(f"{source}: corrupt export artifact: the graph metadata is nested too deeply") from None
        except (TypeError, AttributeError, KeyError, IndexError, ValueError) as e:
            raise ArtifactError(f"{source}: corrupt export artifact ({type(e).__name__}: {e})") from None
        from ..graph.passes import run_pipeline

        self.optimized_graph = run_pipeline(graph)
        self._compiled = CompiledGraph(self.optimized_graph, "forward")

    # -- reading the document -------------------------------------------------------------------------
    def _parse(self, doc, arrays, source):
        if not isinstance(doc, dict):
            raise ArtifactError(f"{source}: corrupt export artifact: the graph metadata is not a JSON object")
        fmt, version = doc.get("format"), doc.get("version")
        if fmt != FORMAT_NAME:
            raise ArtifactError(f"{source}: unknown artifact format {fmt!r}; danlu.export reads {FORMAT_NAME!r}")
        if type(version) is not int or version < 1:
            raise ArtifactError(f"{source}: invalid {FORMAT_NAME} format version {version!r}")
        exporter = f"danlu {doc.get('danlu_version')}" if isinstance(doc.get("danlu_version"), str) else "danlu"
        if version > FORMAT_VERSION:
            from .. import __version__

            raise ArtifactError(f"{source}: written in {FORMAT_NAME} format version {version} (by {exporter}), "
                                f"newer than version {FORMAT_VERSION} that this danlu ({__version__}) reads; upgrade "
                                "danlu to load it, or re-export the model with this version")
        self.metadata = {"format": fmt, "version": version, "danlu_version": doc.get("danlu_version"),
                         "name": doc.get("name")}
        self.name = doc["name"] if isinstance(doc.get("name"), str) else "exported"
        dec0 = GraphDecoder(arrays, {}, [], source, exporter)
        table = dec0.field(doc, "symbols", list, "symbols")
        names = []
        for i, s in enumerate(table):
            name = dec0.field(s, "name", str, f"symbols[{i}]")
            if not _sym.is_symbol_name(name) or name in names:
                dec0.fail(f"symbols[{i}].name", f"{name!r} is not a fresh identifier")
            names.append(name)
        internal = internal_symbol_names(names)
        symbols, self._sym_sources = {}, {}
        for i, s in enumerate(table):
            example = dec0.field(s, "example", int, f"symbols[{i}]")
            srcs = dec0.field(s, "sources", list, f"symbols[{i}]")
            if example < 0 or not srcs or not all(isinstance(p, list) and len(p) == 2 and all(type(x) is int for x in p)
                                                  for p in srcs):
                dec0.fail(f"symbols[{i}]", "a symbol has a non-negative example size and [input, dim] sources")
            symbols[s["name"]] = (internal[s["name"]], example)
            self._sym_sources[s["name"]] = [tuple(p) for p in srcs]
        self._examples = {n: ent[1] for n, ent in symbols.items()}
        gens = []
        for i, g in enumerate(dec0.field(doc, "generators", list, "generators")):
            if not isinstance(g, dict) or type(g.get("default")) is not bool:
                dec0.fail(f"generators[{i}]", "a generator entry is {\"default\": bool}")
            # the default generator stays the loading process's (danlu.manual_seed drives it); any other
            # generator of the exported function becomes a fresh one, seeded as a new danlu.Generator
            gens.append(default_generator if g["default"] else Generator())
        self.generators = [g for g in gens if g is not default_generator]
        self._decoder_args = (arrays, symbols, gens, source, exporter)
        dec = GraphDecoder(*self._decoder_args)
        graph = dec.graph(dec.field(doc, "graph", dict, "graph"), "graph")
        unused = sorted(set(arrays) - dec.used_keys)
        if unused:
            dec.fail("graph", f"the file holds tensors that no constant names: {unused[:5]}")
        self._doc_graph = doc["graph"]
        self.input_specs = self._specs(dec, doc, "inputs", graph.inputs)
        self.output_specs = self._specs(dec, doc, "outputs", graph.outputs)
        self._input_trees = [[None if isinstance(d, int) else _sym.parse(d) for d in s.shape] for s in self.input_specs]
        self._output_trees = [[None if isinstance(d, int) else _sym.parse(d) for d in s.shape]
                              for s in self.output_specs]
        for name, srcs in self._sym_sources.items():
            for pos, dim in srcs:
                if not (0 <= pos < len(self.input_specs) and 0 <= dim < len(self.input_specs[pos].shape)
                        and self.input_specs[pos].shape[dim] == name):
                    dec.fail(f"symbols.{name}", f"source [{pos}, {dim}] is not a dimension named {name!r}")
        for pos, spec in enumerate(self.input_specs):
            for dim, d in enumerate(spec.shape):
                if isinstance(d, str) and d not in symbols:
                    dec.fail(f"inputs[{pos}].shape[{dim}]", "an input dimension is an integer or a symbol's name")
        self._guards = []
        for i, gd in enumerate(dec.field(doc, "guards", list, "guards")):
            at = f"guards[{i}]"
            cmp = dec.field(gd, "cmp", str, at)
            if cmp not in _CMP or type(gd.get("holds")) is not bool:
                dec.fail(at, "a guard is {lhs, cmp (eq ne lt le gt ge), rhs, holds: bool}")
            lhs, rhs = dec.field(gd, "lhs", str, at), dec.field(gd, "rhs", str, at)
            for text in (lhs, rhs):
                dec.expr(text, at)  # checks the expression and its symbols
            self._guards.append((_sym.parse(lhs), cmp, _sym.parse(rhs), gd["holds"], f"{lhs} {_CMP[cmp][1]} {rhs}"))
        self._structure = self._check_structure(dec, doc.get("output_structure"), len(self.output_specs))
        check_symbols_defined(graph, "the graph", error=lambda msg: ArtifactError(f"{source}: {msg}"))
        self._graph = None
        self._names = [s.name for s in self.input_specs]
        return graph

    def _specs(self, dec, doc, key, values) -> tuple:
        entries = dec.field(doc, key, list, key)
        if len(entries) != len(values):
            dec.fail(key, f"{len(entries)} entries for a graph with {len(values)} {key}")
        out = []
        for i, (e, v) in enumerate(zip(entries, values)):
            at = f"{key}[{i}]"
            name = dec.field(e, "name", str, at)
            dtype = dec.dtype(e.get("dtype"), f"{at}.dtype")
            shape = dec.shape(e.get("shape"), f"{at}.shape")
            if not isinstance(v, Value) or v.dtype != dtype.np or len(shape) != len(v.shape) or any(
                    int(a) != int(b) or str(a) != str(b) for a, b in zip(shape, v.shape)):
                dec.fail(at, f"the spec {dtype.name}{list(e.get('shape'))} does not match the graph's {v!r}")
            out.append(TensorSpec(name, tuple(e["shape"]), dtype))
        if len({s.name for s in out}) != len(out):
            dec.fail(key, "names are not distinct")
        return tuple(out)

    def _check_structure(self, dec, s, n_out, path="output_structure"):
        used = []

        def go(node, at):
            if isinstance(node, dict) and "output" in node:
                k = node["output"]
                if type(k) is not int or not 0 <= k < n_out:
                    dec.fail(at, f"output index {k!r} out of range")
                used.append(k)
                return ("T", k)
            if isinstance(node, dict) and "literal" in node:
                return ("V", dec.attr(node["literal"], at))
            tag = node.get("t") if isinstance(node, dict) else None
            if tag in ("tuple", "list"):
                return (tag, [go(x, f"{at}[{i}]") for i, x in enumerate(dec.field(node, "items", list, at))])
            if tag == "dict":
                items = []
                for i, pair in enumerate(dec.field(node, "items", list, at)):
                    if not isinstance(pair, list) or len(pair) != 2:
                        dec.fail(f"{at}[{i}]", "dict items are [key, value] pairs")
                    key = dec.attr(pair[0], f"{at}[{i}]")
                    if not (key is None or isinstance(key, (str, int, float, bool))):
                        dec.fail(f"{at}[{i}]", f"bad dict key {pair[0]!r}")
                    items.append((key, go(pair[1], f"{at}[{i}]")))
                return ("dict", items)
            dec.fail(at, f"expected an output, a literal, or a tuple/list/dict node, got {str(node)[:60]}")

        out = go(s, path)
        if sorted(used) != list(range(n_out)):
            dec.fail(path, "the structure does not use every output exactly once")
        return out

    # -- public views -------------------------------------------------------------------------------------
    @property
    def graph(self) -> Graph:
        """The graph as stored in the artifact (rebuilt; before this danlu's optimization pipeline)."""
        if self._graph is None:
            dec = GraphDecoder(*self._decoder_args)
            self._graph = dec.graph(self._doc_graph, "graph")
        return self._graph

    @property
    def signature(self) -> str:
        ins = ", ".join(str(s) for s in self.input_specs)
        outs = ", ".join(str(s) for s in self.output_specs)
        return f"{self.name}({ins}) -> ({outs})"

    @property
    def source(self) -> str:
        return self._compiled.source

    def __repr__(self):
        return f"<ExportedProgram {self.signature}>"

    # -- running --------------------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        try:
            arrays, sizes = self._check_inputs(args, kwargs)
            res = self._compiled(*arrays)
            outs = []
            for k, (a, spec) in enumerate(zip(res, self.output_specs)):
                a = np.asarray(a)
                self._check_output(k, a, spec, sizes)
                # constants (and folded values) are shared by every call: hand out a copy
                outs.append(_wrap(a if a.flags.writeable else a.copy()))
            return _rebuild(self._structure, outs)
        except Exception as e:
            reraise_filtered(e)
            raise

    def _check_inputs(self, args, kwargs):
        n = len(self.input_specs)
        if len(args) > n:
            raise TypeError(f"{self.name}: takes {n} input(s) ({', '.join(self._names)}) but {len(args)} were given")
        values = list(args) + [None] * (n - len(args))
        for k, v in kwargs.items():
            if k not in self._names:
                raise TypeError(f"{self.name}: no input named {k!r}; the inputs are {self._names}")
            i = self._names.index(k)
            if i < len(args):
                raise TypeError(f"{self.name}: input {k!r} given both by position and by name")
            values[i] = v
        missing = [self._names[i] for i, v in enumerate(values) if v is None]
        if missing:
            raise TypeError(f"{self.name}: missing input(s) {missing}; the signature is {self.signature}")
        sizes: dict = {}
        where: dict = {}
        arrays = []
        for pos, (spec, t, trees) in enumerate(zip(self.input_specs, values, self._input_trees)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{self.name}: input {spec.name!r} must be a danlu Tensor, got {type(t).__name__}")
            d = t._data
            if isinstance(d, Value):
                raise TypeError(f"{self.name}: input {spec.name!r} is a traced tensor; a loaded artifact runs its own "
                                "compiled graph and cannot be traced into another (call it outside danlu.compile)")
            if d.dtype != spec.dtype.np:
                raise DTypeError(f"{self.name}: input {spec.name!r} must be {spec.dtype.name} (as exported: "
                                 f"{spec}), got {describe(t)}; convert it with .to(danlu.{spec.dtype.name})")
            if d.ndim != len(spec.shape):
                raise ShapeError(f"{self.name}: input {spec.name!r} must have {len(spec.shape)} dimension(s) "
                                 f"({spec}), got {describe(t)}")
            for dim, (want, tree) in enumerate(zip(spec.shape, trees)):
                got = d.shape[dim]
                if tree is None:
                    if got != want:
                        dyn = [str(s) for s in spec.shape if isinstance(s, str)]
                        raise ShapeError(
                            f"{self.name}: input {spec.name!r} must have size {want} in dimension {dim} ({spec}), got "
                            f"{describe(t)}; " + (f"only the dimension(s) {dyn} are dynamic" if dyn else
                                                  "the artifact was exported with static shapes (export with dynamic= "
                                                  "to accept other sizes)"))
                elif want in sizes and sizes[want] != got:
                    p0, d0 = where[want]
                    raise ShapeError(f"{self.name}: input {spec.name!r} has size {got} in dimension {dim}, but that "
                                     f"dimension is {want!r}, which is {sizes[want]} in dimension {d0} of input "
                                     f"{self._names[p0]!r}")
                else:
                    sizes[want] = got
                    where.setdefault(want, (pos, dim))
            arrays.append(d)
        for lhs, cmp, rhs, holds, text in self._guards:
            try:
                ok = _CMP[cmp][0](_sym.evaluate(lhs, sizes), _sym.evaluate(rhs, sizes)) == holds
            except ZeroDivisionError:
                ok = False
            if not ok:
                now = ", ".join(f"{k}={v}" for k, v in sizes.items())
                was = ", ".join(f"{k}={v}" for k, v in self._examples.items())
                raise ShapeError(f"{self.name}: the input sizes ({now}) break an assumption the exported graph was "
                                 f"traced under: `{text}` is {holds} for the example sizes ({was}) but not now. "
                                 "Re-export with example inputs of a size like these.")
        return arrays, sizes

    def _check_output(self, k, a, spec, sizes):
        want = [d if tree is None else _sym.evaluate(tree, sizes) for d, tree in zip(spec.shape,
                                                                                     self._output_trees[k])]
        if list(a.shape) != want or a.dtype != spec.dtype.np:
            raise RuntimeError(f"{self.name}: output {spec.name!r} came out as {a.dtype.name}{list(a.shape)}, but "
                               f"the artifact declares {spec} = {spec.dtype.name}{want} for these inputs; the exported "
                               "graph depends on the example's sizes in a way its trace did not record")


def _rebuild(s, outs):
    tag = s[0]
    if tag == "T":
        return outs[s[1]]
    if tag == "V":
        return s[1]
    if tag == "tuple":
        return tuple(_rebuild(x, outs) for x in s[1])
    if tag == "list":
        return [_rebuild(x, outs) for x in s[1]]
    return {k: _rebuild(x, outs) for k, x in s[1]}
