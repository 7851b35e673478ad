"""The PostgreSQL backend: one database shared by every node.

Each call is one short transaction on a pooled connection; no transaction
is held open across an await on anything but the database. Limits shared by
the nodes (a queue's max_concurrency and token bucket) are enforced inside
the claim's own transaction (`dispatch.claim`).

The engine's store commits without waiting for the WAL flush
(`synchronous_commit = off`): its writes are claims, outcomes and
heartbeats, and one lost in a crash of the PostgreSQL server itself (within
`wal_writer_delay`) only means a delivery made again, which at-least-once
allows. Writes the API answers for (a 201 says the job is stored) wait for
the flush.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from mininq.clock import now_ms
from mininq.nodes import Liveness, NodeInfo
from mininq.store.base import Backend, Store
from mininq.store.errors import StartupError
from mininq.store.postgres import counts, dispatch, history, jobs, nodes, queues, schedules
from mininq.store.postgres import destinations as dest_sql
from mininq.store.postgres.connect import connect, create_pool
from mininq.store.postgres.schema import SchemaTooNew, migrate
from mininq.store.postgres.wake import ListenConnection, NotifyWaker
from mininq.store.rules import (
    DESTINATIONS_FORGET_EVERY_MS,
    LEASE_EXPIRED,
    LEASE_LOST,
    NODE_LOST,
)
from mininq.wake import WakeListener, Waker

__all__ = ["PostgresBackend", "PostgresStore", "prepare"]

T = TypeVar("T")
POOL_SIZE = 10
# Creates written together: at most this many transactions at once, each of
# at most this many API calls.
MAX_CREATE_FLUSHES = 2
CREATE_BATCH = 200
_RETRIED = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


async def prepare(url: str) -> int:
    """Wait for the server (up to 10 s), then create or migrate the schema."""
    conn = await connect(url)
    try:
        return await migrate(conn)
    except SchemaTooNew as e:
        raise StartupError(f"database_url: {e}") from None
    finally:
        await conn.close()


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url

    def prepare(self) -> None:
        asyncio.run(prepare(self.url))

    async def open_store(self, defaults: Any, node_id: str | None = None,
                         durable_writes: bool = True) -> Store:
        store = PostgresStore(self.url, defaults, node_id, durable_writes=durable_writes)
        await store.open()
        return store

    def waker(self, store: Store) -> Waker:
        assert isinstance(store, PostgresStore)
        return NotifyWaker(store.pool, store.node_id)

    async def listener(self, store: Store) -> WakeListener:
        assert isinstance(store, PostgresStore)
        listener = ListenConnection(self.url, store.node_id)
        await listener.open()
        return listener

    def liveness(self, store: Store, node: NodeInfo, worker: Any) -> Liveness:
        assert isinstance(store, PostgresStore)
        return HeartbeatLiveness(store, node, worker.heartbeat_interval_secs,
                                 worker.node_timeout_secs)


class PostgresStore(Store):
    global_limits = True

    def __init__(self, url: str, defaults: Any, node_id: str | None = None,
                 durable_writes: bool = True) -> None:
        self.url = url
        self.defaults = defaults
        self.node_id = node_id
        self.durable_writes = durable_writes
        self.pool: asyncpg.Pool = None  # type: ignore[assignment]
        self._creates: list[tuple[list[dict], asyncio.Future]] = []
        self._flushing = 0
        self._rated: set[str] = set()  # queues last seen with a rate limit
        self._forgot_at = 0  # when destination rows not seen for an hour were last deleted

    async def open(self) -> None:
        settings = {} if self.durable_writes else {"synchronous_commit": "off"}
        self.pool = await create_pool(self.url, POOL_SIZE, settings)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def write(self, fn: Callable[..., Awaitable[T]], *args: Any,
                    transaction: bool = True) -> T:
        """`fn(conn, *args)` in one transaction (or, for one statement, none);
        retried when the server broke a deadlock or a serialization conflict
        by aborting it."""
        for attempt in range(3):
            try:
                async with self.pool.acquire() as conn:
                    if not transaction:
                        return await fn(conn, *args)
                    async with conn.transaction():
                        return await fn(conn, *args)
            except _RETRIED:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    async def read(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """`fn(conn, *args)` in one read-only snapshot (its SELECTs agree)."""
        async with self.pool.acquire() as conn, conn.transaction(
            isolation="repeatable_read", readonly=True
        ):
            return await fn(conn, *args)

    async def health_write(self) -> None:
        await self.write(counts.add, {("health_checks", "", ""): 1})

    async def create_jobs(self, specs: list[dict]) -> list[tuple[dict, bool]]:
        """Creates that arrive while others are being written share the next
        transaction (one insert, one commit), as the SQLite backend's group
        commit does; each caller still returns only after that commit."""
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._creates.append((specs, fut))
        if self._flushing < MAX_CREATE_FLUSHES:
            self._flushing += 1
            asyncio.get_running_loop().create_task(self._flush_creates())
        return await fut

    async def _flush_creates(self) -> None:
        try:
            while self._creates:
                batch, self._creates = self._creates[:CREATE_BATCH], self._creates[CREATE_BATCH:]
                try:
                    results = await self.write(jobs.create_many, [s for s, _ in batch],
                                               self.defaults, now_ms())
                except Exception as exc:  # noqa: BLE001 - each caller gets its own result
                    if len(batch) == 1:
                        if not batch[0][1].done():
                            batch[0][1].set_exception(exc)
                        continue
                    results = await asyncio.gather(*(
                        self.write(jobs.create_jobs, s, self.defaults, now_ms())
                        for s, _ in batch
                    ), return_exceptions=True)
                for (_, fut), result in zip(batch, results):
                    if fut.done():
                        continue
                    if isinstance(result, BaseException):
                        fut.set_exception(result)
                    else:
                        fut.set_result(result)
        finally:
            self._flushing -= 1

    async def get_job(self, job_id: str) -> dict | None:
        async with self.pool.acquire() as conn:
            return await jobs.get_job(conn, job_id)

    async def list_jobs(self, **filters: Any) -> list[dict]:
        return await self.read(lambda conn: jobs.list_jobs(conn, **filters))

    async def cancel_job(self, job_id: str) -> dict:
        return await self.write(jobs.cancel_job, job_id, now_ms())

    async def retry_job(self, job_id: str) -> dict:
        return await self.write(jobs.retry_job, job_id, now_ms())

    async def list_attempts(self, job_id: str) -> list[dict]:
        return await self.read(jobs.list_attempts, job_id)

    async def list_queues(self) -> list[dict]:
        return await self.read(queues.list_queues)

    async def get_queue(self, name: str) -> dict:
        return await self.read(queues.get_queue, name)

    async def create_queue(self, name: str, settings: dict) -> dict:
        return await self.write(queues.create_queue, name, settings, now_ms())

    async def update_queue(self, name: str, changes: dict) -> dict:
        return await self.write(queues.update_queue, name, changes, now_ms())

    async def delete_queue(self, name: str) -> None:
        await self.write(queues.delete_queue, name)

    async def retry_dead(self, name: str) -> int:
        return await self.write(queues.retry_dead, name, now_ms())

    async def purge(self, name: str, status: str) -> int:
        return await self.write(queues.purge, name, status)

    async def list_schedules(self, limit: int, offset: int, after: str | None) -> list[dict]:
        return await self.read(schedules.list_schedules, limit, offset, after)

    async def get_schedule(self, schedule_id: str) -> dict:
        return await self.read(schedules.get_schedule, schedule_id)

    async def create_schedule(self, spec: dict) -> dict:
        return await self.write(schedules.create_schedule, spec, now_ms())

    async def update_schedule(self, schedule_id: str, changes: dict) -> dict:
        return await self.write(schedules.update_schedule, schedule_id, changes, now_ms())

    async def delete_schedule(self, schedule_id: str) -> None:
        await self.write(schedules.delete_schedule, schedule_id)

    async def trigger_schedule(self, schedule_id: str) -> dict:
        return await self.write(schedules.trigger_schedule, schedule_id, self.defaults, now_ms())

    async def stats(self) -> dict:
        async def read(conn: asyncpg.Connection) -> dict:
            settings = await queues.queue_settings(conn)
            per_queue = await counts.per_queue(conn)
            sched = await conn.fetchrow(
                "SELECT count(*) AS total, count(*) FILTER (WHERE enabled) AS enabled "
                "FROM schedules")
            oldest = await conn.fetch(
                """SELECT q.name, (SELECT created_at FROM jobs WHERE queue_name = q.name
                       AND status = 'pending' ORDER BY id LIMIT 1) AS created_at
                   FROM queues q""")
            counters = await conn.fetch(
                """SELECT name, queue_name, key, sum(value) AS value FROM counters
                   GROUP BY 1, 2, 3""")
            return {
                "counts": [{"queue_name": q, "status": s, "n": n}
                           for q, by in per_queue.items() for s, n in by.items()],
                "counters": [dict(r) for r in counters],
                "schedules": {"total": sched["total"], "enabled": sched["enabled"]},
                "queues": settings,
                "oldest_pending": {r["name"]: r["created_at"] for r in oldest
                                   if r["created_at"] is not None},
            }

        return await self.read(read)

    async def queue_settings(self) -> list[dict]:
        async with self.pool.acquire() as conn:
            settings = await queues.queue_settings(conn)
        self._rated = {q["name"] for q in settings if q["rate_limit_rps"] is not None}
        return settings

    async def next_due(self, queue_names: list[str], exclude: Sequence[str] = ()) -> dict[str, int]:
        async with self.pool.acquire() as conn:
            return await dispatch.next_due(conn, queue_names, now_ms(),
                                           self.defaults.queue_max_concurrency, exclude)

    async def claim(self, allocations: list[tuple[str, int]], margin_ms: int,
                    exclude: Sequence[str] = (), only: str | None = None,
                    total: int | None = None) -> list[dict]:
        """Queues without a rate limit in one transaction (lock, claim); those with one (as
        last seen, or named in rows of their own by that claim statement) through
        the bucket's transaction."""
        now, limit = now_ms(), self.defaults.queue_max_concurrency
        plain = [(q, n) for q, n in allocations if q not in self._rated and n > 0]
        rated = [(q, n) for q, n in allocations if q in self._rated and n > 0]
        rows: list[dict] = []
        if plain:
            rows, newly = await self.write(dispatch.claim, plain, now, margin_ms,
                                           self.node_id, limit, exclude, only, total)
            if newly:
                self._rated |= newly
                rated += [(q, n) for q, n in plain if q in newly]
        if total is not None:
            total -= len(rows)
        if rated and (total is None or total > 0):
            more, still = await self.write(dispatch.claim_rated, rated, now, margin_ms,
                                           self.node_id, limit, exclude, only, total)
            self._rated -= {q for q, _ in rated} - still
            rows += more
        return rows

    async def due_destinations(self, destinations: Sequence[str]) -> set[str]:
        async with self.pool.acquire() as conn:
            return await dispatch.due_destinations(conn, destinations, now_ms())

    async def finish(self, outcomes: list[dict], destinations: Sequence[dict] = ()) -> int:
        """Outcomes and destination rows in one statement; rows of nodes not
        seen for an hour are deleted at most once a minute, in a statement
        of their own."""
        now, node = now_ms(), self.node_id or ""
        if outcomes:
            n = await self.write(dispatch.finish, outcomes, now, node, destinations,
                                 transaction=False)
        else:
            n = 0
            if destinations:
                await self.write(dest_sql.save, node, destinations, transaction=False)
        if destinations and now - self._forgot_at >= DESTINATIONS_FORGET_EVERY_MS:
            self._forgot_at = now
            await self.write(dest_sql.forget, now, transaction=False)
        return n

    async def list_destinations(self) -> list[dict]:
        return await self.read(dest_sql.list_destinations, now_ms())

    async def reset_destination(self, destination: str, limit: int) -> list[dict]:
        return await self.write(dest_sql.reset, destination, limit)

    async def destination_resets(self) -> dict[str, int]:
        return await self.read(dest_sql.resets, self.node_id or "")

    async def _take_back(self, fn: Callable[..., Awaitable[list[dict]]], *args: Any) -> list[dict]:
        """`fn(conn, now, *args)` (one batch of at most TAKE_BACK_BATCH jobs, each in
        its own transaction) until a batch comes up short; every job taken back."""
        out: list[dict] = []
        while True:
            rows = await self.write(fn, now_ms(), *args)
            out.extend(rows)
            if len(rows) < dispatch.TAKE_BACK_BATCH:
                return out

    async def reap(self, before: int, process_died: bool = False) -> list[dict]:
        error = LEASE_LOST if process_died else LEASE_EXPIRED
        return await self._take_back(dispatch.reap, before, error)

    async def rescue(self, node_id: str | None = None) -> list[dict]:
        """Jobs of dead nodes (or of this node's previous engine) back to pending."""
        return await self._take_back(dispatch.rescue, NODE_LOST, node_id)

    async def due_schedules(self, now: int) -> list[dict]:
        async with self.pool.acquire() as conn:
            return await schedules.due_schedules(conn, now)

    async def next_schedule_at(self) -> int | None:
        async with self.pool.acquire() as conn:
            return await schedules.next_schedule_at(conn)

    async def fire_schedule(self, schedule_id: str, due_ms: int, next_ms: int) -> dict | None:
        return await self.write(schedules.fire_schedule, schedule_id, due_ms, next_ms,
                                self.defaults, now_ms())

    async def delete_finished(self, status: str, older_than: int, batch: int) -> int:
        return await self.write(dispatch.delete_finished, status, older_than, batch)

    async def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL checkpoints and autovacuum run on their own."""

    async def history(self, start: int, end: int, step_ms: int, queue: str | None) -> list[tuple]:
        return await self.read(history.sums, start, end, step_ms, queue)

    async def prune_history(self, before: int, batch: int) -> int:
        return await self.write(history.prune, before, batch)

    async def list_nodes(self, me: NodeInfo, timeout_ms: int) -> list[dict]:
        async with self.pool.acquire() as conn:
            return await nodes.list_nodes(conn, me.id, timeout_ms / 1000)


class HeartbeatLiveness(Liveness):
    """A row per node in `nodes`, its heartbeat on database time; any live
    node rescues the jobs of a node silent for `timeout_s`."""

    def __init__(self, store: PostgresStore, node: NodeInfo, interval_s: float,
                 timeout_s: float) -> None:
        self.store = store
        self.node = node
        self.interval_s = interval_s
        self.timeout_s = timeout_s

    async def acquire(self, stopping: Callable[[], bool]) -> bool:
        await self.store.write(nodes.register, self.node)
        return True

    async def recover(self) -> list[dict]:
        # Jobs running under this node's id were left by its previous engine
        # (one engine per node): recover them now; other nodes' only when dead.
        return await self.store.rescue(self.node.id) + await self.beat()

    async def beat(self) -> list[dict]:
        await self.store.write(nodes.beat, self.node.id)
        await self.store.write(nodes.dead_nodes, self.node.id, self.timeout_s)
        return await self.store.rescue()

    async def release(self) -> None:
        await self.store.write(nodes.leave, self.node.id)
