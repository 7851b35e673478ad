"""GET /openapi.json: an OpenAPI 3.1 description of every route of the HTTP API.

Plain data, so it costs no dependency. The request schemas are derived from the
field tables of `mininq.fields`, the same ones validation checks against, so
the document and the server can't disagree; the tests compare the paths with
the app's router and check real responses against these schemas.
"""

from __future__ import annotations

from typing import Any

import orjson
from sanic import Blueprint, HTTPResponse, Request

from mininq import __version__
from mininq import fields as f
from mininq.api.history import DEFAULT_MINUTES
from mininq.fields import NO_DEFAULT, Field
from mininq.metrics.history import MAX_MINUTES

bp = Blueprint("openapi")

Schema = dict[str, Any]

JSON = "application/json"
STATUSES = list(f.JOB_STATUSES)


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    """The same schema, also allowing JSON null (3.1 style: a type list, or anyOf)."""
    if "type" in schema and isinstance(schema["type"], str):
        out = dict(schema)
        out["type"] = [schema["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [schema, {"type": "null"}]}


def _int(lo: int | None = None, hi: int | None = None, description: str = "") -> Schema:
    out: Schema = {"type": "integer"}
    if lo is not None:
        out["minimum"] = lo
    if hi is not None:
        out["maximum"] = hi
    if description:
        out["description"] = description
    return out


def _obj(properties: dict[str, Schema], required: list[str] | None = None, **extra: Any) -> Schema:
    out: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = required
    out.update(extra)
    return out


def _closed(properties: dict[str, Schema], **extra: Any) -> Schema:
    """A response object: every listed field is always present, nothing else."""
    return _obj(properties, list(properties), **extra)


TIME: Schema = {
    "type": "string",
    "format": "date-time",
    "description": "RFC 3339 UTC with milliseconds, e.g. 2026-11-27T10:00:01.234Z",
}
ID: Schema = {
    "type": "string",
    "format": "uuid",
    "description": "UUIDv7: id order is creation order",
}
QUEUE_NAME: Schema = {"type": "string", "pattern": f.QUEUE_NAME.pattern}
HEADERS: Schema = {
    "type": "object",
    "propertyNames": {"pattern": f.HEADER_NAME.pattern},
    "additionalProperties": {
        "type": "string",
        "maxLength": f.MAX_HEADER_VALUE,
        "pattern": "^[^\\r\\n\\x00]*$",
    },
    "maxProperties": f.MAX_HEADERS,
    "description": "added to the delivery; names mininq sets itself (Content-Type, "
    "User-Agent, X-Mininq-*, webhook-*, hop-by-hop headers) are refused",
}
ANY: Schema = {"description": "any JSON value"}


def _kind(spec: Field) -> Schema:
    if spec.kind == "int":
        return _int(*spec.int_bounds)
    if spec.kind == "number":
        return {"type": "number", "exclusiveMinimum": spec.lo, "maximum": spec.hi}
    if spec.kind in ("string", "url"):
        out = {"type": "string", "minLength": int(spec.lo or 1), "maxLength": int(spec.hi or 0)}
        return {**out, "format": "uri"} if spec.kind == "url" else out
    if spec.kind == "enum":
        return {"type": "string", "enum": list(spec.choices)}
    return {
        "bool": {"type": "boolean"}, "queue": QUEUE_NAME, "headers": HEADERS, "json": ANY,
        "time": TIME,
    }[spec.kind]  # fmt: skip


def field_schema(spec: Field) -> Schema:
    """The JSON schema of one declared field."""
    out = dict(_kind(spec))
    if spec.description:
        out["description"] = spec.description
    if spec.default is not NO_DEFAULT:
        out["default"] = spec.default
    return _nullable(out) if spec.nullable else out


def body_schema(table: dict[str, Field], **extra: Any) -> Schema:
    """A request body: the table's fields, its required ones, nothing else."""
    required = [name for name, spec in table.items() if spec.required]
    return _obj({k: field_schema(s) for k, s in table.items()}, required, **extra)


# Resolved job settings in answers: always concrete values.
JOB_DEFAULTS = {k: field_schema(s) for k, s in f.JOB_DEFAULTS.items()}
URL = field_schema(f.URL)

JOB = _closed(
    {
        "id": ID,
        "queue_name": QUEUE_NAME,
        "status": {"type": "string", "enum": STATUSES},
        "priority": _int(*f.PRIORITY),
        "callback_url": URL,
        "payload": ANY,
        "headers": _nullable(HEADERS),
        **JOB_DEFAULTS,
        "idempotency_key": _nullable({"type": "string"}),
        "attempt": _int(0, description="attempts started"),
        "visible_at": TIME,
        "started_at": _nullable(TIME),
        "completed_at": _nullable(TIME),
        "created_at": TIME,
        "updated_at": TIME,
        "result": _nullable({"type": "string", "description": "body of the 2xx answer"}),
        "last_error": _nullable({"type": "string"}),
        "schedule_id": _nullable(ID),
    }
)

ATTEMPT = _closed(
    {
        "attempt": _int(1),
        "started_at": TIME,
        "duration_ms": _int(0),
        "status_code": _nullable(_int(100, 599)),
        "outcome": {"type": "string", "enum": ["completed", "retry", "dead"]},
        "error": _nullable({"type": "string"}),
    }
)

QUEUE = _closed(
    {
        "name": QUEUE_NAME,
        "max_concurrency": _int(1),
        "rate_limit_rps": _nullable({"type": "number"}),
        "rate_limit_burst": _nullable({"type": "number"}),
        "paused": {"type": "boolean"},
        **JOB_DEFAULTS,
        **{s: _int(0) for s in STATUSES},
        "created_at": TIME,
        "updated_at": TIME,
    },
    description="Effective settings (the queue's own value, else [defaults]) and job counts.",
)

SCHEDULE = _closed(
    {
        "id": ID,
        "cron_expression": {"type": "string"},
        "timezone": {"type": "string"},
        "callback_url": URL,
        "queue_name": QUEUE_NAME,
        "payload": ANY,
        "headers": _nullable(HEADERS),
        "max_retries": _nullable(_int(0)),
        "timeout_ms": _nullable(_int(1)),
        "enabled": {"type": "boolean"},
        "last_run_at": _nullable(TIME),
        "next_run_at": _nullable(TIME),
        "created_at": TIME,
        "updated_at": TIME,
    }
)

COUNTS = {s: _int(0) for s in STATUSES}
METRICS = _closed(
    {
        "uptime_secs": _int(0),
        "version": {"type": "string"},
        "jobs": _closed({"total": _int(0), **COUNTS}),
        "queues": {
            "type": "array",
            "items": _closed(
                {
                    "name": QUEUE_NAME,
                    "paused": {"type": "boolean"},
                    "depth": _int(0, description="pending jobs"),
                    "in_flight": _int(0, description="running jobs"),
                }
            ),
        },
        "schedules": _closed({"total": _int(0), "enabled": _int(0)}),
    }
)

SCHEMAS: dict[str, Schema] = {
    "Error": _closed(
        {
            "error": {"type": "string", "description": "what is wrong, naming the field"},
            "status": _int(400, 599, "the HTTP status code"),
        }
    ),
    "Health": _obj(
        {
            "status": {"type": "string", "enum": ["ok", "error"]},
            "version": {"type": "string"},
            "error": {"type": "string", "description": "only when status is error"},
            "database": {"type": "string", "enum": ["sqlite", "postgresql"]},
            "node": {"type": "string", "description": "id of the node that answered"},
        },
        ["status", "version", "database", "node"],
    ),
    "Node": _closed(
        {
            "id": {"type": "string"},
            "hostname": {"type": "string"},
            "pid": _int(1, None, "the node's main process"),
            "version": {"type": "string"},
            "started_at": TIME,
            "last_seen_at": {**TIME, "description": "its last heartbeat"},
            "in_flight": _int(0, None, "deliveries in flight as of its last heartbeat"),
            "alive": {"type": "boolean"},
            "self": {"type": "boolean", "description": "the node that answered"},
        }
    ),
    "Unhealthy": _obj(
        {
            "error": {"type": "string", "description": "what can't be done and why"},
            "status": {"const": 503},
            "version": {"type": "string"},
            "database": {"type": "string", "enum": ["sqlite", "postgresql"],
                         "description": "absent when the failure is a storage fault "
                         "(disk full, locked...)"},
            "node": {"type": "string", "description": "id of the node that answered; absent "
                     "when the failure is a storage fault (disk full, locked...)"},
        },
        ["error", "status", "version"],
    ),
    "Metrics": METRICS,
    "JobCreate": body_schema(
        f.JOB, description="Unset job defaults come from the queue, else from [defaults]."
    ),
    "Job": JOB,
    "JobBatchCreate": _obj(
        {
            "jobs": {
                "type": "array",
                "items": _ref("JobCreate"),
                "minItems": 1,
                "maxItems": f.MAX_BATCH,
            }
        },
        ["jobs"],
    ),
    "JobBatch": _closed({"jobs": {"type": "array", "items": _ref("Job")}}),
    "JobCancelled": _closed({"status": {"const": "cancelled"}, "id": ID}),
    "Attempt": ATTEMPT,
    "QueueCreate": body_schema(f.QUEUE_CREATE),
    "QueueUpdate": body_schema(f.QUEUE_UPDATE, minProperties=1),
    "Queue": QUEUE,
    "QueueDeleted": _closed({"status": {"const": "deleted"}, "name": QUEUE_NAME}),
    "RetriedCount": _closed({"retried": _int(0)}),
    "PurgedCount": _closed({"purged": _int(0)}),
    "ScheduleCreate": body_schema(f.SCHEDULE_CREATE),
    "ScheduleUpdate": body_schema(
        f.SCHEDULE_UPDATE,
        minProperties=1,
        description="A new cron_expression or timezone (or enabling) recomputes next_run_at.",
    ),
    "Schedule": SCHEDULE,
    "ScheduleDeleted": _closed({"status": {"const": "deleted"}, "id": ID}),
}

ERRORS = {
    "400": (
        "BadRequest",
        "malformed JSON, a wrong type, an out-of-range value or an unknown field",
    ),
    "401": ("Unauthorized", "api_token is set and the request has no valid bearer token"),
    "404": ("NotFound", "no such job, queue or schedule"),
    "409": ("Conflict", "the change conflicts with the current state"),
    "413": ("TooLarge", "the body is larger than server.max_body_bytes"),
    "503": ("Unavailable", "the database can't be used now: locked, read-only or failing I/O"),
    "507": ("InsufficientStorage", "the disk holding the database is full"),
}


def _json(schema: Schema) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def _ok(description: str, schema: Schema) -> dict[str, Any]:
    return {"description": description, "content": _json(schema)}


def _array(name: str) -> Schema:
    return {"type": "array", "items": _ref(name)}


def _param(name: str, where: str, schema: Schema, description: str, required: bool = False) -> dict:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }


PARAMETERS = {
    "JobId": _param("id", "path", ID, "a job id"),
    "QueueName": _param("name", "path", QUEUE_NAME, "a queue name"),
    "ScheduleId": _param("id", "path", ID, "a schedule id"),
    "Limit": _param(
        "limit", "query", {**_int(1), "default": 50}, "page size; above 1000 means 1000"
    ),
    "Offset": _param("offset", "query", {**_int(0), "default": 0}, "rows to skip"),
    "After": _param(
        "after",
        "query",
        ID,
        "keyset cursor: only rows older than this id (an id that no longer exists works too)",
    ),
}


def _p(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    errors: tuple[str, ...] = (),
    body: str | None = None,
    parameters: list[dict] | None = None,
    public: bool = False,
    tag: str,
) -> dict[str, Any]:
    """One operation; every route but /health may answer 401, every body route 400 and 413."""
    codes = set(errors) | ({"400", "413"} if body else set()) | (set() if public else {"401"})
    out: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": dict(responses)}
    for code in sorted(codes):
        out["responses"].setdefault(code, {"$ref": f"#/components/responses/{ERRORS[code][0]}"})
    if body:
        out["requestBody"] = {"required": True, "content": _json(_ref(body))}
    if parameters:
        out["parameters"] = parameters
    if public:
        out["security"] = []
    return out


PATHS: dict[str, dict[str, Any]] = {
    "/health": {
        "get": _op(
            "Liveness: answers 503 when the database can't be written",
            {
                "200": _ok("healthy", _ref("Health")),
                "503": _ok("the database can't be written", _ref("Unhealthy")),
            },
            public=True,
            tag="system",
        )
    },
    "/jobs": {
        "post": _op(
            "Create a job",
            {
                "201": _ok("created and committed to disk", _ref("Job")),
                "200": _ok("a job with this idempotency_key exists: that job", _ref("Job")),
            },
            body="JobCreate",
            tag="jobs",
        ),
        "get": _op(
            "List jobs, newest first",
            {"200": _ok("jobs", _array("Job"))},
            errors=("400",),
            parameters=[
                _param("queue", "query", QUEUE_NAME, "only this queue"),
                _param("status", "query", {"type": "string", "enum": STATUSES}, "only this status"),
                _param("schedule_id", "query", ID, "only jobs created by this schedule"),
                _p("Limit"),
                _p("Offset"),
                _p("After"),
            ],
            tag="jobs",
        ),
    },
    "/jobs/batch": {
        "post": _op(
            f"Create up to {f.MAX_BATCH} jobs in one transaction: all or none",
            {"201": _ok("created, in the order given", _ref("JobBatch"))},
            body="JobBatchCreate",
            tag="jobs",
        )
    },
    "/jobs/{id}": {
        "parameters": [_p("JobId")],
        "get": _op("One job", {"200": _ok("the job", _ref("Job"))}, errors=("404",), tag="jobs"),
        "delete": _op(
            "Cancel a pending job",
            {"200": _ok("cancelled", _ref("JobCancelled"))},
            errors=("404", "409"),
            tag="jobs",
        ),
    },
    "/jobs/{id}/attempts": {
        "parameters": [_p("JobId")],
        "get": _op(
            "Every delivery attempt of a job, in attempt order",
            {"200": _ok("attempts", _array("Attempt"))},
            errors=("404",),
            tag="jobs",
        ),
    },
    "/jobs/{id}/retry": {
        "parameters": [_p("JobId")],
        "post": _op(
            "Put a dead or cancelled job back to pending with attempt 0",
            {"200": _ok("the job, pending again", _ref("Job"))},
            errors=("404", "409"),
            tag="jobs",
        ),
    },
    "/queues": {
        "post": _op(
            "Create a queue",
            {"201": _ok("created", _ref("Queue"))},
            body="QueueCreate",
            errors=("409",),
            tag="queues",
        ),
        "get": _op("Every queue, by name", {"200": _ok("queues", _array("Queue"))}, tag="queues"),
    },
    "/queues/{name}": {
        "parameters": [_p("QueueName")],
        "get": _op(
            "One queue", {"200": _ok("the queue", _ref("Queue"))}, errors=("404",), tag="queues"
        ),
        "put": _op(
            "Change the given settings (applies from the next claim)",
            {"200": _ok("the queue", _ref("Queue"))},
            body="QueueUpdate",
            errors=("404",),
            tag="queues",
        ),
        "delete": _op(
            "Delete a queue and its finished jobs; refused while jobs are pending or running",
            {"200": _ok("deleted", _ref("QueueDeleted"))},
            errors=("404", "409"),
            tag="queues",
        ),
    },
    "/queues/{name}/pause": {
        "parameters": [_p("QueueName")],
        "post": _op(
            "Stop claiming the queue's jobs (running ones finish)",
            {"200": _ok("the queue", _ref("Queue"))},
            errors=("404",),
            tag="queues",
        ),
    },
    "/queues/{name}/resume": {
        "parameters": [_p("QueueName")],
        "post": _op(
            "Claim the queue's jobs again",
            {"200": _ok("the queue", _ref("Queue"))},
            errors=("404",),
            tag="queues",
        ),
    },
    "/queues/{name}/retry-dead": {
        "parameters": [_p("QueueName")],
        "post": _op(
            "Every dead job of the queue back to pending",
            {"200": _ok("how many", _ref("RetriedCount"))},
            errors=("404",),
            tag="queues",
        ),
    },
    "/queues/{name}/purge": {
        "parameters": [_p("QueueName")],
        "post": _op(
            "Delete the queue's jobs of one status (never running ones)",
            {"200": _ok("how many", _ref("PurgedCount"))},
            errors=("400", "404"),
            parameters=[
                _param(
                    "status",
                    "query",
                    {"type": "string", "enum": list(f.PURGE_STATUSES)},
                    "the status of the jobs to delete",
                    required=True,
                )
            ],
            tag="queues",
        ),
    },
    "/schedules": {
        "post": _op(
            "Create a schedule",
            {"201": _ok("created, with next_run_at", _ref("Schedule"))},
            body="ScheduleCreate",
            tag="schedules",
        ),
        "get": _op(
            "List schedules, newest first",
            {"200": _ok("schedules", _array("Schedule"))},
            errors=("400",),
            parameters=[_p("Limit"), _p("Offset"), _p("After")],
            tag="schedules",
        ),
    },
    "/schedules/{id}": {
        "parameters": [_p("ScheduleId")],
        "get": _op(
            "One schedule",
            {"200": _ok("the schedule", _ref("Schedule"))},
            errors=("404",),
            tag="schedules",
        ),
        "put": _op(
            "Change the given fields",
            {"200": _ok("the schedule", _ref("Schedule"))},
            body="ScheduleUpdate",
            errors=("404",),
            tag="schedules",
        ),
        "delete": _op(
            "Delete a schedule (its jobs stay)",
            {"200": _ok("deleted", _ref("ScheduleDeleted"))},
            errors=("404",),
            tag="schedules",
        ),
    },
    "/schedules/{id}/trigger": {
        "parameters": [_p("ScheduleId")],
        "post": _op(
            "Create the schedule's job now, whatever the cron says",
            {"201": _ok("the new job", _ref("Job"))},
            errors=("404",),
            tag="schedules",
        ),
    },
    "/nodes": {
        "get": _op(
            "The nodes sharing this database (one with SQLite); dead ones for an hour",
            {"200": _ok("nodes", _array("Node"))},
            tag="system",
        ),
    },
    "/metrics": {
        "get": _op("Counts as JSON", {"200": _ok("metrics", _ref("Metrics"))}, tag="system"),
    },
    "/metrics/prometheus": {
        "get": _op(
            "Counts, delivery outcomes and latency in the Prometheus text format",
            {
                "200": {
                    "description": "Prometheus text exposition format 0.0.4",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
            tag="system",
        ),
    },
    "/openapi.json": {
        "get": _op(
            "This document",
            {"200": _ok("OpenAPI 3.1", {"type": "object"})},
            tag="system",
        ),
    },
    "/dashboard": {
        "get": _op(
            "The web dashboard (HTML); without a token it shows a sign-in page with 401",
            {
                "200": {
                    "description": "the dashboard",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                },
                "401": {
                    "description": "the sign-in page",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                },
            },
            tag="dashboard",
        ),
    },
}


# -- destinations (SPEC §10): their schemas and routes in one place --------------
SCHEMAS["Destination"] = _closed(
    {
        "destination": {"type": "string", "description": "scheme://host:port"},
        "state": {"type": "string", "enum": ["closed", "open", "half_open"]},
        "limit": _int(1, None, "in-flight deliveries allowed now (adaptive)"),
        "in_flight": _int(0),
        "pending": _int(0, None, "pending jobs for this destination"),
        "consecutive_failures": _int(0),
        "last_status": _nullable(_int(100, 599)),
        "last_error": _nullable({"type": "string"}),
        "open_until": _nullable({**TIME, "description": "end of the cool-down or pause"}),
        "delivered": _int(0, None, "attempts answered 2xx"),
        "failed": _int(0, None, "attempts that counted as failures"),
        "node": {"type": "string", "description": "the node whose view this is"},
    }
)
SCHEMAS["DestinationReset"] = _obj(
    {"destination": {"type": "string", "description": "scheme://host:port"}}, ["destination"]
)
PATHS["/destinations"] = {
    "get": _op(
        "Destinations seen in the last hour, busiest first",
        {"200": _ok("destinations", _array("Destination"))},
        tag="system",
    ),
}
PATHS["/destinations/reset"] = {
    "post": _op(
        "Close a destination's breaker, end its failure run, restore its limit",
        {"200": _ok("the destination", _ref("Destination"))},
        errors=("404",),
        body="DestinationReset",
        tag="system",
    ),
}
# -- GET /metrics/history (SPEC §11) ---------------------------------------------
SCHEMAS["HistoryMinute"] = _closed(
    {
        "minute": {**TIME, "description": "start of the minute, RFC 3339 UTC"},
        "created": _int(0, description="jobs created"),
        "completed": _int(0, description="attempts answered 2xx"),
        "retried": _int(0, description="failed attempts with retries left (lost ones too)"),
        "dead": _int(0, description="attempts after which the job was dead"),
        "duration_p50_ms": _int(0, description="median attempt duration; 0 without any"),
        "duration_p99_ms": _int(0, description="99th percentile attempt duration; 0 without any"),
    }
)
PATHS["/metrics/history"] = {
    "get": _op(
        "Per-minute activity, oldest first; the last object is the current minute",
        {
            "200": _ok("one object per minute", _array("HistoryMinute")),
        },
        errors=("400",),
        parameters=[
            _param("minutes", "query", {**_int(1, MAX_MINUTES), "default": DEFAULT_MINUTES}, "how many minutes"),
            _param("queue", "query", QUEUE_NAME, "only this queue (an unknown one gives zeros)"),
        ],
        tag="system",
    ),
}


def _add_storage_errors(paths: dict[str, dict[str, Any]]) -> None:
    """Every route that reads the database may find it unavailable (503); every one
    that writes, the disk full (507). /health describes its own 503."""
    for path, item in paths.items():
        for method, operation in item.items():
            if method == "parameters" or path == "/openapi.json":
                continue
            for code in ("503", "507") if method in ("post", "put", "delete") else ("503",):
                ref = {"$ref": f"#/components/responses/{ERRORS[code][0]}"}
                operation["responses"].setdefault(code, ref)


_add_storage_errors(PATHS)


def build_document(token: bool = True) -> dict[str, Any]:
    """The whole OpenAPI document as a dict; `token`: server.api_token is set, so
    every route but /health requires it (without one, nothing does)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mininq",
            "version": __version__,
            "description": (
                "A job runner in one executable and one SQLite file: POST a job, "
                "mininq delivers it as a webhook with retries. JSON in and out; times "
                "are RFC 3339 UTC with milliseconds; every error is "
                '{"error": "<what is wrong, naming the field>", "status": <code>}. '
                "When server.api_token is set, every route but /health needs "
                "`Authorization: Bearer <token>`."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [
            {"name": "jobs"},
            {"name": "queues"},
            {"name": "schedules"},
            {"name": "system"},
            {"name": "dashboard"},
        ],
        **({"security": [{"bearerAuth": []}]} if token else {}),
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "parameters": PARAMETERS,
            "responses": {
                name: {"description": text, "content": _json(_ref("Error"))}
                for name, text in ERRORS.values()
            },
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the value of server.api_token (only when one is set)",
                }
            },
        },
    }


DOCUMENTS = {token: orjson.dumps(build_document(token)) for token in (True, False)}


@bp.get("/openapi.json")
async def openapi(request: Request) -> HTTPResponse:
    token = bool(request.app.ctx.config.server.api_token)
    return HTTPResponse(DOCUMENTS[token], content_type=JSON)
