"""POST routes behind the dashboard's buttons; each answers with the fragment it changed.

Every action needs the `HX-Request` header that htmx sends. A page on another
site can't add that header to a cross-site request without a CORS preflight,
which mininq never grants, so these routes can't be driven from elsewhere even
when no api_token (and so no session cookie) guards them. Failures come back
as a message inside the fragment, since htmx does not swap error responses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from sanic import Blueprint, HTTPResponse, Request

from mininq.api import destinations as api_destinations
from mininq.api.validate import QUEUE_NAME
from mininq.clock import now_ms
from mininq.dashboard import data, views
from mininq.dashboard.render import fragment, html
from mininq.ids import is_uuid
from mininq.scheduling import cron
from mininq.store import Conflict, NotFound
from mininq.wake import QUEUES, SCHEDULES

bp = Blueprint("dashboard_actions")

Handler = Callable[..., Awaitable[HTTPResponse]]


def htmx_only(handler: Handler) -> Handler:
    @wraps(handler)
    async def guarded(request: Request, *args, **kwargs) -> HTTPResponse:
        if request.headers.get("hx-request") != "true":
            return html("<p>Dashboard actions are sent by the dashboard page.</p>", 403)
        return await handler(request, *args, **kwargs)

    return guarded


def _ok(text: str) -> dict:
    return {"kind": "ok", "text": text}


def _error(text: str) -> dict:
    return {"kind": "error", "text": text}


# -- destinations ----------------------------------------------------------------


@bp.post("/dashboard/destinations/reset")
@htmx_only
async def reset_destination(request: Request) -> HTTPResponse:
    destination = request.form.get("destination") if request.form else None
    if not destination:
        flash = _error("No destination given.")
    else:
        try:
            await api_destinations.reset(request.app, destination)
            flash = _ok(f"Reset {destination}.")
        except NotFound as exc:
            flash = _error(str(exc))
    context = await data.destinations(request.app)
    return fragment(request, "_destinations.html", changed=True, flash=flash, **context)


# -- queues --------------------------------------------------------------------


async def _queues(request: Request, flash: dict | None) -> HTTPResponse:
    context = await data.queues(request.app)
    return fragment(request, "_queues.html", changed=True, oob=True, flash=flash, **context)


async def _queue_action(request: Request, name: str, act) -> HTTPResponse:
    """Run `act(store, name)` -> flash text (or None), then answer with the queues table."""
    if not QUEUE_NAME.match(name):
        return await _queues(request, _error(f"No queue named {name!r}."))
    try:
        text = await act(request.app.ctx.store, name)
    except (NotFound, Conflict) as exc:
        return await _queues(request, _error(str(exc)))
    return await _queues(request, _ok(text) if text else None)


@bp.post("/dashboard/queues/<name:str>/pause")
@htmx_only
async def pause(request: Request, name: str) -> HTTPResponse:
    async def act(store, name):
        await store.update_queue(name, {"paused": True})
        request.app.ctx.waker.wake(QUEUES)

    return await _queue_action(request, name, act)


@bp.post("/dashboard/queues/<name:str>/resume")
@htmx_only
async def resume(request: Request, name: str) -> HTTPResponse:
    async def act(store, name):
        await store.update_queue(name, {"paused": False})
        request.app.ctx.waker.wake(QUEUES)

    return await _queue_action(request, name, act)


@bp.post("/dashboard/queues/<name:str>/retry-dead")
@htmx_only
async def retry_dead(request: Request, name: str) -> HTTPResponse:
    async def act(store, name):
        count = await store.retry_dead(name)
        request.app.ctx.waker.wake()
        return f"Queue {name}: {count} dead job(s) back to pending."

    return await _queue_action(request, name, act)


@bp.post("/dashboard/queues/<name:str>/purge")
@htmx_only
async def purge(request: Request, name: str) -> HTTPResponse:
    async def act(store, name):
        count = await store.purge(name, "completed") + await store.purge(name, "cancelled")
        return f"Queue {name}: deleted {count} completed or cancelled job(s)."

    return await _queue_action(request, name, act)


# -- jobs ----------------------------------------------------------------------


async def _job_action(request: Request, job_id: str, act, done: str) -> HTTPResponse:
    flash = None
    if is_uuid(job_id):
        try:
            await act(job_id.lower())
            flash = _ok(done)
        except (NotFound, Conflict) as exc:
            flash = _error(str(exc))
    context = await data.job(request.app, job_id)
    return fragment(request, "_job.html", changed=True, flash=flash, **context)


@bp.post("/dashboard/jobs/<job_id:str>/retry")
@htmx_only
async def retry_job(request: Request, job_id: str) -> HTTPResponse:
    async def act(job_id):
        await request.app.ctx.store.retry_job(job_id)
        request.app.ctx.waker.wake()

    return await _job_action(request, job_id, act, "Back to pending: it will be delivered again.")


@bp.post("/dashboard/jobs/<job_id:str>/cancel")
@htmx_only
async def cancel_job(request: Request, job_id: str) -> HTTPResponse:
    async def act(job_id):
        await request.app.ctx.store.cancel_job(job_id)

    return await _job_action(request, job_id, act, "Cancelled.")


# -- schedules -----------------------------------------------------------------


async def _schedules(request: Request, flash: dict | None) -> HTTPResponse:
    context = await data.schedules(request.app)
    return fragment(request, "_schedules.html", changed=True, flash=flash, **context)


async def _schedule_action(request: Request, schedule_id: str, act) -> HTTPResponse:
    if not is_uuid(schedule_id):
        return await _schedules(request, _error(f"No schedule {schedule_id}."))
    try:
        text = await act(request.app.ctx.store, schedule_id.lower())
    except (NotFound, Conflict, cron.CronError) as exc:
        return await _schedules(request, _error(str(exc)))
    return await _schedules(request, _ok(text) if text else None)


@bp.post("/dashboard/schedules/<schedule_id:str>/enable")
@htmx_only
async def enable(request: Request, schedule_id: str) -> HTTPResponse:
    async def act(store, schedule_id):
        current = await store.get_schedule(schedule_id)
        # As PUT /schedules does: the next run counts from now, not from when it was disabled.
        next_run = cron.next_fire_ms(current["cron_expression"], current["timezone"], now_ms())
        await store.update_schedule(schedule_id, {"enabled": True, "next_run_at": next_run})
        request.app.ctx.waker.wake(SCHEDULES)

    return await _schedule_action(request, schedule_id, act)


@bp.post("/dashboard/schedules/<schedule_id:str>/disable")
@htmx_only
async def disable(request: Request, schedule_id: str) -> HTTPResponse:
    async def act(store, schedule_id):
        await store.update_schedule(schedule_id, {"enabled": False})
        request.app.ctx.waker.wake(SCHEDULES)

    return await _schedule_action(request, schedule_id, act)


@bp.post("/dashboard/schedules/<schedule_id:str>/trigger")
@htmx_only
async def trigger(request: Request, schedule_id: str) -> HTTPResponse:
    async def act(store, schedule_id):
        job = await store.trigger_schedule(schedule_id)
        request.app.ctx.waker.jobs_created((job["queue_name"],))
        return f"Created job …{views.short_id(job['id'])}."

    return await _schedule_action(request, schedule_id, act)
