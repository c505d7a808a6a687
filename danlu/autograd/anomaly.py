"""Anomaly detection: name the op whose backward produced NaN/Inf and show the user's forward line."""

from __future__ import annotations

from ..core.dispatch import state

__all__ = ["detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled"]


class detect_anomaly:
    """Context manager (and decorator): while on, each recorded op remembers the user's source line,
    and backward raises at the first NaN or Inf gradient, naming the op and that line.

    >>> import danlu as dl
    >>> x = dl.tensor([0.0], requires_grad=True)
    >>> with dl.autograd.detect_anomaly():
    ...     y = dl.sqrt(x) * 0
    ...     try:
    ...         y.backward()
    ...     except RuntimeError as e:
    ...         print(str(e).split(" in its")[0])
    Function 'SqrtBackward0' returned nan or inf values
    """

    def __init__(self, check_nan: bool = True):
        self.check_nan = check_nan

    def __enter__(self):
        self._prev = (state.anomaly, state.anomaly_check_nan)
        state.anomaly, state.anomaly_check_nan = True, self.check_nan
        return self

    def __exit__(self, *exc):
        state.anomaly, state.anomaly_check_nan = self._prev
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly(self.check_nan):
                return fn(*args, **kwargs)
        return wrapper


class set_detect_anomaly(detect_anomaly):
    """Turn anomaly detection on or off (at once, and for a ``with`` block)."""

    def __init__(self, mode: bool, check_nan: bool = True):
        self._prev = (state.anomaly, state.anomaly_check_nan)
        state.anomaly, state.anomaly_check_nan = bool(mode), check_nan
        self.check_nan = check_nan

    def __enter__(self):
        return self


def is_anomaly_enabled() -> bool:
    return state.anomaly
