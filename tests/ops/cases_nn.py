"""OpCases for danlu.nn.functional (and the nn primitives: softmax, log_softmax, cross_entropy, nll_loss,
embedding) against torch.nn.functional, plus plain tests of their error paths and edge values.

Non-smooth functions get samples kept away from their kinks (where finite differences and PyTorch's
choice of subgradient are ill-defined). Random functions (dropout...) are tested in test_nn_random.py.
"""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import danlu as dl
import danlu.nn.functional as F

from .harness import Arg, OpCase

ACT_SHAPES = [(3, 4), (), (0, 3), (2, 1, 3)]


def both(name, f, samples, **kw):
    """A case whose call is the same for both libraries: ``f(functional_module, *args)``."""
    return OpCase(name, lambda *a: f(F, *a), lambda *a: f(TF, *a), samples, **kw)


def fixed(values, dtype=None):
    """An Arg holding exactly ``values``."""
    a = np.asarray(values)
    return Arg(a.shape, "custom", fill=lambda r, s: a, dtype=dtype, grad=False)


def values(v):
    """A differentiable Arg holding exactly ``v``."""
    a = np.asarray(v, dtype=np.float64)
    return Arg(a.shape, "custom", fill=lambda r, s: a)


def away(*kinks, margin=0.1, low=-4.0, high=4.0):
    """A fill of uniform values that keeps ``margin`` away from every kink."""
    def fill(rng, shape):
        a = rng.uniform(low, high, shape)
        for k in kinks:
            near = np.abs(a - k) < margin
            a = np.where(near, k + np.where(a >= k, margin, -margin) * 2, a)
        return a
    return fill


def act(name, f, kinks=(), shapes=ACT_SHAPES, low=-4.0, high=4.0, **kw):
    fill = away(*kinks, low=low, high=high)
    return both(name, f, [[Arg(s, "custom", fill=fill)] for s in shapes], **kw)


def targets(n_classes, ignore=None, every=3):
    """Class indices in [0, C), with ``ignore`` at every ``every``-th position from the second on."""
    def fill(rng, shape):
        t = rng.integers(0, n_classes, shape)
        if ignore is not None and t.size:
            flat = t.reshape(-1)
            flat[1::every] = ignore
        return t
    return fill


def index_arg(shape, n_classes, ignore=None):
    return Arg(shape, "custom", fill=targets(n_classes, ignore), dtype="int64", grad=False)


def prob_arg(shape, class_dim=1):
    def fill(rng, s):
        a = rng.uniform(0.1, 1.0, s)
        return a / a.sum(axis=class_dim, keepdims=True)
    return Arg(shape, "custom", fill=fill, grad=False)


def signs(shape):
    return Arg(shape, "custom", fill=lambda r, s: r.choice([-1.0, 1.0], s), grad=False)


def _req(lib, x):
    """``x`` as a tensor that requires grad (a fresh leaf when the harness passed a plain one)."""
    return x if x.requires_grad else x.detach().requires_grad_(True)


def grad_of(loss_fn):
    """A case function returning d loss / d x with create_graph: differentiating it checks the
    backward primitives' own VJPs (second order)."""
    def f(lib, x, *rest):
        autograd, enable_grad = (dl.autograd, dl.enable_grad) if lib is F else (torch.autograd, torch.enable_grad)
        with enable_grad():  # gradcheck evaluates the function under no_grad
            x = _req(lib, x)
            return autograd.grad(loss_fn(lib, x, *rest), x, create_graph=True)[0]
    return f


# == activations ====================================================================================

ACTIVATIONS = [
    act("F_relu", lambda F, x: F.relu(x), kinks=(0,)),
    act("F_relu6", lambda F, x: F.relu6(x), kinks=(0, 6), low=-3, high=9),
    act("F_leaky_relu", lambda F, x: F.leaky_relu(x, 0.2), kinks=(0,)),
    act("F_elu", lambda F, x: F.elu(x), kinks=(0,)),
    act("F_elu_alpha", lambda F, x: F.elu(x, alpha=0.5), kinks=(0,)),
    act("F_selu", lambda F, x: F.selu(x), kinks=(0,)),
    act("F_celu", lambda F, x: F.celu(x, alpha=1.5), kinks=(0,)),
    act("F_gelu", lambda F, x: F.gelu(x)),
    act("F_gelu_tanh", lambda F, x: F.gelu(x, approximate="tanh")),
    act("F_silu", lambda F, x: F.silu(x)),
    act("F_mish", lambda F, x: F.mish(x)),
    act("F_softplus", lambda F, x: F.softplus(x), low=-30, high=30),
    both("F_softplus_at_zero", lambda F, x: (F.softplus(x), F.logsigmoid(x)), [[values([0.0, -1.0, 25.0])]]),
    act("F_softplus_beta", lambda F, x: F.softplus(x, beta=2.0, threshold=5.0), kinks=(2.5,)),
    act("F_softsign", lambda F, x: F.softsign(x), kinks=(0,)),
    act("F_tanh", lambda F, x: F.tanh(x)),
    act("F_sigmoid", lambda F, x: F.sigmoid(x)),
    act("F_hardtanh", lambda F, x: F.hardtanh(x), kinks=(-1, 1), low=-3, high=3),
    act("F_hardtanh_range", lambda F, x: F.hardtanh(x, -0.5, 2.0), kinks=(-0.5, 2), low=-3, high=3),
    act("F_hardsigmoid", lambda F, x: F.hardsigmoid(x), kinks=(-3, 3), low=-5, high=5),
    act("F_hardswish", lambda F, x: F.hardswish(x), kinks=(-3, 3), low=-5, high=5),
    act("F_logsigmoid", lambda F, x: F.logsigmoid(x), low=-40, high=40),
    act("F_hardshrink", lambda F, x: F.hardshrink(x, 0.7), kinks=(-0.7, 0.7)),
    act("F_softshrink", lambda F, x: F.softshrink(x, 0.7), kinks=(-0.7, 0.7)),
    act("F_tanhshrink", lambda F, x: F.tanhshrink(x)),
    act("F_threshold", lambda F, x: F.threshold(x, 0.3, -2.0), kinks=(0.3,)),
    act("F_rrelu_eval", lambda F, x: F.rrelu(x, 0.1, 0.3), kinks=(0,)),
    both("F_glu", lambda F, x: (F.glu(x), F.glu(x, 0)), [[Arg((4, 6))], [Arg((2, 3, 2))]]),
    both("F_prelu", lambda F, x, w: F.prelu(x, w),
         [[Arg((3, 4, 2), "custom", fill=away(0)), Arg((4,))], [Arg((3, 4), "custom", fill=away(0)), Arg((1,))],
          [Arg((5,), "custom", fill=away(0)), Arg((1,))]]),
    both("F_inplace_activations", lambda F, x: (F.relu(x.clone(), inplace=True), F.leaky_relu(x * 1.0, 0.1, True),
                                               F.hardtanh(x + 0.0, inplace=True), F.elu(x * 1.0, inplace=True)),
         [[Arg((3, 4), "custom", fill=away(-1, 0, 1))]]),
]

