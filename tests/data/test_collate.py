"""default_collate / default_convert against torch.utils.data's, case by case: same structure, types, dtypes,
shapes and values."""

import collections

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate as t_collate
from torch.utils.data import default_convert as t_convert

import danlu as dl
from danlu.data import default_collate, default_convert

Point = collections.namedtuple("Point", "x y")


def _np(x):
    return np.array(x)


def assert_same(ours, theirs, path="batch"):
    """Structure, container types, tensor dtypes/shapes/values equal (danlu vs torch)."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, dl.Tensor), f"{path}: expected a tensor, got {type(ours).__name__}"
        assert ours.dtype.name == str(theirs.dtype).replace("torch.", ""), f"{path}: {ours.dtype} vs {theirs.dtype}"
        assert tuple(ours.shape) == tuple(theirs.shape), path
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=path)
        return
    assert type(ours) is type(theirs), f"{path}: {type(ours).__name__} vs {type(theirs).__name__}"
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs), path
        for k in theirs:
            assert_same(ours[k], theirs[k], f"{path}[{k!r}]")
    elif isinstance(theirs, list | tuple):
        assert len(ours) == len(theirs), path
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(theirs, np.ndarray):
        np.testing.assert_array_equal(ours, theirs)
    else:
        assert ours == theirs, path


def _torchify(sample):
    """The same sample with danlu tensors replaced by torch tensors (for the torch side)."""
    if isinstance(sample, dl.Tensor):
        return torch.from_numpy(sample.numpy().copy())
    if isinstance(sample, dict):
        return {k: _torchify(v) for k, v in sample.items()}
    if isinstance(sample, tuple) and hasattr(sample, "_fields"):
        return type(sample)(*(_torchify(v) for v in sample))
    if isinstance(sample, list | tuple):
        return type(sample)(_torchify(v) for v in sample)
    return sample


CASES = {
    "python ints": [1, 2, 3],
    "python floats": [1.0, 2.5],
    "bools": [True, False],
    "int first then float": [1, 2.5],
    "float first then int": [1.5, 2],
    "float32 arrays": [np.zeros(3, np.float32), np.ones(3, np.float32)],
    "uint8 images": [np.zeros((2, 2), np.uint8), np.full((2, 2), 7, np.uint8)],
    "int32 arrays": [np.arange(3, dtype=np.int32)] * 2,
    "float64 arrays": [np.linspace(0, 1, 4)] * 3,
    "numpy float32 scalars": [np.float32(1), np.float32(2)],
    "numpy int32 scalars": [np.int32(1), np.int32(2)],
    "numpy bool scalars": [np.bool_(True), np.bool_(False)],
    "0-d arrays": [np.array(1.5, np.float32), np.array(2.5, np.float32)],
    "tuples": [(1, 2.0), (3, 4.0)],
    "lists": [[1, 2.0], [3, 4.0]],
    "dicts": [{"x": 1, "y": np.ones(2)}, {"x": 2, "y": np.zeros(2)}],
    "namedtuples": [Point(1, np.ones(2, np.float32)), Point(2, np.zeros(2, np.float32))],
    "strings": ["a", "b"],
    "bytes": [b"a", b"b"],
    "numpy strings": [np.str_("a"), np.str_("b")],
    "danlu tensors": [dl.ones(2, dtype=dl.int16), dl.zeros(2, dtype=dl.int16)],
    "float tensors": [dl.ones(2, 3), dl.zeros(2, 3)],
    "nested": [({"a": [1, 2]}, (np.zeros(2),)), ({"a": [3, 4]}, (np.ones(2),))],
    "image and label": [(np.zeros((28, 28), np.uint8), 3), (np.ones((28, 28), np.uint8), 7)],
    "dict of tuples": [{"t": (1.0, "s")}, {"t": (2.0, "u")}],
}


@pytest.mark.parametrize("name", list(CASES))
def test_default_collate_matches_torch(name):
    batch = CASES[name]
    assert_same(default_collate(batch), t_collate([_torchify(b) for b in batch]))


def test_collate_keeps_float32_arrays_float32_and_python_floats_float64():
    assert default_collate([np.zeros(2, np.float32)] * 2).dtype is dl.float32
    assert default_collate([0.5, 1.5]).dtype is dl.float64
    assert default_collate([1, 2]).dtype is dl.int64


def test_collate_int_then_float_follows_default_dtype():
    dl.set_default_dtype(dl.float64)
    assert default_collate([1, 2.5]).dtype is dl.float64  # conftest restores float32


def test_collate_of_tensors_is_a_new_tensor():
    a = dl.zeros(2)
    out = default_collate([a, a])
    out[0, 0] = 5
    assert a.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("bad", [[np.array(["a"])] * 2, [object()] * 2, [None, None]])
def test_collate_rejects_unsupported_elements_like_torch(bad):
    with pytest.raises(TypeError) as ours:
        default_collate(bad)
    with pytest.raises(TypeError):
        t_collate(bad)
    assert "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists" in str(ours.value)


def test_collate_unequal_lengths_error():
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        default_collate([[1, 2], [1]])


def test_collate_unequal_array_shapes_error_names_shapes():
    with pytest.raises(RuntimeError, match=r"\(2,\).*\(3,\)"):
        default_collate([np.zeros(2), np.zeros(3)])


CONVERT_CASES = {
    "array": np.ones(2),
    "tuple": (np.ones(2), 1),
    "list": [np.ones(2, np.float32), 1.0],
    "dict": {"a": np.float32(1)},
    "namedtuple": Point(np.ones(1), 2),
    "string array": np.array(["a"]),
    "int": 3,
    "str": "s",
    "numpy int": np.int64(3),
    "tensor": dl.ones(2),
}


@pytest.mark.parametrize("name", list(CONVERT_CASES))
def test_default_convert_matches_torch(name):
    data = CONVERT_CASES[name]
    assert_same(default_convert(data), t_convert(_torchify(data)))


def test_collate_tensors_keeps_the_graph_of_tensors_that_require_grad():
    a = dl.ones(2, requires_grad=True)
    out = default_collate([a, a * 2])
    assert out.requires_grad
    out.sum().backward()
    assert a.grad.tolist() == [3.0, 3.0]


def test_collate_tensors_of_different_shapes_raises():
    with pytest.raises(Exception, match=r"\[2\].*\[3\]|\[3\].*\[2\]"):
        default_collate([dl.ones(2), dl.ones(3)])
