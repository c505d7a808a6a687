"""``apply``: the one seam through which every Tensor operation runs.

``apply(op, *inputs, **attrs)`` promotes the inputs (explicit ``convert`` calls, so every mode sees
the casts), checks them with the op's ``infer`` rule (cached per input signature), hands the call to
the current interpreter (eager: run the kernel; tracing: emit an IR node), wraps the results, and
records a tape node when grad mode is on and an input requires grad.
"""

from __future__ import annotations

import os
import threading
from weakref import ref as _weakref

import numpy as np

from . import dtypes as _dt
from .errors import DTypeError, describe
from .registry import AVal, Op
from .tape import AccumulateGrad, Node
from .tensor import Tensor, _from_np, _new, _wrap

__all__ = ["apply", "apply_inplace", "grad_enabled", "state", "push_interpreter", "pop_interpreter"]

_ndarray = np.ndarray
_asarray = np.asarray
_SCALARS = (int, float, bool)  # Python scalars: weakly typed inputs (a tuple: also used in isinstance)
_NP2DT = _dt._FROM_NP


class _State(threading.local):
    grad_enabled = True
    interp = None
    anomaly = False
    anomaly_check_nan = True


state = _State()
_active_interps = [0]  # non-eager interpreters active in any thread; 0 keeps the fast path
CHECK = os.environ.get("DANLU_CHECK", "") not in ("", "0")


def grad_enabled() -> bool:
    return state.grad_enabled


def push_interpreter(interp):
    prev = state.interp
    state.interp = interp
    _active_interps[0] += 1
    return prev


def pop_interpreter(prev):
    state.interp = prev
    _active_interps[0] -= 1


# -- signatures, promotion and shape checks (once per signature) ----------------------------------

def _sig(args):
    key = []
    for a in args:
        if isinstance(a, Tensor):
            d = a._data
            key.append(d.shape)
            key.append(d.dtype)
        else:
            key.append(a.__class__)
    return tuple(key)


def _prepare(op: Op, args, attrs, key):
    """Promotion and the infer check for a new input signature; cached on the op."""
    casts = op.promote(args) if op.promote is not None else None
    if casts is not None and not any(c is not None for c in casts):
        casts = None
    avals = []
    for i, a in enumerate(args):
        c = casts[i] if casts is not None else None
        if isinstance(a, Tensor):
            avals.append(AVal(a._data.shape, c or _NP2DT[a._data.dtype]) if c else a)
        elif c is not None:
            avals.append(AVal((), c))
        else:
            avals.append(a)
    out = op.infer(*avals, **attrs)
    entry = (casts, out)
    if key is not None:
        if len(op.cache) > 4096:
            op.cache.clear()
        op.cache[key] = entry
    return entry


def _cast_args(args, casts):
    out = list(args)
    for i, c in enumerate(casts):
        if c is None:
            continue
        a = args[i]
        if isinstance(a, Tensor):
            if a._data.dtype != c.np:
                out[i] = apply(CONVERT, a, dtype=c)
        else:
            out[i] = Tensor._scalar(a, c)
    return out


def _bad_input(op, a):
    raise TypeError(f"{op.name}: expected Tensor or Python number inputs, got {type(a).__name__} "
                    f"({a!r:.60}); wrap arrays with danlu.tensor(...) first")


def _normalize_args(op, args):
    out = []
    for a in args:
        if isinstance(a, Tensor) or a.__class__ in _SCALARS:
            out.append(a)
        elif isinstance(a, np.generic) and a.dtype.kind in "biuf":
            out.append(a.item())  # NumPy scalars count as Python numbers (weakly typed), as in PyTorch
        elif isinstance(a, (np.ndarray, np.generic)):
            out.append(_from_np(np.asarray(a)))
        elif isinstance(a, (int, float)):
            # int/float subclasses count as numbers; symbolic sizes stay symbolic while an interpreter runs
            if state.interp is not None and getattr(a, "expr", None) is not None:
                out.append(a)
            else:
                out.append(bool(a) if isinstance(a, bool) else (int(a) if isinstance(a, int) else float(a)))
        else:
            _bad_input(op, a)
    if args and not any(isinstance(a, Tensor) for a in out):
        raise TypeError(f"{op.name}: expected at least one Tensor input, got "
                        f"({', '.join(type(a).__name__ for a in args)}); wrap numbers with danlu.tensor(...)")
    return out


