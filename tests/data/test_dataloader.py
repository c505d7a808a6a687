"""DataLoader in the main process (num_workers=0): batches, lengths and argument checks against
torch.utils.data.DataLoader. Worker processes are tested in test_workers.py."""

import warnings

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import danlu as dl
from danlu.data import (BatchSampler, DataLoader, Dataset, IterableDataset, SequentialSampler, Subset, TensorDataset,
                        default_collate)

X = np.arange(70, dtype=np.float32).reshape(35, 2)
Y = np.arange(35) % 3


def _ours(**kw):
    return DataLoader(TensorDataset(dl.tensor(X), dl.tensor(Y)), **kw)


def _theirs(**kw):
    return tud.DataLoader(tud.TensorDataset(torch.tensor(X), torch.tensor(Y)), **kw)


def _to_np(batch):
    if isinstance(batch, dl.Tensor):
        return batch.numpy()
    if isinstance(batch, torch.Tensor):
        return batch.numpy()
    if isinstance(batch, list | tuple):
        return type(batch)(_to_np(b) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_np(v) for k, v in batch.items()}
    return batch


def assert_batches_equal(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        a, b = _to_np(a), _to_np(b)
        assert type(a) is type(b)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype
        elif isinstance(a, list | tuple):
            assert len(a) == len(b)
            for u, v in zip(a, b, strict=True):
                np.testing.assert_array_equal(u, v)
                assert np.asarray(u).dtype == np.asarray(v).dtype
        else:
            assert a == b


@pytest.mark.parametrize("bs,drop", [(1, False), (4, False), (4, True), (7, True), (35, False), (50, False),
                                     (50, True)])
def test_tensor_dataset_batches_match_torch(bs, drop):
    ours, theirs = _ours(batch_size=bs, drop_last=drop), _theirs(batch_size=bs, drop_last=drop)
    assert len(ours) == len(theirs)
    assert_batches_equal(list(ours), list(theirs))


def test_batch_size_none_yields_converted_samples_like_torch():
    assert_batches_equal(list(_ours(batch_size=None)), list(_theirs(batch_size=None)))
    assert len(_ours(batch_size=None)) == 35


def test_fast_path_equals_generic_collation():
    ds = TensorDataset(dl.tensor(X), dl.tensor(Y))
    sub = Subset(Subset(ds, list(range(30, 0, -2))), [3, 1, 4, 1, 5, 9, 2, 6])
    fast = list(DataLoader(sub, batch_size=3))
    generic = list(DataLoader(sub, batch_size=3, collate_fn=lambda b: default_collate(b)))
    assert_batches_equal(fast, generic)
    # NumPy arrays inside a TensorDataset, negative indices from a custom batch sampler.
    nds = TensorDataset(X, Y)
    batches = [[0, -1, 5], [-35, 34]]
    fast = list(DataLoader(nds, batch_sampler=batches))
    generic = list(DataLoader(nds, batch_sampler=batches, collate_fn=lambda b: default_collate(b)))
    assert_batches_equal(fast, generic)
    assert fast[0][0].dtype is dl.float32 and fast[0][1].dtype is dl.int64


def test_fast_path_out_of_range_index_raises_the_datasets_error():
    with pytest.raises(IndexError):
        list(DataLoader(TensorDataset(dl.tensor(X)), batch_sampler=[[0, 99]]))


def test_shuffle_reproducible_with_generator_and_manual_seed():
    def epoch(loader):
        return [y.tolist() for _, y in loader]

    a = epoch(_ours(batch_size=5, shuffle=True, generator=dl.Generator().manual_seed(0)))
    b = epoch(_ours(batch_size=5, shuffle=True, generator=dl.Generator().manual_seed(0)))
    assert a == b
    assert sorted(sum(a, [])) == sorted(Y.tolist())
    dl.manual_seed(11)
    loader = _ours(batch_size=5, shuffle=True)
    e1, e2 = epoch(loader), epoch(loader)
    assert e1 != e2  # a new order every epoch
    dl.manual_seed(11)
    loader = _ours(batch_size=5, shuffle=True)
    assert [epoch(loader), epoch(loader)] == [e1, e2]


def test_sampler_batch_sampler_and_collate_fn():
    ds = TensorDataset(dl.tensor(X), dl.tensor(Y))
    out = [y.tolist() for _, y in DataLoader(ds, batch_size=2, sampler=[4, 3, 2])]
    assert out == [[Y[4], Y[3]], [Y[2]]]
    out = [x[:, 0].tolist() for x, _ in DataLoader(ds, batch_sampler=[[0, 1], [10]])]
    assert out == [[0.0, 2.0], [20.0]]
    assert list(DataLoader(range(5), batch_size=2, collate_fn=sum)) == [1, 5, 4]
    loader = DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), 10, drop_last=True))
    assert len(loader) == 3 and loader.batch_size is None


