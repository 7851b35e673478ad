"""What each fragment needs, read from the store: one function per fragment.

Each returns the template context; the page and the fragment routes share
them, so a poll renders exactly what the first page load showed.
"""

from __future__ import annotations

from typing import Any

from sanic import Sanic

from mininq.api import destinations as api_destinations
from mininq.api import render as api_render
from mininq.api.validate import QUEUE_NAME
from mininq.dashboard import views
from mininq.ids import is_uuid
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
    rows = await app.ctx.store.list_nodes(app.ctx.node,
                                          app.ctx.config.worker.node_timeout_secs * 1000)
    return {"nodes": rows}


async def destinations(app: Sanic) -> dict[str, Any]:
    return {"destinations": await api_destinations.destinations(app)}