SOFTMAX_SAMPLES = [[Arg((3, 5)), 1], [Arg((3, 5)), 0], [Arg((2, 3, 4)), -1], [Arg(()), 0], [Arg((0, 3)), 1],
                   [Arg((4, 1)), 1], [Arg((2, 3, 4), low=-60, high=60), 1]]

SOFTMAX = [
    OpCase("softmax", dl.softmax, torch.softmax, SOFTMAX_SAMPLES),
    OpCase("log_softmax", dl.log_softmax, torch.log_softmax, SOFTMAX_SAMPLES),
    OpCase("softmax_methods", lambda x: (x.softmax(-1), x.log_softmax(0)),
           lambda x: (x.softmax(-1), x.log_softmax(0)), [[Arg((3, 4))]]),
    both("F_softmax", lambda F, x, d: (F.softmax(x, d), F.log_softmax(x, d), F.softmin(x, d)), SOFTMAX_SAMPLES),
    both("F_softmax_dtype", lambda F, x: (F.softmax(x, 1, dtype=torch.float64 if F is TF else dl.float64),
                                          F.log_softmax(x, 0, dtype=torch.float64 if F is TF else dl.float64)),
         [[Arg((3, 4))]], dtypes=("float32",)),
    OpCase("log_softmax_extreme", lambda x: dl.log_softmax(x, 1), lambda x: torch.log_softmax(x, 1),
           [[Arg((2, 3), "custom", fill=lambda r, s: np.array([[0.0, 1000.0, -1000.0], [-500.0, -501.0, -502.0]]))]]),
]


# == linear and embedding ===========================================================================

LINEAR = [
    both("F_linear", lambda F, x, w, b: F.linear(x, w, b),
         [[Arg((5, 3)), Arg((4, 3)), Arg((4,))], [Arg((2, 5, 3)), Arg((4, 3)), Arg((4,))],
          [Arg((3,)), Arg((4, 3)), Arg((4,))], [Arg((0, 3)), Arg((2, 3)), Arg((2,))]]),
    both("F_linear_no_bias", lambda F, x, w: F.linear(x, w), [[Arg((5, 3)), Arg((4, 3))], [Arg((2, 3)), Arg((3,))]]),
    both("F_bilinear", lambda F, x1, x2, w, b: F.bilinear(x1, x2, w, b),
         [[Arg((4, 3)), Arg((4, 2)), Arg((5, 3, 2)), Arg((5,))],
          [Arg((2, 3, 3)), Arg((2, 3, 2)), Arg((1, 3, 2)), Arg((1,))]]),
    both("F_bilinear_no_bias", lambda F, x1, x2, w: F.bilinear(x1, x2, w),
         [[Arg((4, 3)), Arg((4, 2)), Arg((5, 3, 2))]]),
]


def emb_idx(shape, n, pad=None):
    def fill(rng, s):
        a = rng.integers(0, n, s)
        if pad is not None and a.size:
            a.reshape(-1)[::2] = pad
        return a
    return Arg(shape, "custom", fill=fill, dtype="int64", grad=False)


