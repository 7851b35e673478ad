"""Rules every storage backend applies the same way, kept here once.

Pure: no SQL, no I/O. Backends call these from their statements so that
SQLite and PostgreSQL resolve defaults, book outcomes and shape counts alike.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from typing import Any

from mininq import fields
from mininq.destination import destination_of
from mininq.ids import uuid7

# These three come from the body tables of mininq.fields, in their order (the
# queue column lists follow it); SCHEDULE_FIELDS keeps an order of its own.
STATUSES = fields.JOB_STATUSES
JOB_DEFAULT_FIELDS = tuple(fields.JOB_DEFAULTS)
SETTING_FIELDS = tuple(fields.QUEUE_UPDATE)
SCHEDULE_FIELDS = (
    "cron_expression", "timezone", "callback_url", "queue_name", "payload", "headers",
    "max_retries", "timeout_ms", "enabled", "next_run_at",
)

# A node's view of one destination, as its engine writes it (SPEC §10).
DESTINATION_FIELDS = ("destination", "state", "limit", "in_flight", "consecutive_failures",
                      "last_status", "last_error", "open_until", "delivered", "failed", "seen_at")
DESTINATIONS_SEEN_MS = 3_600_000  # GET /destinations lists those seen in the last hour
DESTINATIONS_KEPT = 1_000
# How often an engine deletes destination rows past DESTINATIONS_SEEN_MS (on
# SQLite also those of earlier runs): at most once per this many ms, the first
# time in its first batch with destination rows.
DESTINATIONS_FORGET_EVERY_MS = 60_000

# A delivery's outcome and the status its job takes.
STATUS_AFTER = {"completed": "completed", "retry": "pending", "dead": "dead"}

# The lost attempt's error, by why the job was still running: its process
# died (start-up recovery: the engine lock proves it), or its lease ran out
# under a live engine; or (PostgreSQL) its node stopped sending heartbeats.
LEASE_LOST = "delivery interrupted: the process delivering it stopped before an answer"
LEASE_EXPIRED = "delivery interrupted: no outcome was recorded before its lease ran out"
NODE_LOST = "interrupted: the node delivering it stopped answering before an answer"

HISTOGRAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BUCKET_KEYS = tuple(repr(le) for le in HISTOGRAM_BUCKETS)


JOB_COLUMNS = (
    "id", "queue_name", "status", "priority", "callback_url", "payload", "headers",
    "max_retries", "retry_backoff", "base_delay_ms", "max_delay_ms", "timeout_ms",
    "idempotency_key", "attempt", "visible_at", "lease_until", "started_at", "completed_at",
    "created_at", "updated_at", "result", "last_error", "schedule_id", "destination",
)


def new_job_row(spec: dict[str, Any], queue: Any, defaults: Any, now: int) -> dict:
    """The row a validated create spec becomes: every JOB_COLUMNS key, settings
    resolved, pending and due at `visible_at` (now unless delayed)."""
    row = dict.fromkeys(JOB_COLUMNS)
    row.update(resolve_job_defaults(spec, queue, defaults))
    row.update(
        id=uuid7(), queue_name=spec["queue_name"], status="pending",
        priority=spec.get("priority", 0), callback_url=spec["callback_url"],
        payload=spec["payload"], headers=spec.get("headers"),
        idempotency_key=spec.get("idempotency_key"), attempt=0,
        visible_at=spec.get("visible_at", now), created_at=now, updated_at=now,
        schedule_id=spec.get("schedule_id"), destination=destination_of(spec["callback_url"]),
    )
    return row


def resolve_job_defaults(spec: dict, queue: Any, defaults: Any) -> dict:
    """A job's own value, else the queue's, else the global default."""
    out = {}
    for field in JOB_DEFAULT_FIELDS:
        value = spec.get(field)
        if value is None and queue is not None:
            value = queue[field]
        if value is None:
            value = getattr(defaults, field)
        out[field] = value
    return out


def with_counts(row: Any, counts: dict[str, int]) -> dict:
    """A queue row plus its count per status as top-level fields (SPEC §5)."""
    queue = dict(row)
    for status in STATUSES:
        queue[status] = counts.get(status, 0)
    return queue


def schedule_job_spec(schedule: dict, fire_ms: int) -> dict:
    """The job a schedule creates when it fires at `fire_ms`."""
    return {
        "queue_name": schedule["queue_name"],
        "callback_url": schedule["callback_url"],
        "payload": schedule["payload"],
        "headers": schedule["headers"],
        "max_retries": schedule["max_retries"],
        "timeout_ms": schedule["timeout_ms"],
        "schedule_id": schedule["id"],
        "visible_at": fire_ms,
    }


def single_filter_pairs(queue: str | None, status: str | None,
                        queue_names: Iterable[str]) -> list[tuple[str, str]]:
    """A job list filtered on only a queue or only a status, as the (queue,
    status) pairs the (queue, status, id) index answers: the queue with every
    status, or every queue (of `queue_names`) with the status."""
    if queue is not None:
        return [(queue, st) for st in STATUSES]
    return [(name, status) for name in queue_names]


def merged_page(pages: Iterable[list[dict]], limit: int, offset: int) -> list[dict]:
    """The page `offset`, `limit` of the pairs' jobs newest first, from each
    pair's first `limit + offset` jobs."""
    rows = [r for page in pages for r in page]
    rows.sort(key=lambda r: r["id"], reverse=True)
    return rows[offset : offset + limit]


