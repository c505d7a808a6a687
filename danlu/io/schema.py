"""The danlu file schema: a Python structure <-> (a JSON tree, a dict of named NumPy arrays).

A danlu file is a plain safetensors file. Its tensors are ordinary safetensors entries; everything
else about the saved object lives in one entry of the safetensors ``__metadata__`` table, named
``"danlu"``, whose value is a JSON document::

    {"format": "danlu", "version": 1, "root": NODE}

where NODE is one of (schema version 1):

====================================================================  =================================
JSON                                                                  Python value on load
====================================================================  =================================
``null``, ``true``, ``false``, a string                               None, bool, str
an integer number (no ``.`` and no exponent)                          int (any size)
a number with a ``.`` or an exponent                                  float
``{"t": "float", "v": "nan" | "inf" | "-inf"}``                       a non-finite float
``{"t": "tensor", "key": K, "dtype": D, "shape": [int, ...],``        a Tensor (a ``danlu.nn.Parameter``
``"requires_grad": bool, "parameter": bool}``                         when ``parameter`` is true)
``{"t": "list", "items": [NODE, ...]}``                               list
``{"t": "tuple", "items": [NODE, ...]}``                              tuple
``{"t": "size", "items": [int, ...]}``                                ``danlu.Size``
``{"t": "dict", "items": [[KEY, NODE], ...]}``                        dict (insertion order kept)
``{"t": "odict", "items": [[KEY, NODE], ...]}``                       collections.OrderedDict
``{"t": "dtype", "v": D}``                                            a ``danlu.DType``
====================================================================  =================================

KEY is a NODE that decodes to a hashable plain value (str, int, float, bool, None, or a tuple of
them), so int keys (optimizer ``state``) and str keys both round-trip. D is a danlu dtype name
(``float16 float32 float64 int8 int16 int32 int64 uint8 bool``). K names the safetensors entry that
holds the tensor's bytes; its dtype and shape must agree with the node's.

Tensor names are the dotted path from the root (``state.0.exp_avg``; a lone tensor is ``tensor``),
with ``#1``, ``#2``, ... appended on a clash. A flat ``{str: Tensor}`` dict (a state dict) keeps its
keys as names, so any safetensors reader (``safetensors.torch.load_file``) sees a plain state dict.
In every other structure, tensors that are the same view of the same memory are stored once and
several nodes name the same K; on load those nodes share memory again.

A reader must refuse a document whose ``format`` is not ``"danlu"`` or whose ``version`` is newer
than the one it knows; readers never evaluate anything from the file (JSON and safetensors only).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from ..core import dtypes as _dt
from ..core.errors import DanluError
from ..core.tensor import Size, Tensor, _wrap

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "METADATA_KEY", "SerializationError", "encode", "decode",
           "check_document"]

FORMAT_NAME = "danlu"
FORMAT_VERSION = 1
METADATA_KEY = "danlu"
RESERVED_NAME = "__metadata__"  # safetensors keeps its metadata table under this name

_DTYPES = {d.name: d for d in _dt.ALL}
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_SUPPORTED = "Tensors, dict, OrderedDict, list, tuple, danlu.Size, danlu dtypes, str, int, float, bool and None"


class SerializationError(DanluError):
    """A file that danlu cannot read: corrupt, truncated, not safetensors, or an unknown format version."""


# -- encoding -------------------------------------------------------------------------------------------
def is_flat_state_dict(obj) -> bool:
    """Whether ``obj`` is a ``{str: Tensor}`` dict, stored as a plain safetensors state dict."""
    return (type(obj) in (dict, OrderedDict)
            and all(type(k) is str and isinstance(v, Tensor) for k, v in obj.items()))


def encode(obj) -> tuple[object, dict[str, np.ndarray]]:
    """The JSON tree of ``obj`` and the arrays its tensor nodes name (see the module docstring)."""
    enc = _Encoder(dedupe=not is_flat_state_dict(obj))
    return enc.node(obj, ()), enc.arrays


class _Encoder:
    def __init__(self, dedupe: bool):
        self.arrays: dict[str, np.ndarray] = {}
        self.dedupe = dedupe
        self._by_memory: dict[tuple, str] = {}
        self._active: set[int] = set()  # ids of the containers being encoded: a repeat is a cycle

    def node(self, obj, path: tuple, in_key: bool = False):
        if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":
            obj = obj.item()  # NumPy scalars are stored as the Python number they equal
        if obj is None or isinstance(obj, (bool, int, str)):
            return obj
        if isinstance(obj, float):
            if math.isfinite(obj):
                return float(obj)
            return {"t": "float", "v": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
        if isinstance(obj, _dt.DType):
            return {"t": "dtype", "v": obj.name}
        if type(obj) is tuple:
            return {"t": "tuple", "items": self._items(obj, path, in_key)}
        if in_key:
            raise TypeError(f"danlu.save: a dict key at {_where(path)} is {type(obj).__name__}; keys must be "
                            "str, int, float, bool, None or tuples of them")
        if isinstance(obj, Tensor):
            return self._tensor(obj, path)
        if type(obj) is Size:
            return {"t": "size", "items": [int(s) for s in obj]}
        if type(obj) is list:
            return {"t": "list", "items": self._items(obj, path, False)}
        if type(obj) in (dict, OrderedDict):
            return {"t": "dict" if type(obj) is dict else "odict", "items": self._dict_items(obj, path)}
        raise TypeError(f"danlu.save: can't store {type(obj).__module__}.{type(obj).__qualname__} at "
                        f"{_where(path)}; danlu files hold only {_SUPPORTED}{_hint(obj)}")

    def _items(self, seq, path, in_key):
        self._enter(seq, path)
        out = [self.node(v, path + (str(i),), in_key) for i, v in enumerate(seq)]
        self._active.discard(id(seq))
        return out

    def _dict_items(self, d, path):
        self._enter(d, path)
        out = [[self.node(k, path, in_key=True), self.node(v, path + (str(k),))] for k, v in d.items()]
        self._active.discard(id(d))
        return out

    def _enter(self, container, path):
        if id(container) in self._active:
            raise ValueError(f"danlu.save: the object contains itself at {_where(path)}; a reference cycle "
                             "can't be stored")
        self._active.add(id(container))

    def _tensor(self, t: Tensor, path: tuple) -> dict:
        from ..nn.parameter import Parameter

        a = t.__array__()  # raises a clear error for a symbolic (traced) tensor
        memory = (a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str)
        key = self._by_memory.get(memory) if self.dedupe and a.size else None
        if key is None:
            key = self._fresh_name(".".join(path) or "tensor")
            # safetensors reads raw memory from the pointer: the array must be dense and C-ordered
            self.arrays[key] = a if a.flags.c_contiguous else np.ascontiguousarray(a)
            self._by_memory[memory] = key
        return {"t": "tensor", "key": key, "dtype": t.dtype.name, "shape": list(a.shape),
                "requires_grad": bool(t.requires_grad), "parameter": isinstance(t, Parameter)}

    def _fresh_name(self, base: str) -> str:
        name, n = base, 0
        while name in self.arrays or name == RESERVED_NAME:
            n += 1
            name = f"{base}#{n}"
        return name


def _where(path: tuple) -> str:
    return "the root" if not path else "[" + "][".join(repr(p) for p in path) + "]"


def _hint(obj) -> str:
    if isinstance(obj, np.ndarray):
        return "; wrap the array with danlu.from_numpy(...)"
    if hasattr(obj, "state_dict"):
        return "; save its .state_dict() instead"
    if hasattr(obj, "get_state"):
        return "; save its .get_state() instead"
    if isinstance(obj, (list, tuple, dict)):
        return "; convert it to a plain list, tuple or dict"
    return ""


# -- decoding -------------------------------------------------------------------------------------------
def check_document(doc, source: str) -> object:
    """The root NODE of a parsed ``"danlu"`` metadata document, after checking its format and version."""
    if not isinstance(doc, dict):
        raise SerializationError(f"{source}: the '{METADATA_KEY}' metadata is not a JSON object")
    fmt, version = doc.get("format"), doc.get("version")
    if fmt != FORMAT_NAME:
        raise SerializationError(f"{source}: unknown file format {fmt!r} in the '{METADATA_KEY}' metadata; "
                                 f"danlu reads format {FORMAT_NAME!r}")
    if type(version) is not int or version < 1:
        raise SerializationError(f"{source}: invalid {FORMAT_NAME} format version {version!r}")
    if version > FORMAT_VERSION:
        raise SerializationError(f"{source}: written in {FORMAT_NAME} format version {version}, newer than "
                                 f"version {FORMAT_VERSION} that this danlu reads; upgrade danlu to load it")
    if "root" not in doc:
        raise SerializationError(f"{source}: the '{METADATA_KEY}' metadata has no 'root' entry")
    return doc["root"]


def decode(root, arrays: dict[str, np.ndarray], source: str):
    """Rebuild the saved object from its JSON tree and the file's arrays; checks every node."""
    dec = _Decoder(arrays, source)
    try:
        obj = dec.node(root, ())
    except RecursionError:
        raise SerializationError(f"{source}: the structure metadata is nested too deeply") from None
    unused = sorted(set(arrays) - set(dec.bases))
    if unused:
        raise SerializationError(f"{source}: the file holds tensors that its structure metadata does not "
                                 f"mention: {unused[:5]}{' ...' if len(unused) > 5 else ''} (corrupt file)")
    return obj


