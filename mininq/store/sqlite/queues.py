"""SQL for queues: settings, counts, pause/resume, bulk retry and purge."""

from __future__ import annotations

import sqlite3
from collections import Counter

from mininq.store.errors import Conflict, NotFound
from mininq.store.rules import SETTING_FIELDS, with_counts
from mininq.store.sqlite import counts, rows


def ensure_queue(conn: sqlite3.Connection, name: str, now: int) -> sqlite3.Row:
    """The queue's row, creating it with the defaults on first use."""
    row = conn.execute("SELECT * FROM queues WHERE name = ?", (name,)).fetchone()
    if row is None:
        row = conn.execute(
            "INSERT INTO queues (name, created_at, updated_at) VALUES (?, ?, ?) RETURNING *",
            (name, now, now),
        ).fetchone()
    return row


def _counts(conn: sqlite3.Connection, name: str | None = None) -> dict[str, dict[str, int]]:
    sql = "SELECT queue_name, status, n FROM job_counts"
    args: tuple = ()
    if name is not None:
        sql += " WHERE queue_name = ?"
        args = (name,)
    out: dict[str, dict[str, int]] = {}
    for r in conn.execute(sql, args):
        out.setdefault(r["queue_name"], {})[r["status"]] = r["n"]
    return out


def get_queue(conn: sqlite3.Connection, name: str) -> dict:
    row = conn.execute("SELECT * FROM queues WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"queue {name!r} not found")
    return with_counts(row, _counts(conn, name).get(name, {}))


def list_queues(conn: sqlite3.Connection) -> list[dict]:
    counts = _counts(conn)
    return [
        with_counts(row, counts.get(row["name"], {}))
        for row in conn.execute("SELECT * FROM queues ORDER BY name")
    ]


def queue_settings(conn: sqlite3.Connection) -> list[dict]:
    """Raw settings of every queue, for the engine's claim planning."""
    return [dict(r) for r in conn.execute("SELECT * FROM queues ORDER BY name")]


def create_queue(conn: sqlite3.Connection, name: str, settings: dict, now: int) -> dict:
    if conn.execute("SELECT 1 FROM queues WHERE name = ?", (name,)).fetchone():
        raise Conflict(f"queue {name!r} already exists")
    settings = {f: settings[f] for f in SETTING_FIELDS if f in settings}
    rows.insert(conn, "queues", {"name": name, "created_at": now, "updated_at": now, **settings})
    return get_queue(conn, name)


def update_queue(conn: sqlite3.Connection, name: str, changes: dict, now: int) -> dict:
    changes = {f: changes[f] for f in SETTING_FIELDS if f in changes}
    if rows.update(conn, "queues", "name", name, {**changes, "updated_at": now}) == 0:
        raise NotFound(f"queue {name!r} not found")
    return get_queue(conn, name)


def delete_queue(conn: sqlite3.Connection, name: str) -> None:
    queue = get_queue(conn, name)
    if queue["pending"] or queue["running"]:
        raise Conflict(
            f"queue {name!r} has {queue['pending']} pending and {queue['running']} running jobs"
        )
    conn.execute(
        "DELETE FROM attempts WHERE job_id IN (SELECT id FROM jobs WHERE queue_name = ?)",
        (name,),
    )
    conn.execute("DELETE FROM jobs WHERE queue_name = ?", (name,))
    conn.execute("DELETE FROM job_counts WHERE queue_name = ?", (name,))
    conn.execute("DELETE FROM queues WHERE name = ?", (name,))


def retry_dead(conn: sqlite3.Connection, name: str, now: int) -> int:
    get_queue(conn, name)
    cur = conn.execute(
        """UPDATE jobs SET status = 'pending', attempt = 0, visible_at = ?, lease_until = NULL,
               started_at = NULL, completed_at = NULL, result = NULL, updated_at = ?
           WHERE queue_name = ? AND status = 'dead'""",
        (now, now, name),
    )
    counts.bump(conn, Counter({(name, "dead"): -cur.rowcount, (name, "pending"): cur.rowcount}))
    return cur.rowcount


def purge(conn: sqlite3.Connection, name: str, status: str) -> int:
    get_queue(conn, name)
    conn.execute(
        """DELETE FROM attempts WHERE job_id IN
           (SELECT id FROM jobs WHERE queue_name = ? AND status = ?)""",
        (name, status),
    )
    n = conn.execute(
        "DELETE FROM jobs WHERE queue_name = ? AND status = ?", (name, status)
    ).rowcount
    counts.bump(conn, Counter({(name, status): -n}))
    return n
