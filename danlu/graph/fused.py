"""Fused elementwise kernels.

A fused group is a small program of elementwise registry ops over one iteration space. Its kernel
runs the program chunk by chunk (about ``CHUNK`` elements at a time, so temporaries stay in cache),
either over the flattened arrays (when every full-size input is contiguous) or in blocks of rows
along the first dimension larger than one. Broadcast inputs are passed whole.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FusedOp", "CHUNK"]

CHUNK = 1 << 15          # elements per chunk: a few float32 temporaries fit in L2
SMALL = 1 << 15          # below this, run the program once on the whole arrays


class FusedOp:
    """Stands in for a registry op in a graph: ``program`` is a list of
    ``(op, input refs, attrs)``; a ref is ("in", k) for the k-th external input, ("t", j) for the
    j-th step's result, or ("lit", value). ``outputs`` lists the step indices the group returns."""

    elementwise = True
    random = False
    view = False
    reduction = False
    differentiable = False

    def __init__(self, program, outputs, out_avals, name="fused"):
        self.program = program
        self.outputs = tuple(outputs)
        self.out_avals = out_avals
        self.name = name
        self.multi_out = len(self.outputs) > 1
        self.extra = {"out": not self.multi_out}
        self.kernel = self._build()
        self.impl = {"cpu": self.kernel}

    def describe(self) -> str:
        parts = []
        for j, (op, refs, attrs) in enumerate(self.program):
            args = ", ".join(_ref_str(r) for r in refs)
            parts.append(f"t{j} = {op.name}({args})")
        return "; ".join(parts)

    def _build(self):
        program, outs, avals = self.program, self.outputs, self.out_avals
        kernels = [op.impl["cpu"] for op, _, _ in program]

        def run_steps(args):
            ts = []
            for k, (op, refs, attrs) in zip(kernels, program):
                vals = [args[r[1]] if r[0] == "in" else ts[r[1]] if r[0] == "t" else r[1] for r in refs]
                ts.append(k(*vals, **attrs))
            return ts

        def kernel(*args, out=None):
            shape = tuple(int(s) for s in np.broadcast_shapes(*[np.shape(a) for a in args])) \
                if args else ()
            n = math.prod(shape)
            if n <= SMALL or not shape:
                ts = run_steps(args)
                res = [np.asarray(ts[j]) for j in outs]
                if out is not None:
                    np.copyto(out, res[0])
                    res[0] = out
                return res[0] if len(res) == 1 else tuple(res)
            results = [out if (k == 0 and out is not None) else np.empty(shape, avals[k].dtype.np)
                       for k in range(len(outs))]
            full = [isinstance(a, np.ndarray) and a.shape == shape for a in args]
            if all(f or np.size(a) == 1 for f, a in zip(full, args)) and \
                    all(a.flags.c_contiguous for f, a in zip(full, args) if f) and \
                    all(r.flags.c_contiguous for r in results):
                flat = [a.reshape(-1) if f else a for f, a in zip(full, args)]
                flat_out = [r.reshape(-1) for r in results]
                for s in range(0, n, CHUNK):
                    e = min(s + CHUNK, n)
                    ts = run_steps([a[s:e] if f else a for f, a in zip(full, flat)])
                    for r, j in zip(flat_out, outs):
                        r[s:e] = ts[j]
            else:
                axis = next(i for i, d in enumerate(shape) if d > 1)
                rows = shape[axis]
                inner = n // rows
                step = max(1, CHUNK // max(inner, 1))
                nd = len(shape)
                sliced = []
                for a in args:
                    sh = np.shape(a)
                    k = len(sh) - (nd - axis)
                    sliced.append(k >= 0 and sh[k] == rows)
                pre = (slice(None),) * axis
                for s in range(0, rows, step):
                    e = min(s + step, rows)
                    part = []
                    for a, sl in zip(args, sliced):
                        if sl:
                            k = np.ndim(a) - (nd - axis)
                            part.append(a[(slice(None),) * k + (slice(s, e),)])
                        else:
                            part.append(a)
                    ts = run_steps(part)
                    for r, j in zip(results, outs):
                        r[pre + (slice(s, e),)] = ts[j]
            return results[0] if len(results) == 1 else tuple(results)

        return kernel


def _ref_str(r):
    if r[0] == "in":
        return f"in{r[1]}"
    if r[0] == "t":
        return f"t{r[1]}"
    return repr(r[1])
