"""/health, /nodes, /metrics (JSON) and /metrics/prometheus."""

from __future__ import annotations

import asyncio
import time

from sanic import Blueprint, HTTPResponse, Request, Sanic

from mininq import __version__
from mininq.api.responses import json_response
from mininq.clock import now_ms, to_rfc3339
from mininq.engine.adaptive import STATE_NUMBER
from mininq.faults import FAULTS
from mininq.store import Unavailable
from mininq.store.rules import HISTOGRAM_BUCKETS, STATUSES, busiest_first

bp = Blueprint("system")


@bp.get("/health")
async def health(request: Request):
    try:
        await asyncio.wait_for(request.app.ctx.store.health_write(), timeout=5)
    except Unavailable as exc:
        FAULTS.report(exc, "GET /health")
        return json_response({"error": str(exc), "status": 503, "version": __version__}, 503)
    except Exception as exc:  # noqa: BLE001 - any failure to write means "not healthy"
        return json_response(
            {"error": f"database: can't be written ({exc})", "status": 503,
             "version": __version__, **_where(request)}, 503
        )
    return json_response({"status": "ok", "version": __version__, **_where(request)})


def _where(request: Request) -> dict:
    """Which database this node uses, and which node answered."""
    return {"database": request.app.ctx.backend_name, "node": request.app.ctx.node.id}


@bp.get("/nodes")
async def nodes(request: Request):
    return json_response([render_node(r) for r in await node_rows(request.app)])


async def node_rows(app: Sanic) -> list[dict]:
    """Every node's row, `alive` if seen within node_timeout_secs (shared with the dashboard)."""
    ctx = app.ctx
    return await ctx.store.list_nodes(ctx.node, ctx.config.worker.node_timeout_secs * 1000)


def render_node(row: dict) -> dict:
    return {
        "id": row["id"], "hostname": row["hostname"], "pid": row["pid"],
        "version": row["version"], "started_at": to_rfc3339(row["started_at"]),
        "last_seen_at": to_rfc3339(row["last_seen_at"]), "in_flight": row["in_flight"],
        "alive": bool(row["alive"]), "self": bool(row["self"]),
    }


@bp.get("/metrics")
async def metrics(request: Request):
    stats = await request.app.ctx.store.stats()
    totals = dict.fromkeys(STATUSES, 0)
    per_queue: dict[str, dict[str, int]] = {}
    for row in stats["counts"]:
        totals[row["status"]] = totals.get(row["status"], 0) + row["n"]
        per_queue.setdefault(row["queue_name"], {})[row["status"]] = row["n"]
    return json_response(
        {
            "uptime_secs": int(time.monotonic() - request.app.ctx.started),
            "version": __version__,
            "jobs": {"total": sum(totals.values()), **totals},
            "queues": [
                {
                    "name": q["name"],
                    "paused": bool(q["paused"]),
                    "depth": per_queue.get(q["name"], {}).get("pending", 0),
                    "in_flight": per_queue.get(q["name"], {}).get("running", 0),
                }
                for q in stats["queues"]
            ],
            "schedules": stats["schedules"],
        }
    )


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@bp.get("/metrics/prometheus")
async def prometheus(request: Request):
    stats = await request.app.ctx.store.stats()
    now = now_ms()
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")

    family("mininq_jobs", "gauge", "Jobs by queue and status.")
    counts = {(r["queue_name"], r["status"]): r["n"] for r in stats["counts"]}
    queues = [q["name"] for q in stats["queues"]]
    for q in queues:
        for status in STATUSES:
            lines.append(f'mininq_jobs{{queue="{_label(q)}",status="{status}"}} {counts.get((q, status), 0)}')
    counters: dict[str, list[dict]] = {}
    for c in stats["counters"]:
        counters.setdefault(c["name"], []).append(c)
    family("mininq_jobs_created_total", "counter", "Jobs created, by queue.")
    for c in counters.get("jobs_created", []):
        lines.append(f'mininq_jobs_created_total{{queue="{_label(c["queue_name"])}"}} {int(c["value"])}')
    family("mininq_deliveries_total", "counter", "Delivery attempts by queue and outcome.")
    for c in counters.get("deliveries", []):
        lines.append(
            f'mininq_deliveries_total{{queue="{_label(c["queue_name"])}",outcome="{c["key"]}"}} {int(c["value"])}'
        )
    family("mininq_delivery_duration_seconds", "histogram", "Duration of delivery attempts.")
    buckets: dict[str, dict[str, float]] = {}
    for c in counters.get("delivery_seconds_bucket", []):
        buckets.setdefault(c["queue_name"], {})[c["key"]] = c["value"]
    sums = {c["queue_name"]: c["value"] for c in counters.get("delivery_seconds_sum", [])}
    totals = {c["queue_name"]: c["value"] for c in counters.get("delivery_seconds_count", [])}
    for q in sorted(totals):
        label = _label(q)
        for le in HISTOGRAM_BUCKETS:
            n = int(buckets.get(q, {}).get(repr(le), 0))
            lines.append(f'mininq_delivery_duration_seconds_bucket{{queue="{label}",le="{le}"}} {n}')
        lines.append(f'mininq_delivery_duration_seconds_bucket{{queue="{label}",le="+Inf"}} {int(totals[q])}')
        lines.append(f'mininq_delivery_duration_seconds_sum{{queue="{label}"}} {sums.get(q, 0):.6f}')
        lines.append(f'mininq_delivery_duration_seconds_count{{queue="{label}"}} {int(totals[q])}')
    family("mininq_queue_oldest_pending_age_seconds", "gauge", "Age of the oldest pending job.")
    for q in queues:
        created = stats["oldest_pending"].get(q)
        age = max(0.0, (now - created) / 1000) if created is not None else 0.0
        lines.append(f'mininq_queue_oldest_pending_age_seconds{{queue="{_label(q)}"}} {age:.3f}')
    family("mininq_in_flight", "gauge", "Deliveries in flight, by queue.")
    for q in queues:
        lines.append(f'mininq_in_flight{{queue="{_label(q)}"}} {counts.get((q, "running"), 0)}')
    family("mininq_schedule_fires_total", "counter", "Jobs created by schedules firing.")
    fires = sum(int(c["value"]) for c in counters.get("schedule_fires", []))
    lines.append(f"mininq_schedule_fires_total {fires}")
    dests = busiest_first(await request.app.ctx.store.list_destinations())
    for name, kind, text, value in (
        ("state", "gauge", "Breaker state per destination: 0 closed, 1 half_open, 2 open.",
         lambda r: STATE_NUMBER.get(r["state"], 0)),
        ("in_flight", "gauge", "Deliveries in flight per destination.", lambda r: r["in_flight"]),
        ("limit", "gauge", "Adaptive in-flight limit per destination.", lambda r: r["limit"]),
    ):
        family(f"mininq_destination_{name}", kind, text)
        for r in dests:
            lines.append(f'mininq_destination_{name}{{destination="{_label(r["destination"])}",'
                         f'node="{_label(r["node"])}"}} {value(r)}')
    family("mininq_engine_up", "gauge", "1 while the engine process is running.")
    lines.append(f"mininq_engine_up {1 if await request.app.ctx.engine_up() else 0}")
    return HTTPResponse(
        "\n".join(lines) + "\n", content_type="text/plain; version=0.0.4; charset=utf-8"
    )
