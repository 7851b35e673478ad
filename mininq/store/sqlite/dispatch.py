"""SQL the engine runs: claim due jobs, record outcomes, reap expired leases,
delete finished jobs past retention."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence

from mininq.metrics import history as rollup
from mininq.store.rules import (
    LEASE_EXPIRED,
    LEASE_LOST,
    STATUS_AFTER,
    delivery_counters,
    lost_attempt,
    moved,
    old_jobs,
)
from mininq.store.sqlite import counts, history

_CLAIM = """
UPDATE jobs SET status = 'running', attempt = attempt + 1, started_at = :now,
    lease_until = :now + timeout_ms + :margin, updated_at = :now
WHERE id IN (
    SELECT id FROM jobs INDEXED BY {index}
    WHERE status = 'pending' AND queue_name = :queue AND visible_at <= :now AND {which}
    ORDER BY priority DESC, visible_at, id
    LIMIT :n
)
-- The engine plans claims from queue settings it read a moment earlier; a
-- pause committed since then still wins.
AND NOT EXISTS (SELECT 1 FROM queues WHERE name = :queue AND paused = 1)
RETURNING id, queue_name, priority, visible_at, callback_url, payload, headers, attempt,
    max_retries, retry_backoff, base_delay_ms, max_delay_ms, timeout_ms, destination
"""
# Every destination but the left-out ones, in the queue's claim order: the
# destination column is in jobs_claim, so left-out rows are skipped in the index.
_CLAIM_ANY = _CLAIM.format(
    index="jobs_claim", which="destination NOT IN (SELECT value FROM json_each(:exclude))")
# One destination's jobs only.
_CLAIM_ONE = _CLAIM.format(index="jobs_destination", which="destination = :only")

_FINISH = """
UPDATE jobs SET status = :status, visible_at = coalesce(:visible_at, visible_at),
    result = coalesce(:result, result), last_error = :error,
    completed_at = :completed_at, lease_until = NULL, updated_at = :now
WHERE id = :id AND status = 'running' AND attempt = :attempt
"""

_ATTEMPT = """
INSERT INTO attempts (job_id, attempt, started_at, duration_ms, status_code, outcome, error)
VALUES (:id, :attempt, :started_at, :duration_ms, :status_code, :outcome, :error)
"""

_REAP = """
UPDATE jobs SET status = CASE WHEN attempt > max_retries THEN 'dead' ELSE 'pending' END,
    visible_at = :now, lease_until = NULL, updated_at = :now, last_error = :error,
    completed_at = CASE WHEN attempt > max_retries THEN :now ELSE completed_at END
WHERE status = 'running' AND lease_until < :before
RETURNING id, queue_name, attempt, started_at, status
"""


def claim(conn: sqlite3.Connection, allocations: Iterable[tuple[str, int]], now: int,
          margin_ms: int, exclude: Sequence[str] = (), only: str | None = None,
          total: int | None = None) -> list[dict]:
    """Lease up to n due jobs of each queue, leaving out the destinations in
    `exclude` (or taking only those of `only`), `total` at most in all; jobs
    come back in claim order (per queue).

    The claim index is named: left to itself the planner prefers jobs_due
    (queue, visible_at) and sorts every due job to find the first n.
    """
    claimed: list[dict] = []
    sql = _CLAIM_ANY if only is None else _CLAIM_ONE
    params = {"now": now, "margin": margin_ms, "exclude": json.dumps(list(exclude)), "only": only}
    left = total if total is not None else sum(n for _, n in allocations)
    for queue, n in allocations:
        n = min(n, left)
        if n <= 0:
            continue
        rows = [dict(r) for r in conn.execute(sql, {**params, "queue": queue, "n": n})]
        left -= len(rows)
        # RETURNING's order is unspecified; restore the claim order.
        rows.sort(key=lambda r: (-r["priority"], r["visible_at"], r["id"]))
        if rows:
            counts.bump(conn, Counter({(queue, "pending"): -len(rows), (queue, "running"): len(rows)}))
        claimed.extend(rows)
    return claimed


def due_destinations(conn: sqlite3.Connection, destinations: Iterable[str],
                     now: int) -> set[str]:
    """The destinations among these with a pending job due now."""
    return {d for d in destinations if conn.execute(
        "SELECT 1 FROM jobs INDEXED BY jobs_destination "
        "WHERE destination = ? AND status = 'pending' AND visible_at <= ? LIMIT 1",
        (d, now)).fetchone()}


_NEXT_DUE = """
SELECT MIN(visible_at) FROM jobs INDEXED BY jobs_due
WHERE status = 'pending' AND queue_name = ?
    AND destination NOT IN (SELECT value FROM json_each(?))
