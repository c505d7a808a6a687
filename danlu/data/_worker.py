"""What runs inside a DataLoader worker process: seeding, the fetch loop, and how results travel back.

Protocol (main -> worker, on the worker's task pipe): ``(task_idx, index, released_slots)`` to fetch a
batch (``released_slots``: shared-memory slots of this worker that the main process is done with),
``_ResumeIteration()`` to start a new epoch (persistent workers), ``None`` to exit.
Worker -> main, on the shared result channel: ``(task_idx, data)``, where ``data`` may be an
``_ExceptionWrapper`` or an ``_IterableEnd`` (the worker's stream is exhausted), or
``(_ResumeIteration, None)`` to acknowledge a new epoch.

Results are pickled by the worker itself (see ``_transport``), so that a result that cannot be pickled
comes back as an error instead of being dropped (which would leave the main process waiting).
"""

from __future__ import annotations

import os
import pickle
import random
import signal
import sys
import traceback

import numpy as np

__all__ = ["WorkerInfo", "get_worker_info"]

# How often an idle worker checks that the process that started it is still alive.
WATCHDOG_INTERVAL = 1.0

_worker_info: WorkerInfo | None = None


class WorkerInfo:
    """Facts about the current DataLoader worker: ``id``, ``num_workers``, ``seed`` and its ``dataset`` copy."""

    __initialized = False

    def __init__(self, **kwargs) -> None:
        for k, v in kwargs.items():
            setattr(self, k, v)
        self.__keys = tuple(kwargs)
        self.__initialized = True

    def __setattr__(self, key, val) -> None:
        if self.__initialized:
            raise RuntimeError(f"WorkerInfo is read-only: cannot set {key!r}")
        super().__setattr__(key, val)

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__keys if k != "dataset")
        return f"WorkerInfo({items})"


def get_worker_info() -> WorkerInfo | None:
    """In a DataLoader worker process: its :class:`WorkerInfo`; in the main process: ``None``.

    Use it in an IterableDataset's ``__iter__`` to give each worker its own shard of the stream.

    >>> from danlu.data import get_worker_info
    >>> get_worker_info() is None
    True
    """
    return _worker_info


class _ResumeIteration:
    """Start a new epoch in a persistent worker (and acknowledge it)."""


class _IterableEnd:
    """A worker's iterable dataset is exhausted."""

    def __init__(self, worker_id: int) -> None:
        self.worker_id = worker_id


class _KeyErrorMessage(str):
    """A KeyError shows ``repr`` of its argument; this keeps the multi-line traceback readable."""

    def __repr__(self) -> str:
        return self


class _ExceptionWrapper:
    """An exception raised in a worker, carried to the main process with the worker's traceback text."""

    def __init__(self, where: str, exc_info=None) -> None:
        exc_type, exc, tb = exc_info or sys.exc_info()
        self.exc_type = exc_type
        self.type_name = exc_type.__name__
        self.where = where
        self.text = "".join(traceback.format_exception(exc_type, exc, tb))

    def __reduce__(self):
        exc_type = self.exc_type
        try:
            pickle.dumps(exc_type)
        except Exception:  # a class defined inside a function: send its name, raise a RuntimeError
            exc_type = RuntimeError
        return (_rebuild_wrapper, (exc_type, self.type_name, self.where, self.text))

    def reraise(self):
        msg = f"Caught {self.type_name} {self.where}.\nOriginal {self.text}"
        if self.exc_type is KeyError:
            msg = _KeyErrorMessage(msg)
        if issubclass(self.exc_type, StopIteration):  # would end the caller's loop silently
            raise RuntimeError(msg) from None
        try:
            exc = self.exc_type(msg)
        except Exception:
            exc = None
        if not isinstance(exc, BaseException):
            raise RuntimeError(msg) from None
        raise exc


def _rebuild_wrapper(exc_type, type_name, where, text):
    w = _ExceptionWrapper.__new__(_ExceptionWrapper)
    w.exc_type, w.type_name, w.where, w.text = exc_type, type_name, where, text
    return w


def _seed_worker(seed: int) -> None:
    from ..core.random import manual_seed

    random.seed(seed)
    manual_seed(seed)
    np.random.seed([seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF])


def _worker_loop(kind: str, dataset, tasks, channel, done_event, auto_collation: bool, collate_fn,
                 drop_last: bool, base_seed: int, init_fn, worker_id: int, num_workers: int, parent_pid: int) -> None:
    """The body of a worker process (a module-level function so that spawn/forkserver can import it)."""
    global _worker_info
    from .fetch import make_fetcher

    # Ctrl-C reaches the whole process group: the main process decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel.start(worker_id)
    where = f"in DataLoader worker process {worker_id}"

    def send(obj) -> bool:
        """Send a message; False when the main process is gone."""
        try:
            channel.send(obj)
        except OSError:
            return False
        except Exception:  # the result cannot be pickled: the main process gets the error instead
            try:
                channel.send((obj[0], _ExceptionWrapper(where + " while sending its result to the main process")))
            except OSError:
                return False
        return True

    seed = base_seed + worker_id
    _seed_worker(seed)
    _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed, dataset=dataset)

    init_error = None
    fetcher = None
    try:
        if init_fn is not None:
            init_fn(worker_id)
        fetcher = make_fetcher(kind, dataset, auto_collation, collate_fn, drop_last)
    except Exception:
        init_error = _ExceptionWrapper(where)

    ended = False
    try:
        while True:
            try:
                r = tasks.get(timeout=WATCHDOG_INTERVAL)
            except TimeoutError:
                if os.getppid() != parent_pid:
                    break  # the main process died without telling us
                continue
            except EOFError:
                break  # the main process closed our task pipe
            if isinstance(r, _ResumeIteration):
                ended = False
                channel.reset()  # the main process received everything sent before it asked for this
                if kind == "iterable" and init_error is None:
                    try:
                        fetcher = make_fetcher(kind, dataset, auto_collation, collate_fn, drop_last)
                    except Exception:
                        init_error = _ExceptionWrapper(where)
                if not send((r, None)):
                    break
                continue
            if r is None:
                break
            if done_event.is_set() or ended:
                continue
            idx, index, released = r
            channel.release(released)
            if init_error is not None:
                data = init_error  # every task fails the same way: the worker could not start
            else:
                try:
                    data = fetcher.fetch(index)
                except StopIteration:
                    if kind != "iterable":
                        data = _ExceptionWrapper(where)
                    else:
                        data, ended = _IterableEnd(worker_id), True
                except Exception:
                    data = _ExceptionWrapper(where)
            if not send((idx, data)):
                break
            del data, idx, index, r
    except KeyboardInterrupt:
        pass
    finally:
        channel.close()
