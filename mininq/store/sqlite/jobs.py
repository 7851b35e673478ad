"""SQL for jobs as the API sees them: create, read, list, cancel, retry."""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Any

from mininq.metrics import history as rollup
from mininq.store.errors import Conflict, NotFound
from mininq.store.rules import JOB_COLUMNS, merged_page, new_job_row, single_filter_pairs
from mininq.store.sqlite import counts, history
from mininq.store.sqlite.queues import ensure_queue

COLUMNS = JOB_COLUMNS
_INSERT = f"INSERT INTO jobs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_INSERT_KEYED = (
    _INSERT + " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
)




def create_jobs(conn: sqlite3.Connection, specs: list[dict], defaults: Any, now: int) -> list[tuple[dict, bool]]:
    """Insert jobs (all or none: the caller's transaction); returns (job, created)
    per spec. A spec whose idempotency key is held by an existing job gets that job.

    `spec` holds validated API fields: payload and headers as JSON text,
    `visible_at` in ms. Rows without a key go in with one executemany.
    """
    return _create_many(conn, [(specs, defaults, now)])[0]


def _create_many(
    conn: sqlite3.Connection, calls: list[tuple[list[dict], Any, int]]
) -> list[list[tuple[dict, bool]]]:
    """Several create_jobs calls as one: each queue looked up once, one insert
    for the rows without a key, one update of the counts. Single-job POSTs
    that share a group commit arrive here together, and running them one by
    one cost half again as much per job."""
    queues: dict[str, Any] = {}
    results: list[list[tuple[dict, bool]]] = []
    plain: list[tuple] = []
    per_queue: Counter = Counter()
    per_minute: Counter = Counter()  # (queue, now) -> created, for the history
    for specs, defaults, now in calls:
        out: list[tuple[dict, bool]] = []
        for spec in specs:
            name = spec["queue_name"]
            if name not in queues:
                queues[name] = ensure_queue(conn, name, now)
            row = new_job_row(spec, queues[name], defaults, now)
            values = tuple(row[c] for c in COLUMNS)
            if row["idempotency_key"] is None:
                plain.append(values)
            elif conn.execute(_INSERT_KEYED, values).rowcount == 0:
                existing = conn.execute(
                    "SELECT * FROM jobs WHERE idempotency_key = ?", (row["idempotency_key"],)
                ).fetchone()
                out.append((dict(existing), False))
                continue
            per_queue[name] += 1
            per_minute[(name, now)] += 1
            out.append((row, True))
        results.append(out)
    if plain:
        conn.executemany(_INSERT, plain)
    counts.created(conn, per_queue.items())
    history.record(conn, rollup.of_created(per_minute.items()))
    return results


create_jobs.merged = _create_many  # type: ignore[attr-defined]  # see connection.py


def create_job(conn: sqlite3.Connection, spec: dict[str, Any], defaults: Any, now: int) -> tuple[dict, bool]:
    """One job; see create_jobs."""
    return create_jobs(conn, [spec], defaults, now)[0]


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
    """Newest first, never sorting the table: the (queue, status, id) index
    answers a queue and a status together, and a filter on only one of them
    merges that index's scans over the other's values (statuses, or queues).
    There is no (status, id) index: each would cost every write of a job."""
    if schedule_id is None and (queue is None) != (status is None):
        names = [] if queue is not None else [
            r[0] for r in conn.execute("SELECT name FROM queues")]
        return merged_page(
            [list_jobs(conn, queue=q, status=st, limit=limit + offset, after=after)
             for q, st in single_filter_pairs(queue, status, names)], limit, offset)
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
        counts.bump(conn, Counter({(row["queue_name"], "pending"): -1,
                                   (row["queue_name"], "cancelled"): 1}))
        return dict(row)
    current = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if current is None:
        raise NotFound(f"job {job_id} not found")
    raise Conflict(f"job {job_id} is {current['status']}; only a pending job can be cancelled")


def retry_job(conn: sqlite3.Connection, job_id: str, now: int) -> dict:
    before = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    row = conn.execute(
        """UPDATE jobs SET status = 'pending', attempt = 0, visible_at = ?, lease_until = NULL,
               started_at = NULL, completed_at = NULL, result = NULL, updated_at = ?
           WHERE id = ? AND status IN ('dead', 'cancelled') RETURNING *""",
        (now, now, job_id),
    ).fetchone()
    if row is not None:
        counts.bump(conn, Counter({(row["queue_name"], before["status"]): -1,
                                   (row["queue_name"], "pending"): 1}))
        return dict(row)
    if before is None:
        raise NotFound(f"job {job_id} not found")
    raise Conflict(
        f"job {job_id} is {before['status']}; only a dead or cancelled job can be retried"
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