def busiest_first(rows: list[dict]) -> list[dict]:
    """GET /destinations order: in flight, then pending, then attempts."""
    return sorted(rows, key=lambda r: (-r["in_flight"], -r["pending"],
                                       -(r["delivered"] + r["failed"]), r["destination"]))


def moved(deltas: Counter, queue: str, old: str | None, new: str | None) -> None:
    """Record a job of `queue` leaving status `old` for `new` (None: created/deleted)."""
    if old is not None:
        deltas[(queue, old)] -= 1
    if new is not None:
        deltas[(queue, new)] += 1


def old_jobs(candidates: Iterable[tuple[str, str, int]], max_rows: int) -> list[tuple[str, str]]:
    """Which of the oldest finished jobs (id, queue, attempt count; oldest
    first) to delete: whole jobs, at most `max_rows` rows in all counting
    each job and its attempts, one job at least. (id, queue) of each."""
    found: list[tuple[str, str]] = []
    rows = 0
    for job_id, queue, attempts in candidates:
        if found and rows + 1 + attempts > max_rows:
            break
        found.append((job_id, queue))
        rows += 1 + attempts
    return found


def lost_attempt(row: dict, now: int, error: str) -> dict:
    """The attempt row recorded for a delivery whose answer never came."""
    started = row["started_at"] or now
    return {
        "id": row["id"], "attempt": row["attempt"], "started_at": started,
        "duration_ms": max(0, now - started), "status_code": None,
        "outcome": "dead" if row["status"] == "dead" else "retry", "error": error,
    }


def delivery_counters(outcomes: list[dict]) -> dict[tuple[str, str, str], float]:
    """What a batch of outcomes adds to the /metrics counters: deliveries per
    outcome and the duration histogram, whose buckets are cumulative (each
    counts the deliveries at or under its bound), as Prometheus reads them.
    Each delivery is binned once and the buckets summed per batch: bumping
    every bucket per delivery was a tenth of the engine's SQLite time."""
    bumps: dict[tuple[str, str, str], float] = {}
    bins: dict[str, list[int]] = {}
    for o in outcomes:
        q = o["queue_name"]
        seconds = o["duration_ms"] / 1000
        key = ("deliveries", q, o["outcome"])
        bumps[key] = bumps.get(key, 0) + 1
        key = ("delivery_seconds_sum", q, "")
        bumps[key] = bumps.get(key, 0) + seconds
        if q not in bins:
            bins[q] = [0] * (len(HISTOGRAM_BUCKETS) + 1)  # the last: above every bound
        bins[q][bisect_left(HISTOGRAM_BUCKETS, seconds)] += 1
    for q, counted in bins.items():
        bumps[("delivery_seconds_count", q, "")] = sum(counted)
        at_or_under = 0
        for key, n in zip(BUCKET_KEYS, counted):
            at_or_under += n
            if at_or_under:
                bumps[("delivery_seconds_bucket", q, key)] = at_or_under
    return bumps
