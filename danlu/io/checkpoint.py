"""Checkpoints: named training state (model, optimizer, RNG, counters) in one atomic file."""

from __future__ import annotations

import os
from typing import Any

from ..core.errors import api
from .files import source_name
from .serialization import load, save

__all__ = ["save_checkpoint", "load_checkpoint"]


def _state_of(value: Any) -> Any:
    if hasattr(value, "state_dict"):  # modules, optimizers, lr schedulers
        return value.state_dict()
    if hasattr(value, "get_state") and hasattr(value, "set_state"):  # a danlu.Generator
        return value.get_state()
    return value


@api
def save_checkpoint(path: str | os.PathLike, **state: Any) -> None:
    """Save named training state to ``path`` in one atomic write (see ``danlu.io.save``).

    An object with ``state_dict()`` (a Module, an optimizer, a scheduler) is stored as its state dict, a
    ``danlu.Generator`` as its ``get_state()`` tensor, and anything else (epoch counters, metrics,
    tensors, nested dicts) as it is. ``load_checkpoint`` restores them.

    >>> import os, tempfile, danlu as dl
    >>> from danlu.io import save_checkpoint, load_checkpoint
    >>> tmp = tempfile.TemporaryDirectory(); path = os.path.join(tmp.name, "ckpt.safetensors")
    >>> g = dl.Generator().manual_seed(1)
    >>> save_checkpoint(path, epoch=3, rng=g); a = dl.rand(2, generator=g)
    >>> ckpt = load_checkpoint(path, rng=g); ckpt["epoch"], bool((dl.rand(2, generator=g) == a).all())
    (3, True)
    >>> tmp.cleanup()
    """
    save({name: _state_of(value) for name, value in state.items()}, path)


@api
def load_checkpoint(path: str | os.PathLike, **targets: Any) -> dict:
    """Load a checkpoint written by ``save_checkpoint`` and return its entries as a dict.

    Each keyword names an entry and an object to restore in place from it: ``load_state_dict`` is called
    for modules, optimizers and schedulers, ``set_state`` for a ``danlu.Generator``. A missing entry
    raises KeyError naming the entries the file has. (See ``save_checkpoint`` for an example.)
    """
    ckpt = load(path)
    if not isinstance(ckpt, dict):
        raise TypeError(f"load_checkpoint: {source_name(path)} holds a {type(ckpt).__name__}, not a checkpoint dict")
    missing = [name for name in targets if name not in ckpt]
    if missing:
        raise KeyError(f"load_checkpoint: {source_name(path)} has no entry {missing[0]!r}; its entries are "
                       f"{sorted(map(str, ckpt))}")
    for name, target in targets.items():
        if hasattr(target, "load_state_dict"):
            target.load_state_dict(ckpt[name])
        elif hasattr(target, "set_state"):
            target.set_state(ckpt[name])
        else:
            raise TypeError(f"load_checkpoint: can't restore {name}={type(target).__name__} in place; it has no "
                            "load_state_dict() or set_state() (read ckpt[name] from the returned dict instead)")
    return ckpt
