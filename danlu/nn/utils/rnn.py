"""Variable-length sequences for recurrent layers, as ``torch.nn.utils.rnn``.

A :class:`PackedSequence` stores a batch of sequences time step by time step: the rows of step ``t``
are the ``batch_sizes[t]`` sequences still running at ``t``, longest first, so a recurrent layer can
process each step on a prefix of the batch and never computes on padding. Every conversion here
(packing, padding, unpacking) is one row gather (``index_select``) from the concatenated inputs,
plus one padding row where padding appears, so each is differentiable with a cheap backward.
"""
# ruff: noqa: A002  (``input``, PyTorch's argument name)

from __future__ import annotations

from collections import namedtuple

import numpy as np

from ...core import dtypes as _dt
from ...core.creation import tensor as _tensor
from ...core.errors import ShapeError, api, describe
from ...core.tensor import Tensor
from ...ops.creation import full
from ...ops.index import index_select
from ...ops.shape import cat, reshape

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "unpad_sequence", "pack_sequence", "unpack_sequence"]


def _index(values) -> Tensor:
    return _tensor(np.asarray(values, dtype=np.int64).reshape(-1), dtype=_dt.int64)


def _ints(x) -> list:
    if isinstance(x, Tensor):
        return [int(v) for v in x.tolist()]
    return [int(v) for v in np.asarray(x).reshape(-1).tolist()]


@api
def invert_permutation(permutation: Tensor | None) -> Tensor | None:
    """The inverse of a permutation of ``0..n-1`` (None stays None).

    >>> import danlu as dl
    >>> invert_permutation(dl.tensor([2, 0, 1]))
    tensor([1, 2, 0])
    """
    if permutation is None:
        return None
    p = np.asarray(_ints(permutation), dtype=np.int64)
    inv = np.empty_like(p)
    inv[p] = np.arange(p.size, dtype=np.int64)
    return _index(inv)


_Fields = namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])


class PackedSequence(_Fields):
    """A packed batch of variable-length sequences: ``data (N, *)`` holds the steps' rows,
    ``batch_sizes[t]`` how many sequences run at step ``t``; ``sorted_indices[j]`` is the original batch
    index of the ``j``-th longest sequence (None when the batch came sorted) and ``unsorted_indices`` its
    inverse. Build one with :func:`pack_padded_sequence` or :func:`pack_sequence`.

    >>> import danlu as dl
    >>> p = pack_sequence([dl.tensor([1.0, 2.0, 3.0]), dl.tensor([4.0])])
    >>> p.data, p.batch_sizes
    (tensor([1., 4., 2., 3.]), tensor([2, 1, 1]))
    """

    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:  # PackedSequence((data, batch_sizes)), as torch allows
            data, batch_sizes = data
        if not isinstance(batch_sizes, Tensor):
            batch_sizes = _index(_ints(batch_sizes))
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def _with_data(self, data):
        if data is self.data:
            return self
        return type(self)(data, self.batch_sizes, self.sorted_indices, self.unsorted_indices)

    def to(self, *args, **kwargs) -> PackedSequence:
        """The same sequence with ``data`` converted (``batch_sizes`` stays int64)."""
        return self._with_data(self.data.to(*args, **kwargs))

    def float(self) -> PackedSequence:
        return self.to(_dt.float32)

    def double(self) -> PackedSequence:
        return self.to(_dt.float64)

    def half(self) -> PackedSequence:
        return self.to(_dt.float16)

    def cpu(self, *args, **kwargs) -> PackedSequence:
        return self

    @property
    def is_cuda(self) -> bool:
        return False

    def is_pinned(self) -> bool:
        return False


def _batch_sizes(lengths_sorted) -> list:
    """Sequences running at each step, for lengths in decreasing order."""
    ls = np.asarray(lengths_sorted, dtype=np.int64)
    if ls.size == 0:
        return []
    return [int(v) for v in (ls[None, :] > np.arange(int(ls[0]))[:, None]).sum(axis=1)]


def _sort_lengths(name, lengths, enforce_sorted):
    """(lengths in packed order, sorted_indices or None)."""
    if not lengths:
        raise RuntimeError(f"{name}: Cannot pack empty tensors.")
    if min(lengths) <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' "
                           "that is <= 0")
    if enforce_sorted:
        if any(a < b for a, b in zip(lengths, lengths[1:])):
            raise RuntimeError(
                "`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. You can pass "
                "`enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to sidestep this requirement "
                "if you do not need ONNX exportability.")
        return list(lengths), None
    # A stable sort: equal lengths keep their batch order, as PyTorch orders them.
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [lengths[i] for i in order], [int(i) for i in order]


