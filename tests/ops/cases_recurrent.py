"""OpCases for the recurrent primitives (danlu.ops.recurrent): the cell functions against torch's
(``torch.lstm_cell``...), and the whole-sequence primitives on packed batches (shrinking batch sizes,
both directions, an empty sequence) against a per-step recurrence written with torch ops.

The ``*_grad`` cases return first-order gradients taken with ``create_graph=True``: their forward
checks the backward primitives, their gradients check the backward primitives' own VJPs (double
backward), numerically too.
"""

import torch

import danlu as dl
from danlu.ops import recurrent as R

from .harness import Arg, OpCase


def _steps(batch_sizes, reverse):
    out, off = [], 0
    for t, b in enumerate(batch_sizes):
        out.append((t, off, b))
        off += b
    return out[::-1] if reverse else out


def _torch_loop(x, states, batch_sizes, reverse, step):
    """The packed recurrence with torch ops on a gate-major projection ``x (G, N, H)``:
    step(the step's rows (G, b, H), state prefixes) -> (h_out, new prefixes)."""
    states = list(states)
    outs = {}
    for t, off, b in _steps(batch_sizes, reverse):
        h_out, new = step(x[:, off:off + b], [s[:b] for s in states])
        states = [torch.cat([n, s[b:]]) for n, s in zip(new, states)]
        outs[t] = h_out
    # an empty sequence's output still depends on x (as the primitive's output does)
    out = torch.cat([outs[t] for t in sorted(outs)]) if outs else x[0, :, :1].expand(0, states[0].shape[1]) * 0
    return (out, *states)


def torch_rnn(x, h0, w_hh, batch_sizes, reverse, nonlinearity):
    act = torch.tanh if nonlinearity == "tanh" else torch.relu

    def step(xr, st):
        h = act(xr[0] + st[0] @ w_hh.T)
        return h, [h]
    return _torch_loop(x, [h0], batch_sizes, reverse, step)


def torch_lstm(x, h0, c0, w_hh, w_hr=None, *, batch_sizes, reverse):
    def step(xr, st):
        i, f, g, o = (xr[k] + hk for k, hk in enumerate((st[0] @ w_hh.T).chunk(4, 1)))
        c = torch.sigmoid(f) * st[1] + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        if w_hr is not None:
            h = h @ w_hr.T
        return h, [h, c]
    return _torch_loop(x, [h0, c0], batch_sizes, reverse, step)


def torch_gru(x, h0, w_hh, b_hh=None, *, batch_sizes, reverse):
    def step(xr, st):
        hg = st[0] @ w_hh.T + (b_hh if b_hh is not None else 0)
        xr_, xz, xn = xr
        gr, gz, gn = hg.chunk(3, 1)
        r, z = torch.sigmoid(xr_ + gr), torch.sigmoid(xz + gz)
        n = torch.tanh(xn + r * gn)
        h = (1 - z) * n + z * st[0]
        return h, [h]
    return _torch_loop(x, [h0], batch_sizes, reverse, step)


def torch_lstm_empty(x, h0, c0, w_hh):
    """No steps: h_n, c_n = h0, c0. Every output is tied to every input (times 0), as the outputs of one
    primitive are."""
    z = (x.sum() + h0.sum() + c0.sum() + w_hh.sum()) * 0
    return x[0, :, :1].expand(0, h0.shape[1]) + z, h0 + z, c0 + z


def dl_rnn(x, h0, w_hh, batch_sizes, reverse, nonlinearity):
    return R.rnn_sequence(x, h0, w_hh, batch_sizes=batch_sizes, reverse=reverse, nonlinearity=nonlinearity)


def dl_lstm(x, h0, c0, w_hh, w_hr=None, *, batch_sizes, reverse):
    return R.lstm_sequence(x, h0, c0, w_hh, w_hr, batch_sizes=batch_sizes, reverse=reverse)


def dl_gru(x, h0, w_hh, b_hh=None, *, batch_sizes, reverse):
    return R.gru_sequence(x, h0, w_hh, b_hh, batch_sizes=batch_sizes, reverse=reverse)


BS = (3, 2, 2, 1)  # a packed batch: 3 sequences of lengths 4, 3, 1; projections are gate-major (G, N, H)
N = sum(BS)
B, H, P = 3, 2, 1


