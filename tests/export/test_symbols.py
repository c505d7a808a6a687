"""Size expressions: parsed by a fixed grammar, printed back, evaluated with Python's integer semantics."""

import pytest

from danlu.export.symbols import ExprError, evaluate, names_in, parse, render
from danlu.graph.symbolic import SymInt

EXPRESSIONS = ["s0", "7", "s0 * 4", "(s0 * 5) // s0", "s0 * ((s0 * 5) // s0)", "-s0", "-(s0 + 1)", "s0 + -3",
               "s0 - (s1 - 2)", "s0 % 3 * 2", "(s0 + 1) * (s1 - 1) // 2", "--4", "batch_size * seq_len"]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_render_is_a_fixed_point_and_evaluates_like_python(text):
    tree = parse(text)
    out = render(tree)
    assert parse(out) == tree and render(parse(out)) == out
    for values in ({"s0": 4, "s1": 3, "batch_size": 2, "seq_len": 5}, {"s0": 9, "s1": 1, "batch_size": 7,
                                                                        "seq_len": 11}):
        assert evaluate(tree, values) == eval(text, {}, values)


def test_expressions_built_while_tracing_parse():
    s0, s1 = SymInt(4, "s0"), SymInt(3, "s1")
    for v in (s0 * 4, (s0 * 5) // 5, -(s0 + s1), s0 * s1 - 2, (s0 + 1) // 2 % 3, 3 - s0):
        assert evaluate(parse(v.expr), {"s0": 4, "s1": 3}) == int(v)


def test_rename_and_names():
    tree = parse("s0 * s1 + s0")
    assert names_in(tree) == {"s0", "s1"}
    assert render(tree, {"s0": "batch", "s1": "seq"}) == "batch * seq + batch"


@pytest.mark.parametrize("bad", ["", "s0 +", "(s0", "s0)", "s0 ** 2", "s0 / 2", "a.b", "f(s0)", "s0[0]", "1e3",
                                 "'s0'", "s0 if s0 else 1", "lambda", "import", "x = 1", "s0; s1", "0x10",
                                 "(" * 500 + "1" + ")" * 500, "1" + " + 1" * 400, "-" * 5000 + "1", "s0 " * 3,
                                 "s0\n", "ｓ0"])
def test_everything_else_is_refused(bad):
    with pytest.raises(ExprError):
        parse(bad)


def test_non_strings_and_overlong_input_are_refused():
    with pytest.raises(ExprError):
        parse(3)
    with pytest.raises(ExprError, match="characters long"):
        parse("1 + " * 5000 + "1")
