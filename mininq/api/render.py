"""Store rows to the JSON shapes of SPEC §5 (times as RFC 3339, JSON embedded as is)."""

from __future__ import annotations

from typing import Any

import orjson

from mininq.clock import to_rfc3339

_JOB_TIMES = ("visible_at", "started_at", "completed_at", "created_at", "updated_at")
_JOB_FIELDS = (
    "id", "queue_name", "status", "priority", "callback_url", "payload", "headers",
    "max_retries", "retry_backoff", "base_delay_ms", "max_delay_ms", "timeout_ms",
    "idempotency_key", "attempt", "visible_at", "started_at", "completed_at", "created_at",
    "updated_at", "result", "last_error", "schedule_id",
)


def raw_json(text: str | None) -> Any:
    """Stored JSON text, embedded into a response without parsing it again."""
    return None if text is None else orjson.Fragment(text)


def job(row: dict) -> dict:
    out = {f: row[f] for f in _JOB_FIELDS}
    out["payload"] = raw_json(row["payload"])
    out["headers"] = raw_json(row["headers"])
    for f in _JOB_TIMES:
        out[f] = to_rfc3339(row[f])
    return out


def attempt(row: dict) -> dict:
    return {
        "attempt": row["attempt"],
        "started_at": to_rfc3339(row["started_at"]),
        "duration_ms": row["duration_ms"],
        "status_code": row["status_code"],
        "outcome": row["outcome"],
        "error": row["error"],
    }


def queue(row: dict, defaults: Any) -> dict:
    """Settings as they take effect: the queue's own value, else [defaults]."""
    rps = row["rate_limit_rps"]
    burst = row["rate_limit_burst"]
    if rps is not None and burst is None:
        burst = max(1.0, rps)
    out = {
        "name": row["name"],
        "max_concurrency": row["max_concurrency"] or defaults.queue_max_concurrency,
        "rate_limit_rps": rps,
        "rate_limit_burst": burst if rps is not None else None,
        "paused": bool(row["paused"]),
    }
    for f in ("max_retries", "retry_backoff", "base_delay_ms", "max_delay_ms", "timeout_ms"):
        out[f] = row[f] if row[f] is not None else getattr(defaults, f)
    for status in ("pending", "running", "completed", "dead", "cancelled"):
        out[status] = row.get(status, 0)
    out["created_at"] = to_rfc3339(row["created_at"])
    out["updated_at"] = to_rfc3339(row["updated_at"])
    return out


def schedule(row: dict) -> dict:
    return {
        "id": row["id"],
        "cron_expression": row["cron_expression"],
        "timezone": row["timezone"],
        "callback_url": row["callback_url"],
        "queue_name": row["queue_name"],
        "payload": raw_json(row["payload"]),
        "headers": raw_json(row["headers"]),
        "max_retries": row["max_retries"],
        "timeout_ms": row["timeout_ms"],
        "enabled": bool(row["enabled"]),
        "last_run_at": to_rfc3339(row["last_run_at"]),
        "next_run_at": to_rfc3339(row["next_run_at"]),
        "created_at": to_rfc3339(row["created_at"]),
        "updated_at": to_rfc3339(row["updated_at"]),
    }
