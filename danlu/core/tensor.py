"""The Tensor: an array (a NumPy array on the CPU backend) plus autograd bookkeeping.

Operations are not defined here: each op family in ``danlu.ops`` attaches its functions as methods
(``x.exp()`` is ``danlu.exp(x)``), so the class only holds what is not an op: properties,
conversion, and the entry points of autograd.
"""

from __future__ import annotations

import weakref

import numpy as np

from . import dtypes as _dt
from .device import CPU

__all__ = ["Tensor", "Size", "tensor_method"]

_NP2DT = _dt._FROM_NP
_ndarray = np.ndarray


def _boundary(fn):
    """Errors from these methods end at the caller's line (danlu's frames filtered)."""
    import functools

    @functools.wraps(fn)
    def method(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            _filter(e)
            raise
    return method


class Size(tuple):
    """A tensor's shape: a tuple with ``numel()``, as ``torch.Size``.

    >>> import danlu as dl
    >>> dl.zeros(2, 3).shape
    danlu.Size([2, 3])
    """

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self):
        return f"danlu.Size({list(self)})"

    def __getitem__(self, i):
        r = tuple.__getitem__(self, i)
        return Size(r) if isinstance(i, slice) else r


class Tensor:
    """A multi-dimensional array with autograd, as ``torch.Tensor``.

    >>> import danlu as dl
    >>> x = dl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward(); x.grad
    tensor([2., 4., 6.])
    """

    __slots__ = ("_data", "_rg", "_node", "_out", "_grad", "_vc", "_base", "_acc", "_extra", "__weakref__")
    __array_priority__ = 1000
    __array_ufunc__ = None  # NumPy defers to our reflected operators (ndarray + Tensor -> Tensor)

    def __init__(self, data=None, *, dtype=None, requires_grad=False):
        from .creation import tensor as _tensor  # legacy constructor: Tensor([1, 2]) is float

        t = _tensor([] if data is None else data, dtype=dtype or _dt.get_default_dtype())
        _init(self, t._data)
        if requires_grad:
            self.requires_grad_(True)

    # -- construction helpers ------------------------------------------------------------------
    @staticmethod
    def _from_node(data, node, index):
        t = _wrap(data)
        t._rg, t._node, t._out = True, node, index
        return t

    @staticmethod
    def _scalar(value, dtype):
        return _wrap(np.asarray(value, dtype=dtype.np))

    # -- basic properties ----------------------------------------------------------------------
    @property
    def shape(self) -> Size:
        return Size(self._data.shape)

    @property
    def dtype(self) -> _dt.DType:
        return _NP2DT[self._data.dtype]

    @property
    def device(self):
        return CPU

    @property
    def ndim(self) -> int:
        return len(self._data.shape)

    def dim(self) -> int:
        return len(self._data.shape)

    ndimension = dim

    @_boundary
    def size(self, dim: int | None = None):
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[_wrap_dim(dim, self.ndim, "size")]

    def numel(self) -> int:
        return int(np.prod(self._data.shape, dtype=np.int64))

    nelement = numel

    def element_size(self) -> int:
        return self._data.dtype.itemsize

    @_boundary
    def stride(self, dim: int | None = None):
        st = tuple(s // self._data.itemsize for s in self._data.strides)
        return st if dim is None else st[_wrap_dim(dim, self.ndim, "stride")]

    def is_contiguous(self) -> bool:
        return bool(self._data.flags.c_contiguous)

    def data_ptr(self) -> int:
        return self._data.__array_interface__["data"][0]

    @property
    def is_cpu(self) -> bool:
        return True

    @property
    def is_cuda(self) -> bool:
        return False

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    # -- autograd properties -------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._rg

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    @_boundary
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if self._node is not None:
            if not requires_grad:
                raise RuntimeError(
                    "requires_grad_: you can only change requires_grad flags of leaf tensors; this one "
                    f"was computed by {self._node.name()}. Use .detach() to get a tensor without history.")
            return self
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError(
                f"requires_grad_: only tensors of floating point dtype can require gradients, this one is "
                f"{self.dtype.name}; convert it first, e.g. x.float().requires_grad_()")
        self._rg = bool(requires_grad)
        return self

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def grad(self):
        from .dispatch import _active_interps, state

        if _active_interps[0] and hasattr(state.interp, "on_grad_read"):
            state.interp.on_grad_read(self, self._grad)
        if self._node is not None and self._grad is None and not self._retains():
            import warnings

            warnings.warn(
                "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad "
                "attribute won't be populated during backward(); call .retain_grad() on it first if you "
                "want its gradient.", UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        from .dispatch import _active_interps, state

        if _active_interps[0] and hasattr(state.interp, "on_grad_write"):
            state.interp.on_grad_write(self)
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad must be a Tensor or None, got {type(value).__name__}")
            if tuple(value.shape) != tuple(self.shape):
                raise RuntimeError(f"assigned grad has shape {list(value.shape)} but the tensor has "
                                   f"shape {list(self.shape)}; they must match")
            if value.dtype is not self.dtype:
                raise RuntimeError(f"assigned grad has dtype {value.dtype.name} but the tensor has "
                                   f"dtype {self.dtype.name}; they must match")
        self._grad = value

    @property
    def data(self) -> Tensor:
        # Shares memory but not the version counter: changes through .data are invisible to autograd,
        # exactly as PyTorch's .data (use detach() for a checked alias).
        return _wrap(self._data)

    @data.setter
    def data(self, value: Tensor) -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"data must be set to a Tensor, got {type(value).__name__}")
        self._data = value._data

    @property
    def _version(self) -> int:
        return 0 if self._vc is None else self._vc[0]

    def detach(self) -> Tensor:
        """A tensor sharing this one's data, cut from the graph."""
        t = _wrap(self._data)
        if self._vc is None:
            self._vc = [0]
        t._vc = self._vc
        return t

    def detach_(self) -> Tensor:
        self._node, self._rg, self._out = None, False, 0
        return self

    def _retains(self) -> bool:
        return bool(self._extra and self._extra.get("retain"))

    @property
    def retains_grad(self) -> bool:
        return self._retains()

    @_boundary
    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward."""
        if not self._rg:
            raise RuntimeError("retain_grad: can't retain_grad on a Tensor that has requires_grad=False")
        if self._node is None or self._retains():
            return
        ref = weakref.ref(self)

        def _store(grad):
            t = ref()
            if t is not None:
                g = grad.detach()
                t._grad = g if t._grad is None else t._grad + g
            return None

        _store._danlu_retain = True
        self._node.register_prehook(self._out, _store)
        if self._extra is None:
            self._extra = {}
        self._extra["retain"] = True

    @_boundary
    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor replaces it.

        >>> import danlu as dl
        >>> x = dl.tensor([1.0, 2.0], requires_grad=True)
        >>> h = x.register_hook(lambda g: g * 10)
        >>> (x * 1).sum().backward(); x.grad
        tensor([10., 10.])
        """
        if not self._rg:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require "
                               "gradient; call .requires_grad_() first")
        from .dispatch import _edge

        node, index = _edge(self)
        if self._node is None:
            # a leaf links to its AccumulateGrad weakly; the node now carries the hook: keep it alive
            if self._extra is None:
                self._extra = {}
            self._extra["hooked_acc"] = node
        node.register_prehook(index, hook)
        return _HookHandle(node, index, hook)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate the gradient of this tensor into the leaves' ``.grad``, as PyTorch."""
        from ..autograd.engine import backward

        try:
            backward((self,), None if gradient is None else (gradient,), retain_graph, create_graph,
                     inputs=inputs)
        except Exception as e:
            _filter(e)
            raise

    # -- conversion ---------------------------------------------------------------------------
    @_boundary
    def item(self):
        """The value of a one-element tensor as a Python number."""
        d = self._data
        if type(d) is not _ndarray:
            _concrete_needed(self, "item()")
        if d.size != 1:
            raise RuntimeError(
                f"item(): a Tensor with {d.size} elements (shape {list(d.shape)}) cannot be converted to "
                "a Python number; index a single element first, or use .tolist()")
        return d.reshape(()).item()

    @_boundary
    def tolist(self):
        d = self._data
        if type(d) is not _ndarray:
            _concrete_needed(self, "tolist()")
        return d.tolist()

    @_boundary
    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The NumPy array behind this tensor (shared memory, as PyTorch's ``numpy()``)."""
        d = self._data
        if type(d) is not _ndarray:
            _concrete_needed(self, "numpy()")
        if self._rg and not force:
            raise RuntimeError("numpy(): can't call numpy() on a Tensor that requires grad; use "
                               "tensor.detach().numpy() instead")
        return d.copy() if force else d

    @_boundary
    def __array__(self, dtype=None, copy=None):
        d = self._data
        if type(d) is not _ndarray:
            _concrete_needed(self, "conversion to a NumPy array")
        if dtype is not None and np.dtype(dtype) != d.dtype:
            return d.astype(dtype)
        return d.copy() if copy else d

    @_boundary
    def __dlpack__(self, *args, **kwargs):
        if self._rg:
            raise RuntimeError("__dlpack__: can't export a Tensor that requires grad; use "
                               "tensor.detach() first")
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    @_boundary
    def __bool__(self) -> bool:
        d = self._data
        if type(d) is not _ndarray:
            _concrete_needed(self, "bool()")
        if d.size != 1:
            raise RuntimeError(
                f"Boolean value of a Tensor with {d.size} elements (shape {list(d.shape)}) is ambiguous; "
                "use .any() or .all()")
        return bool(d.reshape(()))

    def _scalar_value(self, what, exc):
        d = self._data
        if type(d) is not _ndarray:
            _concrete_needed(self, what)
        if d.size != 1:
            raise exc(f"{what}: a Tensor with {d.size} elements (shape {list(d.shape)}) cannot be converted to a "
                      "Python number (like item(), it needs exactly one element); index one element first")
        return d.reshape(()).item()

    @_boundary
    def __float__(self) -> float:
        return float(self._scalar_value("float()", ValueError))

    @_boundary
    def __int__(self) -> int:
        return int(self._scalar_value("int()", ValueError))

    @_boundary
    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub":
            raise TypeError(f"only integer tensors of a single element can be converted to an index, "
                            f"got {self.dtype.name}{list(self.shape)}")
        return int(self._scalar_value("__index__", TypeError))

    def __complex__(self) -> complex:
        return complex(self.item())

    @_boundary
    def __len__(self) -> int:
        if not self._data.shape:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        from .formatting import tensor_repr

        return tensor_repr(self)

    __str__ = __repr__

    def __format__(self, spec):
        if self.ndim == 0 and type(self._data) is _ndarray:
            return self.item().__format__(spec)
        return object.__format__(self, spec) if not spec else format(str(self), spec)

    def __deepcopy__(self, memo):
        if self._node is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the "
                               "deepcopy protocol; detach() it first")
        t = type(self).__new__(type(self))
        _init(t, self._data.copy())
        t._rg = self._rg
        if self._grad is not None:
            t._grad = self._grad.__deepcopy__(memo)
        if self._extra:
            t._extra = {k: v for k, v in self._extra.items() if k not in ("retain", "hooked_acc")}
        memo[id(self)] = t
        return t

    def __reduce_ex__(self, protocol):
        # For inter-process transfer (DataLoader workers, multiprocessing) only: files are written with
        # danlu.save, which uses safetensors, never pickle.
        if self._node is not None:
            raise RuntimeError("pickling a non-leaf tensor is not supported: detach() it first")
        if type(self._data) is not _ndarray:
            _concrete_needed(self, "pickling")
        return (_rebuild, (type(self), self._data, self._rg))

    def cpu(self) -> Tensor:
        return self

    def cuda(self, *args, **kwargs):
        raise RuntimeError("cuda(): danlu has no GPU backend on this build; tensors live on the CPU")


