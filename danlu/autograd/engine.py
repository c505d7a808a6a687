"""The backward engine: reverse-mode differentiation over the recorded tape.

It is micrograd's loop (record, order topologically, walk in reverse, accumulate) with an explicit
stack instead of recursion, dependency counting instead of a sorted list, input order kept, and
saved values released as soon as a node has run. Broadcast gradients are reduced to the input
shapes here, once, for every op.
"""

from __future__ import annotations

from ..core.dispatch import CONVERT, _edge, apply, state
from ..core.errors import api, format_location
from ..core.tape import AccumulateGrad
from ..core.tensor import Tensor

__all__ = ["backward", "grad"]


def _reduce_to(g: Tensor, shape: tuple, dtype) -> Tensor:
    """Sum a broadcast gradient back to ``shape`` and convert it to ``dtype``."""
    gs = tuple(g.shape)
    if len(gs) != len(shape) or gs != shape:
        from ..ops.reduce import sum as _sum
        from ..ops.shape import expand, reshape

        nd = len(gs) - len(shape)
        if nd >= 0 and all(s == 1 or s == d for s, d in zip(shape, gs[nd:])):
            dims = tuple(range(nd)) + tuple(nd + i for i, s in enumerate(shape) if s == 1 and gs[nd + i] != 1)
            if dims:
                g = _sum(g, dim=dims, keepdim=True)
            g = reshape(g, shape)
        else:
            g = expand(g, shape)
    if dtype is not None and g.dtype is not dtype and dtype.is_floating_point:
        g = apply(CONVERT, g, dtype=dtype)
    return g


def _make_root(t, g, i):
    if not isinstance(t, Tensor):
        raise TypeError(f"backward: expected Tensors as outputs, got {type(t).__name__} at position {i}")
    if not t._rg:
        raise RuntimeError(
            f"backward: element {i} of tensors does not require grad and does not have a grad_fn. Make "
            "sure the inputs you differentiate were created with requires_grad=True and that the "
            "computation did not run under no_grad().")
    given = g is not None
    if g is None:
        if t.numel() != 1:
            raise RuntimeError(
                f"backward: grad can be implicitly created only for scalar outputs, but output {i} has "
                f"shape {list(t.shape)}. Pass gradient= (a tensor of that shape), or reduce it first, "
                "e.g. y.sum().backward()")
        from ..ops.elementwise import ones_like

        g = ones_like(t)
    elif not isinstance(g, Tensor):
        from ..core.creation import as_tensor

        g = as_tensor(g, dtype=t.dtype)
    if tuple(g.shape) != tuple(t.shape):
        raise RuntimeError(f"backward: gradient {i} has shape {list(g.shape)} but its output has shape "
                           f"{list(t.shape)}; they must match")
    return _edge(t), g, given


def _version_error(node, i, t, expected):
    from ..core.errors import describe

    return RuntimeError(
        f"one of the variables needed for gradient computation has been modified by an inplace "
        f"operation: input {i} of {node.name()} ({describe(t)}) is at version {t._version}; expected "
        f"version {expected} instead. Use the out-of-place op, or clone() the tensor before "
        "modifying it." + (f"\nThe forward call that saved it:\n{format_location(node.loc)}" if node.loc else ""))


