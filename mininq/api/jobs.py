"""Routes under /jobs."""

from __future__ import annotations

from sanic import Blueprint, Request

from mininq.api import egress, render, validate
from mininq.api.responses import json_response, parse_body, query
from mininq.store import NotFound

bp = Blueprint("jobs")


@bp.post("/jobs")
async def create_job(request: Request):
    spec = validate.job_create(parse_body(request))
    egress.check(request.app, "callback_url", spec["callback_url"])
    [(job, created)] = await request.app.ctx.store.create_jobs([spec])
    if created:
        request.app.ctx.waker.jobs_created((spec["queue_name"],))
    return json_response(render.job(job), 201 if created else 200)


@bp.post("/jobs/batch")
async def create_batch(request: Request):
    specs = validate.job_batch(parse_body(request))
    for i, spec in enumerate(specs):
        egress.check(request.app, f"jobs[{i}].callback_url", spec["callback_url"])
    results = await request.app.ctx.store.create_jobs(specs)
    request.app.ctx.waker.jobs_created({spec["queue_name"] for spec in specs})
    return json_response({"jobs": [render.job(job) for job, _ in results]}, 201)


@bp.get("/jobs")
async def list_jobs(request: Request):
    filters = validate.job_filters(query(request))
    rows = await request.app.ctx.store.list_jobs(**filters)
    return json_response([render.job(r) for r in rows])


def _job_id(job_id: str) -> str:
    if not validate.is_uuid(job_id):
        raise NotFound(f"job {job_id} not found")
    return job_id.lower()


@bp.get("/jobs/<job_id:str>")
async def get_job(request: Request, job_id: str):
    job = await request.app.ctx.store.get_job(_job_id(job_id))
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return json_response(render.job(job))


@bp.get("/jobs/<job_id:str>/attempts")
async def list_attempts(request: Request, job_id: str):
    rows = await request.app.ctx.store.list_attempts(_job_id(job_id))
    return json_response([render.attempt(r) for r in rows])


@bp.delete("/jobs/<job_id:str>")
async def cancel_job(request: Request, job_id: str):
    job = await request.app.ctx.store.cancel_job(_job_id(job_id))
    return json_response({"status": "cancelled", "id": job["id"]})


@bp.post("/jobs/<job_id:str>/retry")
async def retry_job(request: Request, job_id: str):
    job = await request.app.ctx.store.retry_job(_job_id(job_id))
    request.app.ctx.waker.wake()
    return json_response(render.job(job))