def _packed_rows(lengths_sorted, order, index_of):
    """Row indices, in packed order, of ``index_of(t, b)`` (the row of step ``t`` of batch element ``b``)."""
    bs = _batch_sizes(lengths_sorted)
    order = order if order is not None else range(len(lengths_sorted))
    return [index_of(t, order[j]) for t, n in enumerate(bs) for j in range(n)], bs


@api
def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch ``(T, B, *)`` (``(B, T, *)`` with ``batch_first``) of sequences of the given
    ``lengths``. With ``enforce_sorted`` the lengths must be decreasing; otherwise the batch is sorted
    here and the permutation kept in the result.

    >>> import danlu as dl
    >>> x = dl.tensor([[1.0, 4.0], [2.0, 0.0], [3.0, 0.0]])  # (T=3, B=2)
    >>> pack_padded_sequence(x, [3, 1]).data
    tensor([1., 4., 2., 3.])
    """
    lengths = _ints(lengths)
    if input.ndim < 2:
        raise ShapeError(f"pack_padded_sequence: expected a padded batch (T, B, *) or (B, T, *), got {describe(input)}")
    b_dim, t_dim = (0, 1) if batch_first else (1, 0)
    n_b, n_t = input.shape[b_dim], input.shape[t_dim]
    if len(lengths) != n_b:
        raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got {len(lengths)} "
                           f"(batch_size={n_b})")
    ls, order = _sort_lengths("pack_padded_sequence", lengths, enforce_sorted)
    if ls[0] > n_t:
        raise ValueError(f"pack_padded_sequence: a length of {ls[0]} exceeds the {n_t} time steps of the padded "
                         f"input {describe(input)}")
    if batch_first:
        rows, bs = _packed_rows(ls, order, lambda t, b: b * n_t + t)
    else:
        rows, bs = _packed_rows(ls, order, lambda t, b: t * n_b + b)
    flat = reshape(input, (n_b * n_t,) + tuple(input.shape[2:]))
    data = index_select(flat, 0, _index(rows))
    sorted_indices = _index(order) if order is not None else None
    return PackedSequence(data, _index(bs), sorted_indices, None)


def _padded(data, row_index, shape, padding_value):
    """Gather ``data`` rows into ``shape``; ``row_index`` -1 marks padding."""
    rest = tuple(data.shape[1:])
    idx = np.asarray(row_index, dtype=np.int64)
    if (idx < 0).any():
        pad = full((1,) + rest, padding_value, dtype=data.dtype)
        data = cat([data, pad])
        idx = np.where(idx < 0, data.shape[0] - 1, idx)
    return reshape(index_select(data, 0, _index(idx)), tuple(shape) + rest)


@api
def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None):
    """The inverse of :func:`pack_padded_sequence`: ``(padded, lengths)`` with ``padded`` of shape
    ``(T, B, *)`` (``(B, T, *)`` with ``batch_first``) in the original batch order and ``lengths`` an int64
    tensor. ``total_length`` pads to that many steps.

    >>> import danlu as dl
    >>> p = pack_sequence([dl.tensor([1.0, 2.0]), dl.tensor([3.0])])
    >>> pad_packed_sequence(p, batch_first=True, padding_value=-1.0)
    (tensor([[ 1.,  2.],
            [ 3., -1.]]), tensor([2, 1]))
    """
    data, bs, sorted_indices, unsorted_indices = sequence
    bs = _ints(bs)
    n_t = len(bs)
    n_b = bs[0] if bs else 0
    if total_length is not None:
        if total_length < n_t:
            raise ValueError(f"Expected total_length to be at least the length of the longest sequence in input, "
                             f"but got total_length={total_length} and max sequence length being {n_t}")
        n_t_out = int(total_length)
    else:
        n_t_out = n_t
    offsets = np.concatenate(([0], np.cumsum(bs)[:-1])).astype(np.int64) if bs else np.zeros(0, np.int64)
    lens_sorted = np.asarray([sum(1 for n in bs if n > j) for j in range(n_b)], dtype=np.int64)
    pos = np.asarray(_ints(unsorted_indices), dtype=np.int64) if unsorted_indices is not None else np.arange(n_b)
    t = np.arange(n_t_out)[:, None]
    j = pos[None, :]
    if n_t:
        # steps past the end are padding: clip them to a valid offset, then mask
        rows = np.where(t < lens_sorted[j], offsets[np.minimum(t, n_t - 1)] + j, -1)
    else:
        rows = np.full((n_t_out, n_b), -1, np.int64)
    if batch_first:
        rows, shape = rows.T, (n_b, n_t_out)
    else:
        shape = (n_t_out, n_b)
    padded = _padded(data, rows.reshape(-1), shape, padding_value)
    return padded, _index(lens_sorted[pos])


@api
def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack sequences ``(L_i, *)`` into ``(T, B, *)`` (``(B, T, *)`` with ``batch_first``), padding each with
    ``padding_value`` on the ``padding_side`` to the longest length ``T``.

    >>> import danlu as dl
    >>> pad_sequence([dl.tensor([1.0, 2.0]), dl.tensor([3.0])], batch_first=True)
    tensor([[1., 2.],
            [3., 0.]])
    """
    if padding_side not in ("left", "right"):
        raise RuntimeError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    if isinstance(sequences, Tensor):
        sequences = list(sequences.unbind(0))
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("pad_sequence: received an empty list of sequences")
    rest = tuple(sequences[0].shape[1:])
    for i, s in enumerate(sequences):
        if s.ndim == 0 or tuple(s.shape[1:]) != rest:
            raise ShapeError(f"pad_sequence: every sequence must have shape (L, {', '.join(map(str, rest)) or '*'}) "
                             f"like sequence 0, but sequence {i} is {describe(s)}")
    lens = [s.shape[0] for s in sequences]
    n_t, n_b = max(lens), len(sequences)
    starts = np.concatenate(([0], np.cumsum(lens)[:-1])).astype(np.int64)
    t = np.arange(n_t)[:, None]
    ln = np.asarray(lens, dtype=np.int64)[None, :]
    k = t - (n_t - ln) if padding_side == "left" else t  # step within the sequence
    rows = np.where((k >= 0) & (k < ln), starts[None, :] + k, -1)
    if batch_first:
        rows, shape = rows.T, (n_b, n_t)
    else:
        shape = (n_t, n_b)
    return _padded(cat(sequences), rows.reshape(-1), shape, padding_value)


