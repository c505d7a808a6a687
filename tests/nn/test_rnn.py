"""Recurrent layers and sequence utilities against PyTorch: torch's parameters are copied into danlu's
module through ``state_dict``, then outputs, final states and the gradients of the inputs, the initial
states and every parameter are compared, in float64 (tight) and float32."""

import warnings

import numpy as np
import pytest
import torch
from torch.nn.utils import rnn as TR

import danlu as dl
from danlu.nn.modules import rnn as M
from danlu.nn.utils import rnn as R
from tests.ops.cases_recurrent import BS, B, H, N, _first_order, dl_lstm, dl_rnn, torch_lstm

TOL = {"float64": dict(atol=1e-11, rtol=1e-9), "float32": dict(atol=2e-5, rtol=2e-4)}
TDT = {"float64": torch.float64, "float32": torch.float32}
DDT = {"float64": dl.float64, "float32": dl.float32}

I_SIZE, H_SIZE, P_SIZE, T_LEN, BATCH = 4, 5, 3, 6, 4
LENGTHS_SORTED = [6, 4, 4, 2]
LENGTHS_UNSORTED = [2, 6, 1, 4]


def close(got, want, dtype, what):
    g = got.detach().numpy() if isinstance(got, dl.Tensor) else np.asarray(got)
    w = want.detach().numpy()
    assert g.shape == w.shape, f"{what}: shape {g.shape} vs torch {w.shape}"
    assert g.dtype == w.dtype, f"{what}: dtype {g.dtype} vs torch {w.dtype}"
    np.testing.assert_allclose(g, w, err_msg=what, **TOL[dtype])


