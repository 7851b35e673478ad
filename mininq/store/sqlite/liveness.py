"""One engine per database file.

The engine holds an exclusive `flock` on `<db_path>-engine.lock` while it
runs. The kernel drops the lock when the process dies, even by `kill -9`, so
a new engine that gets it knows every `running` job in the file was left by a
dead process and can recover those at once instead of waiting out the leases.
A second mininq on the same file serves the API but does not deliver.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Callable

from mininq.logs import get_logger, log_event
from mininq.nodes import Liveness
from mininq.store.base import Store
from mininq.store.sqlite.wake import engine_file

log = get_logger("mininq.engine")

LOCK_RETRY_S = 5.0
FAR_FUTURE_MS = 2**62


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


class FileLockLiveness(Liveness):
    def __init__(self, db_path: str, store: Store) -> None:
        self.lock = EngineLock(db_path)
        self.store = store

    async def acquire(self, stopping: Callable[[], bool]) -> bool:
        while not self.lock.try_acquire():
            log_event(log, logging.WARNING, "another mininq engine delivers from this database; "
                      "waiting for it to stop", lock=self.lock.path)
            waited = 0.0
            while waited < LOCK_RETRY_S:
                if stopping():
                    return False
                await asyncio.sleep(0.1)
                waited += 0.1
        return True

    async def recover(self) -> list[dict]:
        # Holding the lock, every running job was left by a dead engine.
        return await self.store.reap(FAR_FUTURE_MS, process_died=True)

    async def release(self) -> None:
        self.lock.release()
