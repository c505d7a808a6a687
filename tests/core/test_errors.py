"""The errors users meet most: each names the op and the shapes/dtypes involved, and its traceback
ends in the caller's code (here: this file), in functional, method and operator forms."""

import traceback

import pytest
import torch

import danlu as dl


def raised_here(excinfo) -> bool:
    return traceback.extract_tb(excinfo.tb)[-1].filename == __file__


def check(fn, exc, *needles):
    """fn() raises exc, the message holds every needle, and the last traceback frame is this file."""
    with pytest.raises(exc) as e:
        fn()
    msg = str(e.value)
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    frames = traceback.extract_tb(e.tb)
    assert frames[-1].filename == __file__, "traceback ends inside danlu:\n" + "".join(traceback.format_list(frames))
    return e


# -- shape mismatch ----------------------------------------------------------------------------------

def _ab():
    return dl.ones(2, 3), dl.ones(4)


SHAPE_FORMS = {
    "functional": lambda a, b: dl.add(a, b),
    "method": lambda a, b: a.add(b),
    "operator": lambda a, b: a + b,
    "reflected-operator": lambda a, b: b + a,
    "in-place-method": lambda a, b: a.add_(b),
    "augmented": lambda a, b: a.__iadd__(b),
    "mul-operator": lambda a, b: a * b,
    "sub-functional": lambda a, b: dl.sub(a, b),
    "where": lambda a, b: dl.where(a > 0, a, b),
}


@pytest.mark.parametrize("form", list(SHAPE_FORMS))
def test_shape_mismatch(form):
    a, b = _ab()
    op = {"mul-operator": "mul", "sub-functional": "sub", "where": "where"}.get(form, "add")
    e = check(lambda: SHAPE_FORMS[form](a, b), ValueError, op, "[2, 3]", "[4]")
    assert isinstance(e.value, RuntimeError)  # also what torch raises
    with pytest.raises(RuntimeError):
        torch.ones(2, 3) + torch.ones(4)


def test_shape_mismatch_under_autograd():
    a = dl.ones(2, 3, requires_grad=True)
    check(lambda: a * dl.ones(4), ValueError, "mul", "[2, 3]", "[4]")


# -- dtype mismatch --------------------------------------------------------------------------------

def _matmul_forms():
    # Guarded only while linalg is missing; the brief expects it to exist.
    if not hasattr(dl, "matmul"):
        pytest.skip("danlu.matmul does not exist yet")
    return {
        "functional": lambda a, b: dl.matmul(a, b),
        "method": lambda a, b: a.matmul(b),
        "operator": lambda a, b: a @ b,
        "ndarray-operand": lambda a, b: a @ b.numpy(),  # torch accepts a NumPy array on the right
    }


@pytest.mark.parametrize("form", ["functional", "method", "operator", "ndarray-operand"])
def test_matmul_dtype_mismatch(form):
    fn = _matmul_forms()[form]
    a, b = dl.ones(2, 3), dl.ones(3, 4, dtype=dl.float64)
    check(lambda: fn(a, b), TypeError, "matmul", "float32", "float64")
    with pytest.raises(RuntimeError, match="dtype"):
        torch.ones(2, 3) @ torch.ones(3, 4, dtype=torch.float64)


@pytest.mark.parametrize("form", ["functional", "method", "operator"])
def test_matmul_shape_mismatch(form):
    fn = _matmul_forms()[form]
    a, b = dl.ones(2, 3), dl.ones(4, 5)
    check(lambda: fn(a, b), ValueError, "matmul", "[2, 3]", "[4, 5]")


@pytest.mark.parametrize("form", ["method", "functional"])
def test_in_place_dtype_error(form):
    x = dl.tensor([1, 2])
    fn = (lambda: x.add_(1.5)) if form == "method" else (lambda: dl.Tensor.add_(x, 1.5))
    check(fn, TypeError, "add", "float32", "int64")


# -- autograd errors ---------------------------------------------------------------------------------

