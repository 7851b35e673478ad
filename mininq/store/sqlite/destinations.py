"""SQL for the destinations table: the engine's view of each destination
(written with its outcome batches), read by GET /destinations, and resets
asked for by POST /destinations/reset."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from mininq.store.rules import DESTINATION_FIELDS, DESTINATIONS_KEPT, DESTINATIONS_SEEN_MS

_SAVE = f"""
INSERT INTO destinations (node, {', '.join(f'"{f}"' for f in DESTINATION_FIELDS)})
VALUES (:node, {', '.join(f':{f}' for f in DESTINATION_FIELDS)})
ON CONFLICT (node, destination) DO UPDATE SET
    {', '.join(f'"{f}" = excluded."{f}"' for f in DESTINATION_FIELDS if f != 'destination')}
"""


def save(conn: sqlite3.Connection, node: str, rows: Iterable[dict]) -> None:
    """Upsert this node's rows."""
    conn.executemany(_SAVE, [{**r, "node": node} for r in rows])


def forget(conn: sqlite3.Connection, node: str, now: int) -> None:
    """Forget destinations not seen for an hour, and the rows of earlier runs
    (one engine per file: any other node's are old). A scan of the table."""
    conn.execute("DELETE FROM destinations WHERE seen_at < ? OR node <> ?",
                 (now - DESTINATIONS_SEEN_MS, node))


def pending(conn: sqlite3.Connection, destinations: Iterable[str]) -> dict[str, int]:
    """Pending jobs per destination (a range count in jobs_destination each)."""
    out = {}
    for d in destinations:
        out[d] = conn.execute(
            "SELECT count(*) FROM jobs INDEXED BY jobs_destination "
            "WHERE destination = ? AND status = 'pending'", (d,)).fetchone()[0]
    return out


def list_destinations(conn: sqlite3.Connection, now: int) -> list[dict]:
    rows = [dict(r) for r in conn.execute(
        "SELECT * FROM destinations WHERE seen_at >= ? ORDER BY seen_at DESC LIMIT ?",
        (now - DESTINATIONS_SEEN_MS, DESTINATIONS_KEPT))]
    counts = pending(conn, {r["destination"] for r in rows})
    for r in rows:
        r["pending"] = counts[r["destination"]]
    return rows


def reset(conn: sqlite3.Connection, destination: str, limit: int) -> list[dict]:
    """Mark a reset for every node's engine to apply; the rows as they will read."""
    rows = [dict(r) for r in conn.execute(
        """UPDATE destinations SET resets = resets + 1, state = 'closed',
               consecutive_failures = 0, "limit" = ?, open_until = NULL
           WHERE destination = ? RETURNING *""", (limit, destination))]
    counts = pending(conn, {destination}) if rows else {}
    for r in rows:
        r["pending"] = counts[destination]
    return rows


def resets(conn: sqlite3.Connection, node: str) -> dict[str, int]:
    return {r[0]: r[1] for r in conn.execute(
        "SELECT destination, resets FROM destinations WHERE node = ? AND resets > 0", (node,))}
