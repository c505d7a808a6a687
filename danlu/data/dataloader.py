"""DataLoader: batches from a dataset, in the main process or in worker processes, as PyTorch's.

With ``num_workers > 0`` each worker process has its own index queue; the main process hands out batches
of indices round-robin, keeps ``prefetch_factor * num_workers`` batches in flight, and delivers results in
sampler order whatever order they arrive in. All workers send results on one channel (shared memory on
Linux, see ``_transport``); the main process waits on it together with the workers' process sentinels, so a
worker that dies is noticed at once instead of hanging the loop.

Workers are stopped (and reaped) when an iterator is exhausted or deleted, on KeyboardInterrupt, and when
the main process exits; a worker whose main process died exits by itself (see ``_worker.WATCHDOG_INTERVAL``).
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import warnings
import weakref
from multiprocessing.connection import wait as _wait_ready

from ..core.errors import reraise_filtered
from . import _worker
from .collate import default_collate, default_convert
from .dataset import IterableDataset
from ._transport import EMPTY, make_channel, make_task_pipe
from .fetch import make_fetcher
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, _draw_seed

__all__ = ["DataLoader"]

# How long shutdown waits for workers to exit by themselves before it terminates them: busy workers
# finish their current batch first. After an error (timeout, dead worker, Ctrl-C) there is no such wait.
_JOIN_TIMEOUT = 1.0
_JOIN_TIMEOUT_ON_ERROR = 0.1
_FLUSH_INTERVAL = 0.005  # how often tasks that did not fit in a worker's pipe are retried


class _InfiniteConstantSampler(Sampler):
    """For iterable datasets: an endless stream of ``None`` (the workers read the dataset itself)."""

    def __iter__(self):
        while True:
            yield None


_FIXED_AFTER_INIT = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers")


class DataLoader:
    """Iterate over a dataset in batches, optionally shuffled, optionally in worker processes.

    The arguments are PyTorch's: ``batch_size=None`` turns off batching (each sample goes through
    ``collate_fn``, by default :func:`default_convert`); ``shuffle=True`` uses a :class:`RandomSampler` with
    ``generator``; ``num_workers > 0`` loads in that many processes (fork on Linux unless
    ``multiprocessing_context`` says otherwise), each seeded with ``base_seed + worker_id`` (danlu's default
    generator, NumPy's global generator and Python's ``random``), where ``base_seed`` is drawn from
    ``generator`` (or danlu's default generator) when an iterator is created. ``persistent_workers=True``
    keeps the worker processes from one epoch to the next. ``pin_memory`` is accepted and ignored (there is
    no accelerator to pin memory for).

    >>> import danlu as dl
    >>> from danlu.data import DataLoader, TensorDataset
    >>> ds = TensorDataset(dl.arange(10.0), dl.arange(10))
    >>> loader = DataLoader(ds, batch_size=4)
    >>> len(loader), [x.tolist() for x, y in loader]
    (3, [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [8.0, 9.0]])
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn=None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn=None, multiprocessing_context=None,
                 generator=None, *, prefetch_factor: int | None = None, persistent_workers: bool = False) -> None:
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers option should be a non-negative integer, got "
                             f"num_workers={num_workers!r}; use num_workers=0 to load in the main process")
        if timeout < 0:
            raise ValueError(f"DataLoader: timeout option should be non-negative, got timeout={timeout!r}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor option could only be specified in multiprocessing: "
                             "set num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        if prefetch_factor is not None and (not isinstance(prefetch_factor, int) or prefetch_factor < 1):
            raise ValueError(f"DataLoader: prefetch_factor option should be a positive integer, got "
                             f"prefetch_factor={prefetch_factor!r}")
        if persistent_workers and num_workers == 0:
            raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
        if pin_memory:
            warnings.warn("DataLoader: 'pin_memory' is set but danlu has no accelerator here; it has no effect",
                          stacklevel=2)

        if isinstance(dataset, IterableDataset):
            kind = "iterable"
            if shuffle not in (False, None):
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, but got "
                                 f"shuffle={shuffle!r}; an iterable dataset decides its own order")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, but got "
                                 f"sampler={sampler!r}")
            if batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified batch_sampler option, "
                                 f"but got batch_sampler={batch_sampler!r}")
        else:
            kind = "map"
            shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, "
                                 "sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("DataLoader: batch_size=None option disables auto-batching and is mutually exclusive "
                             "with drop_last")
        if sampler is None:
            if kind == "iterable":
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.dataset = dataset
        self._kind = kind
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.generator = generator
        self.persistent_workers = persistent_workers
        if collate_fn is None:
            collate_fn = default_collate if batch_sampler is not None else default_convert
        self.collate_fn = collate_fn
        self.multiprocessing_context = multiprocessing_context
        self._iterable_len_called: int | None = None
        self._iterator = None
        self._initialized = True
        if num_workers > 0:
            _warn_worker_count(num_workers)

    # -- configuration ------------------------------------------------------------------------------
    def __setattr__(self, name, value) -> None:
        if name in _FIXED_AFTER_INIT and self.__dict__.get("_initialized"):
            raise ValueError(f"DataLoader: the {name} attribute should not be set after the DataLoader is "
                             "created; make a new DataLoader instead")
        super().__setattr__(name, value)

    @property
    def multiprocessing_context(self):
        return self._mp_context

    @multiprocessing_context.setter
    def multiprocessing_context(self, ctx) -> None:
        if ctx is not None:
            if self.num_workers == 0:
                raise ValueError(f"DataLoader: multiprocessing_context can only be used with multi-process "
                                 f"loading (num_workers > 0), but got num_workers={self.num_workers}")
            if isinstance(ctx, str):
                methods = mp.get_all_start_methods()
                if ctx not in methods:
                    raise ValueError(f"DataLoader: multiprocessing_context should name a start method in "
                                     f"{methods}, but got multiprocessing_context={ctx!r}")
                ctx = mp.get_context(ctx)
            elif not isinstance(ctx, mp.context.BaseContext):
                raise TypeError(f"DataLoader: multiprocessing_context should be a start method name or a "
                                f"multiprocessing context, got {type(ctx).__name__}")
        self._mp_context = ctx

    def _context(self):
        if self._mp_context is not None:
            return self._mp_context
        if sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods():
            return mp.get_context("fork")  # cheap start, and the dataset is shared copy-on-write
        return mp.get_context()

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    # -- iteration ----------------------------------------------------------------------------------
    def __iter__(self):
        if self.persistent_workers and self.num_workers > 0:
            it = self._iterator
            if it is None or it._shutdown:
                self._iterator = it = _MultiProcessIter(self)
            else:
                it._reset(self)
            return it
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        return _MultiProcessIter(self)

    def __len__(self) -> int:
        if self._kind == "iterable":
            n = len(self.dataset)
            if self.batch_size is not None:
                n = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
            self._iterable_len_called = n
            return n
        return len(self._index_sampler)


