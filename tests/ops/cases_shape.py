"""OpCases for shape ops (reshape/view/permute/expand/squeeze/flatten, cat/stack/split, flip/roll, tril/triu,
repeat/tile, constant pad), plus plain tests for views, memory sharing and error messages."""

import pytest
import torch
import torch.nn.functional as TF

import danlu as dl
from danlu.ops.shape import pad_constant

from .harness import Arg, OpCase


def both(name, f, samples, **kw):
    """A case whose call is the same for both libraries: ``f(lib, *tensors)``."""
    return OpCase(name, lambda *a: f(dl, *a), lambda *a: f(torch, *a), samples, **kw)


def first_dim_roll(m, x):
    return m.roll(x, 1, 0)


CASES = [
    # -- reshape / view ----------------------------------------------------------------------------------
    both("reshape", lambda m, x: (x.reshape(-1), x.reshape(2, -1), m.reshape(x, (6, 2)), x.reshape((-1, 3, 1))),
         [[Arg((3, 4))], [Arg((2, 6))], [Arg((12,))]]),
    both("reshape_0d_empty", lambda m, x: (x.reshape(1), x.reshape(()), x.reshape(-1), x.reshape(1, 1, -1)),
         [[Arg(())], [Arg((1,))]]),
    both("reshape_size0", lambda m, x: (x.reshape(-1), x.reshape(3, 0, 5), x.reshape(5, 0, 3)),
         [[Arg((0, 5, 3))]]),
    both("reshape_as", lambda m, x, y: x.reshape_as(y), [[Arg((3, 4)), Arg((2, 6), grad=False)]]),
    # view needs a viewable layout: the harness's non-contiguous copies would (rightly) be refused.
    both("view", lambda m, x: (x.view(-1), x.view(2, 6), x.view((4, 3)), x.view(3, 2, 2)), [[Arg((3, 4))]],
         noncontig=False),
    both("view_noncontig_ok", lambda m, x: (x.view(3, 2, 2), x.view(3, 4, 1), x[:, ::2].view(3, 1, 2)),
         [[Arg((3, 4))]]),  # splitting the strided last dim is always viewable
    both("view_as", lambda m, x, y: x.view_as(y), [[Arg((2, 3)), Arg((6,), grad=False)]], noncontig=False),
    # -- permute / transpose / t / T / mT / movedim ------------------------------------------------------
    both("permute", lambda m, x: (x.permute(2, 0, 1), m.permute(x, (1, 2, 0)), x.permute(-1, -3, -2)),
         [[Arg((2, 3, 4))], [Arg((1, 0, 2))]]),
    both("permute_0d_1d", lambda m, x: x.permute(tuple(range(x.ndim))), [[Arg(())], [Arg((3,))]]),
    both("transpose", lambda m, x: (x.transpose(0, 1), m.transpose(x, -1, 0), x.swapaxes(1, 2), x.swapdims(0, 0)),
         [[Arg((2, 3, 4))], [Arg((1, 3, 0))]]),
    both("transpose_0d_1d", lambda m, x: (x.transpose(0, -1), x.t(), x.T), [[Arg(())], [Arg((3,))]]),
    both("t", lambda m, x: (x.t(), m.t(x), x.T, x.mT), [[Arg((3, 4))], [Arg((1, 2))], [Arg((0, 2))]]),
    both("T_mT_3d", lambda m, x: (x.permute(2, 1, 0), x.mT, x.mT.mT), [[Arg((2, 3, 4))]]),
    both("movedim", lambda m, x: (x.movedim(0, -1), m.movedim(x, (0, 1), (2, 0)), x.moveaxis(-1, 1),
                                  m.movedim(x, (2, 0), (0, 2))),
         [[Arg((2, 3, 4))]]),
    # -- expand / broadcast ------------------------------------------------------------------------------
    both("expand", lambda m, x: (x.expand(3, 4), x.expand(2, -1, 4), x.expand(3, -1), m.broadcast_to(x, (2, 3, 4))),
         [[Arg((3, 1))], [Arg((1, 4))], [Arg((1, 1))]]),
    both("expand_0d", lambda m, x: (x.expand(2, 3), x.expand(()), m.broadcast_to(x, (0,))), [[Arg(())]]),
    both("expand_same_and_size0", lambda m, x: (x.expand(3, 0), x.expand(2, 3, 0)), [[Arg((3, 0))]]),
    both("expand_as", lambda m, x, y: x.expand_as(y), [[Arg((3, 1)), Arg((2, 3, 4), grad=False)]]),
    both("broadcast_tensors", lambda m, a, b, c: m.broadcast_tensors(a, b, c),
         [[Arg((3, 1)), Arg((4,)), Arg(())], [Arg((2, 1, 3)), Arg((1, 4, 1)), Arg((3,))],
          [Arg((0, 1)), Arg((1, 3)), Arg((1,))]]),
    # -- squeeze / unsqueeze / flatten / unflatten / ravel -----------------------------------------------
    both("squeeze", lambda m, x: (x.squeeze(), m.squeeze(x, 0), x.squeeze(1), x.squeeze(-1), x.squeeze((0, 2)),
                                  x.squeeze(dim=(1, -1))),
         [[Arg((1, 3, 1))], [Arg((1, 1, 1))], [Arg((2, 3, 4))], [Arg((1, 0, 1))]]),
    both("squeeze_0d", lambda m, x: (x.squeeze(), x.squeeze(0), x.squeeze(-1)), [[Arg(())]]),
    both("unsqueeze", lambda m, x: (x.unsqueeze(0), m.unsqueeze(x, -1), x.unsqueeze(1), x.unsqueeze(-2)),
         [[Arg((3, 4))], [Arg((0,))]]),
    both("unsqueeze_0d", lambda m, x: (x.unsqueeze(0), x.unsqueeze(-1)), [[Arg(())]]),
    both("flatten", lambda m, x: (x.flatten(), m.flatten(x, 1), x.flatten(0, 1), x.flatten(-2, -1), x.flatten(1, 1)),
         [[Arg((2, 3, 4))], [Arg((2, 0, 3))]]),
    both("flatten_0d", lambda m, x: (x.flatten(), x.ravel(), m.flatten(x, 0, -1)), [[Arg(())]]),
    both("unflatten", lambda m, x: (x.unflatten(1, (3, -1)), m.unflatten(x, -1, (2, 2, 3)), x.unflatten(0, (1, 2))),
         [[Arg((2, 12))]]),
    both("ravel", lambda m, x: (x.ravel(), m.ravel(x)), [[Arg((2, 3, 4))], [Arg((1,))]]),
    # -- clone / contiguous ------------------------------------------------------------------------------
    both("clone", lambda m, x: (x.clone(), m.clone(x)), [[Arg((3, 4))], [Arg(())], [Arg((0, 2))]]),
    both("contiguous", lambda m, x: (x.contiguous(), x.t().contiguous(), x[:, ::2].contiguous()),
         [[Arg((3, 4))]]),
    both("clone_int_bool", lambda m, x: (x.clone(), x.contiguous(), x.t().contiguous()),
         [[Arg((3, 4), "int", low=-9, high=9)], [Arg((3, 4), "bool")]], grad=False),
    # -- cat / stack / hstack / vstack -------------------------------------------------------------------
    both("cat", lambda m, a, b: (m.cat([a, b]), m.cat((a, b), 0)),
         [[Arg((2, 3)), Arg((1, 3))], [Arg((0, 3)), Arg((2, 3))], [Arg((2,)), Arg((3,))]]),
    both("cat_dim", lambda m, a, b, c: (m.cat([a, b, c], 1), m.cat([a, b, c], dim=-1)),
         [[Arg((2, 3)), Arg((2, 1)), Arg((2, 0))]]),
    both("cat_dimneg_3d", lambda m, a, b, c: m.cat([a, b, c], -1), [[Arg((2, 2, 1)), Arg((2, 2, 3)), Arg((2, 2, 2))]]),
    both("cat_dim1_3d", lambda m, a, b, c: m.cat([a, b, c], 1), [[Arg((2, 1, 2)), Arg((2, 3, 2)), Arg((2, 2, 2))]]),
    both("cat_one", lambda m, x: m.cat([x], 1), [[Arg((2, 3))]]),
    both("cat_concat_aliases", lambda m, a, b: (m.concat([a, b], 1), m.concatenate([a, b], -1)),
         [[Arg((2, 3)), Arg((2, 2))]]),
    both("cat_promote", lambda m, a, b: m.cat([a, b], 0),
         [[Arg((2, 3)), Arg((1, 3), dtype="float64")], [Arg((2, 3)), Arg((2, 3), "int", low=-5, high=5)],
          [Arg((2, 3), "bool"), Arg((1, 3), "int", low=-5, high=5)], [Arg((2,), "bool"), Arg((1,))]]),
    # PyTorch skips legacy empty 1-D tensors (shape (0,)) in cat, whatever the others' rank.
    both("cat_legacy_empty", lambda m, a, e, b: (m.cat([a, e, b], 1), m.cat([e, a], 0), m.cat([a, e])),
         [[Arg((2, 3)), Arg((0,)), Arg((2, 2))], [Arg((2, 3)), Arg((0,), dtype="float64"), Arg((2, 1))]]),
    both("cat_int", lambda m, a, b: m.cat([a, b], 1),
         [[Arg((2, 3), "int", low=-5, high=5), Arg((2, 1), "int", low=-5, high=5, dtype="int32")]], grad=False),
    both("stack", lambda m, a, b: (m.stack([a, b]), m.stack((a, b), 1), m.stack([a, b], -1), m.stack([a], 0)),
         [[Arg((2, 3)), Arg((2, 3))], [Arg((1,)), Arg((1,))], [Arg((0, 2)), Arg((0, 2))]]),
    both("stack_0d", lambda m, a, b: (m.stack([a, b]), m.stack([a, b], -1)), [[Arg(()), Arg(())]]),
    both("stack_promote", lambda m, a, b: m.stack([a, b]), [[Arg((3,)), Arg((3,), "int", low=-3, high=3)]]),
    both("hstack_vstack", lambda m, a, b: (m.hstack([a, b]), m.vstack([a, b]), m.hstack((a, b, a))),
         [[Arg((2, 3)), Arg((2, 3))], [Arg((3,)), Arg((3,))], [Arg(()), Arg(())], [Arg((2, 1, 2)), Arg((2, 1, 2))]]),
    both("vstack_1d_2d", lambda m, a, b: m.vstack([a, b]), [[Arg((3,)), Arg((2, 3))]]),
    both("hstack_2d", lambda m, a, b: m.hstack([a, b]), [[Arg((2, 3)), Arg((2, 1))]]),
    # -- split / chunk / tensor_split / unbind -----------------------------------------------------------
    both("split_int", lambda m, x: (x.split(2), m.split(x, 3, 1), x.split(1, -1), x.split(5), x.split(4, 1)),
         [[Arg((5, 4))], [Arg((0, 4))]]),
    both("split_sections", lambda m, x: (x.split([1, 3, 1]), m.split(x, [2, 0, 2], 1), x.split((5,))),
         [[Arg((5, 4))]]),
    both("split_partial_use", lambda m, x: x.split(2)[1], [[Arg((5, 3))]]),
    both("chunk", lambda m, x: (x.chunk(2), m.chunk(x, 3, 1), x.chunk(5), x.chunk(6, -1), x.chunk(1)),
         [[Arg((5, 4))], [Arg((6, 6))], [Arg((0, 3))]]),
    both("tensor_split", lambda m, x: (x.tensor_split(3), m.tensor_split(x, 2, 1), x.tensor_split([1, 3]),
                                       x.tensor_split((2, 2, 9), dim=1), x.tensor_split(7), x.tensor_split([-2]),
                                       x.tensor_split([3, 1]), x.tensor_split([-9, 2], 1),
                                       x.tensor_split(m.tensor([1, 3])), x.tensor_split(m.tensor(2), 1)),
         [[Arg((5, 4))]]),
    both("unbind", lambda m, x: (x.unbind(), m.unbind(x, 1), x.unbind(-1)), [[Arg((2, 3, 4))], [Arg((1, 2, 1))]]),
    both("unbind_list", lambda m, x: list(x), [[Arg((3, 2))]]),
    # -- flip / roll -------------------------------------------------------------------------------------
    both("flip", lambda m, x: (x.flip(0), m.flip(x, (0, 1)), x.flip(-1), x.flip([0, -1]), m.fliplr(x), m.flipud(x)),
         [[Arg((3, 4))], [Arg((2, 3, 4))], [Arg((0, 3))]]),
    both("flip_method_varargs", lambda m, x: x.flip(0, 2), [[Arg((2, 3, 4))]]),
    both("flip_0d_empty_dims", lambda m, x: (x.flip(()), x.flip(0), x.flip(-1)), [[Arg(())]]),
    both("flip_no_dims", lambda m, x: x.flip(()), [[Arg((2, 3))]]),
    both("roll", lambda m, x: (x.roll(1), m.roll(x, -2), x.roll(5, 0), x.roll((1, -1), (0, 1)), x.roll(-7, -1),
                               m.roll(x, (2, 3), (1, 1))),
         [[Arg((3, 4))], [Arg((2, 3, 4))]]),
    both("roll_empty", lambda m, x: (x.roll(1), x.roll(2, 0)), [[Arg((0, 3))]]),
    both("roll_0d", lambda m, x: (x.roll(1), x.roll(-3)), [[Arg(())]]),
    both("roll_int", first_dim_roll, [[Arg((3, 2), "int", low=-9, high=9)]], grad=False),
    # -- tril / triu -------------------------------------------------------------------------------------
    both("tril_triu", lambda m, x: (x.tril(), m.tril(x, 1), x.tril(-1), x.triu(), m.triu(x, 2), x.triu(-2),
                                    x.tril(9), x.triu(-9)),
         [[Arg((3, 4))], [Arg((4, 3))], [Arg((2, 3, 3))], [Arg((0, 3))], [Arg((1, 1))]]),
    both("tril_triu_int_bool", lambda m, x: (x.tril(), x.triu(1)), [[Arg((3, 3), "int", low=-9, high=9)],
                                                                   [Arg((3, 3), "bool")]], grad=False),
    # -- repeat / tile / repeat_interleave ---------------------------------------------------------------
    both("repeat", lambda m, x: (x.repeat(2, 3), x.repeat(1, 1), x.repeat(2, 1, 2), x.repeat((3, 1)), x.repeat(0, 2)),
         [[Arg((2, 3))], [Arg((1, 1))]]),
    both("repeat_1d_0d", lambda m, x: (x.repeat(3), x.repeat(2, 2)), [[Arg((2,))], [Arg(())]]),
    both("tile", lambda m, x: (x.tile((2,)), m.tile(x, (2, 1)), x.tile((2, 1, 3)), x.tile(2)),
         [[Arg((2, 3))], [Arg(())]]),
    both("repeat_interleave", lambda m, x: (x.repeat_interleave(2), m.repeat_interleave(x, 3, 0),
                                            x.repeat_interleave(2, dim=-1), x.repeat_interleave(1, 1),
                                            x.repeat_interleave(0, 0)),
         [[Arg((2, 3))]]),
    both("repeat_interleave_tensor", lambda m, x: (x.repeat_interleave(m.tensor([1, 0, 2]), dim=1),
                                                   m.repeat_interleave(x, m.tensor([2, 1]), 0),
                                                   x.repeat_interleave(m.tensor([1, 2, 0, 1, 1, 3]))),
         [[Arg((2, 3))]]),
    both("repeat_interleave_0d", lambda m, x: x.repeat_interleave(3), [[Arg(())]]),
    # -- constant pad (danlu.ops.shape.pad_constant == F.pad mode='constant') ----------------------------
    OpCase("pad_constant", lambda x: (pad_constant(x, (1, 2)), pad_constant(x, (0, 1, 2, 0), 0.5),
                                      pad_constant(x, [1, 1, 1, 1, 1, 1], -1.0)),
           lambda x: (TF.pad(x, (1, 2)), TF.pad(x, (0, 1, 2, 0), value=0.5), TF.pad(x, [1, 1, 1, 1, 1, 1], value=-1.0)),
           [[Arg((2, 3, 4))], [Arg((1, 0, 2))]]),
    OpCase("pad_negative", lambda x: (pad_constant(x, (-1, 2)), pad_constant(x, (-1, -1, 1, -2)),
                                      pad_constant(x, (0, -4)), pad_constant(x, (-2, 1, 0, 0, -1, 1))),
           lambda x: (TF.pad(x, (-1, 2)), TF.pad(x, (-1, -1, 1, -2)), TF.pad(x, (0, -4)),
                      TF.pad(x, (-2, 1, 0, 0, -1, 1))),
           [[Arg((2, 3, 4))]]),
    OpCase("pad_empty_and_1d", lambda x: (pad_constant(x, ()), pad_constant(x, (2, 0), 3.0)),
           lambda x: (TF.pad(x, ()), TF.pad(x, (2, 0), value=3.0)), [[Arg((3,))], [Arg((0,))]]),
    OpCase("pad_int", lambda x: pad_constant(x, (1, 1), 7), lambda x: TF.pad(x, (1, 1), value=7),
           [[Arg((2, 3), "int", low=-9, high=9)]], grad=False),
]


