"""SQL of the per-minute history (SPEC §11): add rollups, read sums, prune.

The arithmetic (which minute, which bucket, percentiles) is in
mininq.metrics.history; here rows only get added up and read back.
"""

from __future__ import annotations

import sqlite3

from mininq.metrics.history import COLUMNS, Rollups

_UPSERT = (
    f"INSERT INTO history (queue_name, minute, {', '.join(COLUMNS)}) "
    f"VALUES (?, ?, {', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT (minute, queue_name) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in COLUMNS)
)
_SUMS = ", ".join(f"sum({c})" for c in COLUMNS)


def record(conn: sqlite3.Connection, rollups: Rollups) -> None:
    """Add rollups to their rows: one upsert per (queue, minute), in the caller's transaction."""
    if rollups:
        conn.executemany(_UPSERT, [(q, minute, *values) for (q, minute), values in rollups.items()])


def sums(conn: sqlite3.Connection, start: int, end: int, step_ms: int,
         queue: str | None) -> list[tuple]:
    """(bucket start, *COLUMNS sums) per `step_ms` bucket of [start, end) that
    has rows, of one queue or of all."""
    where = "minute >= ? AND minute < ?"
    params: list = [step_ms, step_ms, start, end]
    if queue is not None:
        where += " AND queue_name = ?"
        params.append(queue)
    return [
        tuple(row)
        for row in conn.execute(
            f"SELECT minute / ? * ? AS bucket, {_SUMS} FROM history WHERE {where} "
            "GROUP BY bucket ORDER BY bucket",
            params,
        )
    ]


def prune(conn: sqlite3.Connection, before: int, max_rows: int) -> int:
    """Delete up to `max_rows` rows of minutes before `before`, oldest first."""
    return conn.execute(
        "DELETE FROM history WHERE (minute, queue_name) IN "
        "(SELECT minute, queue_name FROM history WHERE minute < ? ORDER BY minute LIMIT ?)",
        (before, max_rows),
    ).rowcount
