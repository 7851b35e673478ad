"""SQL for schedules: CRUD, and the compare-and-swap that makes one fire one job."""

from __future__ import annotations

from typing import Any

import asyncpg

from mininq.ids import uuid7
from mininq.store.errors import NotFound
from mininq.store.postgres import counts
from mininq.store.postgres.jobs import create_jobs
from mininq.store.postgres.queues import ensure_queue
from mininq.store.rules import SCHEDULE_FIELDS, schedule_job_spec


def _values(spec: dict) -> dict:
    out = {f: spec[f] for f in SCHEDULE_FIELDS if f in spec}
    if "enabled" in out:
        out["enabled"] = bool(out["enabled"])
    return out


async def get_schedule(conn: asyncpg.Connection, schedule_id: str) -> dict:
    row = await conn.fetchrow("SELECT * FROM schedules WHERE id = $1", schedule_id)
    if row is None:
        raise NotFound(f"schedule {schedule_id} not found")
    return dict(row)


async def list_schedules(conn: asyncpg.Connection, limit: int, offset: int,
                         after: str | None) -> list[dict]:
    if after is None:
        rows = await conn.fetch(
            "SELECT * FROM schedules ORDER BY id DESC LIMIT $1 OFFSET $2", limit, offset)
    else:
        rows = await conn.fetch(
            "SELECT * FROM schedules WHERE id < $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
            after, limit, offset)
    return [dict(r) for r in rows]


async def create_schedule(conn: asyncpg.Connection, spec: dict, now: int) -> dict:
    await ensure_queue(conn, spec["queue_name"], now)
    values = {"id": uuid7(), "created_at": now, "updated_at": now, **_values(spec)}
    marks = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    row = await conn.fetchrow(
        f"INSERT INTO schedules ({', '.join(values)}) VALUES ({marks}) RETURNING *",
        *values.values())
    return dict(row)


async def update_schedule(conn: asyncpg.Connection, schedule_id: str, changes: dict,
                          now: int) -> dict:
    if "queue_name" in changes:
        await ensure_queue(conn, changes["queue_name"], now)
    values = {**_values(changes), "updated_at": now}
    sets = ", ".join(f"{col} = ${i}" for i, col in enumerate(values, start=2))
    row = await conn.fetchrow(f"UPDATE schedules SET {sets} WHERE id = $1 RETURNING *",
                              schedule_id, *values.values())
    if row is None:
        raise NotFound(f"schedule {schedule_id} not found")
    return dict(row)


async def delete_schedule(conn: asyncpg.Connection, schedule_id: str) -> None:
    done = await conn.execute("DELETE FROM schedules WHERE id = $1", schedule_id)
    if done.endswith(" 0"):
        raise NotFound(f"schedule {schedule_id} not found")


async def trigger_schedule(conn: asyncpg.Connection, schedule_id: str, defaults: Any,
                           now: int) -> dict:
    schedule = await get_schedule(conn, schedule_id)
    return (await create_jobs(conn, [schedule_job_spec(schedule, now)], defaults, now))[0][0]


async def due_schedules(conn: asyncpg.Connection, now: int, limit: int = 100) -> list[dict]:
    return [dict(r) for r in await conn.fetch(
        """SELECT * FROM schedules WHERE enabled AND next_run_at <= $1
           ORDER BY next_run_at LIMIT $2""", now, limit)]


async def next_schedule_at(conn: asyncpg.Connection) -> int | None:
    return await conn.fetchval("SELECT min(next_run_at) FROM schedules WHERE enabled")


async def fire_schedule(conn: asyncpg.Connection, schedule_id: str, due_ms: int, next_ms: int,
                        defaults: Any, now: int) -> dict | None:
    """Move next_run_at from `due_ms` to `next_ms` and create the job, or do
    nothing if another node already moved it: the UPDATE of a node that lost
    the race waits for the winner's commit, then finds next_run_at changed."""
    row = await conn.fetchrow(
        """UPDATE schedules SET next_run_at = $1, last_run_at = $2, updated_at = $2
           WHERE id = $3 AND enabled AND next_run_at = $4 RETURNING *""",
        next_ms, now, schedule_id, due_ms)
    if row is None:
        return None
    await counts.add(conn, {("schedule_fires", "", ""): 1})
    return (await create_jobs(conn, [schedule_job_spec(dict(row), now)], defaults, now))[0][0]
