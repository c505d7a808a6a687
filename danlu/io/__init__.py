"""``danlu.io``: save and load tensors, state dicts, optimizer states and checkpoints, without pickle.

Files are safetensors files: tensors are plain safetensors entries, and the structure around them
(nesting, key types, tuples vs lists, dtypes, ``requires_grad``) is JSON in the safetensors metadata,
under a versioned schema documented in ``danlu.io.schema``. Loading parses only JSON and safetensors,
so a file can never run code. Saves to a path are atomic (``danlu.io.files``).

- ``save(obj, f)`` / ``load(f)``: any nesting of dict / list / tuple of tensors and plain values.
- ``save_checkpoint(path, **state)`` / ``load_checkpoint(path, **targets)``: training state by name.

Interop with PyTorch: a flat state dict saved here loads with ``safetensors.torch.load_file``, and
``load`` reads any safetensors file as a flat ``{name: Tensor}`` dict.
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .schema import FORMAT_NAME, FORMAT_VERSION, SerializationError
from .serialization import load, save

__all__ = ["save", "load", "save_checkpoint", "load_checkpoint", "SerializationError", "FORMAT_NAME",
           "FORMAT_VERSION"]