EMBEDDING = [
    both("F_embedding", lambda F, i, w: F.embedding(i, w),
         [[emb_idx((2, 5), 4), Arg((4, 3))], [emb_idx((7,), 3), Arg((3, 2))], [emb_idx((), 4), Arg((4, 3))],
          [emb_idx((0, 2), 4), Arg((4, 3))]]),
    # The padding row's gradient is zero by definition, not by differentiation: compare with PyTorch only.
    both("F_embedding_padding", lambda F, i, w: F.embedding(i, w, padding_idx=1),
         [[emb_idx((3, 4), 5, pad=1), Arg((5, 3))]], numeric_grad=False),
    both("F_embedding_padding_negative", lambda F, i, w: F.embedding(i, w, padding_idx=-1),
         [[emb_idx((3, 4), 5, pad=4), Arg((5, 3))]], numeric_grad=False),
    # scale_grad_by_freq defines the gradient as the derivative divided by index counts: no numeric check.
    both("F_embedding_scale_grad_by_freq", lambda F, i, w: F.embedding(i, w, scale_grad_by_freq=True) ** 2,
         [[emb_idx((6, 4), 3), Arg((3, 2))]], numeric_grad=False),
    both("F_embedding_padding_freq", lambda F, i, w: F.embedding(i, w, padding_idx=0, scale_grad_by_freq=True),
         [[emb_idx((5, 3), 4, pad=0), Arg((4, 2))]], numeric_grad=False),
    # max_norm renormalizes the weight in place on every call, which finite differences cannot follow.
    both("F_embedding_max_norm", lambda F, i, w: F.embedding(i, w * 1.0, max_norm=1.0),
         [[emb_idx((3, 2), 4), Arg((4, 3), low=-3, high=3)]], numeric_grad=False),
    # Second order through embedding_backward. (PyTorch's double backward ignores scale_grad_by_freq, so
    # that option's adjoint is checked numerically in test_embedding_backward_adjoint instead.)
    both("F_embedding_grad", grad_of(lambda F, w, i: (F.embedding(i, w, padding_idx=1) ** 2).sum()),
         [[Arg((4, 3)), emb_idx((3, 5), 4, pad=1)]], numeric_grad=False),
    both("F_embedding_grad_numeric", grad_of(lambda F, w, i: (F.embedding(i, w) ** 3).sum()),
         [[Arg((4, 3)), emb_idx((3, 5), 4)]]),
    both("F_one_hot", lambda F, i: F.one_hot(i, 5), [[emb_idx((2, 3), 5)], [emb_idx((0,), 5)]], grad=False),
]


# == padding ========================================================================================

def pad_case(name, mode, samples, **kw):
    return both(name, lambda F, x, p: F.pad(x, p, mode=mode), [[Arg(s), p] for s, p in samples], **kw)


PAD = [
    both("F_pad_constant", lambda F, x, p: (F.pad(x, p), F.pad(x, p, value=1.5)),
         [[Arg((2, 3)), (1, 2)], [Arg((2, 3, 4)), (1, 0, 2, 1, 0, 1)], [Arg((2, 3)), (-1, 1)], [Arg((3,)), (0, 0)],
          [Arg((0, 2)), (1, 1, 1, 1)]]),
    pad_case("F_pad_reflect", "reflect", [((1, 2, 5), (2, 3)), ((2, 5), (4, 1)), ((1, 2, 3, 4), (1, 2, 2, 1)),
                                          ((2, 3, 4), (3, 2, 1, 2)), ((1, 1, 3, 3, 4), (1, 1, 2, 2, 1, 0)),
                                          ((1, 2, 5), (-1, 2))]),
    pad_case("F_pad_replicate", "replicate", [((1, 2, 5), (2, 3)), ((2, 3), (4, 1)), ((1, 2, 3, 4), (1, 2, 3, 1)),
                                              ((1, 2, 2, 2, 2), (1, 0, 2, 1, 3, 0)), ((1, 2, 5), (-2, 1))]),
    pad_case("F_pad_circular", "circular", [((1, 2, 5), (2, 3)), ((2, 3), (3, 1)), ((1, 2, 3, 4), (1, 2, 3, 1)),
                                            ((1, 1, 2, 3, 2), (1, 1, 0, 2, 2, 0))]),
]


# == normalization ==================================================================================

def with_stats(fn, stats_only=False):
    """Run a batch_norm-like ``fn`` on fresh running statistics; return the output, or the updated
    statistics (computed outside autograd, so finite differences would see a dependence that the
    gradient rightly has not: those cases check values only)."""
    def f(lib, x, *rest):
        c = x.shape[1]
        rm, rv = (x.new_zeros(c) + 0.5, x.new_ones(c) * 2.0)
        out = fn(lib, x, rm, rv, *rest)
        return (rm, rv) if stats_only else out
    return f