# Second derivatives through the shape ops (their VJPs are shape ops too).
def _second(f):
    def run(m, x, v):
        with m.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            (g,) = m.autograd.grad(f(m, x), x, v, create_graph=True)
        return g
    return run


CASES += [
    OpCase("shape_ops_double_backward", lambda x, v: _second(_shape_chain)(dl, x, v),
           lambda x, v: _second(_shape_chain)(torch, x, v), [[Arg((2, 3)), Arg((2, 6))]]),
]


def _shape_chain(m, x):
    y = m.cat([x, x.flip(1).roll(1, 0)], 1) ** 2
    return y.tril(1).t().reshape(6, 2).t() * m.stack(x.repeat(1, 2).split(3, 1)).permute(1, 0, 2).reshape(2, 6)


# -- plain tests: views, memory, errors -----------------------------------------------------------------

def test_view_shares_memory_and_version():
    x = dl.zeros(2, 3)
    v = x.view(3, 2)
    v[0, 0] = 5.0
    assert x[0, 0].item() == 5.0
    t = x.t()
    t[1, 0] = 7.0
    assert x[0, 1].item() == 7.0
    assert x.transpose(0, 1).data_ptr() == x.data_ptr()
    e = dl.zeros(3, 1).expand(3, 4)
    assert e.shape == (3, 4)