def test_getitems_is_used_for_batches():
    class Batched(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            raise AssertionError("__getitems__ should be used")

        def __getitems__(self, idx):
            return [float(i) for i in idx]

    assert [b.tolist() for b in DataLoader(Batched(), batch_size=4)] == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0]]


class Stream(IterableDataset):
    def __init__(self, n, length=None):
        self.n, self.length = n, length

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n if self.length is None else self.length


class TorchStream(tud.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


@pytest.mark.parametrize("bs,drop", [(3, False), (3, True), (None, False), (10, False), (10, True)])
def test_iterable_dataset_batches_match_torch(bs, drop):
    ours = DataLoader(Stream(10), batch_size=bs, drop_last=drop)
    theirs = tud.DataLoader(TorchStream(10), batch_size=bs, drop_last=drop)
    assert len(ours) == len(theirs)
    assert_batches_equal(list(ours), list(theirs))


def test_iterable_dataset_longer_than_reported_warns():
    loader = DataLoader(Stream(5, length=3), batch_size=None)
    assert len(loader) == 3
    with pytest.warns(UserWarning, match="reported to be 3"):
        assert len(list(loader)) == 5


def _both(kwargs, dataset_kind="map"):
    """Whether each library accepts the arguments: (ours_ok, theirs_ok, our error)."""
    ds_ours = Stream(4) if dataset_kind == "iterable" else TensorDataset(dl.zeros(4))
    ds_theirs = TorchStream(4) if dataset_kind == "iterable" else tud.TensorDataset(torch.zeros(4))
    results = []
    for cls, ds in ((DataLoader, ds_ours), (tud.DataLoader, ds_theirs)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cls(ds, **kwargs)
            results.append(None)
        except (ValueError, TypeError) as e:
            results.append(e)
    return results


@pytest.mark.parametrize("kwargs,kind,match", [
    ({"num_workers": -1}, "map", "num_workers"),
    ({"timeout": -1}, "map", "timeout"),
    ({"prefetch_factor": 2}, "map", "prefetch_factor"),
    ({"persistent_workers": True}, "map", "persistent_workers"),
    ({"sampler": [0, 1], "shuffle": True}, "map", "mutually exclusive with shuffle"),
    ({"batch_sampler": [[0]], "batch_size": 2}, "map", "batch_sampler option is mutually exclusive"),
    ({"batch_sampler": [[0]], "drop_last": True}, "map", "batch_sampler option is mutually exclusive"),
    ({"batch_sampler": [[0]], "shuffle": True}, "map", "batch_sampler option is mutually exclusive"),
    ({"batch_size": None, "drop_last": True}, "map", "batch_size=None"),
    ({"shuffle": True}, "iterable", "shuffle"),
    ({"sampler": [0]}, "iterable", "sampler"),
    ({"batch_sampler": [[0]]}, "iterable", "batch_sampler"),
    ({"multiprocessing_context": "fork"}, "map", "multi-process"),
    ({"num_workers": 1, "multiprocessing_context": "nonsense"}, "map", "start method"),
])
def test_argument_errors_like_torch(kwargs, kind, match):
    ours, theirs = _both(kwargs, kind)
    assert theirs is not None, "torch accepts these arguments; the test table is wrong"
    assert ours is not None and type(ours) is type(theirs)
    assert match in str(ours)


def test_attributes_fixed_after_init():
    loader = _ours(batch_size=2)
    for name in ("batch_size", "sampler", "dataset", "drop_last", "batch_sampler", "persistent_workers"):
        with pytest.raises(ValueError, match=f"{name} attribute should not be set"):
            setattr(loader, name, None)
    loader.num_workers = 0  # others may change, as in PyTorch


def test_pin_memory_is_accepted_with_a_warning():
    with pytest.warns(UserWarning, match="pin_memory"):
        loader = _ours(batch_size=4, pin_memory=True)
    assert len(list(loader)) == 9


def test_exceptions_in_main_process_keep_their_type():
    class Bad(Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            raise KeyError(f"no sample {i}")

    with pytest.raises(KeyError, match="no sample 0"):
        next(iter(DataLoader(Bad())))


def test_worker_info_is_none_in_main_process():
    from danlu.data import get_worker_info

    class Probe(Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return get_worker_info() is None

    assert next(iter(DataLoader(Probe(), batch_size=None))) is True
