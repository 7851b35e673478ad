"""SQL the engines run: claim due jobs within limits shared by every node,
record outcomes, reap expired leases, delete finished jobs past retention."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import asyncpg

from mininq.engine.ratelimit import TokenBucket
from mininq.metrics import history as rollup
from mininq.store.postgres import counts, history
from mininq.store.postgres import destinations as dest_sql
from mininq.store.postgres.locks import after
from mininq.store.postgres.schema import CLEANUP_LOCK
from mininq.store.rules import (
    STATUS_AFTER,
    delivery_counters,
    lost_attempt,
    moved,
    old_jobs,
)

DB_NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

# A queue's in-flight count lives in its row (`queues.in_flight`), moved by
# the same statement as each job entering or leaving `running`; a claim locks
# its queues' rows (in name order, `_LOCK`) in a statement of its own at the
# start of its transaction, so claims of one queue by several nodes take
# turns and its limits are exact, while claims of different queues don't wait
# for each other. (Locked by the claim statement itself, a row it had to wait
# for would be locked in its latest version but updated through the older
# one its snapshot sees, and that update queues behind the next waiter for
# the row, which waits for this claim: a deadlock.)
#
# One statement then claims for every queue without a rate limit: its
# snapshot, taken after the lock, sees the rows' latest versions; jobs another
# claim took meanwhile fail the re-check of
# `status = 'pending'` and are passed over, the picked CTE is materialized so
# the planner never updates more rows than each LIMIT, and the in-flight
# counts and job counts ($7: the shard, see counts.py) move in the same
# statement. Queues with a token bucket ($8 true) go through `claim_rated`,
# which reads and writes the bucket around this statement in one transaction;
# without $8 the statement also names, in rows of their own with only `rated`
# set, the asked-for queues it left out for having one (no second round trip
# to find out why a claim came up short).
_CLAIM = """
WITH q AS MATERIALIZED (
    SELECT name, least(a.n, coalesce(max_concurrency, $3) - in_flight) AS n
    FROM queues JOIN unnest($1::text[], $2::int[]) AS a(queue, n) ON name = a.queue
    WHERE NOT paused AND (rate_limit_rps IS NULL OR $8)
), picked AS MATERIALIZED (
    SELECT p.id FROM q, LATERAL (
        SELECT id FROM jobs
        WHERE queue_name = q.name AND status = 'pending' AND visible_at <= $4 AND {which}
        ORDER BY priority DESC, visible_at, id
        LIMIT greatest(q.n, 0)
        FOR UPDATE SKIP LOCKED
    ) p
    {cap}
), claimed AS (
    UPDATE jobs SET status = 'running', attempt = attempt + 1, started_at = $4,
        lease_until = $4 + timeout_ms + $5, updated_at = $4, node_id = $6
    FROM picked WHERE jobs.id = picked.id
    RETURNING jobs.id, queue_name, priority, visible_at, callback_url, payload, headers,
        attempt, max_retries, retry_backoff, base_delay_ms, max_delay_ms, timeout_ms,
        destination
), got AS (
    SELECT queue_name, count(*)::int AS n FROM claimed GROUP BY queue_name ORDER BY queue_name
), raised AS (
    UPDATE queues SET in_flight = queues.in_flight + got.n FROM got
    WHERE queues.name = got.queue_name
), counted AS (
    INSERT INTO job_counts (queue_name, status, shard, n)
    SELECT queue_name, s.status, $7, s.sign * n
    FROM got, (VALUES ('pending', -1), ('running', 1)) AS s(status, sign)
    ORDER BY 1, 2
    ON CONFLICT (queue_name, status, shard) DO UPDATE SET n = job_counts.n + excluded.n
)
SELECT claimed.*, NULL::text AS rated FROM claimed
UNION ALL
SELECT claimed.*, r.name FROM (
    SELECT name FROM queues
    WHERE name = ANY($1::text[]) AND rate_limit_rps IS NOT NULL AND NOT $8
) AS r LEFT JOIN claimed ON false
"""
# Every destination but the left-out ones ($9), through jobs_claim (which
# includes destination, so left-out rows are skipped in the index); or the
# jobs of one destination ($9) through jobs_destination.
_CLAIM_ANY = _CLAIM.format(which="destination <> ALL($9::text[])", cap="")
_CLAIM_ONE = _CLAIM.format(which="destination = $9::text", cap="LIMIT $10::int")

_LOCK = """
SELECT name FROM queues WHERE name = ANY($1::text[]) ORDER BY name FOR NO KEY UPDATE
"""
_LOCK_RATED = f"""
SELECT name, rate_limit_rps, rate_limit_burst, tokens, tokens_at, {DB_NOW_MS} AS db_now
FROM queues WHERE name = ANY($1::text[]) AND NOT paused AND rate_limit_rps IS NOT NULL
ORDER BY name FOR NO KEY UPDATE
"""

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


async def _claim(conn: asyncpg.Connection, wanted: dict[str, int], now: int, margin_ms: int,
                 node_id: str | None, default_limit: int, rated: bool,
                 exclude: Sequence[str], only: str | None,
                 total: int | None = None) -> tuple[list[dict], set[str]]:
    names = sorted(wanted)
    extra = [list(exclude)] if only is None else [
        only, sum(wanted.values()) if total is None else total]
    rows, skipped = [], set()
    for r in await conn.fetch(
            _CLAIM_ANY if only is None else _CLAIM_ONE,
            names, [wanted[n] for n in names], default_limit, now, margin_ms, node_id,
            random.randrange(counts.SHARDS), rated, *extra):
        if r["rated"] is not None:
            skipped.add(r["rated"])
        else:
            row = dict(r)
            del row["rated"]
            rows.append(row)
    rows.sort(key=lambda r: (-r["priority"], r["visible_at"], r["id"]))
    return rows, skipped


async def claim(conn: asyncpg.Connection, allocations: list[tuple[str, int]], now: int,
                margin_ms: int, node_id: str | None, default_limit: int,
                exclude: Sequence[str] = (), only: str | None = None,
                total: int | None = None) -> tuple[list[dict], set[str]]:
    """Lease up to n due jobs of each queue without a rate limit, within its
    global max_concurrency, none of the destinations in `exclude` (or only
    those of `only`, `total` at most); in the caller's transaction.
    Queues with a rate limit get nothing here (see `claim_rated`): the second
    value names those among the asked-for ones."""
    wanted = {q: n for q, n in allocations if n > 0}
    if not wanted:
        return [], set()
    await conn.execute(_LOCK, sorted(wanted))
    return await _claim(conn, wanted, now, margin_ms, node_id, default_limit, False,
                        exclude, only, total)


async def claim_rated(conn: asyncpg.Connection, allocations: list[tuple[str, int]], now: int,
                      margin_ms: int, node_id: str | None, default_limit: int,
                      exclude: Sequence[str] = (), only: str | None = None,
                      total: int | None = None) -> tuple[list[dict], set[str]]:
    """Like `claim`, for queues with a token bucket: in one transaction, lock
    their rows, take what the buckets allow (`TokenBucket`, on database time),
    claim, and store the buckets back. Also returns which of the queues still
    have a rate limit."""
    wanted = {q: n for q, n in allocations if n > 0}
    if not wanted:
        return [], set()
    allowed: dict[str, int] = {}
    buckets = {}
    locked = await conn.fetch(_LOCK_RATED, sorted(wanted))
    for q in locked:
        bucket = _bucket(q)
        n = min(wanted[q["name"]], bucket.available(q["db_now"]))
        if n > 0:
            allowed[q["name"]] = n
            buckets[q["name"]] = (bucket, q["db_now"])
    still = {q["name"] for q in locked}
    if not allowed:
        return [], still
    rows, _ = await _claim(conn, allowed, now, margin_ms, node_id, default_limit, True,
                           exclude, only, total)
    got = Counter(r["queue_name"] for r in rows)
    spent = [(name, *b.state()) for name, (b, at) in buckets.items()
             if got[name] and b.take(at, got[name])]
    if spent:
        await conn.execute(_SAVE_BUCKETS, [s[0] for s in spent], [s[1] for s in spent],
                           [s[2] for s in spent])
    return rows, still


_DUE_DESTINATIONS = """
SELECT d FROM unnest($1::text[]) AS d
WHERE EXISTS (SELECT 1 FROM jobs
              WHERE destination = d AND status = 'pending' AND visible_at <= $2)