def test_view_refuses_non_viewable_strides():
    x = dl.zeros(3, 4).t()
    with pytest.raises(RuntimeError, match=r"view.*not compatible.*reshape"):
        x.view(12)
    assert x.reshape(12).shape == (12,)  # reshape copies instead
    with pytest.raises(RuntimeError, match="view"):
        dl.zeros(3, 4)[:, :2].view(6)
    assert dl.zeros(3, 4)[:, ::2].view(6).shape == (6,)  # strides 4 = 2 * 2 merge: viewable, as in PyTorch


def test_contiguous_returns_self_when_contiguous():
    x = dl.zeros(2, 3)
    assert x.contiguous() is x
    y = x.t().contiguous()
    assert y.is_contiguous() and y.shape == (3, 2)
    assert x[:, ::2].contiguous().is_contiguous()
    assert not x.t().clone().is_contiguous()  # clone keeps a dense layout, as PyTorch's preserve_format


def test_shape_errors_name_op_and_sizes():
    x = dl.zeros(2, 3)
    with pytest.raises(dl.ShapeError, match=r"reshape.*\[4, 2\].*6"):
        x.reshape(4, 2)
    with pytest.raises(dl.ShapeError, match="invalid"):
        dl.zeros(0, 3).reshape(0, -1)  # -1 is ambiguous for 0 elements, as in PyTorch
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        x.reshape(-1, -1)
    with pytest.raises(dl.ShapeError, match="expand"):
        x.expand(3, 3)
    with pytest.raises(dl.ShapeError, match=r"cat.*dimension"):
        dl.cat([x, dl.zeros(2, 2)], 0)
    with pytest.raises(dl.ShapeError, match="same number of dimensions"):
        dl.cat([x, dl.zeros(3)], 0)
    with pytest.raises(dl.ShapeError, match="stack"):
        dl.stack([x, dl.zeros(3, 2)])
    with pytest.raises(IndexError, match="out of range"):
        x.permute(0, 2)
    with pytest.raises(RuntimeError, match="permute"):
        x.permute(0, 0)
    with pytest.raises(IndexError, match="out of range"):
        x.squeeze(2)
    with pytest.raises(RuntimeError, match="tril"):
        dl.zeros(3).tril()
    with pytest.raises(dl.ShapeError, match="split"):
        x.split([1, 1], 1)
    with pytest.raises(RuntimeError, match="repeat"):
        x.repeat(2)
    with pytest.raises(RuntimeError, match="pad"):
        pad_constant(x, (1, 2, 3))
    with pytest.raises(RuntimeError, match="negative"):
        pad_constant(x, (-2, -2))
    with pytest.raises(RuntimeError, match="multiple times"):
        x.flip(1, -1)
    with pytest.raises(IndexError, match="no dimensions"):
        dl.tensor(1.0).roll(1, 0)
    with pytest.raises(RuntimeError, match="sections"):
        x.tensor_split(0)
    with pytest.raises(RuntimeError, match="split_size"):
        x.split(0)


def test_cat_legacy_empty_grad():
    a = dl.ones(2, 3, requires_grad=True)
    e = dl.zeros(0, requires_grad=True)
    dl.cat([a, e], 1).sum().backward()
    assert a.grad.tolist() == [[1.0] * 3] * 2
    assert e.grad is not None and e.grad.shape == (0,)  # PyTorch gives an empty gradient, not None


def test_iter_and_unbind():
    x = dl.arange(6).reshape(3, 2)
    assert [r.tolist() for r in x] == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(TypeError, match="0-d"):
        iter(dl.tensor(1.0))