def make_pair(cls, dtype, **kw):
    """A torch module and a danlu module with the same parameters (copied through state_dict)."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tm = getattr(torch.nn, cls)(**kw).to(TDT[dtype])
        dm = getattr(M, cls)(**kw, dtype=DDT[dtype])
    dm.load_state_dict({k: dl.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    return tm, dm


def both(arr, grad=True):
    t = torch.tensor(arr, requires_grad=grad)
    d = dl.tensor(arr, requires_grad=grad)
    return t, d


def flat(x):
    if isinstance(x, (tuple, list)):
        return [y for e in x for y in flat(e)]
    return [x]


# == layers against torch ===========================================================================

CONFIGS = [
    dict(),
    dict(num_layers=2),
    dict(bidirectional=True),
    dict(num_layers=2, bidirectional=True, batch_first=True),
    dict(bias=False, batch_first=True),
    dict(num_layers=2, bidirectional=True, bias=False, dropout=0.5),  # dropout: eval mode below
]
MODES = [("RNN", dict(nonlinearity="tanh")), ("RNN", dict(nonlinearity="relu")), ("LSTM", {}), ("GRU", {}),
         ("LSTM", dict(proj_size=P_SIZE))]
INPUTS = ["padded", "unbatched", "packed_sorted", "packed_unsorted"]


def _cases():
    out = []
    for cls, extra in MODES:
        for ci, cfg in enumerate(CONFIGS):
            for kind in INPUTS:
                for with_h0 in (True, False):
                    mid = f"{cls}{'-' + '-'.join(f'{k}={v}' for k, v in extra.items()) if extra else ''}"
                    out.append(pytest.param(cls, {**extra, **cfg}, kind, with_h0,
                                            id=f"{mid}-cfg{ci}-{kind}-h0{with_h0}"))
    return out


def _run_layer(cls, kw, kind, with_h0, dtype, train=False, t_len=T_LEN):
    rng = np.random.default_rng(7)
    tm, dm = make_pair(cls, dtype, input_size=I_SIZE, hidden_size=H_SIZE, **kw)
    tm.train(train)
    dm.train(train)
    bf = kw.get("batch_first", False)
    dirs = 2 if kw.get("bidirectional") else 1
    layers = kw.get("num_layers", 1) * dirs
    hsz = kw.get("proj_size") or H_SIZE
    npdt = np.dtype(dtype)
    if kind == "unbatched":
        x = rng.standard_normal((t_len, I_SIZE)).astype(npdt)
        state_shape = (layers,)
    else:
        x = rng.standard_normal((BATCH, t_len, I_SIZE) if bf else (t_len, BATCH, I_SIZE)).astype(npdt)
        state_shape = (layers, BATCH)
    tx, dx = both(x)
    t_h0 = d_h0 = None
    h0s = []
    if with_h0:
        h0 = both(rng.standard_normal(state_shape + (hsz,)).astype(npdt))
        h0s.append(h0)
        if cls == "LSTM":
            h0s.append(both(rng.standard_normal(state_shape + (H_SIZE,)).astype(npdt)))
            t_h0, d_h0 = (h0s[0][0], h0s[1][0]), (h0s[0][1], h0s[1][1])
        else:
            t_h0, d_h0 = h0[0], h0[1]
    t_in, d_in = tx, dx
    if kind.startswith("packed"):
        lengths = LENGTHS_SORTED if kind == "packed_sorted" else LENGTHS_UNSORTED
        lengths = [n + t_len - T_LEN if n == max(lengths) else n for n in lengths]
        sort = kind == "packed_sorted"
        t_in = TR.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=bf, enforce_sorted=sort)
        d_in = R.pack_padded_sequence(dx, lengths, batch_first=bf, enforce_sorted=sort)
    t_out, t_fin = tm(t_in, t_h0)
    d_out, d_fin = dm(d_in, d_h0)
    if kind.startswith("packed"):
        assert isinstance(d_out, R.PackedSequence)
        assert d_out.batch_sizes.tolist() == t_out.batch_sizes.tolist()
        close(d_out.data, t_out.data, dtype, "packed output data")
        t_out = TR.pad_packed_sequence(t_out, batch_first=bf)[0]
        d_out = R.pad_packed_sequence(d_out, batch_first=bf)[0]
    outs_t, outs_d = [t_out] + flat(t_fin), [d_out] + flat(d_fin)
    for i, (a, b) in enumerate(zip(outs_d, outs_t)):
        close(a, b, dtype, f"output {i}")
    cots = [rng.standard_normal(tuple(o.shape)).astype(npdt) for o in outs_t]
    t_loss = sum((o * torch.tensor(c)).sum() for o, c in zip(outs_t, cots))
    d_loss = sum((o * dl.tensor(c)).sum() for o, c in zip(outs_d, cots))
    t_loss.backward()
    d_loss.backward()
    close(dx.grad, tx.grad, dtype, "grad of input")
    for i, (t, d) in enumerate(h0s):
        close(d.grad, t.grad, dtype, f"grad of initial state {i}")
    t_params = dict(tm.named_parameters())
    d_params = dict(dm.named_parameters())
    assert list(t_params) == list(d_params)
    for name, p in t_params.items():
        close(d_params[name].grad, p.grad, dtype, f"grad of {name}")
    return tm, dm


@pytest.mark.parametrize("cls,kw,kind,with_h0", _cases())
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_layer_matches_torch(cls, kw, kind, with_h0, dtype):
    _run_layer(cls, kw, kind, with_h0, dtype)


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_dropout_in_training_drops_between_layers(cls):
    # p=1 is deterministic: the second layer sees zeros, exactly as in torch; gradients match too.
    _run_layer(cls, dict(num_layers=2, dropout=1.0), "padded", True, "float64", train=True)


def test_dropout_in_training_is_random():
    dl.manual_seed(0)
    m = M.LSTM(4, 5, num_layers=2, dropout=0.5, dtype=dl.float64)
    x = dl.randn(6, 3, 4, dtype=dl.float64)
    m.eval()
    ref = m(x)[0].detach()
    m.train()
    a, b = m(x)[0].detach(), m(x)[0].detach()
    assert not np.allclose(a.numpy(), ref.numpy()) and not np.allclose(a.numpy(), b.numpy())
    # the first layer is not followed by dropout on its own output: one layer gives the same in both modes
    m1 = M.LSTM(4, 5, num_layers=1, dtype=dl.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m1.dropout = 0.5
    np.testing.assert_allclose(m1.train()(x)[0].detach().numpy(), m1.eval()(x)[0].detach().numpy())


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_packed_final_state_is_each_sequences_last_step(cls):
    """h_n of a packed batch equals running every sequence alone (and reverse directions start at each
    sequence's own end)."""
    dl.manual_seed(1)
    m = getattr(M, cls)(3, 4, bidirectional=True, dtype=dl.float64)
    seqs = [dl.randn(n, 3, dtype=dl.float64) for n in (2, 5, 3)]
    out, fin = m(R.pack_sequence(seqs, enforce_sorted=False))
    padded, lengths = R.pad_packed_sequence(out, batch_first=True)
    assert lengths.tolist() == [2, 5, 3]
    for b, s in enumerate(seqs):
        o, f = m(s)
        np.testing.assert_allclose(padded[b, :s.shape[0]].detach().numpy(), o.detach().numpy(), atol=1e-13)
        assert not padded[b, s.shape[0]:].detach().numpy().any()
        for got, want in zip(flat(fin), flat(f)):
            np.testing.assert_allclose(got[:, b].detach().numpy(), want.detach().numpy(), atol=1e-13)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_double_backward_matches_torch(cls):
    """A gradient penalty differentiates the first-order gradient again (float64, where torch's CPU
    kernels support double backward)."""
    tm, dm = make_pair(cls, "float64", input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    x = np.random.default_rng(3).standard_normal((5, 2, 3))
    tx, dx = both(x)
    (tg,) = torch.autograd.grad(tm(tx)[0].pow(2).sum(), tx, create_graph=True)
    (dg,) = dl.autograd.grad(dm(dx)[0].pow(2).sum(), dx, create_graph=True)
    close(dg, tg, "float64", "first-order grad")
    tg.pow(2).sum().backward()
    dg.pow(2).sum().backward()
    close(dx.grad, tx.grad, "float64", "second-order grad of input")
    for (n, tp), (_, dp) in zip(tm.named_parameters(), dm.named_parameters()):
        close(dp.grad, tp.grad, "float64", f"second-order grad of {n}")


@pytest.mark.parametrize("cls,kw", [("LSTM", dict(hidden_size=1)), ("LSTM", dict(hidden_size=3, proj_size=1)),
                                    ("GRU", dict(hidden_size=1)), ("RNN", dict(hidden_size=1))])
def test_size_one_hidden_states_and_weights_left_untouched(cls, kw):
    """Size-1 dims make transposed weight views count as contiguous: the kernels must still copy before
    writing (a regression: the LSTM once negated the caller's weights in place)."""
    tm, dm = make_pair(cls, "float64", input_size=2, num_layers=2, bidirectional=True, **kw)
    before = {k: v.detach().numpy().copy() for k, v in dm.state_dict().items()}
    x = np.random.default_rng(0).standard_normal((4, 3, 2))
    tx, dx = both(x)
    t_out, d_out = tm(tx)[0], dm(dx)[0]
    close(d_out, t_out, "float64", "output")
    t_out.sum().backward()
    d_out.sum().backward()
    close(dx.grad, tx.grad, "float64", "grad of input")
    for k, v in dm.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=f"{k} changed by forward/backward")


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_fast_paths_match_torch(cls, monkeypatch):
    """The paths large problems take, forced on small ones: weight gradients computed on the pool thread
    while the backward loop runs, and the loops' BLAS-threading probe (one- and all-thread steps)."""
    from danlu.ops import recurrent as rec

    monkeypatch.setattr(rec, "_OVERLAP_MIN", 0)
    monkeypatch.setattr(rec, "_PROBE_MIN_FLOPS", 0)
    monkeypatch.setattr(rec, "_PROBE_EVERY", 2)
    monkeypatch.setattr(rec._LoopBlas, "stats", {})
    for kind in ("padded", "packed_unsorted", "padded"):  # probing loops, then loops using the choice
        _run_layer(cls, dict(num_layers=2, bidirectional=True), kind, True, "float64", t_len=12)
        _run_layer(cls, dict(num_layers=1, batch_first=True), kind, False, "float32", t_len=12)
    if rec._blas["set"] is not None and rec._blas["default"] > 1:
        assert rec._LoopBlas.stats and all(None not in st[:2] for st in rec._LoopBlas.stats.values())


def test_float16_computes_in_float32():
    dl.manual_seed(0)
    m = M.LSTM(3, 4, num_layers=2)
    x = dl.randn(5, 2, 3)
    ref = m(x)[0].detach().numpy()
    m16 = M.LSTM(3, 4, num_layers=2).half()
    m16.load_state_dict(m.state_dict())
    out = m16(x.half())[0]
    assert out.dtype is dl.float16
    np.testing.assert_allclose(out.detach().numpy().astype(np.float32), ref, atol=5e-3)
    out.float().sum().backward()
    assert m16.weight_hh_l0.grad.dtype is dl.float16


def test_lstm_float32_train_step_matches_torch_at_benchmark_shape():
    tm, dm = make_pair("LSTM", "float32", input_size=16, hidden_size=32)
    x = np.random.default_rng(0).standard_normal((20, 8, 16)).astype(np.float32)
    tx, dx = both(x, grad=False)
    tm(tx)[0].pow(2).mean().backward()
    dm(dx)[0].pow(2).mean().backward()
    for (n, tp), (_, dp) in zip(tm.named_parameters(), dm.named_parameters()):
        close(dp.grad, tp.grad, "float32", n)


# == module surface ================================================================================

@pytest.mark.parametrize("cls,kw", [
    ("RNN", dict(num_layers=2, nonlinearity="relu", bias=False)),
    ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=2)),
    ("GRU", dict(batch_first=True, bidirectional=True)),
])
def test_parameters_names_shapes_repr_and_init(cls, kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tm = getattr(torch.nn, cls)(4, 3, **kw)
        dm = getattr(M, cls)(4, 3, **kw)
    t_sd, d_sd = tm.state_dict(), dm.state_dict()
    assert list(t_sd) == list(d_sd)
    assert [tuple(v.shape) for v in t_sd.values()] == [tuple(v.shape) for v in d_sd.values()]
    assert repr(dm) == repr(tm)
    assert dm._flat_weights_names == tm._flat_weights_names
    assert [[p.shape for p in ws] for ws in dm.all_weights] == [[p.shape for p in ws] for ws in tm.all_weights]
    bound = 1 / np.sqrt(3)
    for v in d_sd.values():
        a = v.numpy()
        assert a.min() >= -bound and a.max() <= bound and a.std() > 0.1


def test_constructor_errors_like_torch():
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
        M.RNN(4, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="only supported for LSTM"):
        M.RNNBase("GRU", 4, 3, proj_size=2)
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        M.LSTM(4, 3, proj_size=3)
    with pytest.raises(ValueError, match="positive integer or zero"):
        M.LSTM(4, 3, proj_size=-1)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        M.LSTM(4, 0)
    with pytest.raises(ValueError, match="num_layers must be greater than zero"):
        M.GRU(4, 3, num_layers=0)
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        M.LSTM(4, 3, dropout=1.5)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        M.LSTM(4, 3, dropout=0.5)


def test_forward_errors_like_torch():
    m = M.LSTM(4, 3)
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 4, got 6"):
        m(dl.randn(5, 2, 6))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \(1, 2, 3\), got \[1, 3, 3\]"):
        m(dl.randn(5, 2, 4), (dl.zeros(1, 3, 3), dl.zeros(1, 2, 3)))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[1\] size \(1, 2, 3\), got \[1, 2, 4\]"):
        m(dl.randn(5, 2, 4), (dl.zeros(1, 2, 3), dl.zeros(1, 2, 4)))
    with pytest.raises(RuntimeError, match="For unbatched 2-D input, hx and cx should also be 2-D"):
        m(dl.randn(5, 4), (dl.zeros(1, 2, 3), dl.zeros(1, 2, 3)))
    with pytest.raises(RuntimeError, match="For batched 3-D input, hx and cx should also be 3-D"):
        m(dl.randn(5, 2, 4), (dl.zeros(1, 3), dl.zeros(1, 3)))
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D instead"):
        m(dl.randn(2, 5, 2, 4))
    with pytest.raises(TypeError, match="input dtype \\(float64\\) does not match weight dtype \\(float32\\)"):
        m(dl.randn(5, 2, 4, dtype=dl.float64))
    g = M.GRU(4, 3)
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 2, 3\), got \[2, 2, 3\]"):
        g(dl.randn(5, 2, 4), dl.zeros(2, 2, 3))
    with pytest.raises(RuntimeError, match="For batched 3-D input, hx should also be 3-D but got 2-D tensor"):
        g(dl.randn(5, 2, 4), dl.zeros(2, 3))


