"""Wake-ups with SQLite: one datagram on a Unix socket to the one engine.

The engine binds an abstract-namespace datagram socket (Linux: no file on
disk, gone when the process dies); the HTTP process sends one byte after a
commit that makes work due. Several wakes in one event-loop turn coalesce into
one datagram. A lost datagram only costs latency: the engine still polls every
`poll_interval_ms`.
"""

from __future__ import annotations

import asyncio
import hashlib
import mmap
import os
import socket
from collections.abc import Iterable

from mininq.wake import JOBS, WakeListener, Waker


def address_for(db_path: str) -> str:
    """The abstract socket name of the engine that delivers from `db_path`.

    Derived from the database file, so that a second mininq serving the API on
    the same file wakes the engine that holds the file's engine lock (the one
    that binds this name) rather than its own waiting one. `db_path` is the
    resolved path (`config.resolve_paths`), as for every file derived from it.
    """
    digest = hashlib.sha256(db_path.encode()).hexdigest()[:24]
    return f"\0mininq-wake-{digest}"


def engine_file(db_path: str) -> str:
    """The engine's file beside the database: its lock (see liveness.py) and
    the wake-pending flag (below)."""
    return f"{db_path}-engine.lock"


class WakeFlag:
    """One shared byte: "a job wake is pending, the engine has not ticked since".

    Under load most commits find it raised and skip the datagram: the engine
    clears it at the start of every dispatch pass, before it claims, so a job
    committed while it was raised is seen by that pass anyway.
    """

    SIZE = 8

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < self.SIZE:
                os.ftruncate(fd, self.SIZE)
            self._map = mmap.mmap(fd, self.SIZE)
        finally:
            os.close(fd)

    def raise_(self) -> bool:
        """Raise the flag; True if it was down (the caller must send the wake)."""
        if self._map[0]:
            return False
        self._map[0] = 1
        return True

    def clear(self) -> None:
        self._map[0] = 0

    def close(self) -> None:
        self._map.close()


class WakeSender(Waker):
    def __init__(self, address: str, flag: WakeFlag | None = None) -> None:
        super().__init__()
        self.address = address
        self._flag = flag
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._scheduled: set[bytes] = set()

    def wake(self, kind: bytes = JOBS) -> None:
        """Coalesced per loop turn."""
        if kind in self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._send(kind)
            return
        self._scheduled.add(kind)
        loop.call_soon(self._send, kind)

    def jobs_created(self, queue_names: Iterable[str]) -> None:
        """Wake for new jobs; also for queue settings when a queue is new to this
        process (creating a job may have created its queue)."""
        self.wake(JOBS)
        for name in queue_names:
            self._wake_if_new_queue(name)

    def _send(self, kind: bytes) -> None:
        self._scheduled.discard(kind)
        if kind == JOBS and self._flag is not None and not self._flag.raise_():
            return  # the engine has a pass coming that will see this commit
        try:
            self._sock.sendto(kind, self.address)
        except OSError:  # engine not up yet, or its buffer is full: it will poll
            pass

    async def close(self) -> None:
        self._sock.close()
        if self._flag is not None:
            self._flag.close()


class WakeReceiver(WakeListener):
    """Receives wake datagrams and sets every Signal registered with it."""

    def __init__(self, address: str, flag: WakeFlag | None = None) -> None:
        super().__init__()
        self._flag = flag
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(address)
        self._sock.setblocking(False)
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        kinds = set()
        try:
            while True:
                kinds.update(self._sock.recv(64))
        except (BlockingIOError, InterruptedError):
            pass
        self.deliver(bytes([k]) for k in kinds)

    def before_claim(self) -> None:
        if self._flag is not None:
            self._flag.clear()  # before claiming: later commits must wake us again

    async def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
        if self._flag is not None:
            self._flag.close()
