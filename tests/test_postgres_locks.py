"""Row locks of the PostgreSQL backend: claims, outcomes and creates of one
queue running at once never deadlock, and creates never wait for the
in-flight count that claims and outcomes move on the queue's row.

The server counts every deadlock it breaks (`pg_stat_database.deadlocks`):
the store retries those statements, so only that counter shows one happened.
"""

from __future__ import annotations

import asyncio
import random
import time

import asyncpg
import pytest
from support.postgres import fresh_database

from mininq.clock import now_ms
from mininq.config import DefaultsConfig
from mininq.store.postgres import PostgresBackend

DEFAULTS = DefaultsConfig()
URL = "http://127.0.0.1:9/hook"


@pytest.fixture()
def pg_url():
    with fresh_database("mininq_locks") as url:
        PostgresBackend(url).prepare()
        yield url


def spec(queue: str = "q") -> dict:
    return {"queue_name": queue, "callback_url": URL, "payload": "{}"}


def outcome(job: dict) -> dict:
    return {"id": job["id"], "queue_name": job["queue_name"], "attempt": job["attempt"],
            "outcome": "completed", "status_code": 200, "error": None, "result": None,
            "started_at": now_ms(), "duration_ms": 1, "visible_at": None}


async def deadlocks(conn: asyncpg.Connection) -> int:
    # The statistics collector's view lags; clear its snapshot and wait for it.
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return await conn.fetchval(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")


def test_claims_outcomes_and_creates_of_one_queue_never_deadlock(pg_url: str) -> None:
    """Four engines' claims and outcome batches and a stream of creates on one
    queue for three seconds (3,000 jobs at most): every job ends completed and the server broke no
    deadlock. (With outcomes locking a job_counts shard before the queue row
    that a claim holds, this met several a second.)"""

    async def main() -> tuple[int, int, int]:
        stores = [await PostgresBackend(pg_url).open_store(DEFAULTS, f"node-{i}",
                                                           durable_writes=False)
                  for i in range(4)]
        api = await PostgresBackend(pg_url).open_store(DEFAULTS)
        watch = await asyncpg.connect(pg_url)
        try:
            before = await deadlocks(watch)
            created = 0
            end = time.monotonic() + 3.0

            async def create() -> None:
                nonlocal created
                while time.monotonic() < end and created < 3_000:
                    n = random.randint(1, 8)
                    await api.create_jobs([spec() for _ in range(n)])
                    created += n

            async def engine(store) -> None:
                while time.monotonic() < end:
                    jobs = await store.claim([("q", random.randint(1, 16))], 5_000)
                    if jobs:
                        await store.finish([outcome(j) for j in jobs])
                    else:
                        await asyncio.sleep(0.001)

            await asyncio.gather(create(), create(), *(engine(s) for s in stores))
            while True:  # the rest, one engine
                jobs = await stores[0].claim([("q", 64)], 5_000)
                if not jobs:
                    break
                await stores[0].finish([outcome(j) for j in jobs])
            after = await deadlocks(watch)
            statuses = dict(await watch.fetch(
                "SELECT status, count(*) FROM jobs GROUP BY status"))
            in_flight = await watch.fetchval("SELECT in_flight FROM queues WHERE name = 'q'")
            return after - before, statuses, in_flight
        finally:
            await watch.close()
            for s in (*stores, api):
                await s.close()

    broken, statuses, in_flight = asyncio.run(main())
    assert broken == 0, f"the server broke {broken} deadlocks; jobs: {statuses}"
    assert set(statuses) == {"completed"} and statuses["completed"] > 100, statuses
    assert in_flight == 0


def test_creates_do_not_wait_for_a_claim_holding_the_queue_row(pg_url: str) -> None:
    """A claim's lock on the queue row (held here for 3 s) doesn't hold up a
    create into that queue; deleting the queue still waits for a create's
    transaction."""

    async def main() -> tuple[float, float]:
        store = await PostgresBackend(pg_url).open_store(DEFAULTS)
        holder = await asyncpg.connect(pg_url)
        try:
            await store.create_jobs([spec()])
            tx = holder.transaction()
            await tx.start()
            # As a claim locks it (dispatch._CLAIM), then moves its in-flight count.
            await holder.execute(
                "SELECT 1 FROM queues WHERE name = 'q' FOR NO KEY UPDATE")
            await holder.execute("UPDATE queues SET in_flight = in_flight WHERE name = 'q'")
            t0 = time.monotonic()
            await asyncio.wait_for(store.create_jobs([spec()]), 10)
            create_s = time.monotonic() - t0
            await tx.rollback()

            # A create's lock keeps the queue from being deleted under it.
            tx = holder.transaction()
            await tx.start()
            await holder.execute("SELECT 1 FROM queues WHERE name = 'q' FOR KEY SHARE")
            loop = asyncio.get_running_loop()
            t0 = time.monotonic()
            loop.call_later(1.0, lambda: loop.create_task(tx.rollback()))
            with pytest.raises(Exception, match="pending"):
                await asyncio.wait_for(store.delete_queue("q"), 10)
            delete_s = time.monotonic() - t0
            return create_s, delete_s
        finally:
            await holder.close()
            await store.close()

    create_s, delete_s = asyncio.run(main())
    assert create_s < 1.0, f"a create waited {create_s:.2f} s for a claim's lock on the queue row"
    assert delete_s >= 0.9, f"delete_queue went ahead in {delete_s:.2f} s under a create's lock"