def test_module_conversions_and_state_dict_roundtrip():
    m = M.GRU(3, 4, num_layers=2).double()
    assert all(p.dtype is dl.float64 for p in m.parameters())
    out, h = m(dl.randn(2, 5, 3, dtype=dl.float64))
    assert out.dtype is dl.float64
    m2 = M.GRU(3, 4, num_layers=2, dtype=dl.float64)
    m2.load_state_dict(m.state_dict())
    x = dl.randn(4, 2, 3, dtype=dl.float64)
    np.testing.assert_array_equal(m(x)[0].detach().numpy(), m2(x)[0].detach().numpy())


def test_empty_sequence_and_large_gate_values():
    m = M.LSTM(3, 4, dtype=dl.float64)
    out, (h, c) = m(dl.zeros(0, 2, 3, dtype=dl.float64))
    assert tuple(out.shape) == (0, 2, 4) and not h.detach().numpy().any() and not c.detach().numpy().any()
    tm, dm = make_pair("LSTM", "float32", input_size=3, hidden_size=4)
    x = np.full((3, 2, 3), 500.0, np.float32)  # saturated sigmoids: exp overflows to inf, giving exact 0/1
    x[:, 1] *= -1
    close(dm(dl.tensor(x))[0], tm(torch.tensor(x))[0], "float32", "saturated output")


