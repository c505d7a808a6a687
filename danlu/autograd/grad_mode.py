"""Grad modes: ``no_grad``, ``enable_grad``, ``set_grad_enabled`` and ``inference_mode``.

Each is a context manager and a decorator; the flag is thread-local, as in PyTorch.
"""

from __future__ import annotations

import functools
import inspect

from ..core.dispatch import state

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "inference_mode", "is_grad_enabled",
           "is_inference_mode_enabled"]


class _GradMode:
    _mode = True

    def __new__(cls, *args):
        # A bare class as a decorator (``@danlu.no_grad``, as torch allows) gets the function here.
        if len(args) == 1 and callable(args[0]) and cls is not set_grad_enabled:
            return cls()(args[0])
        return super().__new__(cls)

    def __enter__(self):
        self._prev = state.grad_enabled
        state.grad_enabled = self._mode
        return self

    def __exit__(self, *exc):
        state.grad_enabled = self._prev
        return False

    def __call__(self, fn):
        mode = self._mode
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen_wrapper(*args, **kwargs):
                # The mode holds only while the generator's own code runs: between yields the
                # caller's mode is back in force. throw() and close() are forwarded under the mode.
                gen = fn(*args, **kwargs)
                step, arg = gen.send, None
                while True:
                    prev = state.grad_enabled
                    state.grad_enabled = mode
                    try:
                        out = step(arg)
                    except StopIteration as e:
                        return e.value
                    finally:
                        state.grad_enabled = prev
                    try:
                        arg = yield out
                        step = gen.send
                    except GeneratorExit:
                        prev = state.grad_enabled
                        state.grad_enabled = mode
                        try:
                            gen.close()
                        finally:
                            state.grad_enabled = prev
                        raise
                    except BaseException as e:  # forwarded into the generator, as Python does
                        step, arg = gen.throw, e
            return gen_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = state.grad_enabled
            state.grad_enabled = mode
            try:
                return fn(*args, **kwargs)
            finally:
                state.grad_enabled = prev
        return wrapper


class no_grad(_GradMode):
    """Disable gradient recording, as a context manager or decorator (``@no_grad()`` or ``@no_grad``).

    >>> import danlu as dl
    >>> x = dl.ones(2, requires_grad=True)
    >>> with dl.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    _mode = False


class enable_grad(_GradMode):
    """Enable gradient recording inside a ``no_grad`` region.

    >>> import danlu as dl
    >>> x = dl.ones(2, requires_grad=True)
    >>> with dl.no_grad(), dl.enable_grad():
    ...     (x * 2).requires_grad
    True
    """

    _mode = True


class set_grad_enabled(_GradMode):
    """Set grad mode to ``mode``: at once when called, and for a ``with`` block.

    >>> import danlu as dl
    >>> with dl.set_grad_enabled(False):
    ...     dl.is_grad_enabled()
    False
    """

    def __init__(self, mode: bool):
        self._prev = state.grad_enabled
        self._mode = bool(mode)
        state.grad_enabled = self._mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        state.grad_enabled = self._prev
        return False

    def __call__(self, fn):
        state.grad_enabled = self._prev
        return _GradMode.__call__(self, fn)


class inference_mode(_GradMode):
    """Like ``no_grad`` (danlu has no separate inference tensors).

    >>> import danlu as dl
    >>> with dl.inference_mode():
    ...     dl.is_grad_enabled()
    False
    """

    def __init__(self, mode: bool = True):
        self._mode = not mode


def is_grad_enabled() -> bool:
    """Whether gradient recording is on in this thread.

    >>> import danlu as dl
    >>> dl.is_grad_enabled()
    True
    """
    return state.grad_enabled


def is_inference_mode_enabled() -> bool:
    return not state.grad_enabled