# -- the seam --------------------------------------------------------------------------------------

def apply(op: Op, *args, **attrs):
    """Run primitive ``op`` on ``args`` (Tensors or Python scalars) with ``attrs``.

    >>> import danlu as dl
    >>> from danlu.core.registry import get_op
    >>> apply(get_op("add"), dl.tensor([1.0, 2.0]), 1)
    tensor([2., 3.])
    """
    # 1. The input signature (shapes, dtypes, scalar types, attrs) selects a cached check result.
    #    Interpreters (tracing) see symbolic sizes: they check every call and never touch the cache.
    n = len(args)
    interp = state.interp if _active_interps[0] else None
    try:
        if interp is not None:
            raise LookupError
        if n == 2:
            a, b = args
            if b.__class__ in _SCALARS:
                da = a._data
                key = (da.shape, da.dtype, b.__class__)
            elif a.__class__ in _SCALARS:
                db = b._data
                key = (a.__class__, db.shape, db.dtype)
            else:
                da = a._data
                db = b._data
                key = (da.shape, da.dtype, db.shape, db.dtype)
        elif n == 1:
            da = args[0]._data
            key = (da.shape, da.dtype)
        else:
            key = _sig(args)
        if attrs:
            key = (key, *attrs.items())
        entry = op.cache.get(key)
    except (AttributeError, TypeError, LookupError):
        args = _normalize_args(op, args)
        key = None
        if interp is None:
            key = _sig(args)
            if attrs:
                key = (key, *attrs.items())
            try:
                hash(key)
            except TypeError:
                key = None
        entry = None
    if entry is None:
        entry = _prepare(op, args, attrs, key)
    if entry[0] is not None:
        args = _cast_args(args, entry[0])
    # A view whose base was changed in place (under autograd, or while tracing) first takes its
    # history and value from the base; and does any input require grad?
    rec = False
    for a in args:
        if isinstance(a, Tensor):
            if a._base is not None and a._extra is not None and _stale_view(a):
                _refresh_view(a)
            if a._rg:
                rec = True

    # 2. The interpreter: eager runs the kernel; others (tracing, ...) take the call.
    if interp is None:
        try:
            if n == 2:
                a, b = args
                raw = op.kernel(a if a.__class__ in _SCALARS else a._data, b if b.__class__ in _SCALARS else b._data,
                                **attrs)
            elif n == 1:
                raw = op.kernel(args[0]._data, **attrs)
            else:
                raw = op.kernel(*[a._data if isinstance(a, Tensor) else a for a in args], **attrs)
        except OverflowError:
            raw = _wrapped_int_call(op, args, attrs)
        except RuntimeWarning:
            # NumPy's 0/0, log(0)... warnings turned into errors by a warnings filter: PyTorch computes
            # nan/inf silently, so run the kernel again with floating-point warnings off.
            with np.errstate(all="ignore"):
                raw = op.kernel(*[a._data if isinstance(a, Tensor) else a for a in args], **attrs)
        if CHECK:
            _check_kernel(op, raw, entry[1])
    else:
        raw = interp.run(op, args, attrs, entry[1])

    # 3. Wrap the results.
    if op.multi_out:
        outs = tuple(_wrap(r if type(r) is _ndarray or not _concrete(r, interp) else _asarray(r)) for r in raw)
    else:
        if raw.__class__ is not _ndarray and _concrete(raw, interp):
            raw = _asarray(raw)
        # tensor._init, inlined: this is the per-op hot path
        outs = _new(Tensor)
        outs._data = raw
        outs._rg = False
        outs._node = None
        outs._out = 0
        outs._grad = None
        outs._vc = None
        outs._base = None
        outs._acc = None
        outs._extra = None
    if op.view:
        _link_view(args[0], outs, op, attrs)

    # 4. Record a tape node when grad mode is on and an input requires grad.
    if rec and state.grad_enabled and op.differentiable:
        _record(op, args, attrs, outs, raw)
    return outs


def _wrapped_int_call(op, args, attrs):
    """A Python int outside the integer dtype it meets wraps around (as in PyTorch), instead of NumPy's
    OverflowError."""
    dt = next((a._data.dtype for a in args if isinstance(a, Tensor) and a._data.dtype.kind in "iu"), None)
    if dt is None:
        raise
    vals = [np.array(a, dtype=np.int64).astype(dt) if a.__class__ is int else
            (a._data if isinstance(a, Tensor) else a) for a in args]
    return op.kernel(*vals, **attrs)


