"""Random primitives (flag ``random``: passes never fold, merge or reorder them)."""

from __future__ import annotations

import numpy as np

from ..core import dtypes as _dt
from ..core.dispatch import apply, apply_inplace
from ..core.errors import DTypeError, api, describe, reraise_filtered
from ..core.random import default_generator
from ..core.registry import AVal, register
from ..core.tensor import Tensor, tensor_method
from .creation import _finish, _size

__all__ = ["rand", "randn", "randint", "randperm", "normal", "bernoulli", "multinomial", "rand_like",
           "randn_like", "randint_like"]


def _float_dtype(dtype, opname):
    dt = _dt.as_dtype(dtype)
    if not dt.is_floating_point:
        raise DTypeError(f"{opname}: expected a floating dtype, got {dt}")
    return dt


def _uniform_impl(*, shape, low, high, dtype, generator):
    return generator._np.uniform(low, high, size=shape).astype(dtype.np)


def _normal_impl(*, shape, mean, std, dtype, generator):
    g = generator._np
    if dtype is _dt.float32 or dtype is _dt.float16:
        out = g.standard_normal(size=shape, dtype=np.float32)
    else:
        out = g.standard_normal(size=shape)
    if std != 1.0:
        out *= std
    if mean != 0.0:
        out += mean
    return out.astype(dtype.np, copy=False)


UNIFORM = register("uniform", infer=lambda *, shape, dtype, **_: AVal(shape, dtype), impl=_uniform_impl,
                   random=True, differentiable=False, family="random")
NORMAL = register("normal", infer=lambda *, shape, dtype, **_: AVal(shape, dtype), impl=_normal_impl,
                  random=True, differentiable=False, family="random")
def _float_like_infer(opname):
    def infer(x, **_):
        if not x.dtype.is_floating_point:
            raise DTypeError(f"{opname}: needs a floating point tensor, got {describe(x)}; use random_() for "
                             "integers, or convert first with .float()")
        return AVal(x.shape, x.dtype)
    return infer


UNIFORM_LIKE = register("uniform_like", infer=_float_like_infer("uniform_"),
                        impl=lambda x, *, low, high, generator: _uniform_impl(
                            shape=x.shape, low=low, high=high, dtype=_dt._FROM_NP[x.dtype], generator=generator),
                        random=True, differentiable=False, family="random")
NORMAL_LIKE = register("normal_like", infer=_float_like_infer("normal_"),
                       impl=lambda x, *, mean, std, generator: _normal_impl(
                           shape=x.shape, mean=mean, std=std, dtype=_dt._FROM_NP[x.dtype], generator=generator),
                       random=True, differentiable=False, family="random")


def _randint_impl(*, low, high, shape, dtype, generator):
    return generator._np.integers(low, high, size=shape, dtype=np.int64).astype(dtype.np)


RANDINT = register("randint", infer=lambda *, shape, dtype, **_: AVal(shape, dtype), impl=_randint_impl,
                   random=True, differentiable=False, family="random")
RANDPERM = register("randperm", infer=lambda *, n, dtype, **_: AVal((n,), dtype),
                    impl=lambda *, n, dtype, generator: generator._np.permutation(n).astype(dtype.np),
                    random=True, differentiable=False, family="random")


def _bernoulli_infer(p, **_):
    if not p.dtype.is_floating_point:
        raise DTypeError(f"bernoulli: probabilities must be floating point, got {describe(p)}")
    return AVal(p.shape, p.dtype)


def _bernoulli_impl(p, *, generator):
    if p.size and (np.nanmin(p) < 0 or np.nanmax(p) > 1):
        raise RuntimeError("bernoulli: all probabilities must be in [0, 1]")
    return (generator._np.random(size=p.shape) < p).astype(p.dtype)


BERNOULLI = register("bernoulli", infer=_bernoulli_infer, impl=_bernoulli_impl, random=True,
                     differentiable=False, family="random")


def _multinomial_infer(p, *, num_samples, replacement, generator):
    if not p.dtype.is_floating_point:
        raise DTypeError(f"multinomial: only floating-point probabilities are supported, got {describe(p)}; "
                         "convert them with .float()")
    if p.ndim not in (1, 2):
        raise RuntimeError(f"multinomial: prob_dist must be 1 or 2 dim, got {describe(p)}")
    if not replacement and num_samples > p.shape[-1]:
        raise RuntimeError(f"multinomial: cannot sample n_sample={num_samples} > prob_dist.size(-1)="
                           f"{p.shape[-1]} samples without replacement")
    return AVal(p.shape[:-1] + (num_samples,), _dt.int64)


