"""SQL for jobs as the API sees them: create, read, list, cancel, retry."""

from __future__ import annotations

import sqlite3
from typing import Any

from mininq.ids import uuid7
from mininq.store.errors import Conflict, NotFound
from mininq.store.sqlite.queues import ensure_queue, resolve_job_defaults

STATUSES = ("pending", "running", "completed", "dead", "cancelled")

_INSERT = """
INSERT INTO jobs (id, queue_name, status, priority, callback_url, payload, headers,
    max_retries, retry_backoff, base_delay_ms, max_delay_ms, timeout_ms, idempotency_key,
    attempt, visible_at, created_at, updated_at, schedule_id)
VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING *
"""


def create_job(conn: sqlite3.Connection, spec: dict[str, Any], defaults: Any, now: int) -> tuple[dict, bool]:
    """Insert one job; with a known idempotency key return the existing job instead.

    `spec` holds validated API fields (payload and headers already JSON text,
    `visible_at` in ms). Returns (job row, created).
    """
    queue = ensure_queue(conn, spec["queue_name"], now)
    resolved = resolve_job_defaults(spec, queue, defaults)
    key = spec.get("idempotency_key")
    row = conn.execute(
        _INSERT,
        (
            uuid7(), spec["queue_name"], spec.get("priority", 0), spec["callback_url"],
            spec["payload"], spec.get("headers"), resolved["max_retries"],
            resolved["retry_backoff"], resolved["base_delay_ms"], resolved["max_delay_ms"],
            resolved["timeout_ms"], key, spec.get("visible_at", now), now, now,
            spec.get("schedule_id"),
        ),
    ).fetchone()
    if row is not None:
        return dict(row), True
    existing = conn.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (key,)).fetchone()
    return dict(existing), False


def create_jobs(conn: sqlite3.Connection, specs: list[dict], defaults: Any, now: int) -> list[tuple[dict, bool]]:
    """All of `specs` or, on any error, none of them (the caller's savepoint)."""
    return [create_job(conn, spec, defaults, now) for spec in specs]


def get_job(conn: sqlite3.Connection, job_id: str) -> dict | None:
    row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return dict(row) if row else None


def list_jobs(
    conn: sqlite3.Connection,
    *,
    queue: str | None = None,
    status: str | None = None,
    schedule_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
    after: str | None = None,
) -> list[dict]:
    """Newest first. A queue filter without a status merges per-status index scans,
    so that no filter combination sorts the whole table."""
    if queue is not None and status is None and schedule_id is None:
        rows: list[dict] = []
        for st in STATUSES:
            rows.extend(
                list_jobs(conn, queue=queue, status=st, limit=limit + offset, after=after)
            )
        rows.sort(key=lambda r: r["id"], reverse=True)
        return rows[offset : offset + limit]
    where, args = [], []
    if queue is not None:
        where.append("queue_name = ?")
        args.append(queue)
    if status is not None:
        where.append("status = ?")
        args.append(status)
    if schedule_id is not None:
        where.append("schedule_id = ?")
        args.append(schedule_id)
    if after is not None:
        where.append("id < ?")
        args.append(after)
    sql = "SELECT * FROM jobs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
    return [dict(r) for r in conn.execute(sql, (*args, limit, offset))]


def cancel_job(conn: sqlite3.Connection, job_id: str, now: int) -> dict:
    row = conn.execute(
        """UPDATE jobs SET status = 'cancelled', completed_at = ?, updated_at = ?
           WHERE id = ? AND status = 'pending' RETURNING *""",
        (now, now, job_id),
    ).fetchone()
    if row is not None:
        return dict(row)
    current = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if current is None:
        raise NotFound(f"job {job_id} not found")
    raise Conflict(f"job {job_id} is {current['status']}; only a pending job can be cancelled")


def retry_job(conn: sqlite3.Connection, job_id: str, now: int) -> dict:
    row = conn.execute(
        """UPDATE jobs SET status = 'pending', attempt = 0, visible_at = ?, lease_until = NULL,
               started_at = NULL, completed_at = NULL, result = NULL, updated_at = ?
           WHERE id = ? AND status IN ('dead', 'cancelled') RETURNING *""",
        (now, now, job_id),
    ).fetchone()
    if row is not None:
        return dict(row)
    current = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if current is None:
        raise NotFound(f"job {job_id} not found")
    raise Conflict(
        f"job {job_id} is {current['status']}; only a dead or cancelled job can be retried"
    )


def list_attempts(conn: sqlite3.Connection, job_id: str) -> list[dict]:
    if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
        raise NotFound(f"job {job_id} not found")
    return [
        dict(r)
        for r in conn.execute(
            """SELECT attempt, started_at, duration_ms, status_code, outcome, error
               FROM attempts WHERE job_id = ? ORDER BY id""",
            (job_id,),
        )
    ]
