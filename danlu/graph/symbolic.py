"""Symbolic sizes for dynamic dimensions.

A :class:`SymInt` is an ``int`` (its value in the example the graph was traced with) that also
carries an expression over size symbols (``s0`` = dimension 0 of argument 0, ...). Arithmetic keeps
the expression, so shapes computed while tracing (``x.shape[0] * 4``, ``reshape(-1, 784)``) stay
symbolic and the generated code evaluates them from the actual input shapes. Comparisons answer
with the example value and are recorded as guards: a later call whose sizes break a guard retraces.
"""

from __future__ import annotations

import operator

__all__ = ["SymInt", "ShapeEnv", "shape_env", "expr_of", "is_symbolic", "evaluate"]

_CURRENT: list = [None]  # the ShapeEnv of the trace in progress (guards are recorded there)


class ShapeEnv:
    def __init__(self):
        self.symbols: dict[str, tuple] = {}   # name -> (argument index, dim)
        self.guards: list[tuple] = []          # (expr_a, op name, expr_b, expected bool)
        self._seen = set()

    def new_symbol(self, value: int, arg: int, dim: int) -> SymInt:
        name = f"s{len(self.symbols)}"
        self.symbols[name] = (arg, dim)
        return SymInt(value, name)

    def guard(self, a, opname, b, result: bool) -> None:
        key = (expr_of(a), opname, expr_of(b), result)
        if key not in self._seen:
            self._seen.add(key)
            self.guards.append(key)

    def check(self, sizes: dict) -> str | None:
        """None if every guard holds for these symbol values, else a description of the first that fails."""
        for a, opname, b, expected in self.guards:
            va, vb = evaluate(a, sizes), evaluate(b, sizes)
            if getattr(operator, opname)(va, vb) != expected:
                return f"guard {a} {_SYM[opname]} {b} was {expected} when traced, is {not expected} now ({va} vs {vb})"
        return None


class shape_env:
    """Context manager: record guards into ``env`` while tracing."""

    def __init__(self, env: ShapeEnv):
        self.env = env

    def __enter__(self):
        self._prev = _CURRENT[0]
        _CURRENT[0] = self.env
        return self.env

    def __exit__(self, *exc):
        _CURRENT[0] = self._prev


_SYM = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def expr_of(x) -> str:
    return x.expr if isinstance(x, SymInt) else str(int(x))


def is_symbolic(x) -> bool:
    if isinstance(x, SymInt):
        return True
    if isinstance(x, (tuple, list)):
        return any(is_symbolic(v) for v in x)
    return False


def evaluate(expr: str, sizes: dict) -> int:
    return int(eval(expr, {"__builtins__": {}}, sizes))  # expressions are built by this module only


def _wrap_expr(e: str) -> str:
    return e if e.isidentifier() or e.lstrip("-").isdigit() else f"({e})"


def _lin(x):
    """(base expression, coefficient) when x is coefficient * base, else (expr, 1)."""
    return getattr(x, "_lin", None) or (expr_of(x), 1)


def _combine(a, b, sym: str, fn):
    value = fn(int(a), int(b))
    ea, eb = expr_of(a), expr_of(b)
    sa, sb = isinstance(a, SymInt), isinstance(b, SymInt)
    # keep products with constants as coefficient * base, so (s0 * 784) // 784 is s0 again
    if sym == "*" and (sa != sb):
        sym_side, const = (a, int(b)) if sa else (b, int(a))
        base, coef = _lin(sym_side)
        return _from_lin(value, base, coef * const)
    if sym == "//" and sa and not sb and int(b) != 0:
        base, coef = _lin(a)
        if coef % int(b) == 0:
            return _from_lin(value, base, coef // int(b))
    if sym == "//" and sa and sb and _lin(b) == (_lin(a)[0], 1):
        return _lin(a)[1]  # (c * s) // s == c
    if sym in ("+", "-") and eb == "0":
        return a
    return SymInt(value, f"{_wrap_expr(ea)} {sym} {_wrap_expr(eb)}")


def _from_lin(value, base, coef):
    if coef == 0:
        return 0
    if coef == 1:
        return SymInt(value, base)
    out = SymInt(value, f"{_wrap_expr(base)} * {coef}")
    out._lin = (base, coef)
    return out


class SymInt(int):
    """An int with a symbolic expression (see the module docstring)."""

    def __new__(cls, value: int, expr: str):
        obj = int.__new__(cls, value)
        obj.expr = expr
        obj._lin = None
        return obj

    _rg = False  # read by the dispatch seam's requires-grad scan over inputs

    def __repr__(self):
        return self.expr

    __str__ = __repr__

    def __hash__(self):
        return int.__hash__(self)

    def __reduce__(self):
        return (SymInt, (int(self), self.expr))

    def __add__(self, o):
        return _combine(self, o, "+", operator.add) if isinstance(o, int) else NotImplemented

    def __radd__(self, o):
        return _combine(o, self, "+", operator.add) if isinstance(o, int) else NotImplemented

    def __sub__(self, o):
        return _combine(self, o, "-", operator.sub) if isinstance(o, int) else NotImplemented

    def __rsub__(self, o):
        return _combine(o, self, "-", operator.sub) if isinstance(o, int) else NotImplemented

    def __mul__(self, o):
        return _combine(self, o, "*", operator.mul) if isinstance(o, int) else NotImplemented

    def __rmul__(self, o):
        return _combine(o, self, "*", operator.mul) if isinstance(o, int) else NotImplemented

    def __floordiv__(self, o):
        return _combine(self, o, "//", operator.floordiv) if isinstance(o, int) else NotImplemented

    def __rfloordiv__(self, o):
        return _combine(o, self, "//", operator.floordiv) if isinstance(o, int) else NotImplemented

    def __mod__(self, o):
        return _combine(self, o, "%", operator.mod) if isinstance(o, int) else NotImplemented

    def __neg__(self):
        return SymInt(-int(self), f"-{_wrap_expr(self.expr)}")

    def __pos__(self):
        return self


def _cmp(opname):
    base = getattr(int, f"__{opname}__")

    def method(self, other):
        if not isinstance(other, int):
            return base(self, other)
        result = base(int(self), int(other))
        env = _CURRENT[0]
        if env is not None:
            env.guard(self, opname, other, result)
        return result

    return method


for _op in ("eq", "ne", "lt", "le", "gt", "ge"):
    setattr(SymInt, f"__{_op}__", _cmp(_op))