def _rebuild(cls, data, requires_grad):
    t = cls.__new__(cls)
    _init(t, data)
    t._rg = requires_grad
    return t


def _init(t: Tensor, data) -> None:
    t._data = data
    t._rg = False
    t._node = None
    t._out = 0
    t._grad = None
    t._vc = None
    t._base = None
    t._acc = None
    t._extra = None


_new = object.__new__


def _wrap(data) -> Tensor:
    t = _new(Tensor)
    _init(t, data)
    return t


def _from_np(a: np.ndarray) -> Tensor:
    if a.dtype not in _NP2DT:
        if a.dtype.kind == "f":
            a = a.astype(np.float64)
        elif a.dtype.kind in "iu":
            a = a.astype(np.int64)
        else:
            raise TypeError(f"can't convert np.ndarray of type {a.dtype}; supported: "
                            f"{', '.join(d.name for d in _dt.ALL)}")
    return _wrap(a)


def _wrap_dim(dim: int, ndim: int, opname: str) -> int:
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{opname}: dimension out of range (expected to be in range of "
                         f"[{-n}, {n - 1}], but got {dim})")
    return dim % n


def _concrete_needed(t: Tensor, what: str):
    from .errors import GraphBreakError

    raise GraphBreakError(
        f"{what} needs a concrete value, but this tensor ({t._data!r}) is being traced into a graph, "
        "where values are not known yet. Data-dependent Python control flow cannot be captured: use "
        "danlu.cond / danlu.while_loop, or compile with fallback='eager' to run this function eagerly.")


def _filter(e):
    from .errors import reraise_filtered

    reraise_filtered(e)


class _HookHandle:
    def __init__(self, node, index, hook):
        self._ref = weakref.ref(node)
        self.index, self.hook = index, hook

    def remove(self) -> None:
        node = self._ref()
        if node is not None and node.pre_hooks and self.index in node.pre_hooks:
            hooks = node.pre_hooks[self.index]
            if self.hook in hooks:
                hooks.remove(self.hook)


def tensor_method(*names):
    """Attach a function as Tensor method(s): ``@tensor_method("exp")``. Used by the op families."""

    def deco(fn):
        for n in names or (fn.__name__,):
            setattr(Tensor, n, fn)
        return fn

    return deco
