"""SQL for schedules: CRUD, and the compare-and-swap that makes one fire one job."""

from __future__ import annotations

import sqlite3
from typing import Any

from mininq.ids import uuid7
from mininq.store.errors import NotFound
from mininq.store.rules import SCHEDULE_FIELDS as FIELDS
from mininq.store.rules import schedule_job_spec as _job_spec
from mininq.store.sqlite import counts, rows
from mininq.store.sqlite.jobs import create_job
from mininq.store.sqlite.queues import ensure_queue


def get_schedule(conn: sqlite3.Connection, schedule_id: str) -> dict:
    row = conn.execute("SELECT * FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
    if row is None:
        raise NotFound(f"schedule {schedule_id} not found")
    return dict(row)


def list_schedules(conn: sqlite3.Connection, limit: int, offset: int, after: str | None) -> list[dict]:
    sql, args = "SELECT * FROM schedules", []
    if after is not None:
        sql += " WHERE id < ?"
        args.append(after)
    sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
    return [dict(r) for r in conn.execute(sql, (*args, limit, offset))]


def create_schedule(conn: sqlite3.Connection, spec: dict, now: int) -> dict:
    ensure_queue(conn, spec["queue_name"], now)
    schedule_id = uuid7()
    values = {f: spec[f] for f in FIELDS if f in spec}
    rows.insert(conn, "schedules",
                {"id": schedule_id, "created_at": now, "updated_at": now, **values})
    return get_schedule(conn, schedule_id)


def update_schedule(conn: sqlite3.Connection, schedule_id: str, changes: dict, now: int) -> dict:
    if "queue_name" in changes:
        ensure_queue(conn, changes["queue_name"], now)
    values = {f: changes[f] for f in FIELDS if f in changes}
    if rows.update(conn, "schedules", "id", schedule_id, {**values, "updated_at": now}) == 0:
        raise NotFound(f"schedule {schedule_id} not found")
    return get_schedule(conn, schedule_id)


def delete_schedule(conn: sqlite3.Connection, schedule_id: str) -> None:
    if conn.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,)).rowcount == 0:
        raise NotFound(f"schedule {schedule_id} not found")


def trigger_schedule(conn: sqlite3.Connection, schedule_id: str, defaults: Any, now: int) -> dict:
    """Create the schedule's job now, whatever its cron says."""
    schedule = get_schedule(conn, schedule_id)
    job, _ = create_job(conn, _job_spec(schedule, now), defaults, now)
    return job


def due_schedules(conn: sqlite3.Connection, now: int, limit: int = 100) -> list[dict]:
    return [
        dict(r)
        for r in conn.execute(
            """SELECT * FROM schedules WHERE enabled = 1 AND next_run_at <= ?
               ORDER BY next_run_at LIMIT ?""",
            (now, limit),
        )
    ]


def next_schedule_at(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT MIN(next_run_at) FROM schedules WHERE enabled = 1").fetchone()
    return row[0]


def fire_schedule(
    conn: sqlite3.Connection, schedule_id: str, due_ms: int, next_ms: int, defaults: Any, now: int
) -> dict | None:
    """Move next_run_at from `due_ms` to `next_ms` and create the job, or do
    nothing if someone else already moved it (compare-and-swap): one fire time,
    one job, whoever races."""
    row = conn.execute(
        """UPDATE schedules SET next_run_at = ?, last_run_at = ?, updated_at = ?
           WHERE id = ? AND enabled = 1 AND next_run_at = ? RETURNING *""",
        (next_ms, now, now, schedule_id, due_ms),
    ).fetchone()
    if row is None:
        return None
    counts.add(conn, {("schedule_fires", "", ""): 1})
    job, _ = create_job(conn, _job_spec(dict(row), now), defaults, now)
    return job
