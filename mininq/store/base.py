"""The storage seam: what the API and the engine ask of a backend.

Rows come back as plain dicts: times are epoch milliseconds, `payload` and
`headers` are JSON text exactly as stored. Backends raise `NotFound` and
`Conflict` from `mininq.store.errors`; nothing outside a backend writes SQL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from mininq.nodes import Liveness, NodeInfo
from mininq.wake import WakeListener, Waker


class Store(ABC):
    # True when the backend enforces each queue's max_concurrency and token
    # bucket itself, across every node, inside `claim` (and `next_due` answers
    # only for queues with room); False when the one engine enforces them.
    global_limits = False

    # -- lifecycle --------------------------------------------------------
    @abstractmethod
    async def open(self) -> None: ...
    @abstractmethod
    async def close(self) -> None: ...
    @abstractmethod
    async def health_write(self) -> None:
        """A real write; raises (Unavailable for the machine's faults) when the
        database can't be written. After a write failed for want of space it
        must be a write big enough to show there is room again."""

    # -- jobs ---------------------------------------------------------------
    @abstractmethod
    async def create_jobs(self, specs: list[dict]) -> list[tuple[dict, bool]]:
        """All or none, durable on return; (job, created) per spec, in order.
        A spec whose idempotency key is taken returns the holder, created=False."""
    @abstractmethod
    async def get_job(self, job_id: str) -> dict | None: ...
    @abstractmethod
    async def list_jobs(self, *, queue: str | None, status: str | None, schedule_id: str | None,
                        limit: int, offset: int, after: str | None) -> list[dict]: ...
    @abstractmethod
    async def cancel_job(self, job_id: str) -> dict: ...
    @abstractmethod
    async def retry_job(self, job_id: str) -> dict: ...
    @abstractmethod
    async def list_attempts(self, job_id: str) -> list[dict]: ...

    # -- queues -------------------------------------------------------------
    @abstractmethod
    async def list_queues(self) -> list[dict]: ...
    @abstractmethod
    async def get_queue(self, name: str) -> dict: ...
    @abstractmethod
    async def create_queue(self, name: str, settings: dict) -> dict: ...
    @abstractmethod
    async def update_queue(self, name: str, changes: dict) -> dict: ...
    @abstractmethod
    async def delete_queue(self, name: str) -> None: ...
    @abstractmethod
    async def retry_dead(self, name: str) -> int: ...
    @abstractmethod
    async def purge(self, name: str, status: str) -> int: ...

    # -- schedules ----------------------------------------------------------
    @abstractmethod
    async def list_schedules(self, limit: int, offset: int, after: str | None) -> list[dict]: ...
    @abstractmethod
    async def get_schedule(self, schedule_id: str) -> dict: ...
    @abstractmethod
    async def create_schedule(self, spec: dict) -> dict: ...
    @abstractmethod
    async def update_schedule(self, schedule_id: str, changes: dict) -> dict: ...
    @abstractmethod
    async def delete_schedule(self, schedule_id: str) -> None: ...
    @abstractmethod
    async def trigger_schedule(self, schedule_id: str) -> dict: ...

    # -- metrics ------------------------------------------------------------
    @abstractmethod
    async def stats(self) -> dict:
        """{"counts": [{queue_name,status,n}], "counters": [...], "schedules": {total,enabled},
        "queues": [queue settings], "oldest_pending": {queue: created_at}}"""

    # -- engine -------------------------------------------------------------
    @abstractmethod
    async def queue_settings(self) -> list[dict]: ...
    @abstractmethod
    async def next_due(self, queues: list[str], exclude: Sequence[str] = ()) -> dict[str, int]:
        """Earliest due moment per queue with pending jobs, not counting the
        jobs of the destinations in `exclude`."""
    @abstractmethod
    async def claim(self, allocations: list[tuple[str, int]], margin_ms: int,
                    exclude: Sequence[str] = (), only: str | None = None,
                    total: int | None = None) -> list[dict]:
        """Lease up to n due jobs per (queue, n), highest priority first, none
        of a destination in `exclude`; with `only`, jobs of that destination
        alone; `total` at most in all (a destination's room, over many queues)."""
    @abstractmethod
    async def due_destinations(self, destinations: Sequence[str]) -> set[str]:
        """Which of these destinations have a pending job due now (a read)."""
    @abstractmethod
    async def finish(self, outcomes: list[dict], destinations: Sequence[dict] = ()) -> int:
        """Record attempt outcomes in one transaction, with this node's view of
        the destinations that changed (`rules.DESTINATION_FIELDS` per row)."""
    @abstractmethod
    async def reap(self, before: int, process_died: bool) -> list[dict]:
        """Return jobs whose lease ended before `before` to pending (or dead);
        `process_died` says the process that claimed them is gone (start-up)."""
    @abstractmethod
    async def due_schedules(self, now: int) -> list[dict]: ...
    @abstractmethod
    async def next_schedule_at(self) -> int | None: ...
    @abstractmethod
    async def fire_schedule(self, schedule_id: str, due_ms: int, next_ms: int) -> dict | None:
        """Compare-and-swap next_run_at and create the job; None if it lost the race."""
    @abstractmethod
    async def delete_finished(self, status: str, older_than: int, batch: int) -> int: ...
    @abstractmethod
    async def checkpoint(self) -> None: ...

    # -- destinations -------------------------------------------------------
    @abstractmethod
    async def list_destinations(self) -> list[dict]:
        """Every node's rows seen in the last hour (at most 1,000), each with
        `node` and `pending` (its pending jobs, counted now)."""
    @abstractmethod
    async def reset_destination(self, destination: str, limit: int) -> list[dict]:
        """Ask every node's engine to reset the destination; its rows as they
        will read (empty: unknown)."""
    @abstractmethod
    async def destination_resets(self) -> dict[str, int]:
        """Resets asked so far per destination of this node (the engine applies new ones)."""

    # -- history (SPEC §11) -------------------------------------------------------
    # Every backend adds to the per-minute rollups in the transactions of its
    # job writes: creates, outcomes (those that took effect) and reaps.
    @abstractmethod
    async def history(self, start: int, end: int, step_ms: int, queue: str | None) -> list[tuple]:
        """Per-minute rollups of [start, end) summed per `step_ms` bucket, of one
        queue or all: (bucket start, *mininq.metrics.history.COLUMNS) for the
        buckets that have any."""
    @abstractmethod
    async def prune_history(self, before: int, batch: int) -> int:
        """Delete up to `batch` rollup rows of minutes before `before`; how many went."""

    # -- nodes --------------------------------------------------------------
    @abstractmethod
    async def list_nodes(self, me: NodeInfo, timeout_ms: int) -> list[dict]:
        """{id, hostname, pid, version, started_at, last_seen_at, in_flight, alive,
        self} per node, `self` for `me`; times in epoch ms."""


class Backend(ABC):
    """A kind of database: how to prepare it, open it, wake through it and
    know which engines are alive. `mininq.store.backend_for` picks one."""

    name: str  # "sqlite" or "postgresql", as /health reports it

    @abstractmethod
    def prepare(self) -> None:
        """Create or migrate the schema (main process, before any child starts);
        raises StartupError with a message for the user."""

    @abstractmethod
    async def open_store(self, defaults: Any, node_id: str | None = None,
                         durable_writes: bool = True) -> Store:
        """A store for this process; `node_id` marks the jobs its claims lease.
        `durable_writes` False (the engine) lets the backend commit without
        waiting for the disk where a lost write only means a delivery again."""

    @abstractmethod
    def waker(self, store: Store) -> Waker: ...

    @abstractmethod
    async def listener(self, store: Store) -> WakeListener: ...

    @abstractmethod
    def liveness(self, store: Store, node: NodeInfo, worker: Any) -> Liveness: ...
