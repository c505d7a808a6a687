"""MultiheadAttention and the transformer layers against PyTorch: every mask kind (key padding and
attention masks, boolean and float, 2-D and 3-D), batch_first and unbatched inputs, separate k/v
dimensions, bias_kv and zero attention, need_weights / average_attn_weights, is_causal; outputs and
gradients in float64 and float32, state-dict compatibility and PyTorch's eval-time quirks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import danlu as dl

from .test_layers import DL_DTYPE, TORCH_DTYPE, as_np, assert_close, compare_modules, pair

E, H, L, S, N = 8, 2, 3, 4, 2


def _mask_to(fw, m, dtype):
    """A numpy mask as a tensor of framework ``fw``: bool stays bool, float takes the test dtype."""
    if m is None:
        return None
    if m.dtype == bool:
        return torch.tensor(m) if fw is torch else dl.tensor(m)
    return torch.tensor(m, dtype=TORCH_DTYPE[dtype]) if fw is torch else dl.tensor(m, dtype=DL_DTYPE[dtype])


def _run_mha(kwargs, dtype, shapes, same=(), fwd=None, grad=True):
    """Compare MHA built with ``kwargs`` on inputs of ``shapes`` (query, key, value); ``same`` names
    the inputs that are the very same tensor as the query ('key', 'value') or 'kv' (key is value)."""
    fwd = dict(fwd or {})
    masks = {k: fwd.pop(k) for k in ("key_padding_mask", "attn_mask") if k in fwd}
    torch.manual_seed(0)
    dm, tm = pair(lambda nn: nn.MultiheadAttention(E, H, **kwargs), dtype)
    dm.eval()
    tm.eval()
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(-1, 1, s).astype(dtype) for s in shapes]
    ins = {}
    for fw in (torch, dl):
        q = fw.tensor(arrays[0], requires_grad=grad)
        if same == "self":
            k = v = q
        else:
            k = fw.tensor(arrays[1], requires_grad=grad)
            v = k if same == "kv" else fw.tensor(arrays[2], requires_grad=grad)
        ins[fw] = (q, k, v)
    out = {}
    for fw, m in ((torch, tm), (dl, dm)):
        kw = {k: _mask_to(fw, v, dtype) for k, v in masks.items()}
        out[fw] = m(*ins[fw], **kw, **fwd)
    (d_o, d_w), (t_o, t_w) = out[dl], out[torch]
    assert_close(d_o, t_o, dtype, "attention output")
    if t_w is None:
        assert d_w is None
    else:
        assert_close(d_w, t_w, dtype, "attention weights")
    if grad and not torch.isnan(t_o).any():
        ct = rng.uniform(-1, 1, tuple(t_o.shape)).astype(dtype)
        (t_o * torch.tensor(ct)).sum().backward()
        (d_o * dl.tensor(ct)).sum().backward()
        for i, (d, t) in enumerate(zip(ins[dl], ins[torch], strict=True)):
            if t.grad is not None:
                assert_close(d.grad, t.grad, dtype, f"grad of input {i}")
        t_params = dict(tm.named_parameters())
        for name, p in dm.named_parameters():
            assert_close(p.grad, t_params[name].grad, dtype, f"grad of {name}")
    return out


def _bool(shape, rng, p=0.3):
    m = rng.random(shape) < p
    m[..., 0] = False  # keep one key per query so no row is fully masked
    return m


def _float(shape, rng):
    return rng.uniform(-2, 0, shape) * (rng.random(shape) < 0.5)


_g = np.random.default_rng(42)
KPM_BOOL, KPM_FLOAT = _bool((N, S), _g), _float((N, S), _g)
AM2_BOOL, AM2_FLOAT = _bool((L, S), _g), _float((L, S), _g)
AM3_BOOL, AM3_FLOAT = _bool((N * H, L, S), _g), _float((N * H, L, S), _g)

MASKS = {
    "none": {},
    "kpm_bool": {"key_padding_mask": KPM_BOOL},
    "kpm_float": {"key_padding_mask": KPM_FLOAT},
    "attn2d_bool": {"attn_mask": AM2_BOOL},
    "attn2d_float": {"attn_mask": AM2_FLOAT},
    "attn3d_bool": {"attn_mask": AM3_BOOL},
    "attn3d_float": {"attn_mask": AM3_FLOAT},
    "both_bool": {"attn_mask": AM2_BOOL, "key_padding_mask": KPM_BOOL},
    "both_float": {"attn_mask": AM3_FLOAT, "key_padding_mask": KPM_FLOAT},
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("need_weights, average", [(True, True), (True, False), (False, True)],
                         ids=["weights", "per_head", "no_weights"])
@pytest.mark.parametrize("mask", list(MASKS))
def test_mha_masks_cross_attention(mask, need_weights, average, dtype):
    _run_mha({}, dtype, [(L, N, E), (S, N, E), (S, N, E)], fwd=dict(MASKS[mask], need_weights=need_weights,
                                                                    average_attn_weights=average))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kwargs, same", [
    ({}, "self"), ({}, "kv"), ({"batch_first": True}, "self"), ({"batch_first": True}, "kv"),
    ({"batch_first": True}, ()), ({"bias": False}, "self"), ({"kdim": 5, "vdim": 6}, ()),
    ({"kdim": 5, "vdim": 5, "batch_first": True}, "kv"), ({"add_bias_kv": True}, ()),
    ({"add_zero_attn": True}, ()), ({"add_bias_kv": True, "add_zero_attn": True, "bias": False}, "kv"),
], ids=["self", "kv", "bf_self", "bf_kv", "bf", "nobias", "kvdim", "bf_kvdim_same", "bias_kv", "zero_attn",
        "bias_kv_zero_attn"])
@pytest.mark.parametrize("mask", ["none", "both_bool", "both_float"])
def test_mha_configurations(kwargs, same, mask, dtype):
    bf = kwargs.get("batch_first", False)
    q_len = S if same == "self" else L
    shp = lambda n, d: (N, n, d) if bf else (n, N, d)  # noqa: E731
    shapes = [shp(q_len, E), shp(S, kwargs.get("kdim", E)), shp(S, kwargs.get("vdim", E))]
    fwd = dict(MASKS[mask])
    if "attn_mask" in fwd:  # resize the attention mask to this query length
        am = fwd["attn_mask"]
        fwd["attn_mask"] = np.concatenate([am, am[..., :1, :]], -2)[..., :q_len, :] if q_len > L else am
    _run_mha(kwargs, dtype, shapes, same=same, fwd=fwd)


@pytest.mark.parametrize("mask", ["none", "kpm_bool", "attn2d_float"])
@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_unbatched(mask, need_weights):
    fwd = dict(MASKS[mask], need_weights=need_weights)
    if "key_padding_mask" in fwd:
        fwd["key_padding_mask"] = fwd["key_padding_mask"][0]
    _run_mha({"batch_first": True}, "float64", [(L, E), (S, E), (S, E)], fwd=fwd)
    am3 = _bool((H, L, S), np.random.default_rng(1))
    _run_mha({}, "float64", [(L, E), (S, E), (S, E)], fwd={"attn_mask": am3, "need_weights": need_weights})


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_is_causal(need_weights):
    causal = np.triu(np.ones((S, S), bool), 1)
    _run_mha({"batch_first": True}, "float64", [(N, S, E)] * 3, same="self",
             fwd={"attn_mask": causal, "is_causal": True, "need_weights": need_weights})
    # The hint is trusted when no weights are asked for: PyTorch applies its own causal mask.
    _run_mha({}, "float64", [(S, N, E)] * 3, same="self",
             fwd={"attn_mask": np.zeros((S, S), bool), "is_causal": True, "need_weights": False})
    for m in (torch.nn.MultiheadAttention(E, H), dl.nn.MultiheadAttention(E, H)):
        x = (torch if isinstance(m, torch.nn.Module) else dl).zeros(S, N, E)
        with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
            m(x, x, x, is_causal=True)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # NumPy's note on the all -inf softmax rows
def test_mha_fully_masked_rows_like_torch():
    kpm = np.zeros((N, S), bool)
    kpm[0] = True  # every key of sample 0 is padding
    out = _run_mha({}, "float64", [(L, N, E), (S, N, E), (S, N, E)],
                   fwd={"key_padding_mask": kpm, "need_weights": False})  # zeros, finite gradients
    assert not np.isnan(as_np(out[dl][0])).any()
    out = _run_mha({}, "float64", [(L, N, E), (S, N, E), (S, N, E)], grad=False,
                   fwd={"key_padding_mask": kpm, "need_weights": True})
    assert np.isnan(as_np(out[dl][0])[:, 0]).all() and np.isnan(as_np(out[dl][1])[0]).all()


def test_mha_mismatched_mask_types_warn_like_torch():
    x = np.random.default_rng(0).normal(size=(S, N, E)).astype(np.float32)
    for fw, nn_ in ((torch, torch.nn), (dl, dl.nn)):
        m = nn_.MultiheadAttention(E, H)
        with pytest.warns(UserWarning, match="Support for mismatched key_padding_mask and attn_mask is deprecated"):
            m(fw.tensor(x), fw.tensor(x), fw.tensor(x), key_padding_mask=fw.tensor(KPM_BOOL),
              attn_mask=fw.zeros(S, S))


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(num_heads=3), AssertionError, "embed_dim must be divisible by num_heads"),
    (dict(num_heads=0), ValueError, "must be greater than 0"),
])
def test_mha_constructor_errors_like_torch(kwargs, err, match):
    for nn_ in (torch.nn, dl.nn):
        with pytest.raises(err, match=match):
            nn_.MultiheadAttention(E, **kwargs)


@pytest.mark.parametrize("kwargs, args, err, match", [
    ({}, [(L, N, E), (S, N), (S, N)], AssertionError, "expected `key` and `value` to be 3-D"),
    ({}, [(L, N, E), (S, N, E), (S + 1, N, E)], AssertionError, "does not match value shape"),
    ({}, [(L, N, 6), (S, N, 6), (S, N, 6)], AssertionError, "was expecting embedding dimension of 8"),
    ({"attn_mask": (L, S + 1)}, [(L, N, E), (S, N, E), (S, N, E)], RuntimeError, "The shape of the 2D attn_mask"),
    ({"attn_mask": (N, L, S)}, [(L, N, E), (S, N, E), (S, N, E)], RuntimeError, "The shape of the 3D attn_mask"),
    ({"key_padding_mask": (N, S + 1)}, [(L, N, E), (S, N, E), (S, N, E)], AssertionError,
     "Expected key_padded_mask.shape"),
    ({"key_padding_mask": (S,)}, [(L, N, E), (S, N, E), (S, N, E)], AssertionError,
     "expected `key_padding_mask` to be `None` or 2-D"),
])
def test_mha_input_errors_like_torch(kwargs, args, err, match):
    for fw, nn_ in ((torch, torch.nn), (dl, dl.nn)):
        m = nn_.MultiheadAttention(E, H)
        masks = {k: fw.zeros(*v, dtype=fw.bool) for k, v in kwargs.items()}
        with pytest.raises(err, match=match):
            m(*[fw.zeros(*s) for s in args], **masks)


def test_mha_state_dict_names_and_init():
    for kwargs in ({}, {"kdim": 3, "vdim": 5}, {"add_bias_kv": True, "bias": False}):
        tm, dm = torch.nn.MultiheadAttention(E, H, **kwargs), dl.nn.MultiheadAttention(E, H, **kwargs)
        assert list(dm.state_dict()) == list(tm.state_dict())
        assert repr(dm) == repr(tm)
    m = dl.nn.MultiheadAttention(64, 4)
    w = m.in_proj_weight.detach().numpy()
    bound = np.sqrt(6.0 / (64 + 3 * 64))  # xavier_uniform_ of the (3E, E) packed weight
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert not m.in_proj_bias.detach().numpy().any() and not m.out_proj.bias.detach().numpy().any()
    out_bound = 1 / np.sqrt(64)  # out_proj keeps Linear's default weight init
    assert np.abs(m.out_proj.weight.detach().numpy()).max() <= out_bound


def test_mha_dropout_only_in_training():
    m = dl.nn.MultiheadAttention(E, H, dropout=0.5)
    x = dl.randn(S, N, E)
    m.eval()
    a, wa = m(x, x, x)
    b, wb = m(x, x, x)
    assert np.array_equal(a.detach().numpy(), b.detach().numpy())
    m.train()
    _, w = m(x, x, x, average_attn_weights=False)
    w = w.detach().numpy()
    assert (w == 0).mean() > 0.3  # dropped weights
    kept = w[w != 0]
    assert kept.max() > wa.detach().numpy().max()  # scaled by 1 / (1 - p)


# == transformer layers ==============================================================================

def _silu(nn_):
    return torch.nn.functional.silu if nn_ is torch.nn else dl.nn.functional.silu


ENCODER_LAYERS = {
    "relu": lambda nn: nn.TransformerEncoderLayer(E, H, 16, dropout=0.0),
    "gelu_norm_first": lambda nn: nn.TransformerEncoderLayer(E, H, 16, dropout=0.0, activation="gelu",
                                                             norm_first=True),
    "callable_batch_first": lambda nn: nn.TransformerEncoderLayer(E, H, 16, dropout=0.0, activation=_silu(nn),
                                                                  batch_first=True, layer_norm_eps=1e-3),
    "module_activation_nobias": lambda nn: nn.TransformerEncoderLayer(E, H, 16, dropout=0.0,
                                                                      activation=nn.GELU(approximate="tanh"),
                                                                      bias=False),
}


def _src(bf, rng, dtype):
    return rng.uniform(-1, 1, (N, S, E) if bf else (S, N, E)).astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mask", ["none", "kpm_bool", "kpm_float", "src_mask_bool", "src_mask_float", "both",
                                  "causal"])
@pytest.mark.parametrize("layer", list(ENCODER_LAYERS))
def test_encoder_layer(layer, mask, dtype):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    dm, tm = pair(ENCODER_LAYERS[layer], dtype)
    bf = tm.self_attn.batch_first
    masks = {"none": {}, "kpm_bool": {"src_key_padding_mask": _bool((N, S), rng)},
             "kpm_float": {"src_key_padding_mask": _float((N, S), rng)},
             "src_mask_bool": {"src_mask": _bool((S, S), rng)}, "src_mask_float": {"src_mask": _float((S, S), rng)},
             "both": {"src_mask": _bool((N * H, S, S), rng), "src_key_padding_mask": _bool((N, S), rng)},
             "causal": {"src_mask": np.triu(np.full((S, S), -np.inf), 1), "is_causal": True}}[mask]
    fwd = lambda fw: {k: (_mask_to(fw, v, dtype) if isinstance(v, np.ndarray) else v)  # noqa: E731
                      for k, v in masks.items()}
    compare_modules(dm, tm, [_src(bf, rng, dtype)], dtype, forward_kwargs=fwd)


@pytest.mark.parametrize("batch_first", [False, True])
def test_encoder_layer_eval_with_dropout(batch_first):
    torch.manual_seed(0)
    dm, tm = pair(lambda nn: nn.TransformerEncoderLayer(E, H, 16, dropout=0.3, batch_first=batch_first), "float64")
    dm.eval()
    tm.eval()
    compare_modules(dm, tm, [_src(batch_first, np.random.default_rng(0), "float64")], "float64")


@pytest.mark.parametrize("layer", list(ENCODER_LAYERS))
def test_encoder_layer_repr_and_state_dict(layer):
    tm, dm = ENCODER_LAYERS[layer](torch.nn), ENCODER_LAYERS[layer](dl.nn)
    assert repr(dm) == repr(tm)
    assert list(dm.state_dict()) == list(tm.state_dict())
    assert dm.activation_relu_or_gelu == tm.activation_relu_or_gelu


def _encoder(nn, layers=2, batch_first=True, norm=True, **kw):
    layer = nn.TransformerEncoderLayer(E, H, 16, dropout=0.0, batch_first=batch_first)
    return nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(E) if norm else None, **kw)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mask", ["none", "kpm", "src_mask", "both", "causal_detected"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_encoder_stack(mask, batch_first, dtype):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the nested-tensor notice; checked in its own test
        dm, tm = pair(lambda nn: _encoder(nn, batch_first=batch_first), dtype)
    masks = {"none": {}, "kpm": {"src_key_padding_mask": _bool((N, S), rng)},
             "src_mask": {"mask": _float((S, S), rng)},
             "both": {"mask": _bool((S, S), rng), "src_key_padding_mask": _bool((N, S), rng)},
             "causal_detected": {"mask": np.triu(np.full((S, S), -np.inf), 1)}}[mask]
    fwd = lambda fw: {k: _mask_to(fw, v, dtype) for k, v in masks.items()}  # noqa: E731
    compare_modules(dm, tm, [_src(batch_first, rng, dtype)], dtype, forward_kwargs=fwd)


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype stage")
def test_encoder_eval_without_grad_zeroes_padding_like_torch():
    torch.manual_seed(0)
    dm, tm = pair(lambda nn: _encoder(nn, norm=False), "float64")
    dm.eval()
    tm.eval()
    x = _src(True, np.random.default_rng(0), "float64")
    kpm = np.array([[False, False, False, True], [False, False, True, True]])  # left-aligned padding
    with torch.no_grad():
        t_out = tm(torch.tensor(x), src_key_padding_mask=torch.tensor(kpm))
    with dl.no_grad():
        d_out = dm(dl.tensor(x), src_key_padding_mask=dl.tensor(kpm))
    assert_close(d_out, t_out, "float64", "encoder output")
    assert not as_np(d_out)[kpm].any()  # the nested-tensor path outputs zeros at padded positions
    with torch.no_grad():  # not left-aligned: no nested path, padded positions are computed
        kpm2 = np.array([[True, False, False, False], [False, True, False, False]])
        t2 = tm(torch.tensor(x), src_key_padding_mask=torch.tensor(kpm2))
    with dl.no_grad():
        d2 = dm(dl.tensor(x), src_key_padding_mask=dl.tensor(kpm2))
    assert_close(d2, t2, "float64", "encoder output (not left-aligned)")
    assert as_np(d2)[kpm2].any()


@pytest.mark.parametrize("kw", [dict(batch_first=False), dict(batch_first=True), dict(enable_nested_tensor=False)])
def test_encoder_nested_tensor_warning_like_torch(kw):
    caught = {}
    for nn_ in (torch.nn, dl.nn):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            enc = _encoder(nn_, **kw)
        caught[nn_] = [str(w.message) for w in rec if "enable_nested_tensor" in str(w.message)]
        assert enc.use_nested_tensor == (not caught[nn_] and kw.get("enable_nested_tensor", True))
    assert caught[dl.nn] == caught[torch.nn]


def test_encoder_layers_are_independent_copies():
    enc = _encoder(dl.nn, layers=3)
    w = [layer.linear1.weight for layer in enc.layers]
    assert w[0] is not w[1] and np.array_equal(w[0].detach().numpy(), w[1].detach().numpy())
    keys = list(enc.state_dict())
    assert keys == list(_encoder(torch.nn, layers=3).state_dict())
    # PyTorch's ModuleList prints repeated layers as "(0-2): 3 x ..."; danlu's container prints each one
    # (container.py, reported), so the layer itself and the rest of the tree are compared here.
    t_enc = _encoder(torch.nn, layers=3)
    assert repr(enc.layers[0]) == repr(t_enc.layers[0]) and repr(enc.norm) == repr(t_enc.norm)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_and_stack(norm_first, dtype):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    ctor = lambda nn: nn.TransformerDecoder(  # noqa: E731
        nn.TransformerDecoderLayer(E, H, 16, dropout=0.0, norm_first=norm_first, activation="gelu"), 2,
        norm=nn.LayerNorm(E))
    dm, tm = pair(ctor, dtype)
    tgt, mem = rng.uniform(-1, 1, (L, N, E)).astype(dtype), rng.uniform(-1, 1, (S, N, E)).astype(dtype)
    masks = {"tgt_mask": np.triu(np.ones((L, L), bool), 1), "memory_mask": _bool((L, S), rng),
             "tgt_key_padding_mask": _bool((N, L), rng), "memory_key_padding_mask": _bool((N, S), rng)}
    fwd = lambda fw: {k: _mask_to(fw, v, dtype) for k, v in masks.items()}  # noqa: E731
    compare_modules(dm, tm, [tgt, mem], dtype, forward_kwargs=fwd)


@pytest.mark.parametrize("batch_first", [False, True])
def test_full_transformer(batch_first):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm, tm = pair(lambda nn: nn.Transformer(E, H, 1, 2, 16, dropout=0.0, batch_first=batch_first), "float64")
    src = rng.uniform(-1, 1, (N, S, E) if batch_first else (S, N, E))
    tgt = rng.uniform(-1, 1, (N, L, E) if batch_first else (L, N, E))
    masks = {"tgt_mask": np.triu(np.full((L, L), -np.inf), 1), "src_key_padding_mask": _bool((N, S), rng),
             "memory_key_padding_mask": _bool((N, S), rng)}
    fwd = lambda fw: {k: _mask_to(fw, v, "float64") for k, v in masks.items()}  # noqa: E731
    compare_modules(dm, tm, [src, tgt], "float64", forward_kwargs=fwd)
    np.testing.assert_array_equal(dl.nn.Transformer.generate_square_subsequent_mask(4).numpy(),
                                  torch.nn.Transformer.generate_square_subsequent_mask(4).numpy())
    with pytest.raises(RuntimeError, match="the feature number of src and tgt must be equal to d_model"):
        dm(dl.zeros(*src.shape[:-1], E + 1), dl.tensor(tgt))


def test_transformer_init_is_xavier():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = dl.nn.Transformer(32, 4, 1, 1, 64)
    w = m.encoder.layers[0].linear1.weight.detach().numpy()  # (64, 32)
    bound = np.sqrt(6.0 / (32 + 64))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound



@pytest.mark.parametrize("train", [True, False])
def test_encoder_and_mha_compile_like_eager(train):
    """Graph mode: masks, the safe softmax and the eval-time padding rule are all traceable."""
    enc = _encoder(dl.nn)
    enc.train(train)
    mha = dl.nn.MultiheadAttention(E, H, add_bias_kv=True)
    mha.train(train)
    f = dl.compile(lambda x, kpm: enc(x, src_key_padding_mask=kpm))
    g = dl.compile(lambda q, k, kpm, am: mha(q, k, k, key_padding_mask=kpm, attn_mask=am))
    rng = np.random.default_rng(0)
    for i in range(3):
        x = dl.tensor(_src(True, rng, "float32"))
        kpm = np.zeros((N, S), bool)
        kpm[1, S - 1 - i % 2:] = True
        kpm = dl.tensor(kpm)
        with dl.no_grad():
            assert_close(f(x, kpm), enc(x, src_key_padding_mask=kpm), "float32", "compiled encoder")
        q, k = dl.randn(L, N, E), dl.randn(S, N, E)
        am = dl.tensor(_bool((L, S), rng))
        for a, b in zip(g(q, k, kpm, am), mha(q, k, k, key_padding_mask=kpm, attn_mask=am), strict=True):
            assert_close(a, b, "float32", "compiled attention")