def _warn_worker_count(num_workers: int) -> None:
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    if num_workers > cpus:
        warnings.warn(f"DataLoader: {num_workers} worker processes were asked for, but this machine offers "
                      f"{cpus} CPUs to this process; too many workers can slow loading down or freeze it",
                      stacklevel=3)


class _BaseIter:
    def __init__(self, loader: DataLoader) -> None:
        self._dataset = loader.dataset
        self._kind = loader._kind
        self._auto_collation = loader._auto_collation
        self._drop_last = loader.drop_last
        self._index_sampler = loader._index_sampler
        self._collate_fn = loader.collate_fn
        self._num_workers = loader.num_workers
        self._timeout = loader.timeout
        self._sampler_iter = iter(self._index_sampler)
        self._base_seed = _draw_seed(loader.generator)
        self._num_yielded = 0
        self._len_called = loader._iterable_len_called
        self._loader_name = type(loader).__name__

    def __iter__(self):
        return self

    def _reset(self, loader: DataLoader) -> None:
        self._sampler_iter = iter(self._index_sampler)
        self._num_yielded = 0
        self._len_called = loader._iterable_len_called

    def _next_index(self):
        return next(self._sampler_iter)

    def __next__(self):
        try:
            data = self._next_data()
        except StopIteration:
            raise
        except BaseException as e:
            if not isinstance(e, Exception):  # KeyboardInterrupt, SystemExit: stop the workers first
                self._shutdown_workers(_JOIN_TIMEOUT_ON_ERROR)
            reraise_filtered(e)
            raise
        self._num_yielded += 1
        if self._kind == "iterable" and self._len_called is not None and self._num_yielded > self._len_called:
            warnings.warn(f"Length of IterableDataset {self._dataset} was reported to be {self._len_called} (when "
                          f"len(dataloader) was called), but {self._num_yielded} samples have been fetched",
                          stacklevel=2)
        return data

    def _shutdown_workers(self, grace: float = 0.0) -> None:
        pass

    def __len__(self) -> int:
        return len(self._index_sampler)


