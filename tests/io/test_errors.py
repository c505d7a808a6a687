"""Bad input to save, and missing, truncated, corrupt or foreign files given to load."""

import io
import json
import os
import re
import traceback

import numpy as np
import pytest
import safetensors.numpy as st_np

import danlu as dl
from danlu.io import SerializationError, load, save


def write_danlu(path, doc, arrays=None):
    """A safetensors file with a hand-made 'danlu' metadata document."""
    st_np.save_file(arrays or {}, str(path), metadata={"danlu": json.dumps(doc)})


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope.safetensors") as exc:
        load(path)
    assert exc.value.filename == str(path)


def test_errors_end_in_user_code(tmp_path):
    try:
        load(tmp_path / "nope.safetensors")
    except FileNotFoundError as e:
        frames = traceback.extract_tb(e.__traceback__)
    assert frames[-1].filename == __file__


@pytest.mark.parametrize("cut", [0, 3, 8, 20, -1, -7])
def test_truncated_file(tmp_path, cut):
    path = tmp_path / "t.safetensors"
    save({"w": dl.randn(10, 10), "b": dl.zeros(3)}, path)
    data = path.read_bytes()
    path.write_bytes(data[:cut] if cut >= 0 else data[:cut])
    with pytest.raises(SerializationError, match=re.escape(repr(str(path)))) as exc:
        load(path)
    assert re.search("truncated|too few", str(exc.value))


def test_truncated_file_object():
    buf = io.BytesIO()
    save(dl.randn(100), buf)
    with pytest.raises(SerializationError, match="BytesIO.*truncated"):
        load(io.BytesIO(buf.getvalue()[:-10]))


def test_trailing_garbage(tmp_path):
    path = tmp_path / "g.safetensors"
    save(dl.ones(2), path)
    path.write_bytes(path.read_bytes() + b"junk")
    with pytest.raises(SerializationError, match="4 unexpected bytes"):
        load(path)


@pytest.mark.parametrize("content", [b"", b"hello world, not a tensor file",
                                     b"\x10\x00\x00\x00\x00\x00\x00\x00[1, 2, 3]       ",
                                     b"\x08\x00\x00\x00\x00\x00\x00\x00\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8",
                                     os.urandom(300)], ids=["empty", "text", "json-list", "bad-utf8", "random"])
def test_not_a_safetensors_file(tmp_path, content):
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    with pytest.raises(SerializationError, match=re.escape(repr(str(path)))):
        load(path)


def test_corrupt_offsets(tmp_path):
    path = tmp_path / "c.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    with pytest.raises(SerializationError, match="'w'.*do not fit"):
        load(path)