def _run(roots, *, retain_graph: bool, create_graph: bool, capture=None, accumulate: bool = True,
         only=None):
    """Propagate cotangents from ``roots`` [(edge, grad, given by the user)].

    ``capture``: {(node, index): slot} whose cotangents are returned instead of (or before) being
    used; ``only``: a set of AccumulateGrad nodes that may accumulate (backward(inputs=...)).
    """
    # 1. Which nodes are needed, and how many edges lead into each (explicit stack, no recursion).
    targets = needed = None
    if capture is not None or only is not None:
        targets = {k[0] for k in (capture or {})} | set(only or ())
        needed = _needed(roots, targets)
    deps: dict = {}
    stack = list(dict.fromkeys(r[0][0] for r in roots))  # two roots may share a (multi-output) node
    for n in stack:
        if n.released:
            raise RuntimeError(
                f"Trying to backward through the graph a second time (node {n.name()}), or to use saved "
                "values after they were freed. Pass retain_graph=True to the first backward() or "
                "autograd.grad() call if you need to backward through the graph again.")
    visited = set(stack)
    while stack:
        for e in stack.pop().edges:
            if e is None:
                continue
            nxt = e[0]
            if needed is not None and nxt not in needed:
                continue
            if nxt in deps:
                deps[nxt] += 1
            else:
                deps[nxt] = 1
                if nxt not in visited:
                    visited.add(nxt)
                    stack.append(nxt)

    # 2. Walk the ready nodes; a node is ready when every edge into it has delivered.
    buffers: dict = {}
    owned = set()  # arrays already handed to a .grad or a hook: never stolen twice
    for (node, idx), g, given in roots:
        _add_to(buffers, node, idx, g)
        if given:
            owned.add(id(g._data))
    ready = [n for n in {r[0][0]: None for r in roots} if n not in deps]
    results = {}
    grad_mode_prev = state.grad_enabled
    state.grad_enabled = create_graph
    try:
        while ready:
            node = ready.pop()
            grads = buffers.pop(node, None) or [None]
            if node.pre_hooks:
                _run_hooks(node, grads, owned)
            if capture is not None:
                for i, g in enumerate(grads):
                    slot = capture.get((node, i))
                    if slot is not None and g is not None:
                        results[slot] = g
            if node.__class__ is AccumulateGrad:
                if accumulate and (only is None or node in only) and grads[0] is not None:
                    _accumulate(node.variable, grads[0], create_graph, owned)
                continue
            edges = node.edges
            if needed is not None and not any(e is not None and e[0] in needed for e in edges):
                continue
            in_grads = _call_vjp(node, grads)
            n_in = len(in_grads)
            meta = node.in_meta
            i = -1
            for e in edges:
                i += 1
                if e is None:
                    continue
                nxt = e[0]
                if needed is not None and nxt not in needed:
                    continue
                gi = in_grads[i] if i < n_in else None
                if gi is not None:
                    m = meta[i]
                    d = gi._data
                    if len(d.shape) != len(m[0]) or d.shape != m[0] or d.dtype is not m[1].np:
                        gi = _reduce_to(gi, m[0], m[1])
                    buf = buffers.get(nxt)
                    if buf is None:
                        buf = buffers[nxt] = [None] * (len(nxt.out_meta) if nxt.out_meta is not None else 1)
                    k = e[1]
                    prev = buf[k]
                    buf[k] = gi if prev is None else prev + gi
                c = deps[nxt] - 1
                deps[nxt] = c
                if c == 0:
                    ready.append(nxt)
            if not retain_graph:
                node.saved = None
                node.out_data = None
                node.released = True
                node.edges = (None,) * len(edges)
    finally:
        state.grad_enabled = grad_mode_prev
    return results


def _needed(roots, targets):
    """Nodes from which some target is reachable (iterative post-order)."""
    needed = set()
    done = set()
    stack = [(r[0][0], False) for r in roots]
    while stack:
        n, expanded = stack.pop()
        if expanded:
            if n in targets or any(e is not None and e[0] in needed for e in n.edges):
                needed.add(n)
            done.add(n)
            continue
        if n in done:
            continue
        stack.append((n, True))
        for e in n.edges:
            if e is not None and e[0] not in done:
                stack.append((e[0], False))
    return needed


def _add_to(buffers, node, idx, g):
    buf = buffers.get(node)
    if buf is None:
        nout = len(node.out_meta) if node.out_meta is not None else 1
        buf = buffers[node] = [None] * max(nout, idx + 1)
    prev = buf[idx]
    buf[idx] = g if prev is None else prev + g


