"""Recurrent layers, as ``torch.nn``: ``RNN``, ``LSTM``, ``GRU`` and the one-step ``RNNCell``,
``LSTMCell``, ``GRUCell``.

Parameter names, shapes, gate order (LSTM i, f, g, o; GRU r, z, n), initialization and the
input/output conventions (``batch_first``, unbatched 2-D input, :class:`PackedSequence` input) are
PyTorch's, so ``load_state_dict`` moves weights between the two. Each layer and direction computes its
input projection for every time step with one GEMM, then runs the recurrence as one primitive of
``danlu.ops.recurrent`` on packed rows: padded input is the special case where every step has the
full batch, and packed input computes each step on the still-running prefix of the batch only.
"""
# ruff: noqa: A002  (``input``, PyTorch's argument name)

from __future__ import annotations

import math
import numbers
import warnings

from ...core.errors import DTypeError, ShapeError, describe
from ...core.tensor import Tensor
from ...ops import recurrent as _rec
from ...ops.creation import empty, zeros
from ...ops.index import index_select
from ...ops.shape import cat, reshape, stack
from .. import functional as F
from .. import init
from ..parameter import Parameter
from ..utils.rnn import PackedSequence
from .module import Module

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _check_type(name, value, kind, what):
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{name} should be of type {what}, got: {type(value).__name__}")