# == cells =========================================================================================

CELLS = [("RNNCell", dict(nonlinearity="tanh")), ("RNNCell", dict(nonlinearity="relu")), ("LSTMCell", {}),
         ("GRUCell", {}), ("LSTMCell", dict(bias=False)), ("GRUCell", dict(bias=False)),
         ("RNNCell", dict(bias=False))]


@pytest.mark.parametrize("cls,kw", CELLS)
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_h", [True, False])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cell_matches_torch(cls, kw, batched, with_h, dtype):
    rng = np.random.default_rng(5)
    tm, dm = make_pair(cls, dtype, input_size=I_SIZE, hidden_size=H_SIZE, **kw)
    npdt = np.dtype(dtype)
    lead = (BATCH,) if batched else ()
    tx, dx = both(rng.standard_normal(lead + (I_SIZE,)).astype(npdt))
    states = [both(rng.standard_normal(lead + (H_SIZE,)).astype(npdt)) for _ in range(2 if cls == "LSTMCell" else 1)]
    if not with_h:
        t_h = d_h = None
    elif cls == "LSTMCell":
        t_h, d_h = tuple(s[0] for s in states), tuple(s[1] for s in states)
    else:
        t_h, d_h = states[0]
    t_out, d_out = flat(tm(tx, t_h)), flat(dm(dx, d_h))
    for i, (a, b) in enumerate(zip(d_out, t_out)):
        close(a, b, dtype, f"output {i}")
    cots = [rng.standard_normal(tuple(o.shape)).astype(npdt) for o in t_out]
    sum((o * torch.tensor(c)).sum() for o, c in zip(t_out, cots)).backward()
    sum((o * dl.tensor(c)).sum() for o, c in zip(d_out, cots)).backward()
    close(dx.grad, tx.grad, dtype, "grad of input")
    if with_h:
        for t, d in states:
            close(d.grad, t.grad, dtype, "grad of state")
    for (n, tp), (_, dp) in zip(tm.named_parameters(), dm.named_parameters()):
        close(dp.grad, tp.grad, dtype, f"grad of {n}")