def _multinomial_impl(p, *, num_samples, replacement, generator):
    g = generator._np
    rows = p.reshape(-1, p.shape[-1]).astype(np.float64)
    if np.any(rows < 0) or not np.all(np.isfinite(rows)):
        raise RuntimeError("multinomial: probability tensor contains either inf, nan or element < 0")
    out = np.empty((rows.shape[0], num_samples), np.int64)
    for i, r in enumerate(rows):
        s = r.sum()
        if s <= 0:
            raise RuntimeError("multinomial: invalid multinomial distribution (sum of probabilities <= 0)")
        if replacement:
            out[i] = g.choice(len(r), size=num_samples, replace=True, p=r / s)
        else:
            # Gumbel top-k: sampling without replacement in proportion to the weights.
            with np.errstate(divide="ignore"):
                keys = np.log(r / s) - np.log(-np.log(g.random(len(r))))
            out[i] = np.argsort(-keys, kind="stable")[:num_samples]
    return out.reshape(p.shape[:-1] + (num_samples,))


MULTINOMIAL = register("multinomial", infer=_multinomial_infer, impl=_multinomial_impl, random=True,
                       differentiable=False, family="random")


def _g(generator):
    return generator if generator is not None else default_generator


def _shape_arg(dims, size, opname) -> tuple:
    """The shape of ``rand(2, 3)``, ``rand((2, 3))`` or ``rand(size=(2, 3))``."""
    if size is not None:
        if dims:
            raise TypeError(f"{opname}: give the size either positionally or as size=, not both")
        dims = (size,)
    return _size(dims, opname)


@api
def rand(*dims, size=None, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples on [0, 1).

    >>> import danlu as dl
    >>> dl.rand(2, 3).shape
    danlu.Size([2, 3])
    """
    dt = _float_dtype(dtype, "rand")
    return _finish(apply(UNIFORM, shape=_shape_arg(dims, size, "rand"), low=0.0, high=1.0, dtype=dt,
                         generator=_g(generator)), requires_grad)


@api
def randn(*dims, size=None, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples.

    >>> import danlu as dl
    >>> dl.randn(4).dtype
    danlu.float32
    """
    dt = _float_dtype(dtype, "randn")
    return _finish(apply(NORMAL, shape=_shape_arg(dims, size, "randn"), mean=0.0, std=1.0, dtype=dt,
                         generator=_g(generator)), requires_grad)


def _check_int_range(opname, low, last, dt):
    """torch refuses integer bounds that the output dtype cannot hold (rather than wrapping them)."""
    if dt is _dt.bool_:
        lo, hi = 0, 1
    elif dt.is_floating_point:
        lo, hi = _dt.finfo(dt).min, _dt.finfo(dt).max
    else:
        lo, hi = _dt.iinfo(dt).min, _dt.iinfo(dt).max
    for what, v in (("low", low), ("high - 1", last)):
        if not lo <= v <= hi:
            raise RuntimeError(f"{opname}: {what} = {v} is out of bounds for {dt.name} ([{lo}, {hi}]); use a "
                               "wider dtype")


@api
def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad: bool = False) -> Tensor:
    """Integers uniform on [low, high), as ``torch.randint(low=0, high, size)``.

    >>> import danlu as dl
    >>> bool(((dl.randint(0, 3, (100,)) >= 0) & (dl.randint(3, (100,)) < 3)).all())
    True
    """
    if size is None:
        if high is None:
            raise TypeError("randint: size is required, e.g. randint(10, (3,))")
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if high <= low:
        raise RuntimeError(f"randint: expected low < high, got low={low}, high={high}")
    dt = _dt.int64 if dtype is None else _dt.as_dtype(dtype)
    _check_int_range("randint", int(low), int(high) - 1, dt)
    return _finish(apply(RANDINT, low=int(low), high=int(high), shape=_size((size,), "randint"), dtype=dt,
                         generator=_g(generator)), requires_grad)