class RNNBase(Module):
    """What ``RNN``, ``LSTM`` and ``GRU`` share: the parameters of every layer and direction, their
    initialization, and the layer loop. ``mode`` is ``'RNN_TANH'``, ``'RNN_RELU'``, ``'LSTM'`` or ``'GRU'``.

    >>> import danlu as dl
    >>> m = RNNBase("GRU", 3, 4, num_layers=2)
    >>> m._flat_weights_names[:4]
    ['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0']
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None) -> None:
        super().__init__()
        if mode not in _GATES:
            raise ValueError("Unrecognized RNN mode: " + str(mode))
        if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and "
                          f"num_layers={num_layers}", stacklevel=2)
        _check_type("bias", bias, bool, "bool")
        _check_type("batch_first", batch_first, bool, "bool")
        _check_type("input_size", input_size, int, "int")
        if input_size <= 0:
            raise ValueError("input_size must be greater than zero")
        _check_type("hidden_size", hidden_size, int, "int")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size if proj_size > 0 else hidden_size
        directions = 2 if bidirectional else 1
        self._flat_weights_names = []
        self._all_weights = []
        for layer in range(num_layers):
            for direction in range(directions):
                layer_input = input_size if layer == 0 else real_hidden * directions
                shapes = [(gate_size, layer_input), (gate_size, real_hidden)]
                if bias:
                    shapes += [(gate_size,), (gate_size,)]
                if proj_size > 0:
                    shapes.append((proj_size, hidden_size))
                suffix = "_reverse" if direction == 1 else ""
                kinds = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if bias else []) + \
                    (["weight_hr"] if proj_size > 0 else [])
                names = [f"{k}_l{layer}{suffix}" for k in kinds]
                for name, shape in zip(names, shapes):
                    setattr(self, name, Parameter(empty(*shape, device=device, dtype=dtype)))
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """PyTorch packs weights for cuDNN here; danlu's kernels read the parameters as they are."""

    @property
    def _flat_weights(self) -> list:
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self) -> list:
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # -- forward ----------------------------------------------------------------------------------
    def _state_sizes(self):
        return (self.proj_size if self.proj_size > 0 else self.hidden_size,) + \
            ((self.hidden_size,) if self.mode == "LSTM" else ())

    def forward(self, input, hx=None):
        """Run every layer over ``input``; returns ``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``)."""
        name = type(self).__name__
        directions = 2 if self.bidirectional else 1
        n_states = len(self._state_sizes())
        packed = isinstance(input, PackedSequence)
        if packed:
            data, bs_t, sorted_indices, unsorted_indices = input
            batch_sizes = tuple(int(b) for b in bs_t.tolist())
            n_b = batch_sizes[0] if batch_sizes else 0
            rows, batched = data, True
            if data.ndim != 2:
                raise ShapeError(f"{name}: a packed input's data must be 2-D (N, input_size), got {describe(data)}")
        else:
            if not isinstance(input, Tensor):
                raise TypeError(f"{name}: expected a Tensor or PackedSequence input, got {type(input).__name__}")
            if input.ndim not in (2, 3):
                raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D instead")
            batched = input.ndim == 3
            seq = input if batched and not self.batch_first else \
                input.transpose(0, 1) if batched else input.unsqueeze(1)
            n_t, n_b = seq.shape[0], seq.shape[1]
            batch_sizes = (n_b,) * n_t
            rows = reshape(seq, (n_t * n_b, seq.shape[2]))
            sorted_indices = unsorted_indices = None
        if rows.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got "
                               f"{rows.shape[-1]}")
        wdt = self.weight_ih_l0.dtype
        if rows.dtype is not wdt:
            raise DTypeError(f"{name}: input dtype ({rows.dtype.name}) does not match weight dtype ({wdt.name}). "
                             f"Convert the input: input.to(danlu.{wdt.name}), or the model: model.to(danlu."
                             f"{rows.dtype.name})")
        states = self._initial_states(name, hx, batched, n_b, rows.dtype, sorted_indices)

        layer_in = rows
        finals = [[] for _ in range(n_states)]
        for layer in range(self.num_layers):
            outs = []
            for direction in range(directions):
                k = layer * directions + direction
                init_k = [s[k] if s is not None else None for s in states]
                out, fin = self._run_direction(k, layer_in, init_k, batch_sizes, direction == 1, n_b)
                outs.append(out)
                for lst, f in zip(finals, fin):
                    lst.append(f)
            layer_in = cat(outs, 1) if directions == 2 else outs[0]
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, True)

        h_out = [stack(f, 0) for f in finals]
        if packed:
            if unsorted_indices is not None:
                h_out = [index_select(h, 1, unsorted_indices) for h in h_out]
            output = PackedSequence(layer_in, bs_t, sorted_indices, unsorted_indices)
        else:
            output = reshape(layer_in, (n_t, n_b, layer_in.shape[1]))
            if not batched:
                output = output.squeeze(1)
                h_out = [h.squeeze(1) for h in h_out]
            elif self.batch_first:
                output = output.transpose(0, 1)
        return output, (tuple(h_out) if self.mode == "LSTM" else h_out[0])

    def _initial_states(self, name, hx, batched, n_b, dtype, sorted_indices):
        """Per state (h, and c for LSTM): a (L*D, B, size) tensor, or None for zeros."""
        sizes = self._state_sizes()
        lstm = self.mode == "LSTM"
        if hx is None:
            return [None] * len(sizes)
        given = tuple(hx) if lstm else (hx,)
        if lstm and len(given) != 2:
            raise RuntimeError(f"{name}: expected hx to be a tuple (h_0, c_0), got {len(given)} tensors")
        for g in given:
            if not isinstance(g, Tensor):
                raise TypeError(f"{name}: expected hx to be Tensors, got {type(g).__name__}")
        want = 3 if batched else 2
        if any(g.ndim != want for g in given):
            got = ", ".join(f"{g.ndim}-D" for g in given)
            what = "hx and cx" if lstm else "hx"
            kind = "batched 3-D" if batched else "unbatched 2-D"
            if lstm:
                raise RuntimeError(f"For {kind} input, {what} should also be {want}-D but got ({got}) tensors")
            raise RuntimeError(f"For {kind} input, {what} should also be {want}-D but got {got} tensor")
        if not batched:
            given = tuple(g.unsqueeze(1) for g in given)
        if sorted_indices is not None:
            given = tuple(index_select(g, 1, sorted_indices) for g in given)
        layers = self.num_layers * (2 if self.bidirectional else 1)
        for i, (g, size) in enumerate(zip(given, sizes)):
            expected = (layers, n_b, size)
            if tuple(g.shape) != expected:
                what = f"hidden[{i}]" if lstm else "hidden"
                raise RuntimeError(f"Expected {what} size {expected}, got {list(g.shape)}")
            if g.dtype is not dtype:
                raise DTypeError(f"{name}: the initial state {describe(g)} must have the input's dtype {dtype.name}")
        return list(given)

    def _run_direction(self, k, x, init_states, batch_sizes, reverse, n_b):
        """One layer and direction: the input projection for all steps, then the recurrence primitive."""
        layer, direction = divmod(k, 2 if self.bidirectional else 1)
        sfx = f"_l{layer}" + ("_reverse" if direction else "")
        w_ih, w_hh = getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx)
        b_ih = getattr(self, "bias_ih" + sfx) if self.bias else None
        b_hh = getattr(self, "bias_hh" + sfx) if self.bias else None
        states = [s if s is not None else zeros(n_b, size, dtype=x.dtype)
                  for s, size in zip(init_states, self._state_sizes())]
        if self.mode == "GRU":
            xp = _rec.input_projection(x, w_ih, 3, b_ih)
            out, h = _rec.gru_sequence(xp, states[0], w_hh, b_hh, batch_sizes=batch_sizes, reverse=reverse)
            return out, (h,)
        if self.mode == "LSTM":
            xp = _rec.input_projection(x, w_ih, 4, b_ih, b_hh)
            w_hr = getattr(self, "weight_hr" + sfx) if self.proj_size > 0 else None
            out, h, c = _rec.lstm_sequence(xp, states[0], states[1], w_hh, w_hr, batch_sizes=batch_sizes,
                                           reverse=reverse)
            return out, (h, c)
        xp = _rec.input_projection(x, w_ih, 1, b_ih, b_hh)
        nonlinearity = "tanh" if self.mode == "RNN_TANH" else "relu"
        out, h = _rec.rnn_sequence(xp, states[0], w_hh, batch_sizes=batch_sizes, reverse=reverse,
                                   nonlinearity=nonlinearity)
        return out, (h,)


