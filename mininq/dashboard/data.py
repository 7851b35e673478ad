"""What each fragment needs, read from the store: one function per fragment.

Each returns the template context; the page and the fragment routes share
them, so a poll renders exactly what the first page load showed.
"""

from __future__ import annotations

import time
from typing import Any

from sanic import Sanic

from mininq.api import destinations as api_destinations
from mininq.api import render as api_render
from mininq.api import system as api_system
from mininq.api.validate import QUEUE_NAME
from mininq.clock import now_ms
from mininq.dashboard import chart as charts
from mininq.dashboard import views
from mininq.ids import is_uuid
from mininq.metrics.history import series, window
from mininq.store import NotFound

SCHEDULES_SHOWN = 100


def job_filter(args: dict[str, str]) -> views.JobFilter:
    return views.parse_filter(args, is_uuid, lambda name: bool(QUEUE_NAME.match(name)))


async def _engine_up(app: Sanic) -> bool | None:
    check = getattr(app.ctx, "engine_up", None)
    return await check() if check else None


async def stats(app: Sanic) -> dict[str, Any]:
    raw = await app.ctx.store.stats()
    return {"cards": views.stat_cards(raw), "engine_up": await _engine_up(app)}


async def queues(app: Sanic) -> dict[str, Any]:
    rows = await app.ctx.store.list_queues()
    defaults = app.ctx.config.defaults
    return {"queues": [api_render.queue(r, defaults) for r in rows]}


async def jobs(app: Sanic, flt: views.JobFilter) -> dict[str, Any]:
    rows = await app.ctx.store.list_jobs(
        queue=flt.queue, status=flt.status, schedule_id=None,
        limit=views.PAGE_SIZE + 1, offset=0, after=flt.after,
    )
    return views.job_page(rows, flt)


async def job(app: Sanic, job_id: str) -> dict[str, Any]:
    """The detail of one job; `job` is None when it doesn't exist (any more)."""
    store = app.ctx.store
    row = await store.get_job(job_id.lower()) if is_uuid(job_id) else None
    if row is None:
        return {"job": None, "job_id": job_id, "attempts": [], "headers": []}
    try:
        attempts = await store.list_attempts(row["id"])
    except NotFound:  # purged between the two reads
        attempts = []
    return {
        "job": row,
        "job_id": row["id"],
        "attempts": attempts,
        "headers": views.header_pairs(row["headers"]),
        "attempts_label": views.attempts_label(row),
    }


async def schedules(app: Sanic) -> dict[str, Any]:
    rows = await app.ctx.store.list_schedules(SCHEDULES_SHOWN + 1, 0, None)
    return {"schedules": rows[:SCHEDULES_SHOWN], "more_schedules": len(rows) > SCHEDULES_SHOWN}


async def nodes(app: Sanic) -> dict[str, Any]:
    return {"nodes": await api_system.node_rows(app)}


async def destinations(app: Sanic) -> dict[str, Any]:
    return {"destinations": await api_destinations.destinations(app)}


# (range, queue) -> (reuse until, window start, rows); see Range.reread_s.
_HISTORY_READS: dict[tuple[str, str | None], tuple[float, int, list]] = {}
_HISTORY_READS_KEPT = 64


async def _history_rows(app: Sanic, rng: charts.Range, queue: str | None, start: int,
                        end: int) -> list:
    key = (rng.key, queue)
    kept = _HISTORY_READS.get(key)
    if kept and kept[0] > time.monotonic() and kept[1] == start:
        return kept[2]
    rows = await app.ctx.store.history(start, end, rng.step_ms, queue)
    if rng.reread_s:
        if len(_HISTORY_READS) >= _HISTORY_READS_KEPT:
            _HISTORY_READS.clear()
        _HISTORY_READS[key] = (time.monotonic() + rng.reread_s, start, rows)
    return rows


async def chart(app: Sanic, args: dict[str, str]) -> dict[str, Any]:
    """The activity chart for `range` and `chart_queue` from the query string.

    A queue filter that can't be a queue name shows zeros, as an unknown queue does."""
    rng = charts.parse_range(args.get("range"))
    queue = args.get("chart_queue", "").strip()[:200] or None
    start, end = window(now_ms(), rng.buckets, rng.step_ms)
    rows = []
    if queue is None or QUEUE_NAME.match(queue):
        rows = await _history_rows(app, rng, queue, start, end)
    points = series(rows, start, rng.buckets, rng.step_ms)
    return {
        "chart_range": rng.key,
        "chart_queue": queue,
        "ranges": charts.RANGES,
        "chart_wide": charts.svg(points, rng, queue),
        "chart_narrow": charts.svg(points, rng, queue, narrow=True),
        "chart_totals": charts.summary(points),
        "chart_per": rng.per,
    }
