"""How worker results reach the main process.

On Linux each worker keeps a small pool of shared-memory slots (anonymous ``memfd`` files mapped in both
processes). A result is pickled with protocol 5 so that array data stays out of band; the worker copies the
pickle header and the array bytes into a free slot and sends a short message naming the slot over a
``SOCK_SEQPACKET`` socket (the slot's file descriptor travels along the first time, or when the slot grew).
The main process copies the arrays out of the slot into memory of its own and, with the next task it sends
that worker, gives the slot back. So a batch is complete as soon as the worker has sent it (the main process
never waits for a worker to be scheduled to push bytes through a pipe, which on a machine whose cores are
busy training costs milliseconds per batch), slots are reused (no page allocation, mapping or unmapping per
batch), and the main process's batches are ordinary arrays with no tie to the worker.

Small results travel inline in the socket message. Elsewhere (no memfd or no SEQPACKET) a pipe carries every
result inline, under a lock shared by the workers.

Both channels: the main process creates the channel before starting workers, passes ``worker_end()`` to
each, then calls ``close_worker_ends()``; ``try_recv()`` raises EOFError once every worker end is closed.
``released(worker_id)`` gives the slots to hand back with the next task for that worker; the worker end's
``release(slots)`` takes them, and ``reset()`` (a new epoch: every earlier result was received) frees all,
after which the main process calls ``forget_released()``.
"""

from __future__ import annotations

import mmap
import os
import pickle
import socket
import struct

import numpy as np

__all__ = ["make_channel", "make_task_pipe", "EMPTY"]

EMPTY = object()  # try_recv(): nothing to receive yet

_INLINE_LIMIT = 32 * 1024  # results up to this many bytes travel in the message itself
_MIN_SLOT = 1 << 16
_MAX_BUFFERS = 4096  # out-of-band buffers per result; more than this goes in band
_RECV_SIZE = 64 * 1024
_ALIGN = 64
# kind, worker id, slot id, slot generation, slot size, header length, number of out-of-band buffers
_SLOT_MSG = struct.Struct("<cIIIQQI")


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _layout(header_len: int, sizes) -> tuple[list[int], int]:
    offsets, pos = [], _aligned(header_len)
    for s in sizes:
        offsets.append(pos)
        pos = _aligned(pos + s)
    return offsets, pos


class _Slot:
    def __init__(self, size: int) -> None:
        self.fd = os.memfd_create("danlu-batch", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size)
        self.size = size
        self.fd_sent = False

    def close(self) -> None:
        self.map.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _SocketWorkerEnd:
    def __init__(self, recv_sock: socket.socket, send_sock: socket.socket) -> None:
        self.recv_sock = recv_sock
        self.send_sock = send_sock

    def start(self, worker_id: int) -> None:
        # Only the main process keeps the receiving end, so a dead main process makes sends fail.
        self.recv_sock.close()
        self.worker_id = worker_id
        self.slots: list[_Slot] = []
        self.generations: list[int] = []
        self.free: set[int] = set()

    def release(self, slot_ids) -> None:
        self.free.update(slot_ids)

    def reset(self) -> None:
        self.free = set(range(len(self.slots)))

    def _acquire(self, size: int) -> int:
        fitting = [i for i in self.free if self.slots[i].size >= size]
        if fitting:
            sid = min(fitting, key=lambda i: self.slots[i].size)
        else:
            new_size = max(_MIN_SLOT, 1 << (size - 1).bit_length())
            if self.free:  # grow a free slot rather than add one
                sid = max(self.free, key=lambda i: self.slots[i].size)
                self.slots[sid].close()
                self.slots[sid] = _Slot(new_size)
                self.generations[sid] += 1
            else:
                sid = len(self.slots)
                self.slots.append(_Slot(new_size))
                self.generations.append(0)
        self.free.discard(sid)
        return sid

    def send(self, obj) -> None:
        """Send ``obj``; raises OSError when the main process is gone, pickling errors as they come."""
        buffers: list = []
        header = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        if len(buffers) > _MAX_BUFFERS:
            buffers, header = [], pickle.dumps(obj, protocol=5)
        raws = [b.raw() for b in buffers]
        sizes = [r.nbytes for r in raws]
        if len(header) + sum(sizes) <= _INLINE_LIMIT:
            if raws:
                header = pickle.dumps(obj, protocol=5)  # in band: one small message
            self.send_sock.sendmsg([b"I", header])
            return
        offsets, total = _layout(len(header), sizes)
        sid = self._acquire(total)
        slot = self.slots[sid]
        slot.map[:len(header)] = header
        for r, off, n in zip(raws, offsets, sizes, strict=True):
            slot.map[off:off + n] = r
        meta = (_SLOT_MSG.pack(b"S", self.worker_id, sid, self.generations[sid], slot.size, len(header), len(sizes))
                + struct.pack(f"<{len(sizes)}Q", *sizes))
        if slot.fd_sent:
            self.send_sock.sendmsg([meta])
        else:
            socket.send_fds(self.send_sock, [meta], [slot.fd])
            slot.fd_sent = True
            os.close(slot.fd)  # the main process has its own descriptor now; the mapping stays
            slot.fd = -1

    def close(self) -> None:
        self.send_sock.close()
        for slot in getattr(self, "slots", ()):
            slot.close()