NORM = [
    both("F_layer_norm", lambda F, x: F.layer_norm(x, x.shape[-1:]),
         [[Arg((3, 5))], [Arg((2, 3, 4))], [Arg((0, 4))], [Arg((4, 1))]]),
    both("F_layer_norm_affine", lambda F, x, w, b: F.layer_norm(x, w.shape, w, b, eps=1e-3),
         [[Arg((3, 5)), Arg((5,)), Arg((5,))], [Arg((2, 3, 4)), Arg((3, 4)), Arg((3, 4))]]),
    both("F_layer_norm_weight_only", lambda F, x, w: F.layer_norm(x, (4,), w), [[Arg((2, 3, 4)), Arg((4,))]]),
    both("F_rms_norm", lambda F, x, w: (F.rms_norm(x, (4,), w), F.rms_norm(x, (3, 4), eps=1e-3)),
         [[Arg((2, 3, 4)), Arg((4,))]]),
    both("F_group_norm", lambda F, x: (F.group_norm(x, 2), F.group_norm(x, 1)),
         [[Arg((3, 4, 5))], [Arg((2, 4, 2, 3))], [Arg((2, 8))]]),
    both("F_group_norm_affine", lambda F, x, w, b: F.group_norm(x, 3, w, b, eps=1e-3),
         [[Arg((2, 6, 3)), Arg((6,)), Arg((6,))], [Arg((2, 3, 2, 2)), Arg((3,)), Arg((3,))]]),
    both("F_batch_norm_train", with_stats(lambda F, x, rm, rv, w, b: F.batch_norm(x, rm, rv, w, b, True, 0.3)),
         [[Arg((4, 3)), Arg((3,)), Arg((3,))], [Arg((2, 3, 5)), Arg((3,)), Arg((3,))],
          [Arg((2, 3, 2, 2)), Arg((3,)), Arg((3,))]]),
    both("F_batch_norm_running_stats", with_stats(lambda F, x, rm, rv: F.batch_norm(x, rm, rv, None, None, True, 0.3),
                                                  stats_only=True),
         [[Arg((4, 3))], [Arg((2, 3, 5))], [Arg((2, 3, 2, 2))]], grad=False),
    both("F_batch_norm_train_no_affine", with_stats(lambda F, x, rm, rv: F.batch_norm(x, rm, rv, training=True)),
         [[Arg((5, 2))], [Arg((2, 2, 3, 1))]]),
    both("F_batch_norm_train_no_stats", lambda F, x, w: F.batch_norm(x, None, None, w, None, True, 0.1, 1e-3),
         [[Arg((4, 3, 2)), Arg((3,))]]),
    both("F_batch_norm_eval", lambda F, x, rm, rv, w, b: F.batch_norm(x, rm, rv, w, b, False, 0.1, 1e-3),
         [[Arg((4, 3)), Arg((3,), grad=False), Arg((3,), "pos", grad=False), Arg((3,)), Arg((3,))],
          [Arg((2, 3, 2, 2)), Arg((3,), grad=False), Arg((3,), "pos", grad=False), Arg((3,)), Arg((3,))]]),
    both("F_instance_norm", lambda F, x, w, b: F.instance_norm(x, weight=w, bias=b),
         [[Arg((2, 3, 5)), Arg((3,)), Arg((3,))], [Arg((2, 2, 3, 3)), Arg((2,)), Arg((2,))]]),
    both("F_instance_norm_stats", with_stats(lambda F, x, rm, rv: F.instance_norm(x, rm, rv, momentum=0.2)),
         [[Arg((3, 2, 4))]]),
    both("F_instance_norm_running_stats",
         with_stats(lambda F, x, rm, rv: F.instance_norm(x, rm, rv, momentum=0.2), stats_only=True),
         [[Arg((3, 2, 4))]], grad=False),
    both("F_normalize", lambda F, x: (F.normalize(x), F.normalize(x, p=1.0, dim=0), F.normalize(x, p=3.0, dim=-1)),
         [[Arg((3, 4), "nonzero")], [Arg((2, 3, 2), "nonzero")]]),
    both("F_cosine_similarity", lambda F, a, b: (F.cosine_similarity(a, b), F.cosine_similarity(a, b, dim=-1)),
         [[Arg((3, 4)), Arg((3, 4))], [Arg((2, 3, 4)), Arg((1, 3, 4))], [Arg((3, 4)), Arg((4,))]]),
    both("F_pairwise_distance", lambda F, a, b: (F.pairwise_distance(a, b), F.pairwise_distance(a, b, p=1.0),
                                               F.pairwise_distance(a, b, keepdim=True)),
         [[Arg((3, 4)), Arg((3, 4))], [Arg((3, 4)), Arg((4,))], [Arg((5,)), Arg((5,))]]),
]


# == class-index and probability losses =============================================================

def ce(**kw):
    """cross_entropy with fixed keyword options; a weight, if any, is the last tensor argument."""
    def f(F, x, t, *w):
        return F.cross_entropy(x, t, *w, **kw)
    return f


def nll(**kw):
    def f(F, x, t, *w):
        return F.nll_loss(x, t, *w, **kw)
    return f


def class_samples(with_weight=False, ignore=None):
    w = [Arg((5,), "pos", grad=False)] if with_weight else []
    w3 = [Arg((3,), "pos", grad=False)] if with_weight else []
    return [
        [Arg((6, 5)), index_arg((6,), 5, ignore)] + w,
        [Arg((2, 5, 3)), index_arg((2, 3), 5, ignore)] + w,
        [Arg((2, 5, 2, 2)), index_arg((2, 2, 2), 5, ignore)] + w,
        [Arg((1, 3)), index_arg((1,), 3, ignore)] + w3,
    ]


CLASS_LOSSES = []
for _red in ("mean", "sum", "none"):
    CLASS_LOSSES += [
        both(f"F_cross_entropy_{_red}", ce(reduction=_red), class_samples()),
        both(f"F_cross_entropy_weight_{_red}", ce(reduction=_red), class_samples(True)),
        both(f"F_cross_entropy_ignore_{_red}", ce(reduction=_red), class_samples(True, ignore=-100)),
        both(f"F_cross_entropy_smoothing_{_red}", ce(reduction=_red, label_smoothing=0.2), class_samples(False, -100)),
        both(f"F_cross_entropy_weight_smoothing_{_red}", ce(reduction=_red, label_smoothing=0.3),
             class_samples(True, ignore=-100)),
        both(f"F_nll_loss_{_red}", nll(reduction=_red), class_samples()),
        both(f"F_nll_loss_weight_ignore_{_red}", nll(reduction=_red), class_samples(True, ignore=-100)),
    ]