def _run_hooks(node, grads, owned):
    for idx, hooks in node.pre_hooks.items():
        if idx >= len(grads) or grads[idx] is None:
            continue
        regular = [h for h in hooks if not getattr(h, "_danlu_retain", False)]
        for h in regular + [h for h in hooks if getattr(h, "_danlu_retain", False)]:
            r = h(grads[idx])
            if r is not None:
                if tuple(r.shape) != tuple(grads[idx].shape):
                    raise RuntimeError(f"hook returned a gradient of shape {list(r.shape)}, expected "
                                       f"{list(grads[idx].shape)}")
                grads[idx] = r
        owned.add(id(grads[idx]._data))


def _call_vjp(node, grads):
    op = node.op
    if node.released:
        raise RuntimeError(
            f"Trying to backward through the graph a second time (node {node.name()}), or to use saved "
            "values after they were freed. Pass retain_graph=True to the first backward() or "
            "autograd.grad() call if you need to backward through the graph again.")
    if node.out_vc is not None:
        for k, (c, v) in enumerate(zip(node.out_vc, node.out_versions)):
            if c[0] != v:
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified by an inplace "
                    f"operation: output {k} of {node.name()} is at version {c[0]}; expected version {v} "
                    "instead. Use the out-of-place op, or clone() the result before modifying it."
                    + (f"\nThe forward call that saved it:\n{format_location(node.loc)}" if node.loc else ""))
    versions = node.versions
    if versions is not None:
        for i, t in enumerate(node.saved):
            if isinstance(t, Tensor) and t._vc is not None and t._vc[0] != versions[i]:
                raise _version_error(node, i, t, versions[i])
    if node.out_meta is not None:  # multi-output: missing cotangents are zeros
        if all(g is None for g in grads):
            return ()
        from ..ops.creation import zeros

        grads = [g if g is not None else (zeros(m[0], dtype=m[1]) if m[1] is not None and m[1].is_floating_point
                                          else None)
                 for g, m in zip(grads, node.out_meta)]
        out = op.vjp(node, *grads)
    else:
        if grads[0] is None:
            return ()
        out = op.vjp(node, grads[0])
    if not isinstance(out, tuple):
        out = (out,)
    if state.anomaly:
        _check_anomaly(node, out)
    return out


def _check_anomaly(node, out):
    from ..ops.elementwise import isfinite

    if not state.anomaly_check_nan:
        return
    for i, g in enumerate(out):
        if isinstance(g, Tensor) and g.dtype.is_floating_point:
            prev = state.grad_enabled
            state.grad_enabled = False
            try:
                bad = not bool(isfinite(g).all())
            finally:
                state.grad_enabled = prev
            if bad:
                where = format_location(node.loc) if node.loc else "<not recorded: the forward pass ran " \
                    "outside detect_anomaly()>"
                raise RuntimeError(
                    f"Function '{node.name()}' returned nan or inf values in its {i}th output (the gradient "
                    f"of input {i} of op '{getattr(node.op, 'name', node.name())}').\nThe forward call that "
                    f"created it:\n{where}")


def _accumulate(var: Tensor, g: Tensor, create_graph: bool, owned: set):
    interp = state.interp
    if interp is not None and hasattr(interp, "note_grad"):
        interp.note_grad(var)
    if var._grad is None:
        d = g._data
        if create_graph or g._rg or interp is not None:
            var._grad = g if not g._rg or create_graph else g.detach()
        elif id(d) in owned or not _owns(d):
            var._grad = g.clone()
        else:
            var._grad = g.detach() if g._node is not None else g
        owned.add(id(var._grad._data))
    elif create_graph or var._grad._rg:
        var._grad = var._grad + g
    else:
        prev = state.grad_enabled
        state.grad_enabled = False
        try:
            var._grad.add_(g)
        finally:
            state.grad_enabled = prev


def _owns(data) -> bool:
    base = getattr(data, "base", None)
    return base is None and getattr(data, "flags", None) is not None and data.flags.writeable


