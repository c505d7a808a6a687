"""Shared helpers for export tests: small models, eager references, artifact surgery."""

import json

import numpy as np

import danlu as dl
import danlu.export as export
from danlu.io import files


class MLP(dl.nn.Module):
    """Two layers with a bias, a buffer and a dict output: parameters, buffers and structure in one."""

    def __init__(self, n_in=3, n_hidden=8, n_out=2):
        super().__init__()
        self.w1 = dl.nn.Parameter(dl.randn(n_in, n_hidden) * 0.5)
        self.b1 = dl.nn.Parameter(dl.randn(n_hidden) * 0.1)
        self.w2 = dl.nn.Parameter(dl.randn(n_hidden, n_out) * 0.5)
        self.register_buffer("scale", dl.tensor(2.0))

    def forward(self, x):
        h = (x @ self.w1 + self.b1).relu()
        logits = (h @ self.w2) * self.scale
        return {"logits": logits, "probs": dl.softmax(logits, -1)}


def flat(out):
    if isinstance(out, dl.Tensor):
        return [out]
    if isinstance(out, dict):
        return [y for v in out.values() for y in flat(v)]
    if isinstance(out, (list, tuple)):
        return [y for v in out for y in flat(v)]
    return []


def eager(fn, *args):
    with dl.no_grad():
        return fn(*args)


def assert_outputs_equal(got, want, rtol=1e-6, atol=1e-6):
    """Same structure, dtypes and shapes; values equal to float tolerance (the optimized graph may fuse)."""
    assert type(got) is type(want), (type(got), type(want))
    if isinstance(want, dict):
        assert list(got) == list(want)
    g, w = flat(got), flat(want)
    assert len(g) == len(w)
    for a, b in zip(g, w):
        assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, a.shape, b.dtype, b.shape)
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=rtol, atol=atol, equal_nan=True)


def roundtrip(fn, args, path, **kw):
    export.save(fn, args, path, **kw)
    return export.load(path)


def read_doc(path):
    arrays, metadata = files.read(path)
    return json.loads(metadata[export.schema.METADATA_KEY]), arrays


def write_doc(path, doc, arrays):
    """Rewrite an artifact with a changed document (the surgery behind the corrupt-file tests)."""
    files.write(path, arrays, {export.schema.METADATA_KEY: json.dumps(doc)})
