"""Reading and writing safetensors files: header checks with clear errors, and atomic writes.

A save to a path never leaves a half-written file under that name: the bytes go to a temporary
file in the same directory (``.<name>.<random>.tmp``), which is flushed and fsynced and then
renamed over the target with ``os.replace`` (atomic on POSIX and Windows); the directory is fsynced
after the rename. A process killed mid-save leaves the previous file intact (plus, at worst, a
stray temporary file: ours, or the ``.tmp*`` file that safetensors itself writes first). Saving to
an open file object writes in place, without these guarantees.

Test hook: when the environment variable ``DANLU_IO_TEST_PAUSE_BEFORE_REPLACE`` names a path, a
save creates that (empty) file once its temporary file is complete and fsynced, then sleeps up to
60 seconds before the rename, so a test can kill the process at exactly that point.
"""

from __future__ import annotations

import json
import math
import os
import time
from io import BytesIO

import numpy as np
import safetensors
import safetensors.numpy as st_np

from ..core.atomic import atomic_path
from .schema import SerializationError

__all__ = ["write", "read"]

PAUSE_ENV = "DANLU_IO_TEST_PAUSE_BEFORE_REPLACE"

# safetensors dtype codes that map onto danlu dtypes (the other codes have no danlu dtype)
_ST_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I8": np.int8, "I16": np.int16,
              "I32": np.int32, "I64": np.int64, "U8": np.uint8, "BOOL": np.bool_}
_MAX_HEADER = 100_000_000  # the safetensors library's own limit on the JSON header


def source_name(f) -> str:
    """How error messages name a path or a file object."""
    if isinstance(f, (str, bytes, os.PathLike)):
        return repr(os.fsdecode(f))
    name = getattr(f, "name", None)
    return repr(name) if isinstance(name, str) else f"<{type(f).__name__} object>"


# -- writing --------------------------------------------------------------------------------------------
def write(f, arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write a safetensors file to a path (atomically) or to a writable binary file object."""
    if isinstance(f, (str, bytes, os.PathLike)):
        _write_atomic(os.fsdecode(f), arrays, metadata)
    elif hasattr(f, "write"):
        data = st_np.save(arrays, metadata=metadata)
        try:
            f.write(data)
        except TypeError as e:
            raise TypeError(f"danlu.save: {source_name(f)} is not a binary file ({e}); open it with 'wb'") from None
        if hasattr(f, "flush"):
            f.flush()
    else:
        raise TypeError(f"danlu.save: expected a path (str or os.PathLike) or a writable binary file object, "
                        f"got {type(f).__name__}")


def _write_atomic(path: str, arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    with atomic_path(path, before_replace=_test_pause) as tmp:
        # safetensors writes its own private (0o600) temporary file and renames it onto ``tmp``;
        # atomic_path then flushes it, gives it the right permissions and renames it over ``path``
        st_np.save_file(arrays, tmp, metadata=metadata)


def _test_pause() -> None:
    marker = os.environ.get(PAUSE_ENV)
    if marker:
        with open(marker, "wb"):
            pass
        time.sleep(60)


# -- reading --------------------------------------------------------------------------------------------
def read(f) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays and the ``__metadata__`` table of a safetensors file (a path or a binary file object)."""
    source = source_name(f)
    if isinstance(f, (str, bytes, os.PathLike)):
        path = os.fsdecode(f)
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            raise FileNotFoundError(2, "danlu.load: no such file", path) from None
        with fh:
            _check_header(fh, os.fstat(fh.fileno()).st_size, source)
        try:
            with safetensors.safe_open(path, framework="np") as sf:
                metadata = sf.metadata() or {}
                arrays = {k: sf.get_tensor(k) for k in sf.keys()}
        except safetensors.SafetensorError as e:
            raise SerializationError(f"{source}: not a valid safetensors file ({e})") from None
        return arrays, metadata
    if not hasattr(f, "read"):
        raise TypeError(f"danlu.load: expected a path (str or os.PathLike) or a readable binary file object, "
                        f"got {type(f).__name__}")
    data = f.read()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"danlu.load: {source} returned {type(data).__name__} from read(); open it with 'rb'")
    data = bytes(data)
    metadata = _check_header(BytesIO(data), len(data), source)
    try:
        arrays = st_np.load(data)
    except safetensors.SafetensorError as e:
        raise SerializationError(f"{source}: not a valid safetensors file ({e})") from None
    return arrays, metadata


def _check_header(fh, size: int, source: str) -> dict[str, str]:
    """Validate the safetensors header of the file open as ``fh`` (``size`` bytes); its metadata table."""
    head = fh.read(8)
    pickled = head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))

    def bad(what: str) -> SerializationError:
        return SerializationError(f"{source}: {what}")

    def not_safetensors(what: str) -> SerializationError:
        if pickled:  # said only once the bytes failed as safetensors: a header length can start so too
            what = ("this looks like a PyTorch pickle file (torch.save), which danlu never loads; in PyTorch, "
                    "re-save the tensors with safetensors.torch.save_file(state_dict, path) and load that")
        return bad(what)

    if size < 8:
        raise not_safetensors(f"the file has {size} bytes, too few for a safetensors file (truncated, or not "
                              "safetensors)")
    n = int.from_bytes(head, "little")
    if n > min(size - 8, _MAX_HEADER):
        raise not_safetensors(f"the header claims {n} bytes but the file has {size} (not a safetensors file, or "
                              "truncated)")
    try:
        header = json.loads(fh.read(n).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise not_safetensors("the header is not valid JSON (not a safetensors file, or corrupt)") from None
    if not isinstance(header, dict):
        raise not_safetensors("the header is not a JSON object (not a safetensors file, or corrupt)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("the header's __metadata__ is not a table of strings (corrupt file)")
    end = 0
    for name, e in header.items():
        if (not isinstance(e, dict) or not isinstance(e.get("dtype"), str)
                or not isinstance(e.get("shape"), list) or not all(type(s) is int and s >= 0 for s in e["shape"])
                or not isinstance(e.get("data_offsets"), list) or len(e["data_offsets"]) != 2
                or not all(type(o) is int for o in e["data_offsets"])):
            raise bad(f"the header entry of tensor {name!r} is malformed (corrupt file)")
        if e["dtype"] not in _ST_DTYPES:
            raise bad(f"tensor {name!r} has safetensors dtype {e['dtype']}, which danlu does not support (danlu "
                      "has float16/32/64, int8/16/32/64, uint8 and bool); convert it before saving, e.g. with "
                      ".float()")
        begin, stop = e["data_offsets"]
        nbytes = math.prod(e["shape"]) * np.dtype(_ST_DTYPES[e["dtype"]]).itemsize
        if not 0 <= begin <= stop or stop - begin != nbytes:
            raise bad(f"tensor {name!r}: data offsets {e['data_offsets']} do not fit {e['dtype']}{e['shape']} "
                      "(corrupt file)")
        end = max(end, stop)
    data_size = size - 8 - n
    if end > data_size:
        raise bad(f"the file is truncated: its header describes {end} bytes of tensor data but only {data_size} "
                  "are present (was a save interrupted?)")
    if end < data_size:
        raise bad(f"{data_size - end} unexpected bytes follow the tensor data (corrupt file)")
    return metadata
