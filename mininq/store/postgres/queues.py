"""SQL for queues: settings, counts, pause/resume, bulk retry and purge."""

from __future__ import annotations

from collections import Counter

import asyncpg

from mininq.store.errors import Conflict, NotFound
from mininq.store.postgres import counts
from mininq.store.rules import SETTING_FIELDS, with_counts

COLUMNS = ("name", *SETTING_FIELDS, "created_at", "updated_at")
SELECT = f"SELECT {', '.join(COLUMNS)} FROM queues"

# A key-share lock: the queue can't be deleted before this transaction ends,
# yet claims and outcomes updating the row's in-flight count (no-key-update
# locks) neither wait for it nor make it wait.
_ENSURE = f"{SELECT} WHERE name = $1 FOR KEY SHARE"


async def ensure_queue(conn: asyncpg.Connection, name: str, now: int) -> dict:
    """The queue's settings, creating it with the defaults on first use."""
    while True:
        row = await conn.fetchrow(_ENSURE, name)
        if row is not None:
            return dict(row)
        # Waits for a transaction inserting the same name, then finds its row.
        await conn.execute(
            "INSERT INTO queues (name, created_at, updated_at) VALUES ($1, $2, $2) "
            "ON CONFLICT (name) DO NOTHING", name, now)


async def get_queue(conn: asyncpg.Connection, name: str) -> dict:
    row = await conn.fetchrow(f"{SELECT} WHERE name = $1", name)
    if row is None:
        raise NotFound(f"queue {name!r} not found")
    return with_counts(row, (await counts.per_queue(conn, name)).get(name, {}))


async def list_queues(conn: asyncpg.Connection) -> list[dict]:
    per_queue = await counts.per_queue(conn)
    return [with_counts(r, per_queue.get(r["name"], {}))
            for r in await conn.fetch(f"{SELECT} ORDER BY name")]


async def queue_settings(conn: asyncpg.Connection) -> list[dict]:
    return [dict(r) for r in await conn.fetch(f"{SELECT} ORDER BY name")]


def _settings(values: dict) -> dict:
    out = {f: values[f] for f in SETTING_FIELDS if f in values}
    if "paused" in out:
        out["paused"] = bool(out["paused"])
    return out


async def create_queue(conn: asyncpg.Connection, name: str, settings: dict, now: int) -> dict:
    values = {"name": name, "created_at": now, "updated_at": now, **_settings(settings)}
    cols = list(values)
    marks = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    done = await conn.execute(
        f"INSERT INTO queues ({', '.join(cols)}) VALUES ({marks}) ON CONFLICT (name) DO NOTHING",
        *values.values(),
    )
    if done.endswith(" 0"):
        raise Conflict(f"queue {name!r} already exists")
    return await get_queue(conn, name)


async def update_queue(conn: asyncpg.Connection, name: str, changes: dict, now: int) -> dict:
    values = {**_settings(changes), "updated_at": now}
    sets = ", ".join(f"{col} = ${i}" for i, col in enumerate(values, start=2))
    done = await conn.execute(f"UPDATE queues SET {sets} WHERE name = $1", name, *values.values())
    if done.endswith(" 0"):
        raise NotFound(f"queue {name!r} not found")
    return await get_queue(conn, name)


async def delete_queue(conn: asyncpg.Connection, name: str) -> None:
    # Locked first: a claim (which locks the queue row) can't start a job meanwhile.
    if await conn.fetchrow("SELECT 1 FROM queues WHERE name = $1 FOR UPDATE", name) is None:
        raise NotFound(f"queue {name!r} not found")
    busy = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
                  count(*) FILTER (WHERE status = 'running') AS running
           FROM jobs WHERE queue_name = $1 AND status IN ('pending', 'running')""", name)
    if busy["pending"] or busy["running"]:
        raise Conflict(
            f"queue {name!r} has {busy['pending']} pending and {busy['running']} running jobs"
        )
    await conn.execute(
        "DELETE FROM attempts WHERE job_id IN (SELECT id FROM jobs WHERE queue_name = $1)", name)
    await conn.execute("DELETE FROM jobs WHERE queue_name = $1", name)
    await conn.execute("DELETE FROM job_counts WHERE queue_name = $1", name)
    await conn.execute("DELETE FROM queues WHERE name = $1", name)


async def retry_dead(conn: asyncpg.Connection, name: str, now: int) -> int:
    await get_queue(conn, name)
    done = await conn.execute(
        """UPDATE jobs SET status = 'pending', attempt = 0, visible_at = $1, lease_until = NULL,
               started_at = NULL, completed_at = NULL, result = NULL, updated_at = $1
           WHERE queue_name = $2 AND status = 'dead'""", now, name)
    n = int(done.split()[-1])
    await counts.bump(conn, Counter({(name, "dead"): -n, (name, "pending"): n}))
    return n


async def purge(conn: asyncpg.Connection, name: str, status: str) -> int:
    await get_queue(conn, name)
    await conn.execute(
        """DELETE FROM attempts WHERE job_id IN
           (SELECT id FROM jobs WHERE queue_name = $1 AND status = $2)""", name, status)
    done = await conn.execute("DELETE FROM jobs WHERE queue_name = $1 AND status = $2",
                              name, status)
    n = int(done.split()[-1])
    await counts.bump(conn, Counter({(name, status): -n}))
    return n
