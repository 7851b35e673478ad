"""SQL of the per-minute history (SPEC §11): add rollups, read sums, prune.

Each write adds to (minute, queue, shard) rows with an upsert, the shard
picked at random per transaction as for the counts (counts.py): every create
and outcome batch of every node adds to its minute, and one row per minute
and queue would make them wait on each other's row lock. Reads sum the
shards. Rows go in (minute, queue) order within a statement, so two
transactions never lock rows crosswise. The arithmetic (which minute, which
bucket) is in mininq.metrics.history.
"""

from __future__ import annotations

import random

import asyncpg

from mininq.metrics.history import COLUMNS, HIST, Rollups
from mininq.store.postgres.counts import SHARDS

_ADD_ON_CONFLICT = (
    "ON CONFLICT (minute, queue_name, shard) DO UPDATE SET "
    + ", ".join(f"{c} = history.{c} + excluded.{c}" for c in COLUMNS)
)
_UPSERT = (
    f"INSERT INTO history (shard, minute, queue_name, {', '.join(COLUMNS)}) "
    "SELECT $1::int2, * FROM unnest($2::int8[], $3::text[], "
    + ", ".join(f"${i}::int8[]" for i in range(4, 4 + len(COLUMNS)))
    + ") " + _ADD_ON_CONFLICT
)



def created_upsert(queues: str, counts: str, shard: str, minute: str, where: str) -> str:
    """The statement adding created jobs to one minute's rows: `queues` and
    `counts` name parallel array parameters (in queue order), `shard` the
    shard's, `minute` the minute's start, `where` a filter (locks.after);
    for a CTE of the create statement."""
    return (
        f"INSERT INTO history (shard, minute, queue_name, {', '.join(COLUMNS)}) "
        f"SELECT {shard}::int2, {minute}::int8, q, "
        + ", ".join("n" if c == "created" else "0" for c in COLUMNS)
        + f" FROM unnest({queues}::text[], {counts}::int8[]) AS t(q, n) WHERE {where} "
        + _ADD_ON_CONFLICT
    )


# The history part of dispatch._FINISH: a CTE over `done` (the outcomes that
# took effect: minute, queue_name, status, bucket), one row per (minute, queue),
# in the shard the statement's counts use ($9).
# `bucket` is the duration bucket's index, NULL for an attempt without one.
_FROM_DONE = {
    "created": "0",
    "completed": "count(*) FILTER (WHERE status = 'completed')",
    "retried": "count(*) FILTER (WHERE status = 'pending')",
    "dead": "count(*) FILTER (WHERE status = 'dead')",
} | {c: f"count(*) FILTER (WHERE bucket = {i})" for i, c in enumerate(HIST)}


def finish_cte(where: str) -> str:
    """The outcome statement's history insert, its rows filtered by `where`."""
    return (
        f"INSERT INTO history (shard, minute, queue_name, {', '.join(COLUMNS)}) "
        f"SELECT $9::int2, minute, queue_name, {', '.join(_FROM_DONE[c] for c in COLUMNS)} "
        f"FROM done WHERE {where} GROUP BY minute, queue_name ORDER BY minute, queue_name "
        + _ADD_ON_CONFLICT
    )


_SUMS = ", ".join(f"sum({c})::int8" for c in COLUMNS)


async def record(conn: asyncpg.Connection, rollups: Rollups) -> None:
    """Add rollups to their rows in one statement, in the caller's transaction."""
    if not rollups:
        return
    rows = sorted((minute, queue, values) for (queue, minute), values in rollups.items())
    await conn.execute(
        _UPSERT, random.randrange(SHARDS), [r[0] for r in rows], [r[1] for r in rows],
        *([r[2][i] for r in rows] for i in range(len(COLUMNS))),
    )


async def sums(conn: asyncpg.Connection, start: int, end: int, step_ms: int,
               queue: str | None) -> list[tuple]:
    """(bucket start, *COLUMNS sums) per `step_ms` bucket of [start, end) that
    has rows, of one queue or of all."""
    rows = await conn.fetch(
        f"SELECT minute / $1 * $1 AS bucket, {_SUMS} FROM history "
        "WHERE minute >= $2 AND minute < $3 AND ($4::text IS NULL OR queue_name = $4) "
        "GROUP BY bucket ORDER BY bucket",
        step_ms, start, end, queue,
    )
    return [tuple(r) for r in rows]


async def prune(conn: asyncpg.Connection, before: int, max_rows: int) -> int:
    """Delete up to `max_rows` rows of minutes before `before`, oldest first;
    rows another node is deleting at the same moment are left to it."""
    done = await conn.execute(
        "DELETE FROM history WHERE (minute, queue_name, shard) IN ("
        "SELECT minute, queue_name, shard FROM history WHERE minute < $1 "
        "ORDER BY minute LIMIT $2 FOR UPDATE SKIP LOCKED)",
        before, max_rows,
    )
    return int(done.split()[-1])
