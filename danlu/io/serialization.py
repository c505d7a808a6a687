"""``save`` / ``load``: tensors and nested structures of them in safetensors files, never pickle."""

from __future__ import annotations

import json
import os
from typing import IO, Any

from ..core.errors import api
from ..core.tensor import _wrap
from . import files
from .schema import FORMAT_NAME, FORMAT_VERSION, METADATA_KEY, SerializationError, check_document, decode, encode

__all__ = ["save", "load"]

FileLike = str | os.PathLike | IO[bytes]


@api
def save(obj: Any, f: FileLike) -> None:
    """Save a tensor, or a (nested) dict / list / tuple of tensors and plain values, to a file.

    ``obj`` may hold Tensors (Parameters stay Parameters), dict, OrderedDict, list, tuple, str, int,
    float, bool, None, ``danlu.Size`` and dtypes; dict keys may be any of the plain values (int keys
    of an optimizer state dict stay ints). The file is a safetensors file; the structure goes into its
    metadata as JSON (schema in ``danlu.io.schema``). A flat ``{name: Tensor}`` dict, such as
    ``module.state_dict()``, is stored as a plain safetensors state dict that
    ``safetensors.torch.load_file`` reads in PyTorch.

    ``f`` is a path (str or os.PathLike), written atomically: a temporary file in the same directory
    is fsynced and renamed over ``f``, so an interrupted save leaves the previous file intact. ``f``
    may also be a writable binary file object, which is written in place (no atomic rename).

    >>> import io, danlu as dl
    >>> from danlu.io import save, load
    >>> buf = io.BytesIO(); save({"w": dl.ones(2), "step": 3}, buf); _ = buf.seek(0)
    >>> load(buf)
    {'w': tensor([1., 1.]), 'step': 3}
    """
    tree, arrays = encode(obj)
    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "root": tree}
    metadata = {METADATA_KEY: json.dumps(doc, separators=(",", ":"), allow_nan=False, ensure_ascii=False)}
    files.write(f, arrays, metadata)


@api
def load(f: FileLike, map_location=None) -> Any:
    """Load what ``save`` wrote, or any safetensors file (as a flat ``{name: Tensor}`` dict).

    Loading parses only JSON and safetensors data; it never runs code from the file. ``f`` is a path
    or a readable binary file object. ``map_location`` exists for PyTorch-style calls and may only
    name the CPU (danlu tensors live there). A missing, truncated or corrupt file, a file that is not
    safetensors, or one written by a newer danlu format version raises an error naming the file.

    >>> import io, danlu as dl
    >>> from danlu.io import save, load
    >>> buf = io.BytesIO(); save((dl.arange(3), {1: "a"}), buf); _ = buf.seek(0)
    >>> load(buf)
    (tensor([0, 1, 2]), {1: 'a'})
    """
    if map_location is not None and str(map_location) != "cpu":
        raise ValueError(f"danlu.load: map_location={map_location!r} is not supported; danlu tensors live on the "
                         "CPU (pass None or 'cpu')")
    source = files.source_name(f)
    arrays, metadata = files.read(f)
    raw = metadata.get(METADATA_KEY)
    if raw is None:  # a plain safetensors file, e.g. a PyTorch state dict saved by safetensors.torch
        return {name: _wrap(a) for name, a in arrays.items()}
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise SerializationError(f"{source}: the '{METADATA_KEY}' metadata is not valid JSON (corrupt file)") from None
    return decode(check_document(doc, source), arrays, source)
