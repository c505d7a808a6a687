"""Size expressions in export artifacts: parsed, checked and printed without ``eval``.

A dynamic dimension is a size symbol (``batch``, ``s0``); shapes and attributes computed from it
are integer expressions over symbols with ``+ - * // %``, unary ``-`` and parentheses (the forms
``danlu.graph.symbolic`` builds). An artifact is data from outside, and these expressions end up
in generated Python source, so they are never evaluated or copied as text: :func:`parse` builds a
small tree from an exact grammar, and :func:`render` prints it back with the names it is given.
"""

from __future__ import annotations

import keyword
import operator
import re

__all__ = ["ExprError", "parse", "render", "evaluate", "names_in", "is_symbol_name"]

MAX_LENGTH = 10_000  # longer than any expression a trace builds; a bound on the parser's work
MAX_DEPTH = 200      # the tree functions below recurse

_TOKEN = re.compile(r" *(?:([0-9]+)|([A-Za-z_][A-Za-z0-9_]*)|(//|[-+*%()]))")  # ASCII only; spaces only
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BINARY = {"+": (1, operator.add), "-": (1, operator.sub), "*": (2, operator.mul), "//": (2, operator.floordiv),
           "%": (2, operator.mod)}
_NEG_PREC, _ATOM_PREC = 3, 4


class ExprError(ValueError):
    """A string that is not a size expression."""


def is_symbol_name(name) -> bool:
    """Whether ``name`` can name a size symbol (an ASCII identifier that is not a Python keyword)."""
    return isinstance(name, str) and bool(_NAME.match(name)) and not keyword.iskeyword(name)


def _tokens(text: str) -> list:
    out, pos = [], 0
    text = text.rstrip(" ")
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ExprError(f"unexpected character {text[pos:pos + 1]!r} at position {pos}")
        num, name, sym = m.groups()
        if num is not None:
            out.append(("int", int(num)))
        elif name is not None:
            if keyword.iskeyword(name):
                raise ExprError(f"{name!r} is a Python keyword, not a size symbol")
            out.append(("sym", name))
        else:
            out.append(("op", sym))
        pos = m.end()
    return out


def parse(text: str):
    """The expression tree of ``text``: ``("int", n)``, ``("sym", name)``, ``("neg", a)`` or ``(op, a, b)``.

    >>> parse("s0 * 4 + -1")
    ('+', ('*', ('sym', 's0'), ('int', 4)), ('neg', ('int', 1)))
    """
    if not isinstance(text, str):
        raise ExprError(f"expected a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExprError(f"the expression is {len(text)} characters long (at most {MAX_LENGTH})")
    toks = _tokens(text)
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else (None, None)

    def take():
        t = peek()
        pos[0] += 1
        return t

    def binary(level):
        left = unary() if level == 2 else binary(2)
        while True:
            kind, val = peek()
            if kind != "op" or val not in _BINARY or _BINARY[val][0] != level:
                return left
            take()
            left = (val, left, unary() if level == 2 else binary(2))

    def unary():
        kind, val = peek()
        if kind == "op" and val == "-":
            take()
            return ("neg", unary())
        return atom()

    def atom():
        kind, val = take()
        if kind in ("int", "sym"):
            return (kind, val)
        if kind == "op" and val == "(":
            inner = binary(1)
            if take() != ("op", ")"):
                raise ExprError("a '(' is not closed")
            return inner
        raise ExprError("the expression ends early" if kind is None else f"unexpected {val!r}")

    try:
        tree = binary(1)
    except RecursionError:
        raise ExprError("the expression is nested too deeply") from None
    if pos[0] != len(toks):
        raise ExprError(f"unexpected {peek()[1]!r} after a complete expression")
    if _depth(tree) > MAX_DEPTH:
        raise ExprError(f"the expression is nested more than {MAX_DEPTH} levels deep")
    return tree


def _depth(tree) -> int:
    """The depth of ``tree``, without recursion (a left-leaning chain parses without nesting)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        t, d = stack.pop()
        deepest = max(deepest, d)
        if t[0] not in ("int", "sym"):
            stack.extend((c, d + 1) for c in t[1:])
    return deepest


def _prec(tree) -> int:
    if tree[0] in _BINARY:
        return _BINARY[tree[0]][0]
    return _NEG_PREC if tree[0] == "neg" else _ATOM_PREC


def render(tree, names: dict | None = None) -> str:
    """Python source for ``tree``, with symbols renamed through ``names`` (missing names kept).

    >>> render(parse("(s0 * 4) // 2"), {"s0": "batch"})
    '(batch * 4) // 2'
    """
    kind = tree[0]
    if kind == "int":
        return str(tree[1])
    if kind == "sym":
        return names.get(tree[1], tree[1]) if names else tree[1]
    if kind == "neg":
        inner = render(tree[1], names)
        return f"-{inner}" if _prec(tree[1]) >= _NEG_PREC else f"-({inner})"
    prec = _BINARY[kind][0]
    a, b = render(tree[1], names), render(tree[2], names)
    # parentheses wherever Python's precedence (left to right within a level) would read it otherwise,
    # and around mixed products and quotients, which read ambiguously to people
    if _prec(tree[1]) < prec or (_prec(tree[1]) == prec == 2 and tree[1][0] != kind):
        a = f"({a})"
    if _prec(tree[2]) <= prec:
        b = f"({b})"
    return f"{a} {kind} {b}"


def evaluate(tree, values: dict):
    """The value of ``tree`` with symbols taken from ``values`` (ints, or anything with int arithmetic).

    >>> evaluate(parse("batch * 3 // 2"), {"batch": 4})
    6
    """
    kind = tree[0]
    if kind == "int":
        return tree[1]
    if kind == "sym":
        return values[tree[1]]
    if kind == "neg":
        return -evaluate(tree[1], values)
    return _BINARY[kind][1](evaluate(tree[1], values), evaluate(tree[2], values))


def names_in(tree) -> set:
    """The symbol names ``tree`` reads."""
    if tree[0] == "sym":
        return {tree[1]}
    if tree[0] == "int":
        return set()
    return set().union(*(names_in(t) for t in tree[1:]))