def _concrete(r, interp) -> bool:
    """A kernel result that must become an ndarray (NumPy scalars from 0-d reductions)."""
    return interp is None or isinstance(r, (np.generic, int, float, bool))


def _check_kernel(op, raw, avals):
    """DANLU_CHECK=1: the kernel's result must match the infer rule (keeps graphs equal to eager)."""
    raws = raw if op.multi_out else (raw,)
    avs = avals if op.multi_out else (avals,)
    if len(raws) != len(avs):
        raise AssertionError(f"{op.name}: kernel returned {len(raws)} outputs, infer said {len(avs)}")
    for r, av in zip(raws, avs):
        r = np.asarray(r)
        shape_ok = len(r.shape) == len(av.shape) and all(e is None or e == g for g, e in zip(r.shape, av.shape))
        if not shape_ok or r.dtype != av.dtype.np:
            raise AssertionError(f"{op.name}: kernel gave {r.dtype}{list(r.shape)}, infer rule says {av}")


def _link_view(src, outs, op=None, attrs=None):
    if not isinstance(src, Tensor):
        return
    sd = src._data
    for k, o in enumerate(outs if isinstance(outs, tuple) else (outs,)):
        d = o._data
        if type(d) is _ndarray:
            b = d.base
            # NumPy's views point at the array that owns the memory: identity checks settle most cases
            if b is None or (b is not sd and b is not getattr(sd, "base", None)
                             and (type(sd) is not _ndarray or not np.may_share_memory(d, sd))):
                continue
        if src._vc is None:
            src._vc = [0]
        o._vc = src._vc
        base = o._base = src._base if src._base is not None else src
        # how this view was made from its parent, for in-place updates under autograd (view replay)
        o._extra = {"view": (src, op, attrs, k), "rebase": _rebase_count(base)}


def _rebase_count(base) -> int:
    ex = base._extra
    return ex.get("rebase", 0) if ex else 0


def _stale_view(v) -> bool:
    ex = v._extra
    return "view" in ex and ex["rebase"] != _rebase_count(v._base)


def _view_chain(v):
    """[(view, (parent, op, attrs, index)), ...] from ``v`` up to its base."""
    chain, t, base = [], v, v._base
    while t is not base:
        info = t._extra.get("view") if t._extra else None
        if info is None or info[1] is None:
            return None
        chain.append((t, info))
        t = info[0]
    return chain


def _refresh_view(v) -> None:
    """Give view ``v`` the autograd history of 'the same view of its (rebased) base'."""
    chain = _view_chain(v)
    base = v._base
    if chain is None:
        return
    prev = state.grad_enabled
    state.grad_enabled = True
    try:
        cur = base
        for _t, (_parent, vop, vattrs, idx) in reversed(chain):
            out = apply(vop, cur, **vattrs)
            cur = out[idx] if vop.multi_out else out
    finally:
        state.grad_enabled = prev
    v._node, v._out, v._rg = cur._node, cur._out, cur._rg
    v._data = cur._data  # the same memory in eager mode; the current value when tracing
    v._extra["rebase"] = _rebase_count(base)


def _edge(t: Tensor):
    node = t._node
    if node is not None:
        return (node, t._out)
    return (_accumulator(t), 0)


def _accumulator(t: Tensor) -> AccumulateGrad:
    """The leaf's AccumulateGrad node. As in PyTorch, the graph holds the node and the node holds the
    leaf, while the leaf only refers to its node weakly: a strong link both ways would be a reference
    cycle, and every fresh leaf (with whatever its graph saved) would wait for the garbage collector."""
    ref = t._acc
    acc = ref() if ref is not None else None
    if acc is None:
        acc = AccumulateGrad(t)
        t._acc = _weakref(acc)
    return acc


def _fresh_vc(t):
    t._vc = [0]
    return t._vc


