"""Wake-ups between the HTTP process and the engine, and between nodes.

A `Waker` is told after a commit that work may be due; a `WakeListener` sets
the engine's `Signal`s when some waker, in this node or another, said so. The
backend provides both (SQLite: a datagram on an abstract Unix socket;
PostgreSQL: NOTIFY/LISTEN). A lost wake only costs latency: the engine still
polls every `worker.poll_interval_ms`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable

JOBS = b"j"  # jobs may be due
QUEUES = b"q"  # queue settings changed (or a queue appeared)
SCHEDULES = b"s"  # schedules changed
KINDS = (JOBS, QUEUES, SCHEDULES)


class Signal:
    """An asyncio event a loop sleeps on: `wait` returns when set or after a timeout."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.generation = 0  # counts wakes from the other process

    def set(self) -> None:
        self._event.set()

    def notify(self) -> None:
        """Set by a wake from the other process (state there may have changed)."""
        self.generation += 1
        self._event.set()

    async def wait(self, timeout_s: float) -> bool:
        """Sleep until set or `timeout_s` passes; True when set. Clears it."""
        if not self._event.is_set() and timeout_s > 0:
            try:
                await asyncio.wait_for(self._event.wait(), timeout_s)
            except TimeoutError:
                pass
        woken = self._event.is_set()
        self._event.clear()
        return woken


class Waker(ABC):
    """Sends wakes after commits; never raises (a lost wake costs only latency)."""

    SEEN_QUEUES_KEPT = 10_000

    def __init__(self) -> None:
        self._seen_queues: set[str] = set()

    def _wake_if_new_queue(self, name: str) -> None:
        """Wake QUEUES the first time this process creates a job of `name`
        (creating a job may have created its queue). Forgets them all past
        SEEN_QUEUES_KEPT names: at worst a few extra settings reads."""
        if name in self._seen_queues:
            return
        if len(self._seen_queues) > self.SEEN_QUEUES_KEPT:
            self._seen_queues.clear()
        self._seen_queues.add(name)
        self.wake(QUEUES)

    @abstractmethod
    def wake(self, kind: bytes = JOBS) -> None:
        """Ask the engines to look at `kind` (JOBS, QUEUES or SCHEDULES) now."""

    @abstractmethod
    def jobs_created(self, queue_names: Iterable[str]) -> None:
        """Wake for new jobs of these queues (and for settings, if a queue may be new)."""

    def slots_freed(self, queue_names: Iterable[str]) -> None:
        """Deliveries of these queues finished: an engine waiting for room in a
        limit shared with other nodes may claim now. Nothing to do with one engine."""

    @abstractmethod
    async def close(self) -> None: ...


class WakeListener(ABC):
    """Sets the engine's Signals on wakes of their kind."""

    def __init__(self) -> None:
        self._signals: dict[bytes, list[tuple[Signal, bool]]] = {}

    def signal(self, kind: bytes) -> Signal:
        """A new Signal set on every wake of `kind`."""
        sig = Signal()
        self.attach(sig, kind)
        return sig

    def attach(self, sig: Signal, kind: bytes, notify: bool = False) -> None:
        """Set `sig` on wakes of `kind`; with notify, also count them as changes
        made by another process (`Signal.generation`)."""
        self._signals.setdefault(kind, []).append((sig, notify))

    def deliver(self, kinds: Iterable[bytes]) -> None:
        """Set the signals of every kind woken."""
        for kind in set(kinds):
            for sig, notify in self._signals.get(kind, ()):
                sig.notify() if notify else sig.set()

    def wake_all(self) -> None:
        """Every signal at once: after a gap in which wakes may have been lost."""
        self.deliver(KINDS)

    def before_claim(self) -> None:
        """Called by the dispatcher at the start of each pass, before it claims."""

    @abstractmethod
    async def close(self) -> None: ...