CLASS_LOSSES += [
    both("F_cross_entropy_unbatched", lambda F, x, t: (F.cross_entropy(x, t), F.cross_entropy(x, t, reduction="none"),
                                                       F.nll_loss(x, t), F.nll_loss(x, t, reduction="none")),
         [[Arg((4,)), fixed(2, "int64")], [Arg((1,)), fixed(0, "int64")]]),
    both("F_cross_entropy_custom_ignore", ce(ignore_index=2, label_smoothing=0.1),
         [[Arg((6, 4)), index_arg((6,), 4)], [Arg((6, 4)), fixed([2, 2, 2, 0, 1, 2], "int64")]]),
    both("F_nll_loss_custom_ignore", nll(ignore_index=0), [[Arg((6, 4)), index_arg((6,), 4)]]),
    both("F_cross_entropy_all_ignored", lambda F, x, t: (F.cross_entropy(x, t), F.cross_entropy(x, t, reduction="sum"),
                                                         F.nll_loss(x, t)),
         [[Arg((3, 4)), fixed([-100, -100, -100], "int64")]], numeric_grad=False),  # the mean is 0/0 = nan
    both("F_cross_entropy_large_logits", ce(label_smoothing=0.1),
         [[Arg((3, 4), "custom", fill=lambda r, s: np.array([[1e4, 0.0, -1e4, 5.0], [-1e4, -1e4 + 1, -1e4 + 2, -1e4],
                                                              [88.0, 89.0, 90.0, 87.0]])), fixed([0, 2, 1], "int64")]]),
    both("F_cross_entropy_empty", lambda F, x, t: (F.cross_entropy(x, t, reduction="sum"),
                                                   F.cross_entropy(x, t, reduction="none")),
         [[Arg((0, 4)), index_arg((0,), 4)]]),
    both("F_cross_entropy_uint8_target", lambda F, x, t: F.cross_entropy(x, t),
         [[Arg((3, 4)), Arg((3,), "index", high=4, dtype="uint8")]]),
    # Second order through the fused backward primitive (and nll_loss's): gradients of gradients.
    both("F_cross_entropy_grad", grad_of(lambda F, x, t, w: F.cross_entropy(x, t, w, label_smoothing=0.2)),
         [[Arg((4, 5)), index_arg((4,), 5, -100), Arg((5,), "pos", grad=False)]]),
    both("F_cross_entropy_grad_none", grad_of(lambda F, x, t: (F.cross_entropy(x, t, reduction="none") ** 2).sum()),
         [[Arg((4, 5)), index_arg((4,), 5)]]),
    both("F_cross_entropy_grad_sum", grad_of(lambda F, x, t: F.cross_entropy(x, t, reduction="sum", ignore_index=1)),
         [[Arg((2, 5, 3)), index_arg((2, 3), 5)]]),
    both("F_nll_loss_grad", grad_of(lambda F, x, t, w: (F.nll_loss(x, t, w, reduction="none") ** 2).sum()),
         [[Arg((4, 5)), index_arg((4,), 5, -100), Arg((5,), "pos", grad=False)]]),
]

PROB_LOSSES = [
    both("F_cross_entropy_probs", lambda F, x, p: (F.cross_entropy(x, p), F.cross_entropy(x, p, reduction="sum"),
                                                   F.cross_entropy(x, p, reduction="none")),
         [[Arg((4, 5)), prob_arg((4, 5))], [Arg((2, 3, 4)), prob_arg((2, 3, 4))], [Arg((5,)), prob_arg((5,), 0)]]),
    both("F_cross_entropy_probs_weight_smoothing",
         lambda F, x, p, w: (F.cross_entropy(x, p, w, label_smoothing=0.25),
                             F.cross_entropy(x, p, w, reduction="none", label_smoothing=0.1)),
         [[Arg((4, 5)), prob_arg((4, 5)), Arg((5,), "pos")],
          [Arg((2, 3, 2, 2)), prob_arg((2, 3, 2, 2)), Arg((3,), "pos")]]),
    both("F_cross_entropy_probs_target_grad", lambda F, x, p: F.cross_entropy(x, p),
         [[Arg((3, 4)), Arg((3, 4), "pos")]]),
]


# == regression and other losses ===================================================================

def reductions(name, f, samples, **kw):
    """One case per reduction. The size-mismatch warning both libraries give for broadcast targets is
    expected here and silenced."""
    def make(r):
        def g(F, *a):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return f(F, *a, reduction=r)
        return g
    return [both(f"{name}_{r}", make(r), samples, **kw) for r in ("mean", "sum", "none")]


def counts(shape):
    """Integer counts as floats. Not differentiated: the Stirling term has a kink at 1 and PyTorch's
    gradient for a zero count is NaN."""
    return Arg(shape, "custom", fill=lambda r, s: r.integers(0, 5, s).astype(float), grad=False)


PAIR = [[Arg((3, 4)), Arg((3, 4))], [Arg(()), Arg(())], [Arg((0, 2)), Arg((0, 2))], [Arg((2, 3)), Arg((3,))]]