@api
def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Compute gradients of ``tensors`` and accumulate them into the leaves' ``.grad``.

    >>> import danlu as dl
    >>> x = dl.tensor([3.0], requires_grad=True)
    >>> dl.autograd.backward([x * x])
    >>> x.grad
    tensor([6.])
    """
    if isinstance(tensors, Tensor):
        tensors = (tensors,)
    tensors = tuple(tensors)
    if grad_tensors is None:
        grad_tensors = (None,) * len(tensors)
    elif isinstance(grad_tensors, Tensor):
        grad_tensors = (grad_tensors,)
    if len(grad_tensors) != len(tensors):
        raise RuntimeError(f"backward: got {len(tensors)} tensors but {len(grad_tensors)} gradients")
    if retain_graph is None:
        retain_graph = create_graph
    roots = [_make_root(t, g, i) for i, (t, g) in enumerate(zip(tensors, grad_tensors))]
    only = capture = None
    if inputs is not None:
        if isinstance(inputs, Tensor):
            inputs = (inputs,)
        inputs = tuple(inputs)
        if not inputs:
            raise RuntimeError("backward: 'inputs' argument to backward() cannot be empty; pass the tensors to "
                               "accumulate gradients into, or leave it out")
        only, capture = set(), {}
        for i, t in enumerate(inputs):
            if not isinstance(t, Tensor) or not t._rg:
                raise RuntimeError(f"backward: input {i} of 'inputs' does not require grad")
            if t._node is None:
                only.add(_edge(t)[0])
            else:
                capture[_edge(t)] = t  # a non-leaf: its gradient goes into its .grad, as in PyTorch
    results = _run(roots, retain_graph=retain_graph, create_graph=create_graph, only=only, capture=capture or None)
    for t, g in results.items():
        m = (tuple(t.shape), t.dtype)
        if tuple(g.shape) != m[0] or g.dtype is not m[1]:
            g = _reduce_to(g, m[0], m[1])
        t._grad = g.detach() if t._grad is None and not create_graph else (t._grad + g if t._grad is not None else g)


@api
def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=None,
         is_grads_batched=False, materialize_grads=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned rather than accumulated.

    >>> import danlu as dl
    >>> x = dl.tensor([2.0], requires_grad=True)
    >>> (g,) = dl.autograd.grad(x ** 3, x, create_graph=True)
    >>> g, dl.autograd.grad(g, x)[0]
    (tensor([12.], grad_fn=<MulBackward0>), tensor([12.]))
    """
    if is_grads_batched:
        raise RuntimeError("autograd.grad: is_grads_batched=True needs vmap, which danlu does not have yet; "
                           "loop over the grad_outputs instead")
    single_out = isinstance(outputs, Tensor)
    outputs = (outputs,) if single_out else tuple(outputs)
    single_in = isinstance(inputs, Tensor)
    inputs = (inputs,) if single_in else tuple(inputs)
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = (grad_outputs,)
    if allow_unused is None:
        allow_unused = materialize_grads
    if retain_graph is None:
        retain_graph = create_graph
    roots = [_make_root(t, g, i) for i, (t, g) in enumerate(zip(outputs, grad_outputs))]
    capture = {}
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t._rg:
            raise RuntimeError(f"autograd.grad: input {i} does not require grad; differentiated tensors must "
                               "have requires_grad=True")
        capture[_edge(t)] = i
    # A captured non-leaf also keeps flowing upstream only where another target needs it.
    results = _run(roots, retain_graph=retain_graph, create_graph=create_graph, capture=capture,
                   accumulate=False)
    out = []
    for i, t in enumerate(inputs):
        g = results.get(i)
        if g is None:
            if not allow_unused:
                raise RuntimeError(
                    f"autograd.grad: input {i} ({list(t.shape)}) appears to not have been used in the graph. "
                    "Set allow_unused=True if this is the desired behavior.")
            if materialize_grads:
                from ..ops.elementwise import zeros_like

                g = zeros_like(t)
        elif tuple(g.shape) != tuple(t.shape) or g.dtype is not t.dtype:
            g = _reduce_to(g, tuple(t.shape), t.dtype)
        out.append(g)
    return tuple(out)

