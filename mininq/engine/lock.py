"""One engine per database file.

The engine holds an exclusive `flock` on `<db_path>-engine.lock` while it
runs. The kernel drops the lock when the process dies, even by `kill -9`, so
a new engine that gets it knows every `running` job in the file was left by a
dead process and can recover those at once instead of waiting out the leases.
A second mininq on the same file serves the API but does not deliver.
"""

from __future__ import annotations

import fcntl
import os

from mininq.wake import engine_file


class EngineLock:
    def __init__(self, db_path: str) -> None:
        self.path = engine_file(db_path)
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