def _record(op, args, attrs, outs, raw):
    edges = []
    meta = []
    for a in args:
        if not isinstance(a, Tensor):
            meta.append(None)
            edges.append(None)
            continue
        d = a._data
        meta.append((d.shape, _NP2DT[d.dtype]))
        if a._rg:
            node = a._node
            if node is not None:
                edges.append((node, a._out))
            else:
                ref = a._acc
                acc = ref() if ref is not None else None
                edges.append((acc if acc is not None else _accumulator(a), 0))
        else:
            edges.append(None)
    node = Node(op, attrs, tuple(edges), tuple(meta))
    if op.save_in:
        n = len(args)
        saved = [None] * n
        versions = [0] * n
        save_for = op.save_for
        for i in op.save_in:
            if i >= n:
                break
            if save_for and i in save_for and not any(j < n and edges[j] is not None for j in save_for[i]):
                continue
            a = saved[i] = args[i]
            if isinstance(a, Tensor) and a._vc is not None:
                versions[i] = a._vc[0]
        node.saved = tuple(saved)
        node.versions = tuple(versions)
    if op.save_out:
        node.out_data = raw
        # the outputs get their own version counters, so backward notices in-place changes to them
        if op.multi_out:
            node.out_vc = [o._vc if o._vc is not None else _fresh_vc(o) for o in outs]
        else:
            node.out_vc = [outs._vc if outs._vc is not None else _fresh_vc(outs)]
        node.out_versions = tuple(c[0] for c in node.out_vc)
    if op.multi_out:
        node.out_meta = tuple((o._data.shape, _NP2DT[o._data.dtype]) for o in outs)
        for i, o in enumerate(outs):
            if o._data.dtype.kind == "f":
                o._rg = True
                o._node = node
                o._out = i
    elif outs._data.dtype.kind == "f":
        outs._rg = True
        outs._node = node
    if state.anomaly:
        from .errors import user_frame

        node.loc = user_frame()
    return node


# -- in-place ---------------------------------------------------------------------------------------

def apply_inplace(op: Op, target: Tensor, *args, _method: str | None = None, **attrs):
    """Compute ``op(target, *args)`` and write it into ``target``, as PyTorch's ``x.op_(...)``.

    ``_method`` is the name the user called (for error messages), e.g. ``"uniform_"``."""
    name = _method or f"{op.name}_"
    recording = state.grad_enabled and (target._rg or any(isinstance(a, Tensor) and a._rg for a in args))
    if recording:
        if target._rg and target._node is None:
            raise RuntimeError(
                f"{name}: a leaf tensor that requires grad ({describe(target)}) is being used in an "
                "in-place operation; wrap the update in `with danlu.no_grad():` or operate on a clone()")
        if target._base is not None:
            return _inplace_on_view(op, target, args, attrs, name)
        d = target._data
        old = _wrap(d.copy() if 0 in op.save_in and type(d) is _ndarray else d)
        old._rg, old._node, old._out, old._acc = target._rg, target._node, target._out, target._acc
        res = apply(op, old, *args, **attrs)
        _write(op, target, res, name)
        # The node keeps its own output array, so later writes to target cannot corrupt it.
        target._node, target._out, target._rg = res._node, 0, res._rg
        if target._extra is None:
            target._extra = {}
        target._extra["rebase"] = target._extra.get("rebase", 0) + 1  # its views take the new history
        return target
    if not attrs and _ufunc_inplace(op, target, args):
        return target
    with _no_grad():
        res = apply(op, target, *args, **attrs)
    _write(op, target, res, name)
    return target


def _ufunc_inplace(op, target, args) -> bool:
    """Fast path for ``x.add_(y)``-like calls outside autograd: a NumPy ufunc writes straight into the
    target (one pass, no temporary). Only when every tensor argument has the target's dtype and nothing
    needs a check the general path makes (broadcasting into the target is left to NumPy, which refuses
    to grow it; any refusal falls back to the general path and its error message)."""
    k = op.kernel
    d = target._data
    if not isinstance(k, np.ufunc) or type(d) is not _ndarray or (_active_interps[0] and state.interp is not None):
        return False
    vals = []
    for a in args:
        if isinstance(a, Tensor):
            ad = a._data
            if type(ad) is not _ndarray or ad.dtype != d.dtype or a._base is not None and a._extra is not None \
                    and _stale_view(a):
                return False
            vals.append(ad)
        elif a.__class__ in _SCALARS and (d.dtype.kind == "f" or a.__class__ is not float):
            vals.append(a)
        else:
            return False
    try:
        k(d, *vals, out=d)
    except (TypeError, ValueError, OverflowError, RuntimeWarning):
        return False
    if target._vc is None:
        target._vc = [1]
    else:
        target._vc[0] += 1
    return True


