"""SQL for jobs as the API sees them: create, read, list, cancel, retry."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import asyncpg

from mininq.metrics import history as rollup
from mininq.store.errors import Conflict, NotFound
from mininq.store.postgres import counts, history
from mininq.store.postgres.locks import after
from mininq.store.postgres.queues import ensure_queue
from mininq.store.rules import JOB_COLUMNS, merged_page, new_job_row, single_filter_pairs

COLUMNS = JOB_COLUMNS
SELECT = f"SELECT {', '.join(COLUMNS)} FROM jobs"
_TYPES = {
    "priority": "int4", "max_retries": "int4", "attempt": "int4", "base_delay_ms": "int8",
    "max_delay_ms": "int8", "timeout_ms": "int8", "visible_at": "int8", "lease_until": "int8",
    "started_at": "int8", "completed_at": "int8", "created_at": "int8", "updated_at": "int8",
}
_INSERT_MANY = (
    f"INSERT INTO jobs ({', '.join(COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{_TYPES.get(c, 'text')}[]" for i, c in enumerate(COLUMNS, start=1))
    + ")"
)
_INSERT_KEYED = (
    f"INSERT INTO jobs ({', '.join(COLUMNS)}) VALUES ("
    + ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
    + ") ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id"
)

# A batch's rows without a key, its queues' pending counts, its minute's
# history rows and its jobs_created counters, in one statement (in the order
# of locks.py): three round trips fewer per batch than one statement each.
# Rows with a key are inserted one by one before it, and the counts include them.
_N = len(COLUMNS)
_QUEUES, _COUNTS, _SHARD, _MINUTE = (f"${_N + i}" for i in range(1, 5))
_INSERT_COUNTED = (
    f"WITH inserted AS ({_INSERT_MANY}),"
    + counts.created_counts(_QUEUES, _COUNTS, _SHARD)
    + ", historied AS ("
    + history.created_upsert(_QUEUES, _COUNTS, _SHARD, _MINUTE, after("pending"))
    + " RETURNING 1)"
    + counts.created_counter(_QUEUES, _COUNTS, _SHARD, after("historied"))
)


async def create_jobs(conn: asyncpg.Connection, specs: list[dict], defaults: Any,
                      now: int) -> list[tuple[dict, bool]]:
    """Insert jobs (all or none: the caller's transaction); (job, created) per spec."""
    return (await create_many(conn, [specs], defaults, now))[0]


async def create_many(conn: asyncpg.Connection, calls: list[list[dict]], defaults: Any,
                      now: int) -> list[list[tuple[dict, bool]]]:
    """Several create_jobs calls in one transaction: each queue looked up once,
    one insert for every row without a key, one update of the counts.

    A key held by another job, also one another node is inserting right now,
    returns that job: the insert waits for the other transaction and then
    finds the row."""
    queues: dict[str, dict] = {}
    results: list[list[tuple[dict, bool]]] = []
    plain: list[dict] = []
    per_queue: Counter = Counter()
    for specs in calls:
        out: list[tuple[dict, bool]] = []
        for spec in specs:
            name = spec["queue_name"]
            if name not in queues:
                queues[name] = await ensure_queue(conn, name, now)
            row = new_job_row(spec, queues[name], defaults, now)
            if row["idempotency_key"] is None:
                plain.append(row)
            elif await conn.fetchval(_INSERT_KEYED, *(row[c] for c in COLUMNS)) is None:
                existing = await conn.fetchrow(f"{SELECT} WHERE idempotency_key = $1",
                                               row["idempotency_key"])
                out.append((dict(existing), False))
                continue
            per_queue[name] += 1
            out.append((row, True))
        results.append(out)
    made = sorted((q, n) for q, n in per_queue.items() if n)
    if made:
        await conn.execute(
            _INSERT_COUNTED, *([r[c] for r in plain] for c in COLUMNS),
            [q for q, _ in made], [n for _, n in made], random.randrange(counts.SHARDS),
            rollup.minute_start(now))
    return results


async def get_job(conn: asyncpg.Connection, job_id: str) -> dict | None:
    row = await conn.fetchrow(f"{SELECT} WHERE id = $1", job_id)
    return dict(row) if row else None


async def list_jobs(
    conn: asyncpg.Connection,
    *,
    queue: str | None = None,
    status: str | None = None,
    schedule_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
    after: str | None = None,
) -> list[dict]:
    """Newest first through the (queue, status, id) index: a filter on only one
    of queue and status merges that index's scans over the other's values."""
    if schedule_id is None and (queue is None) != (status is None):
        names = [] if queue is not None else [
            r[0] for r in await conn.fetch("SELECT name FROM queues")]
        return merged_page(
            [await list_jobs(conn, queue=q, status=st, limit=limit + offset, after=after)
             for q, st in single_filter_pairs(queue, status, names)], limit, offset)
    where, args = [], []
    for column, value in (("queue_name", queue), ("status", status),
                          ("schedule_id", schedule_id)):
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if after is not None:
        args.append(after)
        where.append(f"id < ${len(args)}")
    sql = SELECT
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY id DESC LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}"
    return [dict(r) for r in await conn.fetch(sql, *args, limit, offset)]


async def cancel_job(conn: asyncpg.Connection, job_id: str, now: int) -> dict:
    row = await conn.fetchrow(
        f"""UPDATE jobs SET status = 'cancelled', completed_at = $1, updated_at = $1
            WHERE id = $2 AND status = 'pending' RETURNING {', '.join(COLUMNS)}""", now, job_id)
    if row is not None:
        await counts.bump(conn, Counter({(row["queue_name"], "pending"): -1,
                                         (row["queue_name"], "cancelled"): 1}))
        return dict(row)
    current = await conn.fetchval("SELECT status FROM jobs WHERE id = $1", job_id)
    if current is None:
        raise NotFound(f"job {job_id} not found")
    raise Conflict(f"job {job_id} is {current}; only a pending job can be cancelled")


async def retry_job(conn: asyncpg.Connection, job_id: str, now: int) -> dict:
    before = await conn.fetchval("SELECT status FROM jobs WHERE id = $1 FOR UPDATE", job_id)
    row = await conn.fetchrow(
        f"""UPDATE jobs SET status = 'pending', attempt = 0, visible_at = $1, lease_until = NULL,
                started_at = NULL, completed_at = NULL, result = NULL, updated_at = $1
            WHERE id = $2 AND status IN ('dead', 'cancelled') RETURNING {', '.join(COLUMNS)}""",
        now, job_id)
    if row is not None:
        await counts.bump(conn, Counter({(row["queue_name"], before): -1,
                                         (row["queue_name"], "pending"): 1}))
        return dict(row)
    if before is None:
        raise NotFound(f"job {job_id} not found")
    raise Conflict(f"job {job_id} is {before}; only a dead or cancelled job can be retried")


async def list_attempts(conn: asyncpg.Connection, job_id: str) -> list[dict]:
    if await conn.fetchval("SELECT 1 FROM jobs WHERE id = $1", job_id) is None:
        raise NotFound(f"job {job_id} not found")
    return [
        dict(r)
        for r in await conn.fetch(
            """SELECT attempt, started_at, duration_ms, status_code, outcome, error
               FROM attempts WHERE job_id = $1 ORDER BY id""", job_id)
    ]
