"""Every field of the job, queue and schedule bodies, declared once.

`mininq.api.validate` checks request bodies against these tables,
`mininq.api.openapi` derives the OpenAPI schemas from them and
`mininq.config` takes the `[defaults]` bounds from them, so the three can't
disagree. Pure data: no I/O, no Sanic (the configuration loads it too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
QUEUE_NAME_RULE = "must be 1-128 characters of letters, digits and -_.:"
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
BACKOFFS = ("exponential", "linear", "fixed")
JOB_STATUSES = ("pending", "running", "completed", "dead", "cancelled")
PURGE_STATUSES = ("pending", "completed", "dead", "cancelled")

MAX_INT = 2**53  # integers JSON readers everywhere (JavaScript too) keep exact
MAX_RETRIES = 1000
MAX_TIMEOUT_MS = 24 * 3600 * 1000
MAX_BACKOFF_MS = 30 * MAX_TIMEOUT_MS
MAX_DELAY_MS = 10 * 365 * 86_400_000
MAX_CONCURRENCY = 100_000
MAX_RATE = 1e9
PRIORITY = (-(2**31), 2**31 - 1)
MAX_BATCH = 1000
MAX_URL = 2048
MAX_HEADERS = 64
MAX_HEADER_VALUE = 8192

NO_DEFAULT: Any = object()


@dataclass(frozen=True)
class Field:
    """One body field. `kind` picks the check and the schema: int and number take
    `lo`/`hi` as bounds (number: lo exclusive), string takes them as lengths."""

    kind: str  # int number string bool enum url queue headers json time
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    nullable: bool = False
    required: bool = False
    default: Any = NO_DEFAULT
    description: str = ""

    @property
    def int_bounds(self) -> tuple[int, int]:
        """(lo, hi) of an int field as integers, an unset bound as 0."""
        return int(self.lo or 0), int(self.hi or 0)


def _int(lo: int, hi: int, description: str = "", **kw: Any) -> Field:
    return Field("int", lo, hi, description=description, **kw)


def _nullable(table: dict[str, Field], description: str = "") -> dict[str, Field]:
    return {
        k: replace(f, nullable=True, description=description or f.description)
        for k, f in table.items()
    }


URL = Field("url", 1, MAX_URL, required=True, description="absolute http or https URL")
RATE = Field("number", 0, MAX_RATE, nullable=True)

# Per-job delivery settings; a queue's values are the defaults of its jobs, and
# the configuration's [defaults] section those of every queue.
JOB_DEFAULTS: dict[str, Field] = {
    "max_retries": _int(0, MAX_RETRIES, "retries after the first attempt"),
    "retry_backoff": Field("enum", choices=BACKOFFS),
    "base_delay_ms": _int(0, MAX_BACKOFF_MS),
    "max_delay_ms": _int(0, MAX_BACKOFF_MS),
    "timeout_ms": _int(1, MAX_TIMEOUT_MS, "delivery timeout in ms"),
}

JOB: dict[str, Field] = {
    "callback_url": URL,
    "queue_name": Field("queue", default="default"),
    "priority": _int(*PRIORITY, "higher first", default=0),
    "payload": Field("json", default={}),
    "headers": Field("headers", nullable=True, default=None),
    **_nullable(JOB_DEFAULTS),
    "idempotency_key": Field("string", 1, 255, nullable=True),
    "delay_ms": _int(0, MAX_DELAY_MS, "deliver no sooner than this from now", nullable=True),
    "run_at": Field(
        "time", nullable=True, description="deliver no sooner than this; not with delay_ms"
    ),
}

QUEUE_CREATE: dict[str, Field] = {
    "name": Field("queue", required=True),
    "max_concurrency": _int(1, MAX_CONCURRENCY),
    "rate_limit_rps": replace(RATE, description="token bucket rate; null: unlimited"),
    "rate_limit_burst": replace(RATE, description="bucket size; default max(1, rps)"),
    **_nullable(JOB_DEFAULTS, "null: back to [defaults]"),
    "paused": Field("bool"),
}
QUEUE_UPDATE: dict[str, Field] = {
    k: replace(f, nullable=True, description="null: back to [defaults]") if k == "max_concurrency"
    else f
    for k, f in QUEUE_CREATE.items()
    if k != "name"
}  # fmt: skip

SCHEDULE_CREATE: dict[str, Field] = {
    "cron_expression": Field(
        "string",
        1,
        256,
        required=True,
        description="6 fields seconds first, or the classic 5; names, steps, ranges, lists",
    ),
    "callback_url": URL,
    "queue_name": Field("queue", default="default"),
    "payload": Field("json", default={}),
    "headers": Field("headers", nullable=True),
    "max_retries": replace(JOB_DEFAULTS["max_retries"], nullable=True),
    "timeout_ms": replace(JOB_DEFAULTS["timeout_ms"], nullable=True),
    "timezone": Field("string", 1, 64, default="UTC", description="IANA zone name"),
    "enabled": Field("bool", default=True),
}
# An update changes only what it names: nothing is required, nothing defaults.
SCHEDULE_UPDATE: dict[str, Field] = {
    k: replace(f, required=False, default=NO_DEFAULT) for k, f in SCHEDULE_CREATE.items()
}