class RNN(RNNBase):
    """A multi-layer Elman RNN, ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (or relu), as
    ``torch.nn.RNN``: ``forward(input, h_0=None) -> (output, h_n)``.

    >>> import danlu as dl
    >>> rnn = RNN(4, 3, num_layers=2)
    >>> out, h = rnn(dl.randn(5, 2, 4))
    >>> out.shape, h.shape
    (danlu.Size([5, 2, 3]), danlu.Size([2, 2, 3]))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None) -> None:
        if nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """A multi-layer LSTM (gates i, f, g, o; optional output projection ``proj_size``), as
    ``torch.nn.LSTM``: ``forward(input, (h_0, c_0)=None) -> (output, (h_n, c_n))``.

    >>> import danlu as dl
    >>> lstm = LSTM(4, 3, batch_first=True, bidirectional=True)
    >>> out, (h, c) = lstm(dl.randn(2, 5, 4))
    >>> out.shape, h.shape, c.shape
    (danlu.Size([2, 5, 6]), danlu.Size([2, 2, 3]), danlu.Size([2, 2, 3]))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device=device, dtype=dtype)


class GRU(RNNBase):
    """A multi-layer GRU (gates r, z, n with ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``), as
    ``torch.nn.GRU``: ``forward(input, h_0=None) -> (output, h_n)``.

    >>> import danlu as dl
    >>> gru = GRU(4, 3)
    >>> out, h = gru(dl.randn(5, 4))  # unbatched
    >>> out.shape, h.shape
    (danlu.Size([5, 3]), danlu.Size([1, 3]))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


# == cells ==========================================================================================

class RNNCellBase(Module):
    """What the one-step cells share: ``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``, ``bias_ih``,
    ``bias_hh``, all from U(-1/sqrt(H), 1/sqrt(H)).

    >>> import danlu as dl
    >>> [n for n, _ in LSTMCell(2, 3).named_parameters()]
    ['weight_ih', 'weight_hh', 'bias_ih', 'bias_hh']
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None,
                 dtype=None) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.weight_ih = Parameter(empty(num_chunks * hidden_size, input_size, device=device, dtype=dtype))
        self.weight_hh = Parameter(empty(num_chunks * hidden_size, hidden_size, device=device, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, device=device, dtype=dtype))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        nl = self.__dict__.get("nonlinearity", "tanh")
        if nl != "tanh":
            s += f", nonlinearity={nl}"
        return s

    def _prepare(self, input, states):
        """(2-D input, 2-D states, batched): unbatched 1-D input and states gain a batch dimension."""
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected a Tensor input, got {type(input).__name__}")
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        batched = input.ndim == 2
        if input.dtype is not self.weight_ih.dtype:
            raise DTypeError(f"{name}: input dtype ({input.dtype.name}) does not match weight dtype "
                             f"({self.weight_ih.dtype.name}); convert the input or the module with .to(dtype)")
        x = input if batched else input.unsqueeze(0)
        out = []
        for i, s in enumerate(states):
            if s is None:
                out.append(zeros(x.shape[0], self.hidden_size, dtype=x.dtype))
                continue
            if s.ndim != input.ndim:
                raise ValueError(f"{name}: Expected hidden to be {input.ndim}D like the input, got {s.ndim}D "
                                 "instead")
            s = s if batched else s.unsqueeze(0)
            if s.shape[1] != self.hidden_size:
                raise ShapeError(f"{name}: hidden{i} has inconsistent hidden_size: got {s.shape[1]}, expected "
                                 f"{self.hidden_size}")
            out.append(s)
        return x, out, batched


class RNNCell(RNNCellBase):
    """One Elman RNN step, ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or relu), as ``torch.nn.RNNCell``.

    >>> import danlu as dl
    >>> cell = RNNCell(4, 3, nonlinearity="relu")
    >>> cell(dl.randn(2, 4)).shape
    danlu.Size([2, 3])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._prepare(input, (hx,))
        if self.nonlinearity == "tanh":
            fn = _rec.rnn_tanh_cell
        elif self.nonlinearity == "relu":
            fn = _rec.rnn_relu_cell
        else:
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        out = fn(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out if batched else out.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step: ``forward(input, (h, c)=None) -> (h', c')``, as ``torch.nn.LSTMCell``.

    >>> import danlu as dl
    >>> h, c = LSTMCell(4, 3)(dl.randn(4))  # unbatched
    >>> h.shape, c.shape
    (danlu.Size([3]), danlu.Size([3]))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx=None):
        x, (h, c), batched = self._prepare(input, (None, None) if hx is None else tuple(hx))
        h1, c1 = _rec.lstm_cell(x, (h, c), self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h1, c1) if batched else (h1.squeeze(0), c1.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step, as ``torch.nn.GRUCell``.

    >>> import danlu as dl
    >>> GRUCell(4, 3)(dl.randn(2, 4), dl.zeros(2, 3)).shape
    danlu.Size([2, 3])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._prepare(input, (hx,))
        out = _rec.gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out if batched else out.squeeze(0)
