"""Atomic file writes: fill a temporary file next to the target, flush it to disk, rename it over the
target. A process killed part-way leaves the previous file intact."""

from __future__ import annotations

import contextlib
import os
import secrets

__all__ = ["atomic_path", "atomic_write_bytes"]


def _create_temp(directory: str, base: str) -> str:
    # os.open with mode 0o666 lets the umask decide the permissions, as for an ordinary new file
    while True:
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable (not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path, before_replace=None, make_dirs: bool = False):
    """Yield a temporary path to write; on success it is fsynced, given the replaced file's permissions
    (a new file gets the umask's), and renamed over ``path`` (through a symlink, as ``open`` would).
    A missing folder is an error (as for ``open``) unless ``make_dirs``."""
    path = os.fspath(path)
    if os.path.islink(path):
        path = os.path.realpath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if make_dirs:
        os.makedirs(directory, exist_ok=True)
    tmp = _create_temp(directory, os.path.basename(path))
    try:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = os.stat(tmp).st_mode
        yield tmp
        fd = os.open(tmp, os.O_RDWR)  # Windows can only flush a file open for writing
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode & 0o7777)  # last: the mode may be read-only
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_directory(directory)


def atomic_write_bytes(path, chunks, make_dirs: bool = False) -> None:
    """Write the byte strings ``chunks`` to ``path`` atomically."""
    with atomic_path(path, make_dirs=make_dirs) as tmp:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