def _seq_cases():
    cases = []
    for reverse in (False, True):
        sfx = "_reverse" if reverse else ""
        for nl in ("tanh", "relu"):
            cases.append(OpCase(
                f"rnn_sequence_{nl}{sfx}",
                lambda x, h, w, nl=nl, rv=reverse: dl_rnn(x, h, w, BS, rv, nl),
                lambda x, h, w, nl=nl, rv=reverse: torch_rnn(x, h, w, BS, rv, nl),
                [[Arg((1, N, H)), Arg((B, H)), Arg((H, H))]]))
        cases.append(OpCase(
            f"lstm_sequence{sfx}",
            lambda *a, rv=reverse: dl_lstm(*a, batch_sizes=BS, reverse=rv),
            lambda *a, rv=reverse: torch_lstm(*a, batch_sizes=BS, reverse=rv),
            [[Arg((4, N, H)), Arg((B, H)), Arg((B, H)), Arg((4 * H, H))],
             [Arg((4, N, H)), Arg((B, P)), Arg((B, H)), Arg((4 * H, P)), Arg((P, H))]]))
        cases.append(OpCase(
            f"gru_sequence{sfx}",
            lambda *a, rv=reverse: dl_gru(*a, batch_sizes=BS, reverse=rv),
            lambda *a, rv=reverse: torch_gru(*a, batch_sizes=BS, reverse=rv),
            [[Arg((3, N, H)), Arg((B, H)), Arg((3 * H, H)), Arg((3 * H,))],
             [Arg((3, N, H)), Arg((B, H)), Arg((3 * H, H))]]))
    # an empty sequence: the final state is the initial one
    cases.append(OpCase("lstm_sequence_empty", lambda *a: dl_lstm(*a, batch_sizes=(), reverse=False),
                        torch_lstm_empty,
                        [[Arg((4, 0, H)), Arg((B, H)), Arg((B, H)), Arg((4 * H, H))]]))
    return cases


def _first_order(lib, fn):
    """``fn``'s VJP against a fixed cotangent pattern, as a differentiable function of the inputs."""
    def f(*args):
        with lib.enable_grad():  # gradcheck evaluates the function under no_grad
            xs = [a if a.requires_grad else a.detach().requires_grad_(True) for a in args]
            outs = fn(*xs)
            loss = sum((o * (0.5 + 0.1 * k)).sum() for k, o in enumerate(outs))
            return lib.autograd.grad(loss, xs, create_graph=True)
    return f


def _grad_cases():
    # gradgrad=False: the gradgradcheck of a gradient would be a third-order check; gradcheck of these
    # cases already verifies the second derivatives numerically.
    return [
        OpCase("rnn_sequence_grad", _first_order(dl, lambda x, h, w: dl_rnn(x, h, w, BS, True, "tanh")),
               _first_order(torch, lambda x, h, w: torch_rnn(x, h, w, BS, True, "tanh")),
               [[Arg((1, N, H)), Arg((B, H)), Arg((H, H))]], gradgrad=False),
        OpCase("lstm_sequence_grad",
               _first_order(dl, lambda *a: dl_lstm(*a, batch_sizes=BS, reverse=False)),
               _first_order(torch, lambda *a: torch_lstm(*a, batch_sizes=BS, reverse=False)),
               [[Arg((4, N, H)), Arg((B, P)), Arg((B, H)), Arg((4 * H, P)), Arg((P, H))]], gradgrad=False),
        OpCase("gru_sequence_grad",
               _first_order(dl, lambda *a: dl_gru(*a, batch_sizes=BS, reverse=True)),
               _first_order(torch, lambda *a: torch_gru(*a, batch_sizes=BS, reverse=True)),
               [[Arg((3, N, H)), Arg((B, H)), Arg((3 * H, H)), Arg((3 * H,))]], gradgrad=False),
    ]


def _cell_cases():
    i = 3
    return [
        OpCase("lstm_cell", lambda x, h, c, *w: R.lstm_cell(x, (h, c), *w),
               lambda x, h, c, *w: torch.lstm_cell(x, (h, c), *w),
               [[Arg((B, i)), Arg((B, H)), Arg((B, H)), Arg((4 * H, i)), Arg((4 * H, H)), Arg((4 * H,)),
                 Arg((4 * H,))],
                [Arg((B, i)), Arg((B, H)), Arg((B, H)), Arg((4 * H, i)), Arg((4 * H, H))],
                [Arg((0, i)), Arg((0, H)), Arg((0, H)), Arg((4 * H, i)), Arg((4 * H, H))]]),
        OpCase("gru_cell", R.gru_cell, torch.gru_cell,
               [[Arg((B, i)), Arg((B, H)), Arg((3 * H, i)), Arg((3 * H, H)), Arg((3 * H,)), Arg((3 * H,))],
                [Arg((B, i)), Arg((B, H)), Arg((3 * H, i)), Arg((3 * H, H))]]),
        OpCase("rnn_tanh_cell", R.rnn_tanh_cell, torch.rnn_tanh_cell,
               [[Arg((B, i)), Arg((B, H)), Arg((H, i)), Arg((H, H)), Arg((H,)), Arg((H,))]]),
        OpCase("rnn_relu_cell", R.rnn_relu_cell, torch.rnn_relu_cell,
               [[Arg((B, i)), Arg((B, H)), Arg((H, i)), Arg((H, H)), Arg((H,)), Arg((H,))]]),
    ]


CASES = _cell_cases() + _seq_cases() + _grad_cases()

