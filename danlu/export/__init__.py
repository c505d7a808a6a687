"""``danlu.export``: graphs that run without the model's code.

``save(fn, example_inputs, path)`` traces a function, Module or compiled function for example inputs
(inference: under ``no_grad``), turns the parameters and other tensors it reads into constants, and
writes one file: a safetensors file holding the constants, whose metadata holds the graph as
versioned JSON (format ``danlu.export``, documented in ``docs/export-format.md``). No pickle, and no
code: ``load(path)`` rebuilds the graph from registry ops looked up by name, optimizes and compiles
it, and returns an :class:`ExportedProgram` that checks its inputs against the recorded specs.
Dynamic dimensions (``dynamic=``) are stored as size symbols, so one artifact serves any batch size.

>>> import os, tempfile, danlu as dl
>>> from danlu import export
>>> w = dl.tensor([[1.0, -1.0], [0.5, 2.0]])
>>> path = os.path.join(tempfile.mkdtemp(), "layer.dlx")
>>> export.save(lambda x: (x @ w).relu(), (dl.ones(4, 2),), path, dynamic={0: 0})
>>> prog = export.load(path)
>>> prog(dl.tensor([[1.0, 2.0]]))
tensor([[2., 3.]])
"""

from .loading import ExportedProgram, TensorSpec, load
from .saving import save
from .schema import FORMAT_NAME, FORMAT_VERSION, ArtifactError, ExportError, UnknownOpError

__all__ = ["save", "load", "ExportedProgram", "TensorSpec", "ExportError", "ArtifactError", "UnknownOpError",
           "FORMAT_NAME", "FORMAT_VERSION"]