"""


async def due_destinations(conn: asyncpg.Connection, destinations: Sequence[str],
                           now: int) -> set[str]:
    """The destinations among these with a pending job due now."""
    return {r["d"] for r in await conn.fetch(_DUE_DESTINATIONS, list(destinations), now)}


_NEXT_DUE = f"""
SELECT q.name, q.max_concurrency, q.rate_limit_rps, q.rate_limit_burst, q.tokens, q.tokens_at,
    {DB_NOW_MS} AS db_now,
    (SELECT min(visible_at) FROM jobs WHERE queue_name = q.name AND status = 'pending'
        AND destination <> ALL($2::text[])) AS due,
    q.in_flight AS running
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


# Every statement that takes jobs out of `running` lowers their queues'
# in-flight counts in the same statement.
_LOWER = """, lowered AS (
    UPDATE queues SET in_flight = greatest(0, queues.in_flight - d.n)
    FROM (SELECT queue_name, count(*)::int AS n FROM done GROUP BY queue_name
          ORDER BY queue_name) AS d
    WHERE queues.name = d.queue_name
)
SELECT * FROM done
"""

# One statement for a batch of outcomes: the jobs' new state, their queues'
# in-flight counts, the job counts ($9: the shard), the attempt rows, the
# /metrics counters and the history rows of the outcomes that took effect
# ($18: the minute each attempt ended in, $19: its duration bucket or NULL);
# atomic without a transaction around it.
#
# Rows shared with other transactions are taken in the order of locks.py,
# each CTE run after the one before it by its `after` filter: the jobs, then
# the queue rows, then job_counts, history and counters rows. (A finish
# holding a job_counts row while it waits for the queue row a claim holds,
# that claim waiting for the job_counts row, is a deadlock, and each costs a
# second before the server breaks it.)
_FINISH = """
WITH done AS (
    UPDATE jobs SET status = o.status, visible_at = coalesce(o.visible_at, jobs.visible_at),
        result = coalesce(o.result, jobs.result), last_error = o.error,
        completed_at = o.completed_at, lease_until = NULL, updated_at = $8
    FROM unnest($1::text[], $2::int[], $3::text[], $4::int8[], $5::text[], $6::text[],
                $7::int8[], $18::int8[], $19::int[])
        AS o(id, attempt, status, visible_at, result, error, completed_at, minute, bucket)
    WHERE jobs.id = o.id AND jobs.status = 'running' AND jobs.attempt = o.attempt
    RETURNING jobs.queue_name, o.status, o.minute, o.bucket
){saving}, lowered AS (
    UPDATE queues SET in_flight = greatest(0, queues.in_flight - d.n)
    FROM (SELECT queue_name, count(*)::int AS n FROM done GROUP BY queue_name
          ORDER BY queue_name) AS d
    WHERE queues.name = d.queue_name AND {after_saving}
    RETURNING 1
), counted AS (
    INSERT INTO job_counts (queue_name, status, shard, n)
    SELECT queue_name, st, $9, sum(d) FROM (
        SELECT queue_name, 'running' AS st, -1 AS d FROM done
        UNION ALL SELECT queue_name, status, 1 FROM done
    ) AS moves WHERE """ + after("lowered") + """ GROUP BY queue_name, st ORDER BY 1, 2
    ON CONFLICT (queue_name, status, shard) DO UPDATE SET n = job_counts.n + excluded.n
    RETURNING 1
), tried AS (
    INSERT INTO attempts (job_id, attempt, started_at, duration_ms, status_code, outcome, error)
    SELECT * FROM unnest($1::text[], $2::int[], $10::int8[], $11::int8[], $12::int[],
                         $13::text[], $6::text[])
), historied AS (
    """ + history.finish_cte(after("counted")) + """
    RETURNING 1
), added AS (
    INSERT INTO counters (name, queue_name, key, shard, value)
    SELECT * FROM (
        SELECT a, q, k, $9, v FROM unnest($14::text[], $15::text[], $16::text[],
                                          $17::float8[]) AS t(a, q, k, v)
        WHERE """ + after("historied") + """
        ORDER BY 1, 2, 3
    ) AS c
    ON CONFLICT (name, queue_name, key, shard)
    DO UPDATE SET value = counters.value + excluded.value
)
SELECT count(*) FROM done
"""
_FINISH_ONLY = _FINISH.format(saving="", after_saving="true")
# With the node's destination rows ($20: the node, $21...: their fields),
# written before the queue rows are taken (locks.py: a reset, the other writer
# of these rows, may hold them for a moment).
_FINISH_SAVING = _FINISH.format(
    saving=", saved AS (" + dest_sql.upsert(20) + " RETURNING 1)",
    after_saving=after("saved"))

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


