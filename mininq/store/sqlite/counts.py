"""Job counts per queue and status, kept in `job_counts` by the statements
that change them, and the monotonic counters behind /metrics (`add`).

Counting with triggers cost a third of the insert rate (two upserts per
row); here each write adds up its changes and applies them as one upsert per
(queue, status) it touched. Every function in this backend that inserts,
deletes or changes a job's status keeps the counts in the same transaction:
`bump` for changes and deletions, `created` for new jobs (deleting a queue
deletes its rows).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable

_UPSERT = """
INSERT INTO job_counts (queue_name, status, n) VALUES (?, ?, ?)
ON CONFLICT (queue_name, status) DO UPDATE SET n = n + excluded.n
"""
_ADD = """
INSERT INTO counters (name, queue_name, key, value) VALUES (?, ?, ?, ?)
ON CONFLICT (name, queue_name, key) DO UPDATE SET value = value + excluded.value
"""


def bump(conn: sqlite3.Connection, deltas: Counter) -> None:
    """Apply {(queue, status): change} to the counts."""
    rows = [(q, s, n) for (q, s), n in deltas.items() if n]
    if rows:
        conn.executemany(_UPSERT, rows)


def created(conn: sqlite3.Connection, per_queue: Iterable[tuple[str, int]]) -> None:
    """New jobs: pending counts and the jobs_created counter."""
    rows = [(q, n) for q, n in per_queue if n]
    if rows:
        conn.executemany(_UPSERT, [(q, "pending", n) for q, n in rows])
        add(conn, {("jobs_created", q, ""): n for q, n in rows})


def add(conn: sqlite3.Connection, increments: dict[tuple[str, str, str], float]) -> None:
    """Add to the monotonic counters behind /metrics: {(name, queue, key): amount}."""
    if increments:
        conn.executemany(_ADD, [(*key, amount) for key, amount in increments.items()])