OTHER_LOSSES = (
    reductions("F_mse_loss", lambda F, a, b, **k: F.mse_loss(a, b, **k), PAIR)
    + reductions("F_l1_loss", lambda F, a, b, **k: F.l1_loss(a, b, **k), PAIR)
    + reductions("F_mse_loss_weight", lambda F, a, b, w, **k: F.mse_loss(a, b, weight=w, **k),
                 [[Arg((3, 4)), Arg((3, 4)), Arg((3, 4), "pos")]])
    + reductions("F_l1_loss_weight", lambda F, a, b, w, **k: F.l1_loss(a, b, weight=w, **k),
                 [[Arg((3, 4)), Arg((3, 4)), Arg((3, 4), "pos")]])
    + reductions("F_smooth_l1_loss", lambda F, a, b, **k: (F.smooth_l1_loss(a, b, beta=0.5, **k),
                                                           F.smooth_l1_loss(a, b, **k)), PAIR)
    + reductions("F_huber_loss", lambda F, a, b, **k: (F.huber_loss(a, b, delta=0.7, **k), F.huber_loss(a, b, **k)),
                 PAIR)
    + reductions("F_huber_loss_weight", lambda F, a, b, w, **k: F.huber_loss(a, b, weight=w, delta=0.5, **k),
                 [[Arg((3, 4)), Arg((3, 4)), Arg((3, 4), "pos")]])
    + reductions("F_binary_cross_entropy", lambda F, x, t, **k: F.binary_cross_entropy(x, t, **k),
                 [[Arg((3, 4), "custom", fill=lambda r, s: r.uniform(0.05, 0.95, s)), Arg((3, 4), "custom",
                   fill=lambda r, s: r.uniform(0, 1, s))],
                  [Arg((), "custom", fill=lambda r, s: np.asarray(r.uniform(0.05, 0.95))), fixed(1.0)]])
    + reductions("F_binary_cross_entropy_weight", lambda F, x, t, w, **k: F.binary_cross_entropy(x, t, w, **k),
                 [[Arg((3, 4), "custom", fill=lambda r, s: r.uniform(0.05, 0.95, s)), Arg((3, 4), "custom",
                   fill=lambda r, s: r.uniform(0, 1, s)), Arg((4,), "pos", grad=False)]])
    + reductions("F_bce_with_logits", lambda F, x, t, **k: F.binary_cross_entropy_with_logits(x, t, **k),
                 [[Arg((3, 4), low=-30, high=30), Arg((3, 4), "custom", fill=lambda r, s: r.uniform(0, 1, s))],
                  [Arg(()), fixed(0.0)]])
    + reductions("F_bce_with_logits_weights",
                 lambda F, x, t, w, pw, **k: F.binary_cross_entropy_with_logits(x, t, w, pos_weight=pw, **k),
                 [[Arg((3, 4)), Arg((3, 4), "custom", fill=lambda r, s: r.uniform(0, 1, s)),
                   Arg((3, 1), "pos", grad=False), Arg((4,), "pos", grad=False)]])
    + reductions("F_kl_div", lambda F, x, t, **k: F.kl_div(x, t, **k),
                 [[Arg((3, 4), high=-0.1, low=-3), Arg((3, 4), "custom", fill=lambda r, s: r.uniform(0.05, 1, s))]])
    + [both("F_kl_div_batchmean_log_target",
            lambda F, x, t: (F.kl_div(x, t, reduction="batchmean"),
                             F.kl_div(x, t, reduction="batchmean", log_target=True),
                             F.kl_div(x, t, reduction="none", log_target=True)),
            [[Arg((3, 4), low=-3, high=-0.1), Arg((3, 4), "pos")], [Arg((5,), low=-3, high=-0.1), Arg((5,), "pos")]]),
       both("F_kl_div_zero_target", lambda F, x, t: F.kl_div(x, t, reduction="sum"),
            [[Arg((4,)), fixed([0.0, 0.5, 0.0, 0.5])]])]
    + reductions("F_poisson_nll_loss", lambda F, x, t, **k: (F.poisson_nll_loss(x, t, **k),
                                                             F.poisson_nll_loss(x, t, full=True, **k)),
                 [[Arg((3, 4)), counts((3, 4))]])
    + reductions("F_poisson_nll_loss_rates", lambda F, x, t, **k: F.poisson_nll_loss(x, t, log_input=False, **k),
                 [[Arg((3, 4), "pos"), counts((3, 4))]])
    + reductions("F_gaussian_nll_loss", lambda F, x, t, v, **k: (F.gaussian_nll_loss(x, t, v, **k),
                                                                 F.gaussian_nll_loss(x, t, v, full=True, **k)),
                 [[Arg((3, 4)), Arg((3, 4)), Arg((3, 4), "pos")], [Arg((3, 4)), Arg((3, 4)), Arg((3,), "pos")],
                  [Arg((3, 4)), Arg((3, 4)), Arg((3, 1), "pos")]])
    + reductions("F_margin_ranking_loss", lambda F, a, b, y, **k: F.margin_ranking_loss(a, b, y, margin=0.3, **k),
                 [[Arg((6,)), Arg((6,)), signs((6,))]])
    + reductions("F_hinge_embedding_loss", lambda F, x, y, **k: F.hinge_embedding_loss(x, y, margin=0.8, **k),
                 [[Arg((3, 4), "custom", fill=away(0.8)), signs((3, 4))]])
    + reductions("F_soft_margin_loss", lambda F, x, y, **k: F.soft_margin_loss(x, y, **k),
                 [[Arg((3, 4)), signs((3, 4))]])
    + reductions("F_multilabel_soft_margin_loss",
                 lambda F, x, y, w, **k: (F.multilabel_soft_margin_loss(x, y, **k),
                                          F.multilabel_soft_margin_loss(x, y, w, **k)),
                 [[Arg((3, 4)), Arg((3, 4), "custom", fill=lambda r, s: r.integers(0, 2, s).astype(float), grad=False),
                   Arg((4,), "pos")]])
    + reductions("F_cosine_embedding_loss", lambda F, a, b, y, **k: F.cosine_embedding_loss(a, b, y, margin=0.1, **k),
                 [[Arg((5, 3)), Arg((5, 3)), signs((5,))], [Arg((4,)), Arg((4,)), signs(())]])
    + reductions("F_triplet_margin_loss", lambda F, a, p, n, **k: (F.triplet_margin_loss(a, p, n, **k),
                                                                   F.triplet_margin_loss(a, p, n, p=1, swap=True, **k)),
                 [[Arg((4, 3)), Arg((4, 3)), Arg((4, 3))]])
)

CASES = ACTIVATIONS + SOFTMAX + LINEAR + EMBEDDING + PAD + NORM + CLASS_LOSSES + PROB_LOSSES + OTHER_LOSSES


