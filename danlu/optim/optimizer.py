"""The ``Optimizer`` base class: parameter groups, per-parameter state, ``zero_grad`` and state dicts.

An optimizer subclass supplies ``_update(p, grad, group)``, the update of one parameter. It is written
with in-place danlu ops and never reads tensor values back into Python (no ``.item()``, ``float()``
or ``bool()`` on tensors), so that a training step can later be traced into a compiled graph: the
step count lives in ``state['step']`` as a 0-d float tensor and bias corrections are tensor ops.
Each update follows the operation order of PyTorch's single-tensor (``foreach=False``) kernels, so
results agree with ``torch.optim`` to rounding.
"""

from __future__ import annotations

import functools
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

from .. import autograd as _ag
from ..core import dtypes as _dt
from ..core.creation import tensor as _tensor
from ..core.errors import LazyStateError
from ..core.tensor import Tensor

__all__ = ["Optimizer"]


class Optimizer:
    """Base class of all optimizers, as ``torch.optim.Optimizer``.

    ``params`` is an iterable of tensors, of ``(name, tensor)`` pairs, or of dicts, each a parameter
    group with a ``'params'`` entry and options that override ``defaults`` for that group.

    >>> import danlu as dl
    >>> w = dl.tensor([1.0, 2.0], requires_grad=True)
    >>> b = dl.tensor([0.0], requires_grad=True)
    >>> opt = dl.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1)
    >>> [g["lr"] for g in opt.param_groups]
    [0.1, 0.5]
    """

    def __init__(self, params: Iterable, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got a danlu.Tensor ({params.dtype.name}{list(params.shape)}); wrap it in a list")
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(dict(group) if isinstance(group, dict) else group)

    def __init_subclass__(cls, **kwargs) -> None:
        # A subclass that overrides step() still marks the optimizer as stepped, which the lr schedulers
        # read to warn about scheduler.step() being called before optimizer.step().
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None and not getattr(step, "_marks_called", False):
            @functools.wraps(step)
            def marked(self, *args, **kw):
                self._opt_called = True
                return step(self, *args, **kw)

            marked._marks_called = True
            cls.step = marked

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {group[k]}" for k in sorted(group) if k != "params")
        return "\n".join(lines) + "\n)"

    # -- parameter groups ---------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (a dict with ``'params'`` and optional per-group options).

        >>> import danlu as dl
        >>> opt = dl.optim.SGD([dl.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
        >>> opt.add_param_group({"params": [dl.zeros(3, requires_grad=True)], "lr": 0.01})
        >>> opt.param_groups[1]["lr"], opt.param_groups[1]["momentum"]
        (0.01, 0.9)
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering of "
                            "tensors in sets will change between runs. Please use a list instead.")
        else:
            params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        if names:
            if len(names) != len(params):
                raise ValueError("all optimizer params should be with/without names. Some param names are missing")
            param_group["param_names"] = names
        param_group["params"] = params
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not (p.is_leaf or p.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            param_group.setdefault(name, default)
        if len({id(p) for p in params}) != len(params):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, this will "
                          "cause an error; see github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)
        seen: set[int] = set()
        for group in self.param_groups:
            seen.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                kind = "with names" if "param_names" in param_group else "without names"
                raise ValueError("all optimizer param groups should be with/without names. "
                                 f"cannot add param group {kind} to the optimizer")
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    # -- gradients and steps ------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized tensors: to ``None`` (default) or to zeros in place.

        >>> import danlu as dl
        >>> w = dl.tensor([1.0, 2.0], requires_grad=True)
        >>> opt = dl.optim.SGD([w], lr=0.1)
        >>> (w * w).sum().backward()
        >>> opt.zero_grad(set_to_none=False); w.grad
        tensor([0., 0.])
        >>> opt.zero_grad(); w.grad is None
        True
        """
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                    continue
                if g.grad_fn is not None:
                    g.detach_()
                else:
                    g.requires_grad_(False)
                g.zero_()

    def step(self, closure: Callable[[], Any] | None = None):
        """Update every parameter that has a gradient; ``closure`` re-evaluates the loss first.

        >>> import danlu as dl
        >>> w = dl.tensor([1.0, 2.0], requires_grad=True)
        >>> opt = dl.optim.SGD([w], lr=0.1)
        >>> (w * w).sum().backward(); opt.step(); w
        tensor([0.8000, 1.6000], requires_grad=True)
        """
        self._opt_called = True
        loss = None
        if closure is not None:
            with _ag.enable_grad():
                loss = closure()
        tracer = _tracer()
        with _ag.no_grad():
            for gi, group in enumerate(self.param_groups):
                hp = group if tracer is None else _TracedGroup(group, tracer, f"{type(self).__name__}.group{gi}")
                for p in group["params"]:
                    grad = p.grad
                    if grad is not None:
                        if getattr(tracer, "state_must_exist", False):
                            self._traced_update(p, grad, hp)
                        else:  # eager, or a Session's train op (which turns first-step state into slots)
                            self._update(p, grad, hp)
        return loss

    def _traced_update(self, p: Tensor, grad: Tensor, group) -> None:
        """``_update`` while a compiled step is traced. State created now (buffers made on the first step)
        would hold traced values, and the graph would repeat the first step's branch on every call: undo
        it and ask for this call to run eagerly."""
        had = set(self.state[p]) if p in self.state else None
        self._update(p, grad, group)
        new = set(self.state.get(p, ())) - (had or set())
        if new:
            if had is None:
                del self.state[p]
            else:
                for k in new:
                    del self.state[p][k]
            raise LazyStateError(
                f"{type(self).__name__}.step: the optimizer creates its state ({', '.join(sorted(new))}) on its "
                "first step, which a graph cannot repeat; run that step eagerly first (danlu.compile's "
                "warmup=1, the default, does)")

    def minimize(self, loss: Tensor, var_list=None):
        """TensorFlow 1 style: an op of ``loss``'s ``danlu.Graph`` that runs one step (``graph.session.train_op``).

        >>> import danlu as dl
        >>> from danlu.graph.session import Graph, Session, Variable
        >>> with Graph() as g:
        ...     w = Variable([2.0])
        ...     train = dl.optim.SGD([w], lr=0.25).minimize((w * w).sum())
        >>> s = Session(g); s.run(w.initializer); s.run(train); s.run(w)
        array([1.], dtype=float32)
        """
        from ..graph.session import train_op  # graph mode sits below optim: imported on use

        return train_op(self, loss, var_list)

    def _update(self, p: Tensor, grad: Tensor, group: dict[str, Any]) -> None:
        raise TypeError(f"{type(self).__name__} defines neither step() nor _update(p, grad, group); an "
                        "Optimizer subclass must implement one of them")

    # -- state dicts ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in PyTorch's layout: ``{'state': {index: {...}}, 'param_groups': [...]}``.

        Parameters are replaced by their index (in group order); values are danlu tensors (the live
        state, not copies) or plain Python numbers.

        >>> import danlu as dl
        >>> w = dl.tensor([1.0], requires_grad=True)
        >>> opt = dl.optim.SGD([w], lr=0.1, momentum=0.9)
        >>> (w * 3).sum().backward(); opt.step()
        >>> sd = opt.state_dict()
        >>> sd["state"], sd["param_groups"][0]["params"]
        ({0: {'momentum_buffer': tensor([3.])}}, [0])
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {(index[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state from :meth:`state_dict`; the parameters are matched by position.

        State tensors are copied (cast to each parameter's floating dtype, except ``'step'``), so
        two optimizers loaded from one state dict never share buffers.

        >>> import danlu as dl
        >>> w = dl.tensor([1.0], requires_grad=True)
        >>> opt = dl.optim.Adam([w], lr=0.1)
        >>> (w * 3).sum().backward(); opt.step()
        >>> w2 = w.detach().clone().requires_grad_()
        >>> opt2 = dl.optim.Adam([w2], lr=0.5)
        >>> opt2.load_state_dict(opt.state_dict())
        >>> opt2.param_groups[0]["lr"], opt2.state[w2]["step"]
        (0.1, tensor(1.))
        """
        groups = self.param_groups
        saved_groups = state_dict["param_groups"]
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups, strict=True)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                             "optimizer's group")
        id_map = dict(zip(chain.from_iterable(s["params"] for s in saved_groups),
                          chain.from_iterable(g["params"] for g in groups), strict=True))
        state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for k, v in state_dict["state"].items():
            # Formats that store dict keys as strings (JSON) give "0" for 0.
            key = int(k) if isinstance(k, str) and k.isdigit() and int(k) in id_map else k
            if key in id_map:
                p = id_map[key]
                state[p] = {name: _cast_state(p, name, value) for name, value in v.items()}
            else:
                state[k] = v
        new_groups = []
        for group, saved in zip(groups, saved_groups, strict=True):
            new = {k: _restore_container(group.get(k), _copy_plain(v)) for k, v in saved.items() if k != "params"}
            new["params"] = group["params"]
            if "param_names" in group and "param_names" not in new:
                new["param_names"] = group["param_names"]
            new_groups.append(new)
        self.state = state
        self.param_groups = new_groups


def _cast_state(p: Tensor, name: str, value):
    if isinstance(value, Tensor):
        if name != "step" and p.is_floating_point() and value.dtype is not p.dtype:
            return value.to(p.dtype)
        return value.clone()
    if name == "step" and isinstance(value, (int, float)):
        return _tensor(float(value), dtype=scalar_dtype())
    if isinstance(value, dict):
        return {k: _cast_state(p, k, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_state(p, "", v) for v in value)
    return value


def _copy_plain(value):
    if isinstance(value, dict):
        return {k: _copy_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy_plain(v) for v in value)
    return value.clone() if isinstance(value, Tensor) else value


def _restore_container(current, loaded):
    # JSON turns tuples (Adam's betas) into lists; give them back the container type they had.
    if isinstance(current, tuple) and isinstance(loaded, list):
        return tuple(loaded)
    return loaded


# -- helpers shared by the optimizers -------------------------------------------------------------------

def scalar_dtype() -> _dt.DType:
    """dtype of ``state['step']``: float64 when that is the default dtype, else float32 (as PyTorch).

    >>> scalar_dtype()
    danlu.float32
    """
    return _dt.float64 if _dt.get_default_dtype() is _dt.float64 else _dt.float32


def new_step() -> Tensor:
    """A fresh step counter: a 0-d float tensor holding 0.

    >>> new_step()
    tensor(0.)
    """
    return _tensor(0.0, dtype=scalar_dtype())


def step_value(step: Tensor) -> Tensor:
    """The step count as a float64 0-d tensor, for bias corrections computed as PyTorch does in
    Python floats (double precision); the result is cast to the parameter's dtype where it is used.

    >>> step_value(new_step()).dtype
    danlu.float64
    """
    return step if step.dtype is _dt.float64 else step.to(_dt.float64)


def lerp_(t: Tensor, end: Tensor, weight: float) -> Tensor:
    """``t += weight * (end - t)`` in place, with PyTorch's two formulas (the one for weights of 0.5 or
    more keeps the result close to ``end``).

    >>> import danlu as dl
    >>> lerp_(dl.tensor([0.0, 1.0]), dl.tensor([4.0, 4.0]), 0.75)
    tensor([3.0000, 3.2500])
    """
    if abs(weight) < 0.5:
        return t.add_((end - t) * weight)
    return t.copy_(end - (end - t) * (1 - weight))


def addcmul_(t: Tensor, t1: Tensor, t2: Tensor, value=1) -> Tensor:
    """``t += value * t1 * t2`` in place (PyTorch's ``addcmul_``, same operation order).

    >>> import danlu as dl
    >>> addcmul_(dl.tensor([1.0]), dl.tensor([2.0]), dl.tensor([3.0]), 0.5)
    tensor([4.])
    """
    return t.add_(t1 * t2 if _is_one(value) else t1 * value * t2)


def addcdiv_(t: Tensor, t1: Tensor, t2: Tensor, value=1) -> Tensor:
    """``t += value * t1 / t2`` in place (PyTorch's ``addcdiv_``, same operation order).

    >>> import danlu as dl
    >>> addcdiv_(dl.tensor([1.0]), dl.tensor([2.0]), dl.tensor([4.0]), -2)
    tensor([0.])
    """
    return t.add_(t1 / t2 if _is_one(value) else t1 * value / t2)


def _is_one(value) -> bool:
    return not isinstance(value, Tensor) and value == 1


def check_range(ok: bool, what: str, value) -> None:
    """Raise PyTorch's ``ValueError('Invalid <what>: <value>')`` unless ``ok``.

    >>> check_range(-1 >= 0.0, "learning rate", -1)
    Traceback (most recent call last):
    ...
    ValueError: Invalid learning rate: -1
    """
    if not ok:
        raise ValueError(f"Invalid {what}: {value}")


def _tracer():
    """The tracing interpreter of this thread when a compiled function is being traced, else None."""
    from ..core import dispatch

    interp = dispatch.state.interp if dispatch._active_interps[0] else None
    return interp if hasattr(interp, "live_scalar") else None


class _TracedGroup(dict):
    """A param group as seen while tracing a compiled step: the learning rate becomes a graph input read
    at every call (so lr schedulers work without retracing); every other hyperparameter the step reads
    is guarded (a change retraces, and the retrace is logged)."""

    def __init__(self, group, tracer, name):
        super().__init__(group)
        self._group, self._tracer, self._name = group, tracer, name
        self._lr = None

    def __getitem__(self, key):
        group = self._group
        if key == "lr" and isinstance(group["lr"], (int, float)):
            if self._lr is None:
                self._lr = self._tracer.live_scalar(lambda: group["lr"], f"{self._name}.lr")
            return self._lr
        value = group[key]
        if key != "params" and isinstance(value, (int, float, tuple, bool, str)) or value is None:
            self._tracer.guard_value(lambda: group[key], value, f"{self._name}[{key!r}]")
        return value

    def get(self, key, default=None):
        return self[key] if key in self._group else default
