"""Fused elementwise kernels.

A fused group is a small program of elementwise registry ops over one iteration space. Its kernel is
generated Python that runs the program chunk by chunk (about ``CHUNK`` elements at a time, so the
temporaries stay in cache), writing NumPy ufunc results with ``out=`` into as few buffers as the
program's live values need: in place over dying inputs, into the output (whose chunk also holds
earlier temporaries), else into preallocated scratch buffers. Chunks run over the flattened arrays
when every full-size input is contiguous, else over blocks along the first dimension larger than one
(broadcast inputs are passed whole). Large iteration spaces are split across two threads (NumPy
releases the GIL inside ufuncs), in larger chunks (``CHUNK_PARALLEL``).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["FusedOp", "CHUNK"]

CHUNK = 1 << 15          # elements per chunk: a few float32 temporaries stay in L2
CHUNK_PARALLEL = 1 << 17  # per chunk when two threads share the work: fewer GIL hand-overs pay more than L2
SMALL = 1 << 16          # below this, run the program once on whole arrays
THREADS = max(1, min(2, os.cpu_count() or 1))
PARALLEL_MIN = 1 << 18   # iteration spaces at least this large use the thread pool
_pool = None
_CHEAP = {np.add, np.subtract, np.multiply, np.negative, np.positive, np.maximum, np.minimum, np.absolute}
_counter = [0]


def _get_pool():
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="danlu-fused")
    return _pool


class FusedOp:
    """Stands in for a registry op in a graph. ``program`` is a list of ``(op, refs, attrs, dtype)``;
    a ref is ("in", k) for the k-th external input, ("t", j) for step j's result, or ("lit", value).
    ``outputs`` lists the step indices the group returns."""

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
        self.extra = {"out": True}   # out= an array (one output) or a tuple of arrays/None per output
        # Chunking pays when temporaries would otherwise travel through memory many times, threads when
        # there is arithmetic to share: memory-bound groups of a few cheap ops run best on whole arrays.
        kernels = [op.impl["cpu"] for op, _r, _a, _d in program]
        self.heavy = any(k not in _CHEAP for k in kernels)
        self.chunk_worth = self.heavy or len(program) >= 4
        self.source, self.kernel = self._build()
        self.impl = {"cpu": self.kernel}

    def inplace_ok(self, pos: int, inputs) -> bool:
        """May output ``pos`` be written into the buffer of the external inputs ``inputs`` (positions
        holding one same-shaped array)? Yes when no step after the one giving that output reads them:
        chunks and whole-array runs write each output at its step, same index for same index."""
        j = self.outputs[pos]
        return all(not (r[0] == "in" and r[1] in inputs) for _op, refs, _a, _d in self.program[j + 1:] for r in refs)

    def describe(self) -> str:
        return "; ".join(f"t{j} = {op.name}({', '.join(_ref_str(r) for r in refs)})"
                         for j, (op, refs, attrs, _dt) in enumerate(self.program))

    # -- code generation ------------------------------------------------------------------------
    def _step_lines(self, arg, tmp, dst, indent, outputs_as_scratch):
        """Source lines for one pass of the program over chunk arguments ``arg[k]``.

        Buffers are assigned like registers: a ufunc step writes into the buffer of an input that dies
        at that step (in place, index for index), else into a free scratch buffer; a step giving an
        output writes straight into the output. With ``outputs_as_scratch`` an output's chunk also
        holds temporaries that die before that output is computed, so a chain of steps runs in place
        in the output and the working set is the inputs and outputs alone (only valid when no output
        overlaps an input)."""
        lines, ns = [], self._ns
        last_use = {}
        for j, (_op, refs, _a, _d) in enumerate(self.program):
            for r in refs:
                if r[0] == "t":
                    last_use[r[1]] = j
        home = {}                          # output slot -> the step computing it (first position)
        for k, j in enumerate(self.outputs):
            home.setdefault(k, j) if j not in home.values() else None
        slot_dt = {k: self.out_avals[k].dtype.np for k in home}
        free, slot_busy, owner = [], set(), {}
        for j, (op, refs, attrs, dt) in enumerate(self.program):
            kname = f"k{j}"
            ns[kname] = op.impl["cpu"]
            args = []
            for r in refs:
                if r[0] == "in":
                    args.append(arg(r[1]))
                elif r[0] == "t":
                    args.append(f"t{r[1]}")
                else:
                    ns[f"lit{j}_{len(args)}"] = r[1]
                    args.append(f"lit{j}_{len(args)}")
            for k, v in attrs.items():
                ns[f"attr{j}_{k}"] = v
                args.append(f"{k}=attr{j}_{k}")
            is_ufunc = isinstance(op.impl["cpu"], np.ufunc) and not attrs
            out_pos = [k for k, o in enumerate(self.outputs) if o == j]
            # buffers of temporaries dying here are free again (a ufunc may write over its own input)
            released = []
            for r in dict.fromkeys(r for r in refs if r[0] == "t"):
                if last_use.get(r[1]) == j and r[1] in owner:
                    released.append(owner.pop(r[1]))
            for kind, b in released:
                if kind == "buf":
                    free.append(b)
                else:
                    slot_busy.discard(b)
            if out_pos:
                k0 = out_pos[0]
                if is_ufunc:
                    lines.append(f"{indent}t{j} = {kname}({', '.join(args)}, out={dst(k0)})")
                else:
                    lines.append(f"{indent}t{j} = {kname}({', '.join(args)})")
                    lines.append(f"{indent}{dst(k0)}[...] = t{j}")
                for k in out_pos[1:]:
                    lines.append(f"{indent}{dst(k)}[...] = t{j}")
                continue
            if not is_ufunc:
                lines.append(f"{indent}t{j} = {kname}({', '.join(args)})")
                continue
            dest = None
            for kind, b in released:       # in place over a dying input
                if kind == "buf" and self._buf_dtype[b] == dt:
                    free.remove(b)
                    dest = ("buf", b)
                    break
                if kind == "slot" and slot_dt[b] == dt and home[b] >= last_use.get(j, j):
                    dest = ("slot", b)
                    break
            if dest is None and outputs_as_scratch:
                slots = [k for k in home if k not in slot_busy and home[k] > j and
                         home[k] >= last_use.get(j, j) and slot_dt[k] == dt]
                if slots:
                    dest = ("slot", min(slots, key=lambda k: home[k]))
            if dest is None:
                b = next((b for b in reversed(free) if self._buf_dtype[b] == dt), None)
                if b is None:
                    b = len(self._buf_dtype)
                    self._buf_dtype.append(dt)
                else:
                    free.remove(b)
                dest = ("buf", b)
            if dest[0] == "slot":
                slot_busy.add(dest[1])
            owner[j] = dest
            target = tmp(dest[1]) if dest[0] == "buf" else dst(dest[1])
            lines.append(f"{indent}t{j} = {kname}({', '.join(args)}, out={target})")
        return lines

    def _whole_lines(self):
        """The program over whole arrays: each step allocates its result, except that a step giving an
        output writes into that output's buffer when ``outs`` passes one."""
        n = len(self.outputs)
        lines = [f"    {', '.join(f'o{k}' for k in range(n))}, = outs if outs is not None else (None,) * {n}"]
        for j, (op, refs, attrs, _dt) in enumerate(self.program):
            args = [f"in{r[1]}" if r[0] == "in" else f"t{r[1]}" if r[0] == "t" else f"lit{j}_{i}"
                    for i, r in enumerate(refs)]
            for i, r in enumerate(refs):
                if r[0] == "lit":
                    self._ns[f"lit{j}_{i}"] = r[1]
            args += [f"{k}=attr{j}_{k}" for k in attrs]
            for k, v in attrs.items():
                self._ns[f"attr{j}_{k}"] = v
            self._ns[f"k{j}"] = op.impl["cpu"]
            pos = [k for k, o in enumerate(self.outputs) if o == j]
            if pos and isinstance(op.impl["cpu"], np.ufunc) and not attrs:
                lines.append(f"    t{j} = k{j}({', '.join(args)}, out=o{pos[0]})")
            else:
                lines.append(f"    t{j} = k{j}({', '.join(args)})")
                if pos:
                    lines.append(f"    if o{pos[0]} is not None:")
                    lines.append(f"        o{pos[0]}[...] = t{j}")
                    lines.append(f"        t{j} = o{pos[0]}")
            for k in pos:
                if k == pos[0]:
                    lines.append(f"    r{k} = t{j}")
                else:
                    lines.append(f"    if o{k} is not None:")
                    lines.append(f"        o{k}[...] = t{j}")
                    lines.append(f"    r{k} = t{j} if o{k} is None else o{k}")
        return lines

    def _build(self):
        _counter[0] += 1
        self._ns = {"np": np, "math": math, "_empty": np.empty, "__name__": "danlu.graph.generated"}
        self._buf_dtype = []
        nin = max([r[1] for _o, refs, _a, _d in self.program for r in refs if r[0] == "in"], default=-1) + 1
        ins = [f"in{k}" for k in range(nin)]
        nout = len(self.outputs)
        for k, av in enumerate(self.out_avals):
            self._ns[f"odt{k}"] = av.dtype.np
        whole = self._whole_lines()
        src = []
        for fn, scratch in (("run", True), ("run_safe", False)):
            self._buf_dtype = []
            flat = self._step_lines(lambda k: f"c{k}", lambda b: f"buf{b}[:m]", lambda k: f"o{k}[s:e]",
                                    "            ", scratch)
            flat_bufs = list(self._buf_dtype)
            self._buf_dtype = []
            rows = self._step_lines(lambda k: f"c{k}", lambda b: f"buf{b}[:m].reshape(cshape)",
                                    lambda k: f"o{k}[pre + (slice(s, e),)]", "            ", scratch)
            row_bufs = list(self._buf_dtype)
            for b, dt in enumerate(flat_bufs):
                self._ns[f"{fn}_fdt{b}"] = dt
            for b, dt in enumerate(row_bufs):
                self._ns[f"{fn}_rdt{b}"] = dt
            src.append(f"def {fn}(lo, hi, mode, shape, CH, {', '.join(['outs'] + ins)}):")
            src.append("    if mode == 'flat':")
            src += [f"        buf{b} = _empty(CH, {fn}_fdt{b})" for b in range(len(flat_bufs))]
            src += [f"        o{k} = outs[{k}]" for k in range(nout)]
            src.append("        for s in range(lo, hi, CH):")
            src.append("            e = min(s + CH, hi)")
            src.append("            m = e - s")
            src += [f"            c{k} = in{k}[1][s:e] if type(in{k}) is tuple else in{k}" for k in range(nin)]
            src += flat
            src.append("        return")
            src.append("    axis, step, sliced = mode")
            src.append("    pre = (slice(None),) * axis")
            src.append("    cshape_full = list(shape)")
            src += [f"    buf{b} = _empty(step * math.prod(shape) // shape[axis], {fn}_rdt{b})"
                    for b in range(len(row_bufs))]
            src += [f"    o{k} = outs[{k}]" for k in range(nout)]
            src.append("    for s in range(lo, hi, step):")
            src.append("        e = min(s + step, hi)")
            src.append("        cshape_full[axis] = e - s")
            src.append("        cshape = tuple(cshape_full)")
            src.append("        m = math.prod(cshape)")
            src += [f"        c{k} = in{k}[(slice(None),) * sliced[{k}] + (slice(s, e),)] if sliced[{k}] >= 0 "
                    f"else in{k}" for k in range(nin)]
            src += [ln[4:] for ln in rows]
            src.append("")
        src.append("")
        src.append(f"def whole({', '.join(ins + ['outs=None'])}):")
        src += whole
        src.append(f"    return ({', '.join(f'r{k}' for k in range(nout))},)")
        body = "\n".join(src) + "\n"
        exec(compile(body, f"<danlu-fused-{_counter[0]}>", "exec"), self._ns)
        run, run_safe, whole_fn = self._ns["run"], self._ns["run_safe"], self._ns["whole"]
        avals, outs_idx = self.out_avals, self.outputs

        chunked = self.chunk_worth
        parallel = self.heavy

        def kernel(*args, out=None):
            outs = out if out is None or type(out) is tuple else (out,)
            shape = np.broadcast_shapes(*[np.shape(a) for a in args]) if args else ()
            n = math.prod(shape)
            ch = CHUNK_PARALLEL if parallel and THREADS > 1 and n >= PARALLEL_MIN else CHUNK
            if n <= SMALL or not shape or not chunked:
                res = [np.asarray(r) for r in whole_fn(*args, outs=outs)]
                return res[0] if len(res) == 1 else tuple(res)
            results = [outs[k] if outs is not None and outs[k] is not None else np.empty(shape, avals[k].dtype.np)
                       for k in range(len(outs_idx))]
            # outputs double as scratch space unless one is the caller's buffer over an input
            overlap = outs is not None and any(o is not None and isinstance(a, np.ndarray) and
                                               np.may_share_memory(o, a) for o in outs for a in args)
            go = run_safe if overlap else run
            full = [isinstance(a, np.ndarray) and a.shape == shape for a in args]
            if all(f or np.size(a) == 1 for f, a in zip(full, args)) and \
                    all(a.flags.c_contiguous for f, a in zip(full, args) if f) and \
                    all(r.flags.c_contiguous for r in results):
                fargs = [(a, a.reshape(-1)) if f else (a.reshape(()) if isinstance(a, np.ndarray) else a)
                         for f, a in zip(full, args)]
                flat_out = [r.reshape(-1) for r in results]
                _parallel(go, n, ch, "flat", shape, ch, flat_out, fargs, parallel)
            else:
                axis = next(i for i, d in enumerate(shape) if d > 1)
                rows = shape[axis]
                step = max(1, ch // max(n // rows, 1))
                nd = len(shape)
                sliced = []
                for a in args:
                    sh = np.shape(a)
                    k = len(sh) - (nd - axis)
                    sliced.append(k if k >= 0 and sh[k] == rows else -1)
                _parallel(go, rows, step, (axis, step, tuple(sliced)), shape, ch, results, args, parallel)
            return results[0] if len(results) == 1 else tuple(results)

        return body, kernel


def _parallel(run, total, unit, mode, shape, ch, outs, args, allowed=True):
    n_el = math.prod(shape)
    if not allowed or THREADS < 2 or n_el < PARALLEL_MIN:
        run(0, total, mode, shape, ch, outs, *args)
        return
    mid = (total // 2 // unit) * unit or total
    fut = _get_pool().submit(run, mid, total, mode, shape, ch, outs, *args)
    run(0, mid, mode, shape, ch, outs, *args)
    fut.result()


def _ref_str(r):
    if r[0] == "in":
        return f"in{r[1]}"
    if r[0] == "t":
        return f"t{r[1]}"
    return repr(r[1])
