"""Nodes: the mininq servers delivering from one database, and how an engine
knows which jobs left `running` belong to a process that is gone.

One node is one `mininq serve` (its HTTP process and its engine). The backend
decides how liveness is known (SQLite: the engine's file lock, one node per
file; PostgreSQL: heartbeats in a nodes table, many nodes).
"""

from __future__ import annotations

import os
import socket
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from mininq import __version__
from mininq.clock import now_ms
from mininq.ids import uuid7


@dataclass(frozen=True)
class NodeInfo:
    id: str
    hostname: str
    pid: int
    version: str
    started_at: int  # epoch ms

    @classmethod
    def this_process(cls) -> NodeInfo:
        """A new identity for the server starting in this (main) process."""
        return cls(uuid7(), socket.gethostname(), main_pid(), __version__, now_ms())


def main_pid() -> int:
    """The pid a user sees for this server: ours, or, in the one-file
    executable, that of its bootloader (our parent, the same executable)."""
    pid = os.getpid()
    if getattr(sys, "frozen", False):
        try:
            if os.readlink(f"/proc/{os.getppid()}/exe") == os.readlink(f"/proc/{pid}/exe"):
                return os.getppid()
        except OSError:
            pass
    return pid


class Liveness(ABC):
    """What the engine does to be allowed to deliver, and to stay so."""

    # Seconds between `beat` calls; None when the backend needs none.
    interval_s: float | None = None

    @abstractmethod
    async def acquire(self, stopping: Callable[[], bool]) -> bool:
        """Wait until this engine may deliver; False if asked to stop meanwhile."""

    @abstractmethod
    async def recover(self) -> list[dict]:
        """At start: jobs left running by engines known to be gone go back to
        pending (or dead), the lost attempt recorded; returns them."""

    async def beat(self) -> list[dict]:
        """Say this node is alive; rescue the jobs of nodes that stopped saying so."""
        return []

    @abstractmethod
    async def release(self) -> None: ...