def _used_graph():
    x = dl.ones(2, 3, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    return x, y


@pytest.mark.parametrize("form", ["method", "functional", "grad"])
def test_backward_twice(form):
    x, y = _used_graph()
    fn = {"method": lambda: y.backward(),
          "functional": lambda: dl.autograd.backward(y),
          "grad": lambda: dl.autograd.grad(y, x)}[form]
    check(fn, RuntimeError, "SumBackward0", "second time", "retain_graph=True")


@pytest.mark.parametrize("form", ["method", "functional", "grad"])
def test_non_scalar_backward(form):
    x = dl.ones(2, 3, requires_grad=True)
    y = x * 2
    fn = {"method": lambda: y.backward(),
          "functional": lambda: dl.autograd.backward([y]),
          "grad": lambda: dl.autograd.grad(y, x)}[form]
    check(fn, RuntimeError, "backward", "[2, 3]", "scalar", "gradient")


def test_backward_error_inside_vjp_ends_in_user_code():
    x = dl.ones(3, requires_grad=True)
    h = x * 1
    y = (h * h).sum()
    h.add_(1)
    check(lambda: y.backward(), RuntimeError, "MulBackward0", "float32[3]", "version")


# -- item() on many elements -------------------------------------------------------------------------

ITEM_FORMS = {
    "method": lambda t: t.item(),
    "unbound-method": lambda t: dl.Tensor.item(t),
    "float": lambda t: float(t),
    "int": lambda t: int(t),
}


@pytest.mark.parametrize("form", list(ITEM_FORMS))
def test_item_of_many_elements(form):
    t = dl.ones(2, 3)
    with pytest.raises(Exception) as e:
        ITEM_FORMS[form](t)
    msg = str(e.value)
    assert "item" in msg and "6 elements" in msg and "[2, 3]" in msg
    assert raised_here(e)


def test_bool_of_many_elements():
    t = dl.ones(2, 3)
    check(lambda: bool(t), RuntimeError, "Boolean value", "6 elements", "[2, 3]")
    check(lambda: t if t else None, RuntimeError, "ambiguous")


# -- out-of-range index ------------------------------------------------------------------------------

INDEX_FORMS = {
    "getitem-int": (lambda t: t[5], "3"),
    "getitem-negative": (lambda t: t[-4], "-4"),
    "getitem-second-dim": (lambda t: t[:, 7], "7"),
    "getitem-tensor": (lambda t: t[dl.tensor([0, 5])], "5"),
    "setitem": (lambda t: t.__setitem__(3, 1.0), "3"),
    "index_select-functional": (lambda t: dl.index_select(t, 0, dl.tensor([5])), "5"),
    "index_select-method": (lambda t: t.index_select(0, dl.tensor([5])), "5"),
    "select": (lambda t: dl.select(t, 0, 3), "3"),
    "size-dim": (lambda t: t.size(3), "3"),
}


@pytest.mark.parametrize("form", list(INDEX_FORMS))
def test_index_out_of_range(form):
    fn, needle = INDEX_FORMS[form]
    t = dl.ones(3, 4)
    e = check(lambda: fn(t), IndexError, needle)
    msg = str(e.value)
    assert "3" in msg or "[3, 4]" in msg  # the size that was exceeded
    if form.startswith(("index_select", "select")):
        assert form.split("-")[0] in msg


def test_gather_index_out_of_range():
    t = dl.ones(3, 4)
    with pytest.raises(RuntimeError):  # torch raises RuntimeError (not IndexError) for gather
        torch.gather(torch.ones(3, 4), 1, torch.tensor([[9]]))
    check(lambda: dl.gather(t, 1, dl.tensor([[9]])), RuntimeError, "gather", "9", "4")


def test_index_error_names_dimension_and_size_like_torch():
    t = dl.ones(3, 4)
    with pytest.raises(IndexError) as e:
        t[5]
    with pytest.raises(IndexError) as te:
        torch.ones(3, 4)[5]
    assert str(te.value) in str(e.value) or ("dimension 0" in str(e.value) and "size 3" in str(e.value))
    assert raised_here(e)


# -- other boundaries: creation, conversion, reductions ----------------------------------------------

@pytest.mark.parametrize("fn,exc,needles", [
    (lambda: dl.tensor([[1, 2], [3]]), ValueError, ("ragged",)),
    (lambda: dl.zeros(-1), RuntimeError, ("zeros", "negative", "-1")),
    (lambda: dl.ones(2).reshape(3), RuntimeError, ("reshape", "[2]", "3")),
    (lambda: dl.ones(2, 3).sum(dim=2), IndexError, ("sum", "dimension out of range", "2")),
    (lambda: dl.ones(2, 3).permute(0, 0), RuntimeError, ("permute",)),
    (lambda: dl.cat([dl.ones(2, 3), dl.ones(2, 4)]), ValueError, ("cat", "[2, 4]", "3")),
    (lambda: dl.ones(2, requires_grad=True).numpy(), RuntimeError, ("numpy", "detach")),
    (lambda: dl.ones(2, dtype=dl.int64).requires_grad_(), RuntimeError, ("int64", "floating")),
    (lambda: dl.exp("x"), TypeError, ("exp", "str")),
], ids=["ragged", "negative-size", "reshape", "sum-dim", "permute", "cat", "numpy-grad", "int-grad", "exp-str"])
def test_other_errors_end_in_user_code(fn, exc, needles):
    check(fn, exc, *needles)