def test_pytorch_pickle_file_gets_a_hint(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(SerializationError, match="pickle.*safetensors.torch.save_file"):
        load(path)
    path.write_bytes(b"\x80\x04\x95" + os.urandom(40))  # a raw pickle stream (protocol 4)
    with pytest.raises(SerializationError, match="pickle"):
        load(path)


def test_unsupported_dtype_names_the_tensor(tmp_path):
    torch = pytest.importorskip("torch")
    import safetensors.torch as st_torch

    path = tmp_path / "bf16.safetensors"
    st_torch.save_file({"emb.weight": torch.ones(2, dtype=torch.bfloat16)}, str(path))
    with pytest.raises(SerializationError, match="'emb.weight'.*BF16"):
        load(path)


def test_newer_version_and_unknown_format(tmp_path):
    path = tmp_path / "v.safetensors"
    write_danlu(path, {"format": "danlu", "version": 2, "root": None})
    with pytest.raises(SerializationError, match="version 2, newer than version 1.*upgrade danlu"):
        load(path)
    write_danlu(path, {"format": "someone-else", "version": 1, "root": None})
    with pytest.raises(SerializationError, match="unknown file format 'someone-else'"):
        load(path)
    write_danlu(path, {"format": "danlu", "version": "1", "root": None})
    with pytest.raises(SerializationError, match="invalid danlu format version"):
        load(path)
    st_np.save_file({}, str(path), metadata={"danlu": "{not json"})
    with pytest.raises(SerializationError, match="not valid JSON"):
        load(path)


@pytest.mark.parametrize("root, arrays, message", [
    ({"t": "frobnicate"}, None, "unknown node tag 'frobnicate'"),
    ([1, 2], None, "expected a value or a node"),
    ({"t": "tensor", "key": "missing", "dtype": "float32", "shape": [1]}, None, "'missing' is not in the file"),
    ({"t": "tensor", "key": "w", "dtype": "float64", "shape": [2]}, {"w": np.ones(2, np.float32)}, "float32"),
    ({"t": "tensor", "key": "w", "dtype": "float32", "shape": [3]}, {"w": np.ones(2, np.float32)}, r"\[2\]"),
    ({"t": "tensor", "key": "w", "dtype": "int64", "shape": [2], "requires_grad": True},
     {"w": np.ones(2, np.int64)}, "can't require grad"),
    ({"t": "dict", "items": [[{"t": "list", "items": []}, 1]]}, None, "a dict key can't be a 'list'"),
    ({"t": "dict", "items": [[1]]}, None, r"\[key, value\] pairs"),
    ({"t": "float", "v": "huge"}, None, "non-finite float"),
    ({"t": "dtype", "v": "complex64"}, None, "unknown dtype"),
    ({"t": "size", "items": [2, -1]}, None, "non-negative ints"),
    ({"t": "list", "items": []}, {"w": np.ones(1)}, "does not mention"),
])
def test_corrupt_structure(tmp_path, root, arrays, message):
    path = tmp_path / "s.safetensors"
    write_danlu(path, {"format": "danlu", "version": 1, "root": root}, arrays)
    with pytest.raises(SerializationError, match=message) as exc:
        load(path)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize("obj, message", [
    (np.ones(2), r"numpy.ndarray at the root.*from_numpy"),
    ({"a": [1, {2, 3}]}, r"builtins.set at \['a'\]\['1'\]"),
    ({"opt": object()}, "builtins.object"),
    ({"m": dl.nn.Module()}, r"state_dict\(\) instead"),
    ({"g": dl.Generator()}, r"get_state\(\) instead"),
    ({dl.ones(1): 1}, "keys must be str, int"),
    ({(1, dl.ones(1)): 1}, "keys must be str, int"),
    ({"c": 1j}, "builtins.complex"),
])
def test_unsupported_objects(tmp_path, obj, message):
    path = tmp_path / "u.safetensors"
    with pytest.raises(TypeError, match=message):
        save(obj, path)
    assert os.listdir(tmp_path) == []  # nothing written, no temporary file left behind


def test_reference_cycle(tmp_path):
    cyc = [dl.ones(1)]
    cyc.append(cyc)
    with pytest.raises(ValueError, match="contains itself"):
        save(cyc, tmp_path / "cyc.safetensors")
    shared = [1]
    save([shared, shared], tmp_path / "ok.safetensors")  # a repeated (non-cyclic) container is fine
    assert load(tmp_path / "ok.safetensors") == [[1], [1]]


def test_bad_targets(tmp_path):
    with pytest.raises(TypeError, match="path .* or a writable binary file"):
        save(dl.ones(1), 42)
    with pytest.raises(TypeError, match="readable binary file"):
        load(42)
    with open(tmp_path / "text.txt", "w") as f:
        with pytest.raises(TypeError, match="open it with 'wb'"):
            save(dl.ones(1), f)
    with open(tmp_path / "text.txt") as f:
        with pytest.raises(TypeError, match="open it with 'rb'"):
            load(f)
    with pytest.raises(IsADirectoryError):
        save(dl.ones(1), tmp_path)
    with pytest.raises(FileNotFoundError):
        save(dl.ones(1), tmp_path / "no" / "such" / "dir.safetensors")
