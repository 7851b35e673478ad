"""Routes under /queues."""

from __future__ import annotations

from sanic import Blueprint, Request

from mininq.api import render, validate
from mininq.api.responses import json_response, parse_body, query
from mininq.store import NotFound
from mininq.wake import QUEUES

bp = Blueprint("queues")


def _name(name: str) -> str:
    if not validate.QUEUE_NAME.match(name):
        raise NotFound(f"queue {name!r} not found")
    return name


def _queue(request: Request, row: dict) -> dict:
    return render.queue(row, request.app.ctx.config.defaults)


@bp.post("/queues")
async def create_queue(request: Request):
    name, settings = validate.queue_settings(parse_body(request), create=True)
    row = await request.app.ctx.store.create_queue(name, settings)
    request.app.ctx.waker.wake(QUEUES)
    return json_response(_queue(request, row), 201)


@bp.get("/queues")
async def list_queues(request: Request):
    rows = await request.app.ctx.store.list_queues()
    return json_response([_queue(request, r) for r in rows])


@bp.get("/queues/<name:str>")
async def get_queue(request: Request, name: str):
    return json_response(_queue(request, await request.app.ctx.store.get_queue(_name(name))))


@bp.put("/queues/<name:str>")
async def update_queue(request: Request, name: str):
    _, changes = validate.queue_settings(parse_body(request), create=False)
    row = await request.app.ctx.store.update_queue(_name(name), changes)
    request.app.ctx.waker.wake(QUEUES)
    return json_response(_queue(request, row))


@bp.delete("/queues/<name:str>")
async def delete_queue(request: Request, name: str):
    await request.app.ctx.store.delete_queue(_name(name))
    request.app.ctx.waker.wake(QUEUES)
    return json_response({"status": "deleted", "name": name})


@bp.post("/queues/<name:str>/pause")
async def pause_queue(request: Request, name: str):
    row = await request.app.ctx.store.update_queue(_name(name), {"paused": True})
    request.app.ctx.waker.wake(QUEUES)
    return json_response(_queue(request, row))


@bp.post("/queues/<name:str>/resume")
async def resume_queue(request: Request, name: str):
    row = await request.app.ctx.store.update_queue(_name(name), {"paused": False})
    request.app.ctx.waker.wake(QUEUES)
    return json_response(_queue(request, row))


@bp.post("/queues/<name:str>/retry-dead")
async def retry_dead(request: Request, name: str):
    count = await request.app.ctx.store.retry_dead(_name(name))
    request.app.ctx.waker.wake()
    return json_response({"retried": count})


@bp.post("/queues/<name:str>/purge")
async def purge(request: Request, name: str):
    status = validate.purge_status(query(request))
    return json_response({"purged": await request.app.ctx.store.purge(_name(name), status)})