async def finish(conn: asyncpg.Connection, outcomes: list[dict], now: int, node: str = "",
                 destinations: Sequence[dict] = ()) -> int:
    """Record a batch of outcomes, and the node's changed destination rows,
    in one statement (run it outside a transaction); an outcome whose job is
    no longer running at that attempt (reaped or rescued meanwhile) changes
    nothing, its attempt row is still kept."""
    statuses = [STATUS_AFTER[o["outcome"]] for o in outcomes]
    added = sorted(delivery_counters(outcomes).items())
    saving = [node, *dest_sql.values(destinations)] if destinations else []
    return await conn.fetchval(
        _FINISH_SAVING if destinations else _FINISH_ONLY,
        [o["id"] for o in outcomes], [o["attempt"] for o in outcomes], statuses,
        [o.get("visible_at") for o in outcomes], [o.get("result") for o in outcomes],
        [o.get("error") for o in outcomes],
        [now if s != "pending" else None for s in statuses], now,
        random.randrange(counts.SHARDS),
        [o["started_at"] for o in outcomes], [o["duration_ms"] for o in outcomes],
        [o["status_code"] for o in outcomes], [o["outcome"] for o in outcomes],
        [k[0] for k, _ in added], [k[1] for k, _ in added], [k[2] for k, _ in added],
        [float(v) for _, v in added],
        [rollup.minute_start(o["started_at"] + o["duration_ms"]) for o in outcomes],
        [rollup.bucket_of(o["duration_ms"]) if rollup.timed(o) else None for o in outcomes],
        *saving,
    )


