"""DataLoader with worker processes: ordering, sharding, seeding, persistence, errors and shutdown.

Every test that starts workers checks that their processes are gone (reaped, not zombies) afterwards.
"""

import multiprocessing as mp
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch.utils.data as tud

import danlu as dl
from danlu.data import DataLoader, Dataset, IterableDataset, TensorDataset, get_worker_info

pytestmark = pytest.mark.filterwarnings("ignore:DataLoader.*worker processes were asked for")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _state(pid):
    """'gone', 'zombie' or 'running'."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return "gone"
    return "zombie" if state in ("Z", "X") else "running"


def assert_gone(pids, timeout=5.0, allow_zombie=False):
    deadline = time.monotonic() + timeout
    ok = ("gone", "zombie") if allow_zombie else ("gone",)
    while True:
        states = {p: _state(p) for p in pids}
        if all(s in ok for s in states.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"worker processes still present: {states}")
        time.sleep(0.05)


class Delayed(Dataset):
    """Sample i after a delay that varies, so that workers finish out of order."""

    def __init__(self, n=24):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(0.002 * ((i * 7) % 5))
        return i


def test_ordered_delivery_with_workers_matches_main_process():
    loader = DataLoader(Delayed(), batch_size=2, num_workers=3)
    it = iter(loader)
    pids = it.worker_pids
    assert len(pids) == 3 and len(set(pids)) == 3
    out = [b.tolist() for b in it]
    assert out == [b.tolist() for b in DataLoader(Delayed(), batch_size=2)]
    assert_gone(pids)  # end of epoch stops non-persistent workers


def test_tensor_dataset_with_workers_equals_main_process_and_torch():
    x = np.random.rand(203, 5).astype(np.float32)
    y = np.arange(203)
    ds = TensorDataset(dl.tensor(x), dl.tensor(y))
    ours = list(DataLoader(ds, batch_size=16, num_workers=2))
    ref = list(tud.DataLoader(tud.TensorDataset(*map(__import__("torch").tensor, (x, y))), batch_size=16))
    assert len(ours) == len(ref) == 13
    for (a, b), (c, d) in zip(ours, ref, strict=True):
        assert a.dtype is dl.float32 and b.dtype is dl.int64
        np.testing.assert_array_equal(a.numpy(), c.numpy())
        np.testing.assert_array_equal(b.numpy(), d.numpy())
    # Batches from workers are ordinary, writable tensors.
    a = ours[0][0]
    a[0, 0] = 42.0
    assert a[0, 0].item() == 42.0


def test_task_messages_larger_than_a_pipe():
    # Each batch of indices pickles to ~150 kB, more than a pipe holds: the main process must not block.
    ds = TensorDataset(dl.arange(120000))
    shuffled = DataLoader(ds, batch_size=30000, shuffle=True, num_workers=2, generator=dl.Generator().manual_seed(0))
    batches = [b[0].numpy() for b in shuffled]
    assert [len(b) for b in batches] == [30000] * 4
    assert sorted(np.concatenate(batches).tolist()) == list(range(120000))


def test_small_and_large_results_and_structures():
    class Mixed(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            big = np.full((300, 300), i, np.float64)  # ~700 kB: travels in shared memory
            return {"big": big, "small": i, "name": f"s{i}", "pair": (np.float32(i), [i, i + 1])}

    for nw in (0, 2):
        out = list(DataLoader(Mixed(), batch_size=2, num_workers=nw))
        assert out[1]["big"].shape == (2, 300, 300) and out[1]["big"][1].max().item() == 3.0
        assert out[1]["small"].tolist() == [2, 3] and out[1]["name"] == ["s2", "s3"]
        assert out[0]["pair"][0].dtype is dl.float32 and out[0]["pair"][1][1].tolist() == [1, 2]


class Filled(Dataset):
    """Sample i: an array full of i whose size grows with i (so shared-memory slots must grow)."""

    def __len__(self):
        return 48

    def __getitem__(self, i):
        return np.full(20000 + 1000 * (i // 4) * 4, i, np.float32)


def _check_filled(batch, first):
    values = batch.numpy()
    assert values.shape[0] == 4
    for k in range(4):
        assert (values[k] == first + k).all()


def test_shared_memory_results_are_never_overwritten():
    loader = DataLoader(Filled(), batch_size=4, num_workers=2, persistent_workers=True)
    kept = []
    for epoch in range(4):
        for b, batch in enumerate(loader):
            _check_filled(batch, 4 * b)
            kept.append((batch, 4 * b))
            if epoch == 1 and b == 2:
                break  # results still in flight must not corrupt the next epoch
    for batch, first in kept:
        _check_filled(batch, first)  # batches are the main process's own memory
    pids = loader._iterator.worker_pids
    del loader
    assert_gone(pids)


def test_portable_transports(monkeypatch):
    """The pipe/queue transports used where memfd, SEQPACKET or non-blocking pipes are missing."""
    from danlu.data import _transport, dataloader

    def queue_tasks(ctx):
        sender = _transport._QueueTaskSender(ctx)
        return sender, _transport._QueueTaskReceiver(sender.queue)

    monkeypatch.setattr(dataloader, "make_channel", _transport._PipeChannel)
    monkeypatch.setattr(dataloader, "make_task_pipe", queue_tasks)
    loader = DataLoader(Filled(), batch_size=4, num_workers=2, persistent_workers=True)
    it = iter(loader)
    assert isinstance(it._channel, _transport._PipeChannel)
    for _ in range(2):
        for b, batch in enumerate(loader):
            _check_filled(batch, 4 * b)
    with pytest.raises(ValueError, match="sample 3 is broken"):
        list(DataLoader(Failing(), batch_size=2, num_workers=2))
    pids = it.worker_pids
    del loader, it
    assert_gone(pids)


class Shards(IterableDataset):
    def __init__(self, n, info_fn):
        self.n, self.info_fn = n, info_fn

    def __iter__(self):
        info = self.info_fn()
        if info is None:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))


class TorchShards(Shards, tud.IterableDataset):
    pass


@pytest.mark.parametrize("bs,drop", [(3, False), (3, True), (None, False)])
def test_iterable_sharding_matches_torch(bs, drop):
    ours = [b if isinstance(b, int) else b.tolist()
            for b in DataLoader(Shards(20, get_worker_info), batch_size=bs, drop_last=drop, num_workers=2)]
    theirs = [b if isinstance(b, int) else b.tolist()
              for b in tud.DataLoader(TorchShards(20, tud.get_worker_info), batch_size=bs, drop_last=drop,
                                      num_workers=2)]
    assert ours == theirs


def test_iterable_without_sharding_repeats_per_worker():
    out = [b.tolist() for b in DataLoader(Shards(4, lambda: None), batch_size=2, num_workers=2)]
    assert sorted(sum(out, [])) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_worker_info_is_read_only():
    from danlu.data import WorkerInfo

    info = WorkerInfo(id=1, num_workers=2, seed=7, dataset=None)
    assert (info.id, info.num_workers, info.seed) == (1, 2, 7)
    assert repr(info) == "WorkerInfo(id=1, num_workers=2, seed=7)"
    with pytest.raises(RuntimeError, match="read-only"):
        info.id = 3


class Info(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        w = get_worker_info()
        return {"id": w.id, "num_workers": w.num_workers, "seed": w.seed, "own_dataset": w.dataset is self,
                "dl_seed": dl.initial_seed(), "dl": dl.rand(1).item(), "np": float(np.random.rand()),
                "py": random.random(), "pid": os.getpid()}


def _by_worker(samples):
    out = {}
    for s in samples:
        out.setdefault(s["id"], []).append(s)
    return out


def test_worker_info_and_seeding():
    g = dl.Generator().manual_seed(123)
    expected_base = dl.Generator().manual_seed(123)
    from danlu.data.sampler import _draw_seed

    base = _draw_seed(expected_base)
    samples = list(DataLoader(Info(), batch_size=None, num_workers=2, generator=g))
    workers = _by_worker(samples)
    assert set(workers) == {0, 1}
    for wid, ss in workers.items():
        first = ss[0]
        seed = base + wid
        assert first["num_workers"] == 2 and first["seed"] == seed and first["dl_seed"] == seed
        assert first["own_dataset"]  # info.dataset is the copy of the dataset in this worker
        # Each worker seeded danlu, NumPy and random with base_seed + worker_id.
        assert first["dl"] == dl.rand(1, generator=dl.Generator().manual_seed(seed)).item()
        np.random.seed([seed & 0xFFFFFFFF, seed >> 32])
        assert first["np"] == np.random.rand()
        assert first["py"] == random.Random(seed).random()


def test_seeding_reproducible_and_different_per_worker():
    def run(seed):
        return [(s["id"], s["dl"], s["np"], s["py"])
                for s in DataLoader(Info(), batch_size=None, num_workers=2,
                                    generator=dl.Generator().manual_seed(seed))]

    a, b, c = run(5), run(5), run(6)
    assert a == b and a != c
    w = _by_worker([{"id": i, "v": v} for i, v, _, _ in a])
    assert w[0][0]["v"] != w[1][0]["v"]
    # Without a generator the base seed comes from danlu's default generator.
    dl.manual_seed(9)
    d = [s["dl"] for s in DataLoader(Info(), batch_size=None, num_workers=2)]
    dl.manual_seed(9)
    assert d == [s["dl"] for s in DataLoader(Info(), batch_size=None, num_workers=2)]


def test_random_transforms_in_workers_reproduce():
    from danlu.data import transforms as T

    class Images(Dataset):
        tf = T.Compose([T.ToTensor(), T.RandomCrop(4, padding=2), T.RandomHorizontalFlip()])

        def __len__(self):
            return 6

        def __getitem__(self, i):
            return self.tf(np.arange(16, dtype=np.uint8).reshape(4, 4) * i)

    def run():
        return [b.numpy().copy() for b in DataLoader(Images(), batch_size=3, num_workers=2,
                                                     generator=dl.Generator().manual_seed(0))]

    a, b = run(), run()
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


_init_calls = []


class FromInit(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return _init_calls[-1]


def test_worker_init_fn_runs_in_each_worker():
    def init(worker_id):
        _init_calls.append(worker_id * 100 + get_worker_info().id)

    out = [b.item() for b in DataLoader(FromInit(), num_workers=2, worker_init_fn=init)]
    assert out == [0, 101, 0, 101]
    assert _init_calls == []  # it ran in the workers, not here


def test_prefetch_factor_limits_tasks_in_flight():
    started = mp.get_context("fork").Value("i", 0)

    class Counting(Dataset):
        def __len__(self):
            return 40

        def __getitem__(self, i):
            with started.get_lock():
                started.value += 1
            return i

    def settle(expected):
        deadline = time.monotonic() + 10
        while started.value < expected and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # time for any task beyond the limit to show up
        return started.value

    for pf, nw in ((2, 2), (3, 1)):
        started.value = 0
        it = iter(DataLoader(Counting(), batch_size=1, num_workers=nw, prefetch_factor=pf))
        assert settle(pf * nw) == pf * nw
        next(it)
        assert settle(pf * nw + 1) == pf * nw + 1
        pids = it.worker_pids
        del it
        assert_gone(pids)


def test_persistent_workers_are_reused_across_epochs():
    loader = DataLoader(Delayed(12), batch_size=2, num_workers=2, persistent_workers=True)
    it = iter(loader)
    pids = it.worker_pids
    expected = [[2 * k, 2 * k + 1] for k in range(6)]
    assert [b.tolist() for b in it] == expected
    assert all(_state(p) == "running" for p in pids)
    for _ in range(2):
        it2 = iter(loader)
        assert it2 is it and it2.worker_pids == pids
        assert [b.tolist() for b in it2] == expected
    # An epoch abandoned half-way: results still in flight are dropped, the next epoch is complete.
    it3 = iter(loader)
    next(it3)
    next(it3)
    assert [b.tolist() for b in iter(loader)] == expected
    del loader, it, it2, it3
    assert_gone(pids)


def test_persistent_workers_with_iterable_dataset():
    loader = DataLoader(Shards(9, get_worker_info), batch_size=2, num_workers=2, persistent_workers=True)
    first = [b.tolist() for b in loader]
    pids = loader._iterator.worker_pids
    assert sorted(sum(first, [])) == list(range(9))
    assert [b.tolist() for b in loader] == first
    assert loader._iterator.worker_pids == pids
    del loader
    assert_gone(pids)


class Failing(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        if i == 3:
            raise ValueError(f"sample {i} is broken")  # the line the traceback must show
        if i == 5:
            raise KeyError("missing key 5")
        return i


def test_worker_exception_reraised_with_traceback_and_iteration_continues():
    it = iter(DataLoader(Failing(), batch_size=2, num_workers=2))
    pids = it.worker_pids
    assert next(it).tolist() == [0, 1]
    with pytest.raises(ValueError) as info:
        next(it)
    msg = str(info.value)
    assert "Caught ValueError in DataLoader worker process 1" in msg
    assert "Original Traceback (most recent call last)" in msg
    assert 'raise ValueError(f"sample {i} is broken")' in msg and "sample 3 is broken" in msg
    assert "test_workers.py" in msg
    with pytest.raises(KeyError) as info:
        next(it)
    assert "\\n" not in str(info.value) and "missing key 5" in str(info.value)
    assert [b.tolist() for b in it] == [[6, 7], [8, 9]]
    assert_gone(pids)


def test_unpicklable_exception_and_result():
    class LocalError(Exception):
        pass

    class Odd(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            if i == 0:
                raise LocalError("local trouble")
            return lambda: i  # cannot be pickled

    it = iter(DataLoader(Odd(), batch_size=None, num_workers=1, collate_fn=lambda x: x))
    with pytest.raises(RuntimeError, match="(?s)Caught LocalError.*local trouble"):
        next(it)
    with pytest.raises(Exception, match="(?s)while sending its result.*pickle"):
        next(it)


def test_stop_iteration_in_a_map_dataset_worker_is_an_error_not_the_end():
    class Stops(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            if i == 1:
                raise StopIteration
            return i

    with pytest.raises(RuntimeError, match="Caught StopIteration"):
        list(DataLoader(Stops(), num_workers=1))


def test_worker_init_fn_error_is_reraised():
    def init(worker_id):
        raise OSError(f"cannot open shard {worker_id}")

    with pytest.raises(OSError, match="(?s)Caught OSError in DataLoader worker process 0.*cannot open shard 0"):
        list(DataLoader(Delayed(4), num_workers=1, worker_init_fn=init))


def test_timeout_raises_and_stops_workers():
    class Slow(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            time.sleep(10)

    it = iter(DataLoader(Slow(), num_workers=1, timeout=0.3))
    pids = it.worker_pids
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="timed out after 0.3 seconds"):
        next(it)
    assert time.monotonic() - t0 < 3
    assert_gone(pids, timeout=2)


def test_dying_worker_raises_instead_of_hanging():
    class Dies(Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            if i == 4:
                os._exit(7)
            time.sleep(0.01)
            return i

    it = iter(DataLoader(Dies(), batch_size=2, num_workers=2))
    pids = it.worker_pids
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"exited unexpectedly: worker 0 \(pid \d+\) exited with code 7"):
        list(it)
    assert time.monotonic() - t0 < 3
    assert_gone(pids, timeout=2)


def test_killed_worker_is_reported():
    class Slow(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            time.sleep(0.5)
            return i

    it = iter(DataLoader(Slow(), num_workers=2))
    pids = it.worker_pids
    os.kill(pids[1], signal.SIGKILL)
    with pytest.raises(RuntimeError, match="killed by signal SIGKILL"):
        list(it)
    assert_gone(pids, timeout=2)


def test_deleting_iterator_mid_epoch_stops_workers():
    it = iter(DataLoader(Delayed(40), batch_size=2, num_workers=2))
    next(it)
    pids = it.worker_pids
    assert all(_state(p) == "running" for p in pids)
    del it
    assert_gone(pids)


def test_breaking_out_of_a_loop_stops_workers():
    loader = DataLoader(Delayed(40), batch_size=2, num_workers=2)
    pids = []
    for batch in (it := iter(loader)):
        pids = it.worker_pids
        assert batch.tolist() == [0, 1]
        break
    del it
    assert_gone(pids)


def test_spawn_context_works():
    ds = TensorDataset(dl.arange(10.0))
    loader = DataLoader(ds, batch_size=4, num_workers=1, multiprocessing_context="spawn")
    it = iter(loader)
    pids = it.worker_pids
    assert [b[0].tolist() for b in it] == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [8.0, 9.0]]
    assert_gone(pids)


def test_too_many_workers_warns():
    with pytest.warns(UserWarning, match="worker processes were asked for"):
        DataLoader(Delayed(), num_workers=64)


def test_leaf_tensors_pickle_for_transfer():
    t = dl.arange(4.0).requires_grad_()
    u = pickle.loads(pickle.dumps(t, protocol=5))
    assert u.tolist() == t.tolist() and u.requires_grad and u.is_leaf
    with pytest.raises(RuntimeError, match="non-leaf"):
        pickle.dumps(t * 2)


def _run_script(body, timeout=30):
    """Run ``body`` in a fresh interpreter; it prints worker pids on its first line."""
    script = textwrap.dedent("""
        import os, sys, time, signal
        sys.path.insert(0, {repo!r})
        import danlu as dl
        from danlu.data import DataLoader, Dataset

        class Slow(Dataset):
            def __len__(self):
                return 1000

            def __getitem__(self, i):
                time.sleep(0.01)
                return i

        it = iter(DataLoader(Slow(), batch_size=2, num_workers=2))
        next(it)
        print(" ".join(map(str, it.worker_pids)), flush=True)
    """).format(repo=REPO) + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def _pids_from(proc):
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return [int(p) for p in line.split()]


def test_main_process_exit_stops_workers():
    proc = _run_script("sys.exit(0)")
    pids = _pids_from(proc)
    assert proc.wait(timeout=30) == 0
    assert_gone(pids)


def test_keyboard_interrupt_stops_workers():
    proc = _run_script("""
        try:
            for _ in it:
                pass
        except KeyboardInterrupt:
            print("interrupted", all(not os.path.exists(f"/proc/{p}") for p in it.worker_pids), flush=True)
            raise
    """)
    pids = _pids_from(proc)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert "interrupted True" in out  # workers were reaped before the exception left the loop
    assert_gone(pids)


def test_killed_main_process_workers_exit_by_themselves():
    proc = _run_script("time.sleep(60)")
    pids = _pids_from(proc)
    proc.kill()
    proc.wait(timeout=10)
    # Orphans are reaped by init, not by us: a zombie only means it already exited.
    assert_gone(pids, timeout=10, allow_zombie=True)
