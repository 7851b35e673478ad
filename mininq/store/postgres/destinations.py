"""SQL for the destinations table: each node's view of each destination
(written by its engine with its outcome batches), read by GET /destinations,
and resets asked for by POST /destinations/reset."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from mininq.store.rules import DESTINATION_FIELDS, DESTINATIONS_KEPT, DESTINATIONS_SEEN_MS

_TYPES = {"destination": "text", "state": "text", "limit": "int4", "in_flight": "int4",
          "consecutive_failures": "int4", "last_status": "int4", "last_error": "text",
          "open_until": "int8", "delivered": "int8", "failed": "int8", "seen_at": "int8"}
_COLUMNS = ", ".join(f'"{f}"' for f in DESTINATION_FIELDS)


def upsert(first: int) -> str:
    """The upsert of one node's rows, its parameters numbered from `first`:
    the node, then one array per field of DESTINATION_FIELDS, rows in
    destination order. Other writers of a node's rows: a reset (one
    statement, these rows only) and `forget` (which never waits)."""
    arrays = ", ".join(f"${i}::{_TYPES[f]}[]"
                       for i, f in enumerate(DESTINATION_FIELDS, start=first + 1))
    sets = ", ".join(f'"{f}" = excluded."{f}"' for f in DESTINATION_FIELDS if f != "destination")
    return (f"INSERT INTO destinations (node, {_COLUMNS}) SELECT ${first}, * FROM unnest({arrays}) "
            f"ORDER BY 1 ON CONFLICT (node, destination) DO UPDATE SET {sets}")


_SAVE = upsert(1)
_PENDING = """
SELECT d, (SELECT count(*) FROM jobs WHERE destination = d AND status = 'pending') AS n
FROM unnest($1::text[]) AS d
"""


def values(rows: Sequence[dict]) -> list[list]:
    """The field arrays for `upsert`, rows in destination order."""
    rows = sorted(rows, key=lambda r: r["destination"])
    return [[r[f] for r in rows] for f in DESTINATION_FIELDS]


async def save(conn: asyncpg.Connection, node: str, rows: Sequence[dict]) -> None:
    """Upsert this node's rows (with outcomes to write, dispatch.finish does it)."""
    await conn.execute(_SAVE, node, *values(rows))


async def forget(conn: asyncpg.Connection, now: int) -> None:
    """Delete the rows of any node not seen for an hour, passing over rows
    being written right now (so this statement never waits)."""
    await conn.execute(
        "DELETE FROM destinations WHERE (node, destination) IN ("
        "SELECT node, destination FROM destinations WHERE seen_at < $1 "
        "FOR UPDATE SKIP LOCKED)", now - DESTINATIONS_SEEN_MS)


async def pending(conn: asyncpg.Connection, destinations: Iterable[str]) -> dict[str, int]:
    return {r["d"]: r["n"] for r in await conn.fetch(_PENDING, list(destinations))}


async def list_destinations(conn: asyncpg.Connection, now: int) -> list[dict]:
    rows = [dict(r) for r in await conn.fetch(
        "SELECT * FROM destinations WHERE seen_at >= $1 ORDER BY seen_at DESC LIMIT $2",
        now - DESTINATIONS_SEEN_MS, DESTINATIONS_KEPT)]
    counts = await pending(conn, {r["destination"] for r in rows})
    for r in rows:
        r["pending"] = counts[r["destination"]]
    return rows


async def reset(conn: asyncpg.Connection, destination: str, limit: int) -> list[dict]:
    rows = [dict(r) for r in await conn.fetch(
        """UPDATE destinations SET resets = resets + 1, state = 'closed',
               consecutive_failures = 0, "limit" = $2, open_until = NULL
           WHERE destination = $1 RETURNING *""", destination, limit)]
    counts = await pending(conn, {destination}) if rows else {}
    for r in rows:
        r["pending"] = counts[destination]
    return rows


async def resets(conn: asyncpg.Connection, node: str) -> dict[str, int]:
    return {r["destination"]: r["resets"] for r in await conn.fetch(
        "SELECT destination, resets FROM destinations WHERE node = $1 AND resets > 0", node)}