@api
def unpad_sequence(padded_sequences: Tensor, lengths, batch_first: bool = False) -> list:
    """Split a padded batch back into its sequences, the inverse of :func:`pad_sequence`.

    >>> import danlu as dl
    >>> unpad_sequence(dl.tensor([[1.0, 3.0], [2.0, 0.0]]), dl.tensor([2, 1]))
    [tensor([1., 2.]), tensor([3.])]
    """
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    return [x[i, :n] for i, n in enumerate(_ints(lengths))]


@api
def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences ``(L_i, *)`` (decreasing lengths unless ``enforce_sorted=False``).

    >>> import danlu as dl
    >>> pack_sequence([dl.tensor([1.0]), dl.tensor([2.0, 3.0])], enforce_sorted=False).data
    tensor([2., 1., 3.])
    """
    sequences = list(sequences)
    lengths = [s.shape[0] if s.ndim else 0 for s in sequences]
    ls, order = _sort_lengths("pack_sequence", lengths, enforce_sorted)
    rest = tuple(sequences[0].shape[1:])
    for i, s in enumerate(sequences):
        if tuple(s.shape[1:]) != rest:
            raise ShapeError(f"pack_sequence: sequence {i} is {describe(s)}, but sequence 0 has steps of shape "
                             f"{list(rest)}")
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    rows, bs = _packed_rows(ls, order, lambda t, b: int(starts[b]) + t)
    data = index_select(cat(sequences), 0, _index(rows))
    return PackedSequence(data, _index(bs), _index(order) if order is not None else None, None)


@api
def unpack_sequence(packed_sequences: PackedSequence) -> list:
    """The list of sequences in a :class:`PackedSequence`, in the original batch order.

    >>> import danlu as dl
    >>> unpack_sequence(pack_sequence([dl.tensor([1.0]), dl.tensor([2.0, 3.0])], enforce_sorted=False))
    [tensor([1.]), tensor([2., 3.])]
    """
    data, bs, _, unsorted_indices = packed_sequences
    bs = _ints(bs)
    n_b = bs[0] if bs else 0
    offsets = np.concatenate(([0], np.cumsum(bs)[:-1])).astype(np.int64) if bs else np.zeros(0, np.int64)
    pos = _ints(unsorted_indices) if unsorted_indices is not None else list(range(n_b))
    out = []
    for j in pos:
        steps = [t for t, n in enumerate(bs) if n > j]
        out.append(index_select(data, 0, _index(offsets[steps] + j)))
    return out