# == plain tests: errors, edge values, performance-path agreement ===================================

def _raises(exc, match, fn):
    with pytest.raises(exc, match=match):
        fn()


def test_class_loss_errors():
    x = dl.randn(4, 5)
    _raises(IndexError, "Target 7 is out of bounds", lambda: F.cross_entropy(x, dl.tensor([0, 1, 7, 4])))
    _raises(IndexError, "Target -1 is out of bounds", lambda: F.nll_loss(x, dl.tensor([0, 1, -1, 4])))
    _raises(TypeError, "Long", lambda: F.cross_entropy(x, dl.tensor([0, 1, 2, 3], dtype=dl.int32)))
    _raises(ValueError, "batch_size", lambda: F.cross_entropy(x, dl.tensor([0, 1, 2])))
    _raises(RuntimeError, r"Expected target size \[2, 4\], got \[2, 5\]",
            lambda: F.cross_entropy(dl.randn(2, 3, 4), dl.zeros(2, 5, dtype=dl.int64)))
    _raises(ValueError, "weight tensor should be defined", lambda: F.cross_entropy(x, dl.tensor([0, 1, 2, 3]),
                                                                                    weight=dl.ones(4)))
    _raises(TypeError, "weight", lambda: F.nll_loss(x, dl.tensor([0, 1, 2, 3]), weight=dl.ones(5, dtype=dl.float64)))
    _raises(RuntimeError, "ignore_index is not supported", lambda: F.cross_entropy(x, dl.rand(4, 5), ignore_index=1))
    _raises(ValueError, "label_smoothing", lambda: F.cross_entropy(x, dl.tensor([0, 1, 2, 3]), label_smoothing=1.5))
    _raises(ValueError, "not a valid value for reduction", lambda: F.cross_entropy(x, dl.tensor([0, 1, 2, 3]),
                                                                                    reduction="avg"))
    # Ignored targets may lie outside [0, C).
    assert F.cross_entropy(x, dl.tensor([0, 1, 7, 4]), ignore_index=7).shape == ()


def test_cross_entropy_weight_requires_grad_raises():
    w = dl.ones(5, requires_grad=True)
    _raises(RuntimeError, "not differentiable with respect to argument 'weight'",
            lambda: F.cross_entropy(dl.randn(3, 5), dl.tensor([0, 1, 2]), weight=w))
    with dl.no_grad():
        F.cross_entropy(dl.randn(3, 5), dl.tensor([0, 1, 2]), weight=w)


def test_other_errors():
    _raises(TypeError, "floating point", lambda: dl.softmax(dl.tensor([1, 2]), 0))
    _raises(IndexError, "out of range", lambda: F.embedding(dl.tensor([5]), dl.randn(3, 2)))
    _raises(ValueError, "padding_idx", lambda: F.embedding(dl.tensor([1]), dl.randn(3, 2), padding_idx=3))
    _raises(ValueError, "Expected more than 1 value per channel",
            lambda: F.batch_norm(dl.randn(1, 3), dl.zeros(3), dl.ones(3), training=True))
    _raises(RuntimeError, "running_mean and running_var must be defined",
            lambda: F.batch_norm(dl.randn(4, 3), None, None))
    _raises(RuntimeError, "divisible by num_groups", lambda: F.group_norm(dl.randn(2, 3, 4), 2))
    _raises(RuntimeError, r"normalized_shape=\[3\]", lambda: F.layer_norm(dl.randn(2, 3, 4), (3,)))
    _raises(RuntimeError, "Halving dimension must be even", lambda: F.glu(dl.randn(2, 3)))
    _raises(ValueError, "min_val cannot be greater", lambda: F.hardtanh(dl.randn(2), 1.0, -1.0))
    _raises(RuntimeError, "between 0 and 1", lambda: F.binary_cross_entropy(dl.tensor([1.5]), dl.tensor([1.0])))
    _raises(ValueError, "different to the input size",
            lambda: F.binary_cross_entropy(dl.tensor([0.5]), dl.tensor([[1.0]])))
    _raises(RuntimeError, "Padding size should be less than", lambda: F.pad(dl.randn(1, 2, 5), (5, 1), "reflect"))
    _raises(RuntimeError, "wrapping around more than once", lambda: F.pad(dl.randn(1, 2, 5), (6, 1), "circular"))
    _raises(RuntimeError, "doesn't take in value", lambda: F.pad(dl.randn(1, 2, 5), (1, 1), "reflect", 1.0))
    _raises(NotImplementedError, "not supported", lambda: F.pad(dl.randn(5), (1, 1), "reflect"))
    _raises(NotImplementedError, "Unrecognised padding mode", lambda: F.pad(dl.randn(1, 5), (1, 1), "foo"))
    _raises(RuntimeError, "divisible by 2", lambda: F.pad(dl.randn(1, 5), (1, 1, 1)))
    _raises(ValueError, "not a valid value for reduction", lambda: F.mse_loss(dl.randn(2), dl.randn(2), reduction="x"))
    _raises(ValueError, "not a valid value for reduction", lambda: F.kl_div(dl.randn(2), dl.rand(2), reduction="x"))
    _raises(ValueError, "approximate", lambda: F.gelu(dl.randn(2), approximate="fast"))