class _Decoder:
    def __init__(self, arrays: dict[str, np.ndarray], source: str):
        self.arrays = arrays
        self.source = source
        self.bases: dict[str, Tensor] = {}  # one base tensor per entry; nodes naming it share its memory

    def fail(self, path: tuple, what: str):
        raise SerializationError(f"{self.source}: corrupt structure metadata at {_where(path)}: {what}")

    def node(self, n, path: tuple, in_key: bool = False):
        if n is None or isinstance(n, (bool, int, float, str)):
            return n
        if not isinstance(n, dict) or not isinstance(n.get("t"), str):
            self.fail(path, f"expected a value or a node with a 't' tag, got {_short(n)}")
        tag = n["t"]
        if tag == "float":
            if n.get("v") not in _NONFINITE:
                self.fail(path, f"bad non-finite float {_short(n.get('v'))}")
            return _NONFINITE[n["v"]]
        if tag == "dtype":
            return self._dtype(n.get("v"), path)
        if tag == "tuple":
            return tuple(self.node(v, path + (str(i),), in_key) for i, v in enumerate(self._list(n, path)))
        if in_key:
            self.fail(path, f"a dict key can't be a {tag!r} node")
        if tag == "tensor":
            return self._tensor(n, path)
        if tag == "list":
            return [self.node(v, path + (str(i),)) for i, v in enumerate(self._list(n, path))]
        if tag == "size":
            items = self._list(n, path)
            if not all(type(s) is int and s >= 0 for s in items):
                self.fail(path, f"a size holds non-negative ints, got {_short(items)}")
            return Size(items)
        if tag in ("dict", "odict"):
            out = {} if tag == "dict" else OrderedDict()
            for pair in self._list(n, path):
                if not isinstance(pair, list) or len(pair) != 2:
                    self.fail(path, f"dict items are [key, value] pairs, got {_short(pair)}")
                k = self.node(pair[0], path, in_key=True)
                out[k] = self.node(pair[1], path + (str(k),))
            return out
        self.fail(path, f"unknown node tag {tag!r} (written by a newer danlu?)")

    def _list(self, n: dict, path: tuple) -> list:
        items = n.get("items")
        if not isinstance(items, list):
            self.fail(path, f"a {n['t']!r} node needs an 'items' list")
        return items

    def _dtype(self, name, path) -> _dt.DType:
        if name not in _DTYPES:
            self.fail(path, f"unknown dtype {_short(name)}")
        return _DTYPES[name]

    def _tensor(self, n: dict, path: tuple) -> Tensor:
        key = n.get("key")
        if not isinstance(key, str) or key not in self.arrays:
            self.fail(path, f"tensor entry {_short(key)} is not in the file")
        a = self.arrays[key]
        dtype = self._dtype(n.get("dtype"), path)
        if dtype.np != a.dtype or n.get("shape") != list(a.shape):
            self.fail(path, f"the node says {dtype.name}{n.get('shape')} but entry {key!r} holds "
                            f"{a.dtype.name}{list(a.shape)}")
        rg, param = n.get("requires_grad", False), n.get("parameter", False)
        if type(rg) is not bool or type(param) is not bool:
            self.fail(path, "'requires_grad' and 'parameter' must be booleans")
        if rg and not dtype.is_floating_point:
            self.fail(path, f"a {dtype.name} tensor can't require grad")
        base = self.bases.get(key)
        if base is None:
            base = self.bases[key] = _wrap(a)
        t = base.detach()  # shares memory and the version counter with every other node of this entry
        if param:
            from ..nn.parameter import Parameter

            return Parameter(t, requires_grad=rg)
        return t.requires_grad_(True) if rg else t


def _short(x) -> str:
    r = repr(x)
    return r if len(r) <= 60 else r[:57] + "..."
