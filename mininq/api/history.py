"""GET /metrics/history (SPEC §11): per-minute activity, oldest first."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request

from mininq.api import validate as v
from mininq.api.responses import error_response, json_response, query
from mininq.clock import now_ms, to_rfc3339
from mininq.metrics.history import MAX_MINUTES, MINUTE_MS, Point, series, window

bp = Blueprint("history")
DEFAULT_MINUTES = 60


def history_query(args: dict[str, str]) -> tuple[int, str | None]:
    """(minutes, queue or None) from the query string; pure."""
    unknown = sorted(set(args) - {"minutes", "queue"})
    if unknown:
        raise v.ValidationError(unknown[0], "unknown query parameter (minutes, queue)")
    minutes = DEFAULT_MINUTES
    if "minutes" in args:
        raw = args["minutes"]
        if not v.DIGITS.fullmatch(raw) or len(raw) > 6 or not 1 <= int(raw) <= MAX_MINUTES:
            raise v.ValidationError(
                "minutes", f"expected an integer from 1 to {MAX_MINUTES}, got {raw[:40]!r}"
            )
        minutes = int(raw)
    queue = v.queue_name("queue", args["queue"]) if "queue" in args else None
    return minutes, queue


def minute_object(point: Point) -> dict[str, Any]:
    """One element of the answer; durations 0 for a minute without timed attempts."""
    return {
        "minute": to_rfc3339(point.start),
        "created": point.created,
        "completed": point.completed,
        "retried": point.retried,
        "dead": point.dead,
        "duration_p50_ms": point.percentile(0.5) or 0,
        "duration_p99_ms": point.percentile(0.99) or 0,
    }


@bp.get("/metrics/history")
async def history(request: Request):
    minutes, queue = history_query(query(request))
    store = request.app.ctx.store
    if not store.keeps_history:
        return error_response(501, "history: not kept by this database backend yet (SQLite only)")
    start, end = window(now_ms(), minutes)
    rows = await store.history(start, end, MINUTE_MS, queue)
    return json_response([minute_object(p) for p in series(rows, start, minutes)])