class _SocketChannel:
    def __init__(self, ctx) -> None:
        self._recv, self._send = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._buf = bytearray(_RECV_SIZE)
        self._anc = socket.CMSG_SPACE(4)
        self._maps: dict[tuple[int, int], tuple[int, mmap.mmap]] = {}
        self._released: dict[int, list[int]] = {}

    @property
    def waitable(self):
        return self._recv

    def worker_end(self) -> _SocketWorkerEnd:
        return _SocketWorkerEnd(self._recv, self._send)

    def close_worker_ends(self) -> None:
        self._send.close()

    def released(self, worker_id: int) -> tuple:
        got = self._released.pop(worker_id, None)
        return tuple(got) if got else ()

    def forget_released(self) -> None:
        self._released.clear()

    def try_recv(self):
        """The next result, or ``EMPTY`` when none is waiting; EOFError once every worker end is closed."""
        try:
            n, anc, _, _ = self._recv.recvmsg_into([self._buf], self._anc, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return EMPTY
        fds = [fd for level, kind, data in anc if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
               for fd in struct.unpack(f"{len(data) // 4}i", data[:len(data) // 4 * 4])]
        if n == 0 and not fds:
            raise EOFError("every DataLoader worker closed its end of the result channel")
        msg = memoryview(self._buf)[:n]
        if msg[:1] == b"I":
            for fd in fds:
                os.close(fd)
            return pickle.loads(msg[1:])
        _, wid, sid, gen, size, header_len, count = _SLOT_MSG.unpack_from(msg, 0)
        sizes = struct.unpack_from(f"<{count}Q", msg, _SLOT_MSG.size)
        key = (wid, sid)
        if fds:
            try:
                old = self._maps.pop(key, None)
                if old is not None:
                    old[1].close()
                self._maps[key] = (gen, mmap.mmap(fds[0], size))
            finally:
                for fd in fds:
                    os.close(fd)
        have_gen, mapping = self._maps[key]
        if have_gen != gen:
            raise RuntimeError(f"DataLoader: result from worker {wid} names slot {sid} generation {gen}, but the "
                               f"main process has generation {have_gen}; the result channel is out of step")
        try:
            offsets, _ = _layout(header_len, sizes)
            header = mapping[:header_len]
            buffers = []
            for off, s in zip(offsets, sizes, strict=True):
                out = np.empty(s, np.uint8)
                np.copyto(out, np.frombuffer(mapping, np.uint8, s, off))
                buffers.append(out)
        finally:
            self._released.setdefault(wid, []).append(sid)
        return pickle.loads(header, buffers=buffers)

    def close(self) -> None:
        self._recv.close()
        self._send.close()
        for _, mapping in self._maps.values():
            mapping.close()
        self._maps.clear()


class _PipeWorkerEnd:
    def __init__(self, reader, writer, lock) -> None:
        self.reader, self.writer, self.lock = reader, writer, lock

    def start(self, worker_id: int) -> None:
        self.reader.close()

    def release(self, slot_ids) -> None:
        pass

    def reset(self) -> None:
        pass

    def send(self, obj) -> None:
        payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        with self.lock:
            self.writer.send_bytes(payload)

    def close(self) -> None:
        self.writer.close()


class _PipeChannel:
    def __init__(self, ctx) -> None:
        self._reader, self._writer = ctx.Pipe(duplex=False)
        self._lock = ctx.Lock()

    @property
    def waitable(self):
        return self._reader

    def worker_end(self) -> _PipeWorkerEnd:
        return _PipeWorkerEnd(self._reader, self._writer, self._lock)

    def close_worker_ends(self) -> None:
        self._writer.close()

    def released(self, worker_id: int) -> tuple:
        return ()

    def forget_released(self) -> None:
        pass

    def try_recv(self):
        if not self._reader.poll():
            return EMPTY
        return pickle.loads(self._reader.recv_bytes())

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


class TaskSender:
    """Main-process end of one worker's task pipe: length-prefixed pickles, written without blocking.

    A message that does not fit in the pipe stays in ``pending`` and goes out on a later ``flush()``, so the
    main process never blocks on a worker that is itself waiting for the main process to read its results.
    (A ``multiprocessing.Queue`` avoids that deadlock with a feeder thread, which costs the main process far
    more per batch.)
    """

    def __init__(self, ctx) -> None:
        self.reader, self.writer = ctx.Pipe(duplex=False)
        os.set_blocking(self.writer.fileno(), False)
        self.pending = bytearray()

    def put(self, obj) -> None:
        data = pickle.dumps(obj, protocol=5)
        self.pending += _LEN.pack(len(data))
        self.pending += data
        self.flush()

    def flush(self) -> bool:
        """Write what the pipe takes; True when nothing is left pending."""
        pending = self.pending
        while pending:
            try:
                n = os.write(self.writer.fileno(), pending)
            except BlockingIOError:
                return False
            except (BrokenPipeError, OSError):  # the worker is gone: nothing will read this
                pending.clear()
                return True
            del pending[:n]
        return True

    def close_reader(self) -> None:
        self.reader.close()

    def close(self) -> None:
        self.writer.close()
        self.reader.close()


class TaskReceiver:
    """Worker end of a task pipe."""

    def __init__(self, reader) -> None:
        self.reader = reader

    def get(self, timeout: float):
        """The next task; raises ``TimeoutError`` when none came within ``timeout`` seconds and EOFError
        when the main process closed the pipe."""
        if not self.reader.poll(timeout):
            raise TimeoutError
        fd = self.reader.fileno()
        (n,) = _LEN.unpack(_read_exact(fd, _LEN.size))
        return pickle.loads(_read_exact(fd, n))


class _QueueTaskSender:
    """Task channel where pipes cannot be written without blocking (Windows): a multiprocessing Queue."""

    def __init__(self, ctx) -> None:
        self.queue = ctx.Queue()
        self.queue.cancel_join_thread()

    @property
    def reader(self):
        return self.queue

    def put(self, obj) -> None:
        self.queue.put(obj)

    def flush(self) -> bool:
        return True

    def close_reader(self) -> None:
        pass

    def close(self) -> None:
        self.queue.close()


class _QueueTaskReceiver:
    def __init__(self, q) -> None:
        self.queue = q

    def get(self, timeout: float):
        import queue

        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None


def make_task_pipe(ctx):
    """(sender kept by the main process, receiver given to the worker) for one worker's tasks."""
    if os.name == "posix":
        sender = TaskSender(ctx)
        return sender, TaskReceiver(sender.reader)
    sender = _QueueTaskSender(ctx)
    return sender, _QueueTaskReceiver(sender.queue)


_LEN = struct.Struct("<Q")


def _read_exact(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            raise EOFError("the main process closed the task pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def make_channel(ctx):
    """The fastest result channel this platform offers."""
    if hasattr(os, "memfd_create") and hasattr(socket, "SOCK_SEQPACKET") and hasattr(socket, "send_fds"):
        return _SocketChannel(ctx)
    return _PipeChannel(ctx)