@api
def randperm(n: int, *, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A random permutation of ``0..n-1``.

    >>> import danlu as dl
    >>> sorted(dl.randperm(4).tolist())
    [0, 1, 2, 3]
    """
    if n < 0:
        raise RuntimeError(f"randperm: n must be non-negative, got {n}")
    dt = _dt.int64 if dtype is None else _dt.as_dtype(dtype)
    return _finish(apply(RANDPERM, n=int(n), dtype=dt, generator=_g(generator)), requires_grad)


@api
def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, requires_grad: bool = False) -> Tensor:
    """Normal samples; ``mean``/``std`` may be tensors (then differentiable, as in PyTorch).

    >>> import danlu as dl
    >>> dl.normal(2.0, 3.0, size=(2,)).shape
    danlu.Size([2])
    """
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        from .elementwise import _binary_infer

        shape = _binary_infer("normal")(mean, std).shape if size is None else _size((size,), "normal")
        dt = next(t.dtype for t in (mean, std) if isinstance(t, Tensor))
        z = apply(NORMAL, shape=tuple(shape), mean=0.0, std=1.0, dtype=dt, generator=_g(generator))
        return mean + std * z
    if size is None:
        raise TypeError("normal: size is required when mean and std are numbers")
    if std < 0:
        raise RuntimeError(f"normal: expects std >= 0.0, but found std {std}")
    dt = _float_dtype(dtype, "normal")
    return _finish(apply(NORMAL, shape=_size((size,), "normal"), mean=float(mean), std=float(std), dtype=dt,
                         generator=_g(generator)), requires_grad)


@api
def bernoulli(input, p=None, *, generator=None) -> Tensor:
    """0/1 samples with probabilities ``input`` (or the scalar ``p``), same dtype as ``input``.

    >>> import danlu as dl
    >>> dl.bernoulli(dl.tensor([0.0, 1.0]))
    tensor([0., 1.])
    """
    if p is not None:
        from .elementwise import full_like

        input = full_like(input, p)
    return apply(BERNOULLI, input, generator=_g(generator))


@api
def multinomial(input, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:
    """Indices sampled from the rows of ``input`` in proportion to their weights.

    >>> import danlu as dl
    >>> dl.multinomial(dl.tensor([0.0, 1.0]), 2, replacement=True)
    tensor([1, 1])
    """
    return apply(MULTINOMIAL, input, num_samples=int(num_samples), replacement=bool(replacement),
                 generator=_g(generator))


@api
def rand_like(input, *, dtype=None, generator=None, requires_grad: bool = False) -> Tensor:
    return rand(*input.shape, dtype=dtype or input.dtype, generator=generator, requires_grad=requires_grad)


@api
def randn_like(input, *, dtype=None, generator=None, requires_grad: bool = False) -> Tensor:
    return randn(*input.shape, dtype=dtype or input.dtype, generator=generator, requires_grad=requires_grad)


@api
def randint_like(input, low, high=None, *, dtype=None, generator=None) -> Tensor:
    return randint(low, high, tuple(input.shape), dtype=dtype or input.dtype, generator=generator)


@tensor_method("uniform_")
def uniform_(self, a: float = 0.0, b: float = 1.0, *, generator=None):
    """Fill with uniform samples on [a, b) in place."""
    try:
        return apply_inplace(UNIFORM_LIKE, self, low=float(a), high=float(b), generator=_g(generator),
                             _method="uniform_")
    except Exception as e:
        reraise_filtered(e)
        raise


@tensor_method("normal_")
def normal_(self, mean: float = 0.0, std: float = 1.0, *, generator=None):
    """Fill with normal samples in place."""
    try:
        return apply_inplace(NORMAL_LIKE, self, mean=float(mean), std=float(std), generator=_g(generator),
                             _method="normal_")
    except Exception as e:
        reraise_filtered(e)
        raise


@tensor_method("bernoulli_")
def bernoulli_(self, p: float = 0.5, *, generator=None):
    """Fill with 0/1 samples with probability ``p`` in place."""
    try:
        from .elementwise import full_like

        probs = p if isinstance(p, Tensor) else full_like(self, p, dtype=_dt.float64)
        if not probs.dtype.is_floating_point:
            probs = probs.to(_dt.float64)
        return self.copy_(apply(BERNOULLI, probs, generator=_g(generator)))
    except Exception as e:
        reraise_filtered(e)
        raise


@tensor_method("random_")
def random_(self, low: int = 0, high: int | None = None, *, generator=None):
    """Fill with integers uniform on [low, high) in place."""
    if high is None:
        if low:
            low, high = 0, low
        else:  # PyTorch: [0, 2**mantissa] for floats, the dtype's range for integers
            dt = self.dtype
            high = {"float16": 2 ** 11, "float32": 2 ** 24, "float64": 2 ** 53}.get(dt.name) or \
                (2 ** 63 - 1 if dt.name == "int64" else int(_dt.iinfo(dt).max) + 1 if dt.name != "bool" else 2)
            low = 0
    return self.copy_(randint(low, high, tuple(self.shape), generator=generator))


Tensor.bernoulli = lambda self, p=None, generator=None: bernoulli(self, p, generator=generator)  # noqa: E731
Tensor.multinomial = lambda self, n, replacement=False, generator=None: multinomial(  # noqa: E731
    self, n, replacement, generator=generator)