def test_cell_surface_and_errors():
    assert repr(M.RNNCell(4, 3, bias=False, nonlinearity="relu")) == "RNNCell(4, 3, bias=False, nonlinearity=relu)"
    assert repr(M.LSTMCell(4, 3)) == "LSTMCell(4, 3)" and repr(M.GRUCell(4, 3)) == "GRUCell(4, 3)"
    c = M.LSTMCell(4, 3)
    with pytest.raises(RuntimeError, match="input has inconsistent input_size: got 5 expected 4"):
        c(dl.randn(2, 5))
    with pytest.raises(RuntimeError, match="Input batch size 2 doesn't match hidden0 batch size 3"):
        c(dl.randn(2, 4), (dl.zeros(3, 3), dl.zeros(3, 3)))
    with pytest.raises(ValueError, match="LSTMCell: Expected input to be 1D or 2D, got 3D instead"):
        c(dl.randn(1, 2, 4))
    with pytest.raises(RuntimeError, match="hidden0 has inconsistent hidden_size: got 4, expected 3"):
        M.GRUCell(4, 3)(dl.randn(2, 4), dl.zeros(2, 4))
    with pytest.raises(RuntimeError, match="Unknown nonlinearity: x"):
        M.RNNCell(4, 3, nonlinearity="x")(dl.randn(2, 4))


# == sequence utilities ============================================================================

def _pair_seqs(lengths, rest=(2,), seed=0):
    rng = np.random.default_rng(seed)
    arrs = [rng.standard_normal((n,) + rest) for n in lengths]
    return [both(a) for a in arrs]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths,sort", [([5, 3, 3, 1], True), ([2, 3, 2, 3, 1, 3], False), ([4], True),
                                          ([1, 1, 1], False)])
