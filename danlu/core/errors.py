"""Error types and the traceback policy: errors end in the user's code, not inside danlu.

Public entry points catch exceptions and drop danlu's own frames from the traceback before they
re-raise (``DANLU_TRACEBACK=full`` keeps every frame). Messages name the op, the shapes and dtypes
involved and what to do.
"""

from __future__ import annotations

import os
import sys
import types

__all__ = ["DanluError", "ShapeError", "DTypeError", "GraphBreakError", "user_frame", "filter_traceback"]

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FULL = os.environ.get("DANLU_TRACEBACK", "").lower() == "full"


class DanluError(RuntimeError):
    """Base class of danlu's own errors (a RuntimeError, as PyTorch raises)."""


class ShapeError(DanluError, ValueError):
    """Shapes that an op cannot combine."""


class DTypeError(DanluError, TypeError):
    """A dtype an op does not accept."""


class GraphBreakError(DanluError):
    """Data-dependent Python control flow met while tracing a graph."""


class LazyStateError(GraphBreakError):
    """Code being traced creates persistent state on its first call (an optimizer's buffers): a graph
    would bake that first call in. ``danlu.compile`` runs such a call eagerly and traces the next one."""


def _is_internal(filename: str) -> bool:
    return filename.startswith(_PKG_DIR)


def filter_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """Rebuild ``tb`` without the frames of files inside the danlu package."""
    frames = []
    while tb is not None:
        if not _is_internal(tb.tb_frame.f_code.co_filename):
            frames.append(tb)
        tb = tb.tb_next
    out = None
    for t in reversed(frames):
        out = types.TracebackType(out, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return out


def reraise_filtered(e: BaseException) -> None:
    """Strip internal frames from ``e`` in place; the caller then uses a bare ``raise``.

    A bare ``raise`` does not add the current frame again, so the traceback ends at the last user
    frame (or inside user code that danlu called back, such as a module's ``forward``).
    """
    if not _FULL:
        e.__traceback__ = filter_traceback(e.__traceback__)


def user_frame(skip_internal: bool = True):
    """(filename, lineno, function, source line) of the innermost frame outside danlu."""
    f = sys._getframe(1)
    while f is not None and skip_internal and _is_internal(f.f_code.co_filename):
        f = f.f_back
    if f is None:
        return None
    import linecache

    line = linecache.getline(f.f_code.co_filename, f.f_lineno).strip()
    return (f.f_code.co_filename, f.f_lineno, f.f_code.co_name, line)


def format_location(loc) -> str:
    if not loc:
        return "<unknown location>"
    fn, ln, func, line = loc
    return f'File "{fn}", line {ln}, in {func}\n    {line}'


def fmt_shape(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def describe(x) -> str:
    """'f32[2, 3]' for a tensor or abstract value; the value for a Python scalar."""
    dt = getattr(x, "dtype", None)
    if dt is not None and hasattr(x, "shape"):
        return f"{getattr(dt, 'name', dt)}{fmt_shape(x.shape)}"
    return repr(x)


def api(fn):
    """Decorator for public functions: exceptions leave with danlu's frames filtered out."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            reraise_filtered(e)
            raise

    wrapper.__wrapped__ = fn
    return wrapper