# Row locks taken with SKIP LOCKED: two nodes reaping at once split the rows
# instead of waiting on (or deadlocking over) each other's. At most
# TAKE_BACK_BATCH jobs per statement: fewer means it found no more to take.
TAKE_BACK_BATCH = 1000
_TAKE_BACK = """
WITH lost AS MATERIALIZED (
    SELECT id FROM jobs WHERE status = 'running' AND {where}
    ORDER BY id LIMIT """ + str(TAKE_BACK_BATCH) + """ FOR UPDATE SKIP LOCKED
), done AS (
    UPDATE jobs SET status = CASE WHEN attempt > max_retries THEN 'dead' ELSE 'pending' END,
        visible_at = $1, lease_until = NULL, updated_at = $1, last_error = $2,
        completed_at = CASE WHEN attempt > max_retries THEN $1 ELSE completed_at END
    FROM lost WHERE jobs.id = lost.id
    RETURNING jobs.id, queue_name, attempt, max_retries, started_at, status
)""" + _LOWER
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
        moved(deltas, r["queue_name"], "running", r["status"])
    await counts.bump(conn, deltas)
    await history.record(conn, rollup.of_lost(out, now))
    await _insert_attempts(conn, [lost_attempt(r, now, error) for r in out])
    return out


async def reap(conn: asyncpg.Connection, now: int, before: int, error: str) -> list[dict]:
    """Jobs whose lease ended before `before` go back to pending (or dead)."""
    return await _took_back(conn, await conn.fetch(_REAP, now, error, before), now, error)


async def rescue(conn: asyncpg.Connection, now: int, error: str,
                 node_id: str | None = None) -> list[dict]:
    """Jobs running on `node_id` (an engine of this node that died), or without
    it on any node not alive, go back to pending (or dead); at most TAKE_BACK_BATCH."""
    sql, arg = (_RESCUE_MINE, node_id) if node_id else (_RESCUE_ORPHANS, "")
    return await _took_back(conn, await conn.fetch(sql, now, error, arg), now, error)


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
    found = old_jobs(await conn.fetch(_OLD_FINISHED, status, older_than, max_rows), max_rows)
    if not found:
        return 0
    ids = [job_id for job_id, _ in found]
    await counts.bump(conn, Counter({(q, status): -n
                                     for q, n in Counter(q for _, q in found).items()}))
    await conn.execute("DELETE FROM attempts WHERE job_id = ANY($1::text[])", ids)
    done = await conn.execute("DELETE FROM jobs WHERE id = ANY($1::text[])", ids)
    return int(done.split()[-1])
