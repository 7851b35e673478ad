"""SQL the engines run: claim due jobs within limits shared by every node,
record outcomes, reap expired leases, delete finished jobs past retention."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import asyncpg

from mininq.engine.ratelimit import TokenBucket
from mininq.store.postgres import counts
from mininq.store.postgres.schema import CLEANUP_LOCK
from mininq.store.rules import (
    LEASE_LOST,
    STATUS_AFTER,
    delivery_counters,
    lost_attempt,
)

DB_NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

# The queues of one claim, locked in name order: claims of one queue by
# several nodes take turns (its limits are exact), claims of different queues
# don't wait for each other. A paused queue is not locked and gets nothing.
_LOCK_QUEUES = f"""
SELECT name, max_concurrency, rate_limit_rps, rate_limit_burst, tokens, tokens_at,
    {DB_NOW_MS} AS db_now
FROM queues WHERE name = ANY($1::text[]) AND NOT paused ORDER BY name FOR UPDATE
"""

# Run after the queue rows are locked, so its snapshot holds every claim
# committed before: the running count per queue is exact. The picked CTE is
# materialized so the planner never updates more rows than each LIMIT.
_CLAIM = """
WITH room AS (
    SELECT a.queue, greatest(0, least(a.n, a.lim - (
        SELECT count(*) FROM jobs WHERE queue_name = a.queue AND status = 'running')))::int AS n
    FROM unnest($1::text[], $2::int[], $3::int[]) AS a(queue, n, lim)
), picked AS MATERIALIZED (
    SELECT p.id FROM room, LATERAL (
        SELECT id FROM jobs
        WHERE queue_name = room.queue AND status = 'pending' AND visible_at <= $4 AND {which}
        ORDER BY priority DESC, visible_at, id
        LIMIT room.n
        FOR UPDATE SKIP LOCKED
    ) p
)
UPDATE jobs SET status = 'running', attempt = attempt + 1, started_at = $4,
    lease_until = $4 + timeout_ms + $5, updated_at = $4, node_id = $6
FROM picked WHERE jobs.id = picked.id
RETURNING jobs.id, queue_name, priority, visible_at, callback_url, payload, headers, attempt,
    max_retries, retry_backoff, base_delay_ms, max_delay_ms, timeout_ms, destination
"""
# Every destination but the left-out ones ($7), through jobs_claim (which
# includes destination, so left-out rows are skipped in the index); or the
# jobs of one destination ($7) through jobs_destination.
_CLAIM_ANY = _CLAIM.format(which="destination <> ALL($7::text[])")
_CLAIM_ONE = _CLAIM.format(which="destination = $7::text")

_SAVE_BUCKETS = """
UPDATE queues SET tokens = b.tokens, tokens_at = b.at
FROM unnest($1::text[], $2::float8[], $3::int8[]) AS b(name, tokens, at)
WHERE queues.name = b.name
"""


def _bucket(q: Any) -> TokenBucket | None:
    rps = q["rate_limit_rps"]
    if rps is None:
        return None
    burst = q["rate_limit_burst"] or max(1.0, rps)
    return TokenBucket.from_state(rps, burst, q["tokens"], q["tokens_at"], q["db_now"])


async def claim(conn: asyncpg.Connection, allocations: list[tuple[str, int]], now: int,
                margin_ms: int, node_id: str | None, default_limit: int,
                exclude: Sequence[str] = (), only: str | None = None) -> list[dict]:
    """Lease up to n due jobs of each queue within its global limits, none of
    the destinations in `exclude` (or only those of `only`); claim order."""
    wanted = dict(a for a in allocations if a[1] > 0)
    if not wanted:
        return []
    locked = await conn.fetch(_LOCK_QUEUES, sorted(wanted))
    names, ns, limits, buckets = [], [], [], {}
    for q in locked:
        n = wanted[q["name"]]
        bucket = _bucket(q)
        if bucket is not None:
            n = min(n, bucket.available(q["db_now"]))
            buckets[q["name"]] = (bucket, q["db_now"])
        if n > 0:
            names.append(q["name"])
            ns.append(n)
            limits.append(q["max_concurrency"] or default_limit)
    if not names:
        return []
    sql, which = (_CLAIM_ANY, list(exclude)) if only is None else (_CLAIM_ONE, only)
    rows = [dict(r) for r in await conn.fetch(sql, names, ns, limits, now, margin_ms, node_id,
                                               which)]
    rows.sort(key=lambda r: (-r["priority"], r["visible_at"], r["id"]))
    got = Counter(r["queue_name"] for r in rows)
    spent = [(name, *b.state()) for name, (b, at) in buckets.items()
             if got[name] and b.take(at, got[name])]
    if spent:
        await conn.execute(_SAVE_BUCKETS, [s[0] for s in spent], [s[1] for s in spent],
                           [s[2] for s in spent])
    deltas: Counter = Counter()
    for name, n in got.items():
        counts.moved(deltas, name, "pending", "running", n)
    await counts.bump(conn, deltas)
    return rows


_NEXT_DUE = f"""
SELECT q.name, q.max_concurrency, q.rate_limit_rps, q.rate_limit_burst, q.tokens, q.tokens_at,
    {DB_NOW_MS} AS db_now,
    (SELECT min(visible_at) FROM jobs WHERE queue_name = q.name AND status = 'pending'
        AND destination <> ALL($2::text[])) AS due,
    (SELECT count(*) FROM jobs WHERE queue_name = q.name AND status = 'running') AS running
