"""The SQLite backend: one file in WAL mode, shared by the HTTP and engine processes."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from mininq.clock import now_ms
from mininq.faults import FAULTS
from mininq.nodes import Liveness, NodeInfo
from mininq.store.base import Backend, Store
from mininq.store.rules import DESTINATIONS_FORGET_EVERY_MS
from mininq.store.sqlite import destinations as dest_sql
from mininq.store.sqlite import dispatch, history, jobs, queues, schedules, stats
from mininq.store.sqlite.connection import Database, connect_sync
from mininq.store.sqlite.liveness import FileLockLiveness
from mininq.store.sqlite.schema import SchemaTooNew, migrate
from mininq.store.sqlite.wake import WakeFlag, WakeReceiver, WakeSender, address_for, engine_file
from mininq.wake import WakeListener, Waker

__all__ = ["SchemaTooNew", "SqliteBackend", "SqliteStore", "migrate_file"]

ROOM_CHECK_BYTES = 256 * 1024  # about what a batch of a hundred 2 KiB jobs needs


def migrate_file(path: str) -> int:
    """Create or upgrade the schema of the file at `path` (main process, at start)."""
    conn = connect_sync(path)
    try:
        return migrate(conn)
    finally:
        conn.close()


class SqliteBackend(Backend):
    """One file, one engine (its file lock), wakes on an abstract Unix socket."""

    name = "sqlite"

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path

    def prepare(self) -> None:
        """Refuse a file that is not a mininq database (DatabaseRefused, nothing
        written), then create or migrate it."""
        from mininq.store.sqlite.identity import check_database_file

        check_database_file(self.db_path)
        migrate_file(self.db_path)

    async def open_store(self, defaults: Any, node_id: str | None = None,
                         durable_writes: bool = True) -> Store:
        store = SqliteStore(self.db_path, defaults, node_id)
        await store.open()
        return store

    def waker(self, store: Store) -> Waker:
        return WakeSender(address_for(self.db_path), WakeFlag(engine_file(self.db_path)))

    async def listener(self, store: Store) -> WakeListener:
        return WakeReceiver(address_for(self.db_path), WakeFlag(engine_file(self.db_path)))

    def liveness(self, store: Store, node: NodeInfo, worker: Any) -> Liveness:
        return FileLockLiveness(self.db_path, store)


class SqliteStore(Store):
    def __init__(self, path: str, defaults: Any, node_id: str | None = None) -> None:
        self.db = Database(path)
        self.defaults = defaults
        self.node_id = node_id or ""
        # When destination rows of earlier runs or not seen for an hour were last deleted.
        self._forgot_at = 0

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def health_write(self) -> None:
        """A tiny write; after a write failed for the machine's sake (disk full...),
        a write of ROOM_CHECK_BYTES instead, because a tiny write can still fit
        where a job does not (a full disk leaves room in the last WAL pages)."""
        fault = self.db.fault
        if fault is None:
            await self.db.write(stats.health_write)
            return
        await self.db.write(stats.room_check, ROOM_CHECK_BYTES)
        await self.db.write(stats.room_release)
        self._writes_succeeded()
        # Copy the WAL into the file now, so the next writes reuse the WAL's
        # space instead of growing it into a disk that just had room again.
        with contextlib.suppress(Exception):  # only an early start of what SQLite does anyway
            await self.db.exclusive(dispatch.checkpoint_passive)

    def _writes_succeeded(self) -> None:
        if self.db.fault is not None:
            FAULTS.cleared(self.db.fault.cause)
            self.db.fault = None

    async def create_jobs(self, specs: list[dict]) -> list[tuple[dict, bool]]:
        created = await self.db.write(jobs.create_jobs, specs, self.defaults, now_ms())
        self._writes_succeeded()
        return created

    async def get_job(self, job_id: str) -> dict | None:
        return await self.db.read(jobs.get_job, job_id)

    async def list_jobs(self, **filters: Any) -> list[dict]:
        return await self.db.read(lambda conn: jobs.list_jobs(conn, **filters))

    async def cancel_job(self, job_id: str) -> dict:
        return await self.db.write(jobs.cancel_job, job_id, now_ms())

    async def retry_job(self, job_id: str) -> dict:
        return await self.db.write(jobs.retry_job, job_id, now_ms())

    async def list_attempts(self, job_id: str) -> list[dict]:
        return await self.db.read(jobs.list_attempts, job_id)

    async def list_queues(self) -> list[dict]:
        return await self.db.read(queues.list_queues)

    async def get_queue(self, name: str) -> dict:
        return await self.db.read(queues.get_queue, name)

    async def create_queue(self, name: str, settings: dict) -> dict:
        return await self.db.write(queues.create_queue, name, settings, now_ms())

    async def update_queue(self, name: str, changes: dict) -> dict:
        return await self.db.write(queues.update_queue, name, changes, now_ms())

    async def delete_queue(self, name: str) -> None:
        await self.db.write(queues.delete_queue, name)

    async def retry_dead(self, name: str) -> int:
        return await self.db.write(queues.retry_dead, name, now_ms())

    async def purge(self, name: str, status: str) -> int:
        return await self.db.write(queues.purge, name, status)

    async def list_schedules(self, limit: int, offset: int, after: str | None) -> list[dict]:
        return await self.db.read(schedules.list_schedules, limit, offset, after)

    async def get_schedule(self, schedule_id: str) -> dict:
        return await self.db.read(schedules.get_schedule, schedule_id)

    async def create_schedule(self, spec: dict) -> dict:
        return await self.db.write(schedules.create_schedule, spec, now_ms())

    async def update_schedule(self, schedule_id: str, changes: dict) -> dict:
        return await self.db.write(schedules.update_schedule, schedule_id, changes, now_ms())

    async def delete_schedule(self, schedule_id: str) -> None:
        await self.db.write(schedules.delete_schedule, schedule_id)

    async def trigger_schedule(self, schedule_id: str) -> dict:
        return await self.db.write(schedules.trigger_schedule, schedule_id, self.defaults, now_ms())

    async def stats(self) -> dict:
        def read(conn):
            settings = queues.queue_settings(conn)
            return {
                "counts": stats.job_counts(conn),
                "counters": stats.counters(conn),
                "schedules": stats.schedule_counts(conn),
                "queues": settings,
                "oldest_pending": stats.oldest_pending(conn, [q["name"] for q in settings]),
            }

        return await self.db.read(read)

    async def queue_settings(self) -> list[dict]:
        return await self.db.read(queues.queue_settings)

    async def next_due(self, queue_names: list[str], exclude: Sequence[str] = ()) -> dict[str, int]:
        return await self.db.read(dispatch.next_due, queue_names, exclude)

    async def claim(self, allocations: list[tuple[str, int]], margin_ms: int,
                    exclude: Sequence[str] = (), only: str | None = None,
                    total: int | None = None) -> list[dict]:
        return await self.db.write(dispatch.claim, allocations, now_ms(), margin_ms, exclude,
                                   only, total)

    async def due_destinations(self, destinations: Sequence[str]) -> set[str]:
        return await self.db.read(dispatch.due_destinations, destinations, now_ms())

    async def finish(self, outcomes: list[dict], destinations: Sequence[dict] = ()) -> int:
        """Outcomes and destination rows in one transaction; rows of earlier
        runs or not seen for an hour are deleted at most once a minute (the
        first batch after start does it)."""
        now = now_ms()
        forget = bool(destinations) and now - self._forgot_at >= DESTINATIONS_FORGET_EVERY_MS

        def write(conn: Any, now: int) -> int:
            n = dispatch.finish(conn, outcomes, now) if outcomes else 0
            if destinations:
                dest_sql.save(conn, self.node_id, destinations)
            if forget:
                dest_sql.forget(conn, self.node_id, now)
            return n

        n = await self.db.write(write, now)
        if forget:
            self._forgot_at = now
        return n

    async def list_destinations(self) -> list[dict]:
        return await self.db.read(dest_sql.list_destinations, now_ms())

    async def reset_destination(self, destination: str, limit: int) -> list[dict]:
        return await self.db.write(dest_sql.reset, destination, limit)

    async def destination_resets(self) -> dict[str, int]:
        return await self.db.read(dest_sql.resets, self.node_id)

    async def reap(self, before: int, process_died: bool) -> list[dict]:
        return await self.db.write(dispatch.reap, now_ms(), before, process_died)

    async def due_schedules(self, now: int) -> list[dict]:
        return await self.db.read(schedules.due_schedules, now)

    async def next_schedule_at(self) -> int | None:
        return await self.db.read(schedules.next_schedule_at)

    async def fire_schedule(self, schedule_id: str, due_ms: int, next_ms: int) -> dict | None:
        return await self.db.write(
            schedules.fire_schedule, schedule_id, due_ms, next_ms, self.defaults, now_ms()
        )

    async def delete_finished(self, status: str, older_than: int, batch: int) -> int:
        return await self.db.write(dispatch.delete_finished, status, older_than, batch)

    async def checkpoint(self) -> None:
        await self.db.exclusive(dispatch.checkpoint)

    async def history(self, start: int, end: int, step_ms: int, queue: str | None) -> list[tuple]:
        return await self.db.read(history.sums, start, end, step_ms, queue)

    async def prune_history(self, before: int, batch: int) -> int:
        return await self.db.write(history.prune, before, batch)

    async def list_nodes(self, me: NodeInfo, timeout_ms: int) -> list[dict]:
        """One node: this server, the only one a file can have delivering."""
        running = sum(r["n"] for r in await self.db.read(stats.job_counts)
                      if r["status"] == "running")
        return [{"id": me.id, "hostname": me.hostname, "pid": me.pid, "version": me.version,
                 "started_at": me.started_at, "last_seen_at": now_ms(), "in_flight": running,
                 "alive": True, "self": True}]
