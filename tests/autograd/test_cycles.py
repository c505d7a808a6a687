"""Tensors, graphs and compiled calls must be freed by reference counting alone.

A reference cycle (a leaf and its AccumulateGrad node pointing at each other, a self-recursive closure
holding a call's arguments) keeps every array it reaches alive until the garbage collector happens to
run: large outputs piled up by the hundreds of megabytes and each new one was page-faulted in afresh.
"""

import gc

import pytest

import danlu as dl
import danlu.nn.functional as F


def _cyclic_garbage(fn, calls=3):
    """Objects that only the cycle collector could free after ``calls`` calls of ``fn``."""
    fn()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(calls):
            fn()
        gc.collect()
        found = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
    return found


def _mlp():
    dl.manual_seed(0)
    return dl.nn.Sequential(dl.nn.Linear(8, 16), dl.nn.ReLU(), dl.nn.Linear(16, 3))


def test_fresh_leaf_and_its_graph():
    assert _cyclic_garbage(lambda: (dl.randn(3, requires_grad=True) * 2).sum().backward()) == []
    assert _cyclic_garbage(lambda: (dl.randn(3, requires_grad=True) * 2).sum()) == []


def test_views_inplace_and_double_backward():
    def view_inplace():
        t = dl.randn(3, 4, requires_grad=True) * 1
        t[0].mul_(2)
        t.sum().backward()

    def double():
        w = dl.randn(3, requires_grad=True)
        (g,) = dl.autograd.grad((w ** 3).sum(), w, create_graph=True)
        g.sum().backward()

    assert _cyclic_garbage(view_inplace) == []
    assert _cyclic_garbage(double) == []


def test_eager_and_compiled_training_steps():
    model = _mlp()
    opt = dl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = dl.randn(4, 8), dl.randint(0, 3, (4,))

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    assert _cyclic_garbage(step) == []
    assert _cyclic_garbage(dl.compile(step)) == []


@pytest.mark.parametrize("grad", [False, True])
def test_compiled_module_calls(grad):
    cm = dl.compile(_mlp())
    x = dl.randn(4, 8)
    if grad:
        assert _cyclic_garbage(lambda: cm(x).sum().backward()) == []
    else:
        with dl.no_grad():
            assert _cyclic_garbage(lambda: cm(x)) == []


def test_leaf_hooks_outlive_each_graph():
    w = dl.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    w.register_hook(lambda g: seen.append(g.tolist()))
    for k in (1.0, 3.0):
        (w * k).sum().backward()
        gc.collect()
    assert seen == [[1.0, 1.0], [3.0, 3.0]]
    assert w.grad.tolist() == [4.0, 4.0]


def test_multi_dot_frees_its_operands():
    a, b, c = dl.randn(2, 3), dl.randn(3, 4), dl.randn(4, 2)
    assert _cyclic_garbage(lambda: dl.linalg.multi_dot([a, b, c])) == []
