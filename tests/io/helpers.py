"""Deep comparison of saved and loaded structures: exact types, dtypes, shapes, bits and flags."""

import math
from collections import OrderedDict

import numpy as np

import danlu as dl
from danlu.io import load, save


def roundtrip(obj, path):
    save(obj, path)
    return load(path)


def assert_same(expected, got, where="root"):
    assert type(got) is type(expected), f"{where}: type {type(got).__name__} != {type(expected).__name__}"
    if isinstance(expected, dl.Tensor):
        assert got.dtype == expected.dtype, f"{where}: dtype {got.dtype} != {expected.dtype}"
        assert got.shape == expected.shape, f"{where}: shape {got.shape} != {expected.shape}"
        assert got.requires_grad == expected.requires_grad, f"{where}: requires_grad differs"
        a, b = expected.detach().numpy(), got.detach().numpy()
        # bit-exact: NaN payloads and the sign of zero must survive too
        assert a.tobytes() == b.tobytes(), f"{where}: values differ: {a} vs {b}"
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), f"{where}: length differs"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            assert_same(e, g, f"{where}[{i}]")
    elif isinstance(expected, (dict, OrderedDict)):
        assert list(got.keys()) == list(expected.keys()), f"{where}: keys {list(got)} != {list(expected)}"
        for (ke, ve), kg in zip(expected.items(), got.keys(), strict=True):
            assert type(kg) is type(ke), f"{where}: key {kg!r} has type {type(kg).__name__}"
            assert_same(ve, got[kg], f"{where}[{ke!r}]")
    elif isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got), f"{where}: {got} is not nan"
    elif isinstance(expected, float):
        assert got == expected and math.copysign(1, got) == math.copysign(1, expected), f"{where}: {got} != {expected}"
    else:
        assert got == expected, f"{where}: {got!r} != {expected!r}"


def sample(dtype: dl.DType, shape, rng: np.random.Generator) -> dl.Tensor:
    """Random values of ``dtype``, with NaN, infinities and -0.0 mixed into float tensors."""
    if dtype == dl.bool:
        a = rng.random(shape) < 0.5
    elif dtype.is_floating_point:
        a = rng.standard_normal(shape).astype(dtype.np)
        flat = a.reshape(-1)
        for i, v in enumerate([np.nan, np.inf, -np.inf, -0.0][: flat.size]):
            flat[i] = v
    else:
        info = np.iinfo(dtype.np)
        a = rng.integers(info.min, info.max, size=shape, dtype=dtype.np, endpoint=True)
    return dl.from_numpy(np.asarray(a, dtype=dtype.np))
