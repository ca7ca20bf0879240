"""Files that several processes share safely: exclusive locks (one process per embedded shard,
one ingest at a time) and atomic replacement (readers see the old file or the new one)."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from movierec.errors import StoreBusy


class FileLock:
    """An exclusive, non-blocking flock on a file; released on close or process death."""

    def __init__(self, path: Path, what: str):
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            self._fd = None
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreBusy(what) from None
            raise
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    @staticmethod
    def try_acquire(path: Path) -> FileLock | None:
        try:
            return FileLock(path, "")
        except StoreBusy:
            return None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