def _inplace_on_view(op, target, args, attrs, name):
    """In-place on a view under autograd, as PyTorch: the new view value is scattered into the base
    through the inverse of each view op on the way up, the base's history becomes that scatter, and
    the view's (and, lazily, its siblings') history becomes 'the same view of the new base'."""
    base = target._base
    if base._rg and base._node is None:
        raise RuntimeError(
            f"{name}: a view of a leaf tensor that requires grad ({describe(base)}) is being used in an in-place "
            "operation; wrap the update in `with danlu.no_grad():` or operate on a clone() of the leaf")
    chain = _view_chain(target)
    if chain is None:
        raise RuntimeError(f"{name}: in-place modification of a view ({describe(target)}) whose origin is unknown "
                           "while autograd is recording; use the out-of-place op, or clone() the view first")
    for _t, (_parent, vop, _a, _i) in chain:
        if "view_inverse" not in vop.extra:
            raise RuntimeError(
                f"{name}: in-place modification of a view made by '{vop.name}' while autograd is recording is "
                "not supported (its values cannot be scattered back into the base); use the out-of-place op, "
                "or clone() the view first")
    if _stale_view(target):
        _refresh_view(target)
    d = target._data
    old = _wrap(d.copy() if 0 in op.save_in and type(d) is _ndarray else d)
    old._rg, old._node, old._out, old._acc = target._rg, target._node, target._out, target._acc
    res = apply(op, old, *args, **attrs)
    new = res
    for _t, (parent, vop, vattrs, idx) in chain:
        if parent._base is not None and parent._extra is not None and _stale_view(parent):
            _refresh_view(parent)
        alias = _wrap(parent._data)
        alias._rg, alias._node, alias._out, alias._acc = parent._rg, parent._node, parent._out, parent._acc
        new = vop.extra["view_inverse"](alias, new, vattrs, idx)
    _write(op, target, res, name)  # the values land in the base's memory
    base._node, base._out, base._rg = new._node, new._out, new._rg
    if base._extra is None:
        base._extra = {}
    base._extra["rebase"] = base._extra.get("rebase", 0) + 1
    _refresh_view(target)
    return target


def _write(op, target, res, name):
    tdt = _NP2DT[target._data.dtype] if type(target._data) is _ndarray else target.dtype
    rdt = _NP2DT[res._data.dtype] if type(res._data) is _ndarray else res.dtype
    if not _dt.can_cast(rdt, tdt):
        raise DTypeError(f"{name}: result type {rdt.name} can't be cast to the desired output type "
                         f"{tdt.name} of the in-place target; use the out-of-place {name.rstrip('_')}() or "
                         "convert the target with .to(...) first")
    if tuple(res.shape) != tuple(target.shape):
        raise RuntimeError(f"{name}: output with shape {list(target.shape)} doesn't match the broadcast "
                           f"shape {list(res.shape)}; in-place ops cannot grow their target, use the "
                           "out-of-place op")
    interp = state.interp if _active_interps[0] else None
    if interp is None:
        np.copyto(target._data, res._data, casting="unsafe")
    else:
        interp.write_inplace(target, res)
    if target._vc is None:
        target._vc = [1]
    else:
        target._vc[0] += 1


class _no_grad:
    __slots__ = ("prev",)

    def __enter__(self):
        self.prev = state.grad_enabled
        state.grad_enabled = False

    def __exit__(self, *exc):
        state.grad_enabled = self.prev


def bump_version(t: Tensor) -> None:
    if t._vc is None:
        t._vc = [1]
    else:
        t._vc[0] += 1


# -- dtype conversion: the one primitive that dispatch itself inserts ----------------------------

def _convert_infer(x, *, dtype):
    return AVal(x.shape, dtype)


def _convert_impl(x, *, dtype):
    return x.astype(dtype.np)


def _convert_vjp(ctx, g):
    src = ctx.in_meta[0][1]
    if not src.is_floating_point:
        return (None,)
    return (apply(CONVERT, g, dtype=src),)


from .registry import register  # noqa: E402

CONVERT = register("convert", infer=_convert_infer, impl=_convert_impl, vjp=_convert_vjp,
                   elementwise=True, family="elementwise")