FROM queues q WHERE q.name = ANY($1::text[])
"""


async def next_due(conn: asyncpg.Connection, queues: list[str], now: int,
                   default_limit: int, exclude: Sequence[str] = ()) -> dict[str, int]:
    """Earliest moment a job of each queue could be claimed: its earliest due
    job, or later when its bucket is empty; queues at their concurrency limit
    are left out (a finishing delivery on any node wakes the engines)."""
    out = {}
    for q in await conn.fetch(_NEXT_DUE, list(queues), list(exclude)):
        if q["due"] is None or q["running"] >= (q["max_concurrency"] or default_limit):
            continue
        due = q["due"]
        bucket = _bucket(q)
        if bucket is not None:
            due = max(due, now + bucket.ms_until_available(q["db_now"]))
        out[q["name"]] = due
    return out


_FINISH = """
UPDATE jobs SET status = o.status, visible_at = coalesce(o.visible_at, jobs.visible_at),
    result = coalesce(o.result, jobs.result), last_error = o.error,
    completed_at = o.completed_at, lease_until = NULL, updated_at = $8
FROM unnest($1::text[], $2::int[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::int8[])
    AS o(id, attempt, status, visible_at, result, error, completed_at)
WHERE jobs.id = o.id AND jobs.status = 'running' AND jobs.attempt = o.attempt
RETURNING jobs.queue_name, o.status
"""

_ATTEMPTS = """
INSERT INTO attempts (job_id, attempt, started_at, duration_ms, status_code, outcome, error)
SELECT * FROM unnest($1::text[], $2::int[], $3::int8[], $4::int8[], $5::int[], $6::text[],
    $7::text[])
"""


async def _insert_attempts(conn: asyncpg.Connection, rows: list[dict]) -> None:
    if rows:
        await conn.execute(_ATTEMPTS, *(
            [r[k] for r in rows]
            for k in ("id", "attempt", "started_at", "duration_ms", "status_code", "outcome",
                      "error")
        ))


async def finish(conn: asyncpg.Connection, outcomes: list[dict], now: int) -> int:
    """Record attempts and their jobs' new state in one statement each; an
    outcome whose job is no longer running at that attempt (reaped or rescued
    meanwhile) changes nothing, its attempt row is still kept."""
    statuses = [STATUS_AFTER[o["outcome"]] for o in outcomes]
    changed = await conn.fetch(
        _FINISH,
        [o["id"] for o in outcomes], [o["attempt"] for o in outcomes], statuses,
        [o.get("visible_at") for o in outcomes], [o.get("result") for o in outcomes],
        [o.get("error") for o in outcomes],
        [now if s != "pending" else None for s in statuses], now,
    )
    deltas: Counter = Counter()
    for r in changed:
        counts.moved(deltas, r["queue_name"], "running", r["status"])
    await counts.bump(conn, deltas)
    await _insert_attempts(conn, outcomes)
    await counts.add(conn, delivery_counters(outcomes))
    return len(changed)


# Row locks taken with SKIP LOCKED: two nodes reaping at once split the rows
# instead of waiting on (or deadlocking over) each other's.
_TAKE_BACK = """
WITH lost AS MATERIALIZED (
    SELECT id FROM jobs WHERE status = 'running' AND {where}
    ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED
)
UPDATE jobs SET status = CASE WHEN attempt > max_retries THEN 'dead' ELSE 'pending' END,
    visible_at = $1, lease_until = NULL, updated_at = $1, last_error = $2,
    completed_at = CASE WHEN attempt > max_retries THEN $1 ELSE completed_at END
FROM lost WHERE jobs.id = lost.id
RETURNING jobs.id, queue_name, attempt, max_retries, started_at, status
"""
_REAP = _TAKE_BACK.format(where="lease_until < $3")
_RESCUE_MINE = _TAKE_BACK.format(where="node_id = $3")
# Running on a node that is not alive any more: declared dead, or gone.
_RESCUE_ORPHANS = _TAKE_BACK.format(
    where="NOT EXISTS (SELECT 1 FROM nodes WHERE nodes.id = jobs.node_id "
          "AND nodes.rescued_at IS NULL) AND $3::text IS NOT NULL"
)


async def _took_back(conn: asyncpg.Connection, rows: list, now: int, error: str) -> list[dict]:
    out = [dict(r) for r in rows]
    deltas: Counter = Counter()
    for r in out:
        counts.moved(deltas, r["queue_name"], "running", r["status"])
    await counts.bump(conn, deltas)
    await _insert_attempts(conn, [lost_attempt(r, now, error) for r in out])
    return out


async def reap(conn: asyncpg.Connection, now: int, before: int) -> list[dict]:
    """Jobs whose lease ended before `before` go back to pending (or dead)."""
    return await _took_back(conn, await conn.fetch(_REAP, now, LEASE_LOST, before), now,
                            LEASE_LOST)


async def rescue(conn: asyncpg.Connection, now: int, error: str,
                 node_id: str | None = None) -> list[dict]:
    """Jobs running on `node_id` (an engine of this node that died), or without
    it on any node not alive, go back to pending (or dead); at most 1000."""
    sql, arg = (_RESCUE_MINE, node_id) if node_id else (_RESCUE_ORPHANS, "")
    return await _took_back(conn, await conn.fetch(sql, now, error, arg), now, error)


async def next_lease_expiry(conn: asyncpg.Connection) -> int | None:
    return await conn.fetchval("SELECT min(lease_until) FROM jobs WHERE status = 'running'")


_OLD_FINISHED = """
SELECT id, queue_name, (SELECT count(*) FROM attempts WHERE job_id = jobs.id) AS attempts
FROM jobs WHERE status = $1 AND updated_at < $2 AND status IN ('completed', 'dead', 'cancelled')
ORDER BY updated_at LIMIT $3 FOR UPDATE SKIP LOCKED
"""


async def delete_finished(conn: asyncpg.Connection, status: str, older_than: int,
                          max_rows: int) -> int:
    """Delete the oldest jobs of a finished status, with their attempts, at most
    `max_rows` rows in all (one job at least). One node at a time: a node that
    finds another cleaning (the transaction-level advisory lock) deletes
    nothing and so ends its own run."""
    if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", CLEANUP_LOCK):
        return 0
    found: list[tuple[str, str]] = []
    rows = 0
    for r in await conn.fetch(_OLD_FINISHED, status, older_than, max_rows):
        if found and rows + 1 + r["attempts"] > max_rows:
            break
        found.append((r["id"], r["queue_name"]))
        rows += 1 + r["attempts"]
    if not found:
        return 0
    ids = [job_id for job_id, _ in found]
    await counts.bump(conn, Counter({(q, status): -n
                                     for q, n in Counter(q for _, q in found).items()}))
    await conn.execute("DELETE FROM attempts WHERE job_id = ANY($1::text[])", ids)
    done = await conn.execute("DELETE FROM jobs WHERE id = ANY($1::text[])", ids)
    return int(done.split()[-1])