def test_pack_and_pad_match_torch(batch_first, lengths, sort):
    rng = np.random.default_rng(1)
    n_t = max(lengths) + 1
    shape = (len(lengths), n_t, 2) if batch_first else (n_t, len(lengths), 2)
    tx, dx = both(rng.standard_normal(shape))
    tp = TR.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=sort)
    dp = R.pack_padded_sequence(dx, dl.tensor(lengths), batch_first=batch_first, enforce_sorted=sort)
    close(dp.data, tp.data, "float64", "packed data")
    assert dp.batch_sizes.tolist() == tp.batch_sizes.tolist() and dp.batch_sizes.dtype is dl.int64
    for a, b in ((dp.sorted_indices, tp.sorted_indices), (dp.unsorted_indices, tp.unsorted_indices)):
        assert (a is None and b is None) or a.tolist() == b.tolist()
    tpad, tlen = TR.pad_packed_sequence(tp, batch_first=batch_first, padding_value=-3.0, total_length=n_t + 2)
    dpad, dlen = R.pad_packed_sequence(dp, batch_first=batch_first, padding_value=-3.0, total_length=n_t + 2)
    close(dpad, tpad, "float64", "padded")
    assert dlen.tolist() == tlen.tolist() and dlen.dtype is dl.int64
    cot = rng.standard_normal(tuple(tpad.shape))
    (tpad * torch.tensor(cot)).sum().backward()
    (dpad * dl.tensor(cot)).sum().backward()
    close(dx.grad, tx.grad, "float64", "grad through pack and pad")
    t_un = TR.unpack_sequence(tp)
    d_un = R.unpack_sequence(dp)
    assert len(t_un) == len(d_un)
    for a, b in zip(d_un, t_un):
        close(a, b, "float64", "unpacked")


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("rest", [(), (2, 3)])
def test_pad_sequence_matches_torch(batch_first, side, rest):
    pairs = _pair_seqs([3, 1, 4, 0], rest)
    t = TR.pad_sequence([p[0] for p in pairs], batch_first=batch_first, padding_value=2.5, padding_side=side)
    d = R.pad_sequence([p[1] for p in pairs], batch_first=batch_first, padding_value=2.5, padding_side=side)
    close(d, t, "float64", "pad_sequence")
    cot = np.random.default_rng(2).standard_normal(tuple(t.shape))
    (t * torch.tensor(cot)).sum().backward()
    (d * dl.tensor(cot)).sum().backward()
    for tp, dp in pairs:
        close(dp.grad, tp.grad, "float64", "grad through pad_sequence")
    lengths = [3, 1, 4, 0]
    for a, b in zip(R.unpad_sequence(d, dl.tensor(lengths), batch_first=batch_first),
                    TR.unpad_sequence(t, torch.tensor(lengths), batch_first=batch_first)):
        if side == "right":
            close(a, b, "float64", "unpad_sequence")


@pytest.mark.parametrize("sort", [True, False])
def test_pack_sequence_matches_torch(sort):
    lengths = [4, 3, 3, 1] if sort else [1, 4, 3, 4]
    pairs = _pair_seqs(lengths, (3,))
    tp = TR.pack_sequence([p[0] for p in pairs], enforce_sorted=sort)
    dp = R.pack_sequence([p[1] for p in pairs], enforce_sorted=sort)
    close(dp.data, tp.data, "float64", "pack_sequence data")
    assert dp.batch_sizes.tolist() == tp.batch_sizes.tolist()
    cot = np.random.default_rng(2).standard_normal(tuple(tp.data.shape))
    (tp.data * torch.tensor(cot)).sum().backward()
    (dp.data * dl.tensor(cot)).sum().backward()
    for t, d in pairs:
        close(d.grad, t.grad, "float64", "grad through pack_sequence")


def test_packed_sequence_type_and_helpers():
    p = R.pack_sequence([dl.ones(3, 2), dl.ones(1, 2)])
    assert isinstance(p, tuple) and p._fields == ("data", "batch_sizes", "sorted_indices", "unsorted_indices")
    q = R.PackedSequence(p.data, [2, 1, 1])
    assert q.batch_sizes.dtype is dl.int64 and q.sorted_indices is None and q.unsorted_indices is None
    r = R.PackedSequence(p.data, p.batch_sizes, dl.tensor([1, 0]))
    assert r.unsorted_indices.tolist() == [1, 0]
    assert p.double().data.dtype is dl.float64 and p.to(dl.float64).batch_sizes.dtype is dl.int64
    assert p.float() is p and not p.is_cuda and not p.is_pinned()
    assert R.invert_permutation(dl.tensor([1, 3, 0, 2])).tolist() == [2, 0, 3, 1]
    assert R.invert_permutation(None) is None