"""


def next_due(conn: sqlite3.Connection, queues: Iterable[str],
             exclude: Sequence[str] = ()) -> dict[str, int]:
    """Earliest visible_at among pending jobs, per queue that has any, leaving
    out the destinations in `exclude`."""
    out = {}
    left_out = json.dumps(list(exclude))
    for queue in queues:
        row = conn.execute(_NEXT_DUE, (queue, left_out)).fetchone()
        if row[0] is not None:
            out[queue] = row[0]
    return out


def finish(conn: sqlite3.Connection, outcomes: list[dict], now: int) -> int:
    """Record attempts and their jobs' new state; returns how many jobs changed.

    An outcome whose job is no longer running at that attempt (the reaper took
    it back meanwhile) changes nothing; its attempt row is still kept.
    """
    params = []
    for o in outcomes:
        status = STATUS_AFTER[o["outcome"]]
        params.append(
            {
                "status": status,
                "visible_at": o.get("visible_at"),
                "result": o.get("result"),
                "error": o.get("error"),
                "completed_at": now if status != "pending" else None,
                "now": now,
                "id": o["id"],
                "attempt": o["attempt"],
            }
        )
    # Only jobs still running at that attempt take the outcome (the reaper may
    # have taken one back meanwhile); their attempt rows are kept either way.
    # Nearly always every job is still running: try that first, and look up
    # which ones are only when the count says some were not.
    conn.execute("SAVEPOINT finish")
    if conn.executemany(_FINISH, params).rowcount != len(params):
        conn.execute("ROLLBACK TO finish")
        running = _running(conn, params)
        params = [p for p in params if (p["id"], p["attempt"]) in running]
        conn.executemany(_FINISH, params)
    conn.execute("RELEASE finish")
    deltas: Counter = Counter()
    queue_of = {o["id"]: o["queue_name"] for o in outcomes}
    for p in params:
        moved(deltas, queue_of[p["id"]], "running", p["status"])
    counts.bump(conn, deltas)
    conn.executemany(_ATTEMPT, outcomes)
    counts.add(conn, delivery_counters(outcomes))
    # History counts the attempts that took effect: one the reaper took back
    # was counted there as lost.
    applied = outcomes if len(params) == len(outcomes) else _applied(outcomes, params)
    history.record(conn, rollup.of_deliveries(applied))
    return len(params)


def _applied(outcomes: list[dict], params: list[dict]) -> list[dict]:
    taken = {(p["id"], p["attempt"]) for p in params}
    return [o for o in outcomes if (o["id"], o["attempt"]) in taken]


def _running(conn: sqlite3.Connection, params: list[dict]) -> set[tuple[str, int]]:
    """(id, attempt) of the jobs among `params` that are running."""
    marks = ", ".join("?" * len(params))
    # Plain tuples: the connection's sqlite3.Row never compares equal to a tuple.
    return {
        (row[0], row[1])
        for row in conn.execute(
            f"SELECT id, attempt FROM jobs WHERE status = 'running' AND id IN ({marks})",
            [p["id"] for p in params],
        )
    }


def reap(conn: sqlite3.Connection, now: int, before: int, process_died: bool = False) -> list[dict]:
    """Jobs running with a lease older than `before` go back to pending, or to
    dead when no retries are left; the lost attempt is recorded and counted,
    its error saying whether the delivering process died or the lease ran out."""
    error = LEASE_LOST if process_died else LEASE_EXPIRED
    rows = [dict(r) for r in conn.execute(_REAP, {"now": now, "before": before, "error": error})]
    deltas: Counter = Counter()
    for r in rows:
        moved(deltas, r["queue_name"], "running", r["status"])
    counts.bump(conn, deltas)
    history.record(conn, rollup.of_lost(rows, now))
    conn.executemany(_ATTEMPT, [lost_attempt(r, now, error) for r in rows])
    return rows


_OLD_FINISHED = """
SELECT id, queue_name, (SELECT count(*) FROM attempts WHERE job_id = jobs.id)
FROM jobs INDEXED BY jobs_finished
WHERE status = ? AND updated_at < ? AND status IN ('completed', 'dead', 'cancelled')
ORDER BY updated_at LIMIT ?
"""


def delete_finished(conn: sqlite3.Connection, status: str, older_than: int, max_rows: int) -> int:
    """Delete the oldest jobs of a finished status last changed before `older_than`,
    with their attempts: whole jobs, at most `max_rows` rows in all (one job at
    least), so that the transaction stays short. Returns how many jobs went.

    Oldest first through jobs_finished: the scan stops at the first young row
    instead of reading every job of the status (what a (status, id) index would do).
    """
    found = old_jobs(conn.execute(_OLD_FINISHED, (status, older_than, max_rows)).fetchall(),
                     max_rows)
    if not found:
        return 0
    ids = [job_id for job_id, _ in found]
    counts.bump(conn, Counter({(q, status): -n for q, n in Counter(q for _, q in found).items()}))
    marks = ", ".join("?" * len(ids))
    conn.execute(f"DELETE FROM attempts WHERE job_id IN ({marks})", ids)
    return conn.execute(f"DELETE FROM jobs WHERE id IN ({marks})", ids).rowcount


def checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def checkpoint_passive(conn: sqlite3.Connection) -> None:
    """Copy what it can of the WAL into the file, waiting for nobody."""
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
