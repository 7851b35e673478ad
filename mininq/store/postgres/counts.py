"""Job counts per queue and status, and the monotonic counters behind
/metrics, as sharded rows summed when read.

Each transaction that changes counts adds its deltas to one shard picked at
random: transactions of different nodes rarely wait for each other on a
count row, and the sum over shards is exact at every commit. Rows are
written in sorted order so two transactions never lock them crosswise.
"""

from __future__ import annotations

import random
from collections import Counter

import asyncpg

SHARDS = 16

_BUMP = """
INSERT INTO job_counts (queue_name, status, shard, n)
SELECT q, s, $3, n FROM unnest($1::text[], $2::text[], $4::bigint[]) AS t(q, s, n)
ON CONFLICT (queue_name, status, shard) DO UPDATE SET n = job_counts.n + excluded.n
"""
_ADD = """
INSERT INTO counters (name, queue_name, key, shard, value)
SELECT a, q, k, $4, v FROM unnest($1::text[], $2::text[], $3::text[], $5::float8[]) AS t(a, q, k, v)
ON CONFLICT (name, queue_name, key, shard) DO UPDATE SET value = counters.value + excluded.value
"""


async def bump(conn: asyncpg.Connection, deltas: Counter) -> None:
    """Apply {(queue, status): change} to the counts."""
    rows = sorted((q, s, n) for (q, s), n in deltas.items() if n)
    if rows:
        await conn.execute(_BUMP, [r[0] for r in rows], [r[1] for r in rows],
                           random.randrange(SHARDS), [r[2] for r in rows])


async def add(conn: asyncpg.Connection, increments: dict[tuple[str, str, str], float]) -> None:
    """Add to the counters: {(name, queue, key): amount}."""
    rows = sorted((*k, float(v)) for k, v in increments.items() if v)
    if rows:
        await conn.execute(_ADD, [r[0] for r in rows], [r[1] for r in rows],
                           [r[2] for r in rows], random.randrange(SHARDS), [r[3] for r in rows])


_CREATED_COUNTS = """
pending AS (
    INSERT INTO job_counts (queue_name, status, shard, n)
    SELECT q, 'pending', {shard}, n FROM unnest({queues}::text[], {counts}::bigint[]) AS t(q, n)
    ON CONFLICT (queue_name, status, shard) DO UPDATE SET n = job_counts.n + excluded.n
    RETURNING 1
)"""
_CREATED_COUNTER = """
INSERT INTO counters (name, queue_name, key, shard, value)
SELECT 'jobs_created', q, '', {shard}, n FROM unnest({queues}::text[], {counts}::bigint[]) AS t(q, n)
WHERE {where}
ON CONFLICT (name, queue_name, key, shard) DO UPDATE SET value = counters.value + excluded.value
"""


def created_counts(queues: str, counts: str, shard: str) -> str:
    """New jobs' pending counts as a CTE (`pending`) of a larger statement:
    `queues` and `counts` name parallel array parameters (in queue order),
    `shard` the shard's."""
    return _CREATED_COUNTS.format(queues=queues, counts=counts, shard=shard)


def created_counter(queues: str, counts: str, shard: str, where: str) -> str:
    """New jobs' jobs_created counters, as the last part of that statement,
    its rows filtered by `where` (locks.after)."""
    return _CREATED_COUNTER.format(queues=queues, counts=counts, shard=shard, where=where)


async def per_queue(conn: asyncpg.Connection, name: str | None = None) -> dict[str, dict[str, int]]:
    if name is None:
        rows = await conn.fetch(
            "SELECT queue_name, status, sum(n)::bigint AS n FROM job_counts GROUP BY 1, 2")
    else:
        rows = await conn.fetch(
            """SELECT queue_name, status, sum(n)::bigint AS n FROM job_counts
               WHERE queue_name = $1 GROUP BY 1, 2""", name)
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r["queue_name"], {})[r["status"]] = r["n"]
    return out
