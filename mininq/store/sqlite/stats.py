"""SQL for counts and counters behind /metrics and /metrics/prometheus."""

from __future__ import annotations

import sqlite3

from mininq.store.sqlite import counts


def job_counts(conn: sqlite3.Connection) -> list[dict]:
    return [dict(r) for r in conn.execute("SELECT queue_name, status, n FROM job_counts")]


def counters(conn: sqlite3.Connection) -> list[dict]:
    return [dict(r) for r in conn.execute("SELECT name, queue_name, key, value FROM counters")]


def schedule_counts(conn: sqlite3.Connection) -> dict:
    row = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(enabled), 0) FROM schedules"
    ).fetchone()
    return {"total": row[0], "enabled": row[1]}


def oldest_pending(conn: sqlite3.Connection, queues: list[str]) -> dict[str, int]:
    """created_at of the oldest pending job per queue (index seek per queue)."""
    out = {}
    for q in queues:
        row = conn.execute(
            """SELECT created_at FROM jobs WHERE queue_name = ? AND status = 'pending'
               ORDER BY id LIMIT 1""",
            (q,),
        ).fetchone()
        if row is not None:
            out[q] = row[0]
    return out


def health_write(conn: sqlite3.Connection) -> None:
    """A real (tiny) write, so /health fails when the file can't be written."""
    counts.add(conn, {("health_checks", "", ""): 1})


def room_check(conn: sqlite3.Connection, size: int) -> None:
    """Write `size` bytes (room_release deletes them): fails while the database
    can't grow by that much, the question /health asks after a disk-full error."""
    conn.execute("INSERT INTO room_check (filler) VALUES (zeroblob(?))", (size,))


def room_release(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM room_check")