def test_extreme_values_stay_finite():
    big = dl.tensor([[1e30, -1e30, 0.0], [-1e4, -1e4, -1e4]], requires_grad=True)
    loss = F.cross_entropy(big, dl.tensor([0, 2]))
    loss.backward()
    assert math.isfinite(loss.item()) and bool(dl.isfinite(big.grad).all())
    x = dl.tensor([-1000.0, 0.0, 1000.0], requires_grad=True)
    for f in (F.softplus, F.logsigmoid, F.silu, F.mish, F.elu, F.selu, F.celu,
              lambda v: F.binary_cross_entropy_with_logits(v, dl.ones(3), reduction="none")):
        y = f(x)
        (g,) = dl.autograd.grad(y.sum(), x)
        assert bool(dl.isfinite(y).all()) and bool(dl.isfinite(g).all()), f
    p = dl.tensor([0.0, 1.0, 0.5], requires_grad=True)
    out = F.binary_cross_entropy(p, dl.tensor([1.0, 0.0, 1.0]), reduction="none")
    assert out.tolist()[:2] == [100.0, 100.0]
    (g,) = dl.autograd.grad(out.sum(), p)
    assert bool(dl.isfinite(g).all())


def test_softplus_logsigmoid_gradient_at_zero():
    x = dl.zeros(3, requires_grad=True)
    (g,) = dl.autograd.grad(F.softplus(x).sum(), x)
    assert g.tolist() == [0.5, 0.5, 0.5]
    (g,) = dl.autograd.grad(F.logsigmoid(x).sum(), x)
    assert g.tolist() == [0.5, 0.5, 0.5]


def test_kink_gradients_follow_torch():
    """At the kinks themselves, the gradient PyTorch picks."""
    pts = [-3.0, -1.0, 0.0, 1.0, 3.0, 6.0]
    fns = [lambda F, v: F.relu(v), lambda F, v: F.relu6(v), lambda F, v: F.hardtanh(v), lambda F, v: F.hardsigmoid(v),
           lambda F, v: F.hardswish(v), lambda F, v: F.leaky_relu(v, 0.1), lambda F, v: F.elu(v, 0.5),
           lambda F, v: F.threshold(v, 1.0, 5.0), lambda F, v: F.hardshrink(v, 1.0), lambda F, v: F.softshrink(v, 1.0),
           lambda F, v: F.prelu(v, v.new_ones(1) * 0.25 if F is TF else v.new_ones(1) * 0.25)]
    for f in fns:
        xd = dl.tensor(pts, dtype=dl.float64, requires_grad=True)
        xt = torch.tensor(pts, dtype=torch.float64, requires_grad=True)
        f(F, xd).sum().backward()
        f(TF, xt).sum().backward()
        np.testing.assert_allclose(xd.grad.numpy(), xt.grad.numpy(), err_msg=str(f))


@pytest.mark.parametrize("threaded", [False, True])
@pytest.mark.parametrize("shape", [(128, 10000), (70, 3001), (3, 200000)])
def test_cross_entropy_threaded_paths_match_torch(shape, threaded, monkeypatch):
    """Inputs large enough for row blocks shared with a second thread (or not), the kept exp buffer
    and the recompute path."""
    from danlu.ops import nn as nn_ops

    monkeypatch.setattr(nn_ops._Timing, "threaded_next", lambda self: threaded)
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    x[0, :7] = 200.0  # one row needs the shifted fallback
    t = rng.integers(0, shape[1], shape[0])
    t[1] = -100
    w = rng.uniform(0.5, 2.0, shape[1]).astype(np.float32)
    xd, xt = dl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    kw = dict(label_smoothing=0.1)
    ld = F.cross_entropy(xd, dl.tensor(t), dl.tensor(w), **kw)
    lt = TF.cross_entropy(xt, torch.tensor(t), torch.tensor(w), **kw)
    ld.backward(retain_graph=True)
    lt.backward(retain_graph=True)
    np.testing.assert_allclose(ld.item(), lt.item(), rtol=2e-5)
    np.testing.assert_allclose(xd.grad.numpy(), xt.grad.numpy(), atol=2e-8, rtol=1e-4)
    # A second backward through the same graph recomputes the softmax (its buffer was consumed).
    first = xd.grad.numpy().copy()
    ld.backward()
    np.testing.assert_allclose(xd.grad.numpy(), 2 * first, atol=4e-8, rtol=1e-4)


def test_embedding_backward_adjoint():
    """embedding's backward (with padding_idx and scale_grad_by_freq) is linear in the incoming gradient;
    its VJP must be the exact adjoint, which finite differences confirm."""
    idx = dl.tensor([[0, 1, 1], [2, 1, 0]])
    w = dl.randn(4, 3, dtype=dl.float64, requires_grad=True)

    def backward_of(g):
        with dl.enable_grad():
            out = F.embedding(idx, w, padding_idx=2, scale_grad_by_freq=True)
            return dl.autograd.grad(out, w, g, create_graph=True)[0]

    g = dl.randn(2, 3, 3, dtype=dl.float64, requires_grad=True)
    assert dl.autograd.gradcheck(backward_of, (g,))
    assert dl.autograd.gradgradcheck(backward_of, (g,))


def test_thread_choice_follows_measured_speed():
    """The row-block helper thread is used when timing says it is faster, with periodic probes."""
    from danlu.ops import nn as nn_ops

    for threaded_cost, serial_cost in ((1.0, 2.0), (2.0, 1.0)):
        timing = nn_ops._Timing()
        modes = []
        for _ in range(64):
            t = timing.threaded_next()
            modes.append(t)
            timing.record(t, threaded_cost if t else serial_cost, 1)
        assert modes[:4] == [False, True, False, True]  # both ways timed first
        faster = threaded_cost < serial_cost
        settled = modes[4:]
        assert sum(m == faster for m in settled) == len(settled) - sum(
            1 for i in range(5, 65) if i % nn_ops._Timing.PROBE_EVERY == 0)