def test_utility_errors_like_torch():
    x = dl.zeros(5, 6, 1)
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order when `enforce_sorted` is True"):
        R.pack_padded_sequence(x, [2, 3, 2, 3, 1, 3])
    with pytest.raises(RuntimeError, match="Length of all samples has to be greater than 0"):
        R.pack_padded_sequence(x, [3, 3, 2, 2, 1, 0])
    with pytest.raises(RuntimeError, match="Expected `len\\(lengths\\)` to be equal to batch_size, but got 5"):
        R.pack_padded_sequence(x, [3, 3, 2, 2, 1])
    with pytest.raises(ValueError, match="exceeds the 5 time steps"):
        R.pack_padded_sequence(x, [6, 3, 2, 2, 1, 1])
    p = R.pack_padded_sequence(x, [3, 3, 2, 2, 1, 1])
    with pytest.raises(ValueError, match="total_length=2 and max sequence length being 3"):
        R.pad_packed_sequence(p, total_length=2)
    with pytest.raises(RuntimeError, match="Expected padding_side to be one of left or right, but got middle"):
        R.pad_sequence([dl.ones(2)], padding_side="middle")
    with pytest.raises(RuntimeError, match="received an empty list of sequences"):
        R.pad_sequence([])
    with pytest.raises(RuntimeError, match="sequence 1"):
        R.pad_sequence([dl.ones(2, 3), dl.ones(4, 2)])
    with pytest.raises(RuntimeError, match="Cannot pack empty tensors"):
        R.pack_padded_sequence(dl.zeros(3, 0, 2), [])


# == the primitives ================================================================================

def test_primitive_third_order_through_lstm():
    """Gradients of second-order gradients (the reference recurrence differentiated again)."""
    rng = np.random.default_rng(0)
    arrs = [rng.uniform(-1, 1, s) for s in ((4, N, H), (B, H), (B, H), (4 * H, H))]
    d_in = [dl.tensor(a, requires_grad=True) for a in arrs]
    t_in = [torch.tensor(a, requires_grad=True) for a in arrs]
    d_g = _first_order(dl, lambda *a: dl_lstm(*a, batch_sizes=BS, reverse=False))(*d_in)
    t_g = _first_order(torch, lambda *a: torch_lstm(*a, batch_sizes=BS, reverse=False))(*t_in)
    d_gg = dl.autograd.grad(sum((g * g).sum() for g in d_g), d_in, create_graph=True)
    t_gg = torch.autograd.grad(sum((g * g).sum() for g in t_g), t_in, create_graph=True)
    d_ggg = dl.autograd.grad(sum(g.sum() for g in d_gg), d_in)
    t_ggg = torch.autograd.grad(sum(g.sum() for g in t_gg), t_in)
    for a, b in zip(d_ggg, t_ggg):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-10, rtol=1e-8)


def test_primitive_infer_errors():
    x, h, w = dl.zeros(4, 8, 2), dl.zeros(3, 2), dl.zeros(8, 2)
    with pytest.raises(RuntimeError, match="batch_sizes \\[3, 2\\] account for 5 rows"):
        dl_lstm(x, h, h, w, batch_sizes=(3, 2), reverse=False)
    with pytest.raises(ValueError, match="non-increasing"):
        dl_lstm(x, h, h, w, batch_sizes=(2, 3, 3), reverse=False)
    with pytest.raises(RuntimeError, match="initial state has 3 rows but the first time step has 4"):
        dl_lstm(x, h, h, w, batch_sizes=(4, 4), reverse=False)
    with pytest.raises(TypeError, match="same dtype"):
        dl_lstm(x, h.double(), h, w, batch_sizes=BS, reverse=False)
    with pytest.raises(RuntimeError, match="weight_hh of shape \\[8, 2\\]"):
        dl_lstm(x, h, h, dl.zeros(8, 3), batch_sizes=BS, reverse=False)
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'"):
        dl_rnn(dl.zeros(1, 8, 2), h, dl.zeros(2, 2), BS, False, "gelu")
