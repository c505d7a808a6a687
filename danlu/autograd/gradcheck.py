"""Numerical gradient checks in float64: ``gradcheck`` (first order) and ``gradgradcheck`` (second).

The analytical Jacobian comes from backward with one-hot cotangents; the numerical one from central
differences. Both are compared elementwise with ``atol + rtol * |numerical|``.
"""

from __future__ import annotations

import numpy as np

from ..core.tensor import Tensor

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]


class GradcheckError(RuntimeError):
    pass


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,) if isinstance(x, Tensor) else tuple(x)


def _flat_outputs(fn, inputs):
    out = _as_tuple(fn(*inputs))
    return [o for o in out if isinstance(o, Tensor) and o.dtype.is_floating_point]


def _differentiable(x) -> bool:
    return isinstance(x, Tensor) and x.requires_grad


def _empty_jacobian(outs, inputs):
    """J[k][i]: d out_k / d input_i as a (out_k.numel(), input_i.numel()) array; None for non-tensors."""
    return [[np.zeros((o.numel(), x.numel())) if isinstance(x, Tensor) else None for x in inputs] for o in outs]


def _numerical_jacobian(fn, inputs, eps):
    from .grad_mode import no_grad

    with no_grad():
        outs0 = _flat_outputs(fn, inputs)
    jac = _empty_jacobian(outs0, inputs)
    for i, x in enumerate(inputs):
        if not _differentiable(x):
            continue
        flat = x._data.flat  # writes through, even for non-contiguous inputs
        for j in range(x._data.size):
            orig = flat[j].item()
            with no_grad():
                flat[j] = orig + eps
                plus = [o._data.astype(np.float64).reshape(-1).copy() for o in _flat_outputs(fn, inputs)]
                flat[j] = orig - eps
                minus = [o._data.astype(np.float64).reshape(-1).copy() for o in _flat_outputs(fn, inputs)]
                flat[j] = orig
            for k in range(len(outs0)):
                jac[k][i][:, j] = (plus[k] - minus[k]) / (2 * eps)
    return jac


def _analytical_jacobian(fn, inputs):
    from .engine import grad as _grad
    from ..ops.elementwise import zeros_like

    outs = _flat_outputs(fn, inputs)
    diff = [x for x in inputs if _differentiable(x)]
    jac = _empty_jacobian(outs, inputs)
    for k, o in enumerate(outs):
        if not o.requires_grad:
            continue
        for r in range(o.numel()):
            g = zeros_like(o)
            g._data.reshape(-1)[r] = 1.0
            grads = _grad(o, diff, g, retain_graph=True, allow_unused=True)
            it = iter(grads)
            for i, x in enumerate(inputs):
                if _differentiable(x):
                    gi = next(it)
                    if gi is not None:
                        jac[k][i][r] = gi._data.astype(np.float64).reshape(-1)
    return jac


def gradcheck(func, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, **_ignored) -> bool:
    """Compare analytical and numerical gradients of ``func`` at float64 ``inputs``.

    >>> import danlu as dl
    >>> x = dl.randn(3, dtype=dl.float64, requires_grad=True)
    >>> dl.autograd.gradcheck(lambda t: (t * t).sin(), (x,))
    True
    """
    inputs = _as_tuple(inputs)
    for i, x in enumerate(inputs):
        if _differentiable(x) and x.dtype.name != "float64":
            raise GradcheckError(f"gradcheck: input {i} is {x.dtype.name}; gradcheck needs float64 inputs for "
                                 "meaningful finite differences (use .double())")
    num = _numerical_jacobian(func, inputs, eps)
    ana = _analytical_jacobian(func, inputs)
    if len(num) != len(ana):
        raise GradcheckError(f"gradcheck: the function gave {len(num)} floating outputs with grad mode off but "
                             f"{len(ana)} with it on; it must compute the same outputs either way")
    for k, (nrow, arow) in enumerate(zip(num, ana, strict=True)):
        for i, (n, a) in enumerate(zip(nrow, arow, strict=True)):
            if n is None:
                continue
            if not np.allclose(a, n, rtol=rtol, atol=atol, equal_nan=True):
                if raise_exception:
                    bad = np.argmax(np.abs(a - n) - atol - rtol * np.abs(n))
                    r, c = np.unravel_index(bad, a.shape)
                    raise GradcheckError(
                        f"Jacobian mismatch for output {k} with respect to input {i}:\n"
                        f"numerical:{n}\nanalytical:{a}\nfirst mismatch at [{r}, {c}]: numerical {n[r, c]!r}, "
                        f"analytical {a[r, c]!r}")
                return False
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                  raise_exception: bool = True, gen_non_contig_grad_outputs: bool = False, **_ignored) -> bool:
    """Check second derivatives: gradcheck of the function (inputs, v) -> vjp(func)(inputs)·v.

    >>> import danlu as dl
    >>> x = dl.randn(3, dtype=dl.float64, requires_grad=True)
    >>> dl.autograd.gradgradcheck(lambda t: (t ** 3).sum(), (x,))
    True
    """
    from .engine import grad as _grad
    from .grad_mode import enable_grad
    from ..ops.random import randn

    inputs = _as_tuple(inputs)
    outs = _flat_outputs(func, inputs)
    if grad_outputs is None:
        grad_outputs = tuple(randn(*o.shape, dtype=o.dtype, requires_grad=True) for o in outs)
    else:
        grad_outputs = tuple(g.detach().requires_grad_(True) for g in _as_tuple(grad_outputs))
    if len(grad_outputs) != len(outs):
        raise GradcheckError(f"gradgradcheck: got {len(grad_outputs)} grad_outputs for {len(outs)} floating outputs")
    n_in = len(inputs)
    diff_idx = [i for i, x in enumerate(inputs) if _differentiable(x)]

    def first_order(*args):
        # The numerical Jacobian calls this with grad mode off; the vector-Jacobian product inside
        # needs the forward graph, so it is always recorded here.
        with enable_grad():
            xs, gs = args[:n_in], args[n_in:]
            pairs = [(o, g) for o, g in zip(_flat_outputs(func, xs), gs, strict=True) if o.requires_grad]
            diff = [xs[i] for i in diff_idx]
            if not pairs:
                return ()
            res = _grad([o for o, _ in pairs], diff, [g for _, g in pairs], create_graph=True,
                        allow_unused=True, materialize_grads=True)
        return tuple(res)

    return gradcheck(first_order, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
