"""Routes under /schedules."""

from __future__ import annotations

from sanic import Blueprint, Request

from mininq.api import egress, render, validate
from mininq.api.responses import json_response, parse_body, query
from mininq.api.validate import ValidationError
from mininq.clock import now_ms
from mininq.scheduling import cron
from mininq.store import NotFound
from mininq.wake import SCHEDULES

bp = Blueprint("schedules")


def _id(schedule_id: str) -> str:
    if not validate.is_uuid(schedule_id):
        raise NotFound(f"schedule {schedule_id} not found")
    return schedule_id.lower()


def _next_run(expression: str, timezone: str) -> int:
    """Validate the expression and zone; the first fire time from now."""
    try:
        cron.parse_timezone(timezone)
    except cron.CronError as exc:
        raise ValidationError("timezone", _strip(str(exc), "timezone")) from None
    try:
        expression = cron.parse_cron(expression)
        return cron.next_fire_ms(expression, timezone, now_ms())
    except cron.CronError as exc:
        raise ValidationError("cron_expression", _strip(str(exc), "cron_expression")) from None


def _strip(message: str, field: str) -> str:
    prefix = f"{field}: "
    return message.removeprefix(prefix)


@bp.post("/schedules")
async def create_schedule(request: Request):
    spec = validate.schedule(parse_body(request), create=True)
    egress.check(request.app, "callback_url", spec["callback_url"])
    spec["next_run_at"] = _next_run(spec["cron_expression"], spec["timezone"])
    row = await request.app.ctx.store.create_schedule(spec)
    request.app.ctx.waker.wake(SCHEDULES)
    return json_response(render.schedule(row), 201)


@bp.get("/schedules")
async def list_schedules(request: Request):
    p = validate.schedule_filters(query(request))
    rows = await request.app.ctx.store.list_schedules(p["limit"], p["offset"], p["after"])
    return json_response([render.schedule(r) for r in rows])


@bp.get("/schedules/<schedule_id:str>")
async def get_schedule(request: Request, schedule_id: str):
    return json_response(render.schedule(await request.app.ctx.store.get_schedule(_id(schedule_id))))


@bp.put("/schedules/<schedule_id:str>")
async def update_schedule(request: Request, schedule_id: str):
    store = request.app.ctx.store
    changes = validate.schedule(parse_body(request), create=False)
    if "callback_url" in changes:
        egress.check(request.app, "callback_url", changes["callback_url"])
    current = await store.get_schedule(_id(schedule_id))
    if "cron_expression" in changes or "timezone" in changes or changes.get("enabled"):
        changes["next_run_at"] = _next_run(
            changes.get("cron_expression", current["cron_expression"]),
            changes.get("timezone", current["timezone"]),
        )
    row = await store.update_schedule(_id(schedule_id), changes)
    request.app.ctx.waker.wake(SCHEDULES)
    return json_response(render.schedule(row))


@bp.delete("/schedules/<schedule_id:str>")
async def delete_schedule(request: Request, schedule_id: str):
    await request.app.ctx.store.delete_schedule(_id(schedule_id))
    return json_response({"status": "deleted", "id": schedule_id.lower()})


@bp.post("/schedules/<schedule_id:str>/trigger")
async def trigger_schedule(request: Request, schedule_id: str):
    job = await request.app.ctx.store.trigger_schedule(_id(schedule_id))
    request.app.ctx.waker.jobs_created((job["queue_name"],))
    return json_response(render.job(job), 201)
