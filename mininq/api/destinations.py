"""GET /destinations and POST /destinations/reset (SPEC §10).

The engine keeps each destination's state in memory and writes it to the
destinations table with its outcome batches (at most a quarter second late);
these routes read that table, with each destination's pending jobs counted
now. A reset is asked through the table and a wake, and applied by the
engine when it re-reads its settings.
"""

from __future__ import annotations

from sanic import Blueprint, Request, Sanic

from mininq.api.responses import json_response, parse_body
from mininq.api.validate import ValidationError
from mininq.clock import to_rfc3339
from mininq.store import NotFound
from mininq.store.rules import busiest_first
from mininq.wake import QUEUES

bp = Blueprint("destinations")


def render(row: dict) -> dict:
    return {
        "destination": row["destination"], "state": row["state"], "limit": row["limit"],
        "in_flight": row["in_flight"], "pending": row["pending"],
        "consecutive_failures": row["consecutive_failures"], "last_status": row["last_status"],
        "last_error": row["last_error"],
        "open_until": None if row["open_until"] is None else to_rfc3339(row["open_until"]),
        "delivered": row["delivered"], "failed": row["failed"], "node": row["node"],
    }


async def destinations(app: Sanic) -> list[dict]:
    """Every node's view, busiest first (shared with the dashboard)."""
    return [render(r) for r in busiest_first(await app.ctx.store.list_destinations())]


async def reset(app: Sanic, destination: str) -> dict:
    """Reset one destination on every node; this node's row (else the first) as it now reads."""
    limit = app.ctx.config.destination_limit  # the limit a reset starts from
    rows = await app.ctx.store.reset_destination(destination, limit)
    if not rows:
        raise NotFound(f"destination {destination!r} not found")
    app.ctx.waker.wake(QUEUES)
    mine = [r for r in rows if r["node"] == app.ctx.node.id]
    return render((mine or rows)[0])


@bp.get("/destinations")
async def list_destinations(request: Request):
    return json_response(await destinations(request.app))


@bp.post("/destinations/reset")
async def reset_destination(request: Request):
    body = parse_body(request)
    if not isinstance(body, dict):
        raise ValidationError("body", "expected a JSON object")
    destination = body.get("destination")
    if not isinstance(destination, str):
        raise ValidationError("destination", "required, a string such as "
                                             "\"https://example.com:443\"")
    return json_response(await reset(request.app, destination))