class _SingleProcessIter(_BaseIter):
    def __init__(self, loader: DataLoader) -> None:
        super().__init__(loader)
        self._fetcher = make_fetcher(self._kind, self._dataset, self._auto_collation, self._collate_fn,
                                     self._drop_last)

    def _next_data(self):
        return self._fetcher.fetch(self._next_index())


_live_iterators: weakref.WeakSet = weakref.WeakSet()
_live_lock = threading.Lock()


@atexit.register
def _shutdown_all() -> None:
    # Runs before multiprocessing's own exit handler (atexit is last-in first-out), so workers are told to
    # stop and are reaped instead of being terminated mid-batch.
    with _live_lock:
        iterators = list(_live_iterators)
    for it in iterators:
        try:
            it._shutdown_workers()
        except Exception:
            pass


class _MultiProcessIter(_BaseIter):
    def __init__(self, loader: DataLoader) -> None:
        super().__init__(loader)
        self._prefetch_factor = loader.prefetch_factor
        self._persistent = loader.persistent_workers
        self._shutdown = True  # until the workers exist
        ctx = loader._context()
        self._channel = make_channel(ctx)
        self._done_event = ctx.Event()
        self._task_pipes: list = []
        self._workers = []
        self._worker_pids: list[int] = []
        try:
            for worker_id in range(self._num_workers):
                tasks, task_receiver = make_task_pipe(ctx)
                w = ctx.Process(
                    target=_worker._worker_loop,
                    args=(self._kind, self._dataset, task_receiver, self._channel.worker_end(),
                          self._done_event,
                          self._auto_collation, self._collate_fn, self._drop_last, self._base_seed,
                          loader.worker_init_fn, worker_id, self._num_workers, os.getpid()),
                    name=f"danlu-data-worker-{worker_id}", daemon=True)
                with warnings.catch_warnings():
                    # Python >= 3.12 warns when forking a process with threads (a BLAS thread pool, say);
                    # workers only run Python code and seed themselves afresh.
                    warnings.filterwarnings("ignore", message=".*use of fork\\(\\) may lead to deadlocks",
                                            category=DeprecationWarning)
                    w.start()
                tasks.close_reader()
                self._task_pipes.append(tasks)
                self._workers.append(w)
                self._worker_pids.append(w.pid)
                self._shutdown = False
        except BaseException:
            self._channel.close_worker_ends()
            self._shutdown_workers()
            if not self._workers:
                self._channel.close()
            raise
        # The workers hold their own write ends: once they have all exited, reads see end-of-file.
        self._channel.close_worker_ends()
        with _live_lock:
            _live_iterators.add(self)
        self._reset(loader, first_iter=True)

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of this iterator's workers (for diagnostics and tests)."""
        return list(self._worker_pids)

    def _reset(self, loader: DataLoader, first_iter: bool = False) -> None:
        super()._reset(loader)
        self._send_idx = 0
        self._rcvd_idx = 0
        self._task_info: dict = {}  # task index -> (worker_id,) or (worker_id, data)
        self._worker_active = [True] * self._num_workers
        self._worker_cycle = itertools.cycle(range(self._num_workers))
        if not first_iter:
            # Start a new epoch: every worker acknowledges, after any results of the last epoch still in
            # flight, which are dropped here.
            for tasks in self._task_pipes:
                tasks.put(_worker._ResumeIteration())
            pending = self._num_workers
            while pending:
                idx, _ = self._get_data()
                if isinstance(idx, _worker._ResumeIteration):
                    pending -= 1
            self._channel.forget_released()  # the workers freed all their slots on resuming
        for _ in range(self._prefetch_factor * self._num_workers):
            self._try_put_index()

    def _try_put_index(self) -> None:
        try:
            index = self._next_index()
        except StopIteration:
            return
        for _ in range(self._num_workers):
            worker_id = next(self._worker_cycle)
            if self._worker_active[worker_id]:
                break
        else:
            return  # every worker's stream has ended
        self._task_pipes[worker_id].put((self._send_idx, index, self._channel.released(worker_id)))
        self._task_info[self._send_idx] = (worker_id,)
        self._send_idx += 1

    def _next_data(self):
        if self._shutdown:
            raise StopIteration
        while True:
            # Skip the tasks of workers whose stream ended before they could answer them.
            while self._rcvd_idx < self._send_idx:
                info = self._task_info[self._rcvd_idx]
                if len(info) == 2 or self._worker_active[info[0]]:
                    break
                del self._task_info[self._rcvd_idx]
                self._rcvd_idx += 1
            else:
                if not self._persistent:
                    self._shutdown_workers()
                raise StopIteration
            if len(self._task_info[self._rcvd_idx]) == 2:
                return self._process(self._task_info.pop(self._rcvd_idx)[1])
            idx, data = self._get_data()
            if isinstance(data, _worker._IterableEnd):
                if self._persistent:
                    self._worker_active[data.worker_id] = False
                else:
                    self._retire_worker(data.worker_id)
                self._try_put_index()
                continue
            if idx != self._rcvd_idx:
                self._task_info[idx] += (data,)  # early: keep it until its turn
                continue
            del self._task_info[idx]
            return self._process(data)

    def _process(self, data):
        self._rcvd_idx += 1
        self._try_put_index()
        if isinstance(data, _worker._ExceptionWrapper):
            data.reraise()
        return data

    def _retire_worker(self, worker_id: int) -> None:
        # A non-persistent worker whose stream ended has nothing left to do: let it exit now.
        self._task_pipes[worker_id].put(None)
        self._worker_active[worker_id] = False

    def _get_data(self):
        """The next message from any worker; raises if a worker died or ``timeout`` passed."""
        deadline = time.monotonic() + self._timeout if self._timeout > 0 else None
        channel = self._channel
        reader = channel.waitable
        while True:
            try:
                msg = channel.try_recv()
            except EOFError:  # every worker closed its end: they are exiting or gone
                for w in self._workers:
                    w.join(timeout=1.0)
                self._raise_dead_workers(all_gone=True)
                self._shutdown_workers(_JOIN_TIMEOUT_ON_ERROR)
                raise RuntimeError("DataLoader: every worker process closed its result channel before the "
                                   "epoch ended") from None
            if msg is not EMPTY:
                return msg
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                self._shutdown_workers(_JOIN_TIMEOUT_ON_ERROR)
                raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds waiting for a batch from "
                                   f"its {self._num_workers} worker process(es); raise timeout= if the dataset is "
                                   "slow to load")
            if not all([tasks.flush() for tasks in self._task_pipes]):
                # Tasks wait for room in a worker's pipe: look again soon instead of sleeping on results.
                remaining = _FLUSH_INTERVAL if remaining is None else min(remaining, _FLUSH_INTERVAL)
            sentinels = [w.sentinel for i, w in enumerate(self._workers) if self._worker_active[i]]
            ready = _wait_ready([reader, *sentinels], remaining)
            if ready and reader not in ready:
                self._raise_dead_workers()

    def _raise_dead_workers(self, all_gone: bool = False) -> None:
        dead = [(i, w) for i, w in enumerate(self._workers)
                if (all_gone or self._worker_active[i]) and w.exitcode is not None]
        if not dead:
            return
        details = ", ".join(f"worker {i} (pid {w.pid}) {_describe_exit(w.exitcode)}" for i, w in dead)
        self._shutdown_workers(_JOIN_TIMEOUT_ON_ERROR)
        raise RuntimeError(f"DataLoader worker(s) exited unexpectedly: {details}. A worker can be killed by the "
                           "system (out of memory) or by a crash in native code; try num_workers=0 to see the "
                           "error in the main process")

    def _shutdown_workers(self, grace: float = _JOIN_TIMEOUT) -> None:
        if self._shutdown:
            return
        self._shutdown = True
        try:
            self._done_event.set()
            for tasks in self._task_pipes:
                try:
                    tasks.put(None)
                except Exception:
                    pass
            # Read and drop results while waiting, so that no worker stays blocked on a full pipe.
            deadline = time.monotonic() + grace
            alive = [w for w in self._workers if w.exitcode is None]
            reader = self._channel.waitable
            reader_open = True
            while alive:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if not all([tasks.flush() for tasks in self._task_pipes]):
                    remaining = min(remaining, _FLUSH_INTERVAL)
                objs = [w.sentinel for w in alive] + ([reader] if reader_open else [])
                for obj in _wait_ready(objs, remaining):
                    if obj is reader:
                        reader_open = self._discard_result()
                alive = [w for w in alive if w.exitcode is None]
        finally:
            for w in self._workers:
                if w.exitcode is None:
                    w.terminate()
            for w in self._workers:
                w.join(timeout=1.0)
                if w.exitcode is None:
                    w.kill()
                    w.join()
                w.close()
            for tasks in self._task_pipes:
                tasks.close()
            self._channel.close()
            with _live_lock:
                _live_iterators.discard(self)

    def _discard_result(self) -> bool:
        """Receive and drop one result (at shutdown); False once the channel is closed."""
        try:
            self._channel.try_recv()
        except EOFError:
            return False
        except Exception:  # a result that cannot be rebuilt here is dropped all the same
            pass
        return True

    def __del__(self):
        try:
            self._shutdown_workers()
        except Exception:
            pass


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
