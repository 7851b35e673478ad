"""Validation of request bodies and query strings: pure, no I/O.

The fields and their bounds are declared once in `mininq.fields`; this module
checks bodies against those tables. Every error names the field
(`jobs[3].callback_url: ...`). Integers are JSON integers: `true`, `1.5`,
`1.0` and `"3"` are refused where an integer is expected.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import yarl

from mininq import fields as f
from mininq.clock import now_ms, parse_rfc3339
from mininq.fields import NO_DEFAULT, QUEUE_NAME, Field
from mininq.ids import is_uuid

__all__ = ["QUEUE_NAME", "ValidationError", "is_uuid"]

DIGITS = re.compile(r"[0-9]+")
# Control characters and spaces: never valid in a URL, and aiohttp would send them as they are.
URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
# Headers mininq sets itself or that would break the HTTP framing of the delivery.
RESERVED_HEADERS = {
    "host", "content-length", "content-type", "transfer-encoding", "connection",
    "user-agent", "webhook-id", "webhook-timestamp", "webhook-signature", "te", "upgrade",
    "keep-alive", "trailer", "expect",
}  # fmt: skip


class ValidationError(ValueError):
    """A request that can't be taken; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "an array"
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**40 else "a huge integer"
    return text if len(text) <= 40 else text[:37] + "..."


def _int(field: str, spec: Field, value: Any) -> int:
    if type(value) is not int:
        raise ValidationError(field, f"expected an integer, got {_show(value)}")
    lo, hi = spec.int_bounds
    if not lo <= value <= hi:
        raise ValidationError(field, f"must be between {lo} and {hi}, got {_show(value)}")
    return value


def _number(field: str, spec: Field, value: Any) -> float:
    """A positive number (lo is exclusive) up to hi."""
    if type(value) not in (int, float):
        raise ValidationError(field, f"expected a number, got {_show(value)}")
    if not value > (spec.lo or 0):
        raise ValidationError(field, f"must be a positive number, got {_show(value)}")
    if value > (spec.hi or 0):
        raise ValidationError(field, f"must be at most {spec.hi:.0f}, got {_show(value)}")
    return float(value)


def _str(field: str, spec: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"expected a string, got {_show(value)}")
    lo, hi = int(spec.lo or 1), int(spec.hi or 0)
    if not lo <= len(value) <= hi:
        raise ValidationError(field, f"must be {lo} to {hi} characters long")
    return value


def _bool(field: str, spec: Field, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(field, f"expected true or false, got {_show(value)}")
    return value


def _enum(field: str, spec: Field, value: Any) -> str:
    if not isinstance(value, str) or value not in spec.choices:
        raise ValidationError(field, f"must be one of {', '.join(spec.choices)}")
    return value


def _url(field: str, spec: Field, value: Any) -> str:
    url = _str(field, spec, value)
    problem = _url_problem(url)
    if problem is not None:
        raise ValidationError(field, problem)
    return url


@functools.lru_cache(maxsize=1024)
def _url_problem(url: str) -> str | None:
    """What is wrong with a callback URL, or None. Cached: an application
    sends most of its jobs to a few URLs, and parsing one is a tenth of
    validating a job. Checked by the parser the delivery uses (yarl, under
    aiohttp) too, so a URL taken here is one the engine can request."""
    if URL_FORBIDDEN.search(url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is not a number or out of range
        host = yarl.URL(url).raw_host
    except ValueError as exc:  # UnicodeError (IDNA) is a ValueError too
        return f"is not a valid URL ({_reason(exc)})"
    if parts.scheme not in ("http", "https") or not parts.hostname or not host:
        return "must be an absolute http or https URL"
    if port == 0:
        return "has an invalid port"
    if len(host) > 253:
        return "has a host name longer than 253 characters"
    labels = host.removesuffix(".").split(".")
    if ":" not in host and not all(0 < len(label) <= 63 for label in labels):
        return "has a host name with an empty label or one longer than 63 characters"
    return None


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _queue(field: str, spec: Field | None, value: Any) -> str:
    if not isinstance(value, str) or not QUEUE_NAME.match(value):
        raise ValidationError(field, f.QUEUE_NAME_RULE)
    return value


def queue_name(field: str, value: Any) -> str:
    return _queue(field, None, value)


def _headers(field: str, spec: Field, value: Any) -> str:
    """Validated headers as JSON text."""
    if not isinstance(value, dict):
        raise ValidationError(field, f"expected an object of strings, got {_show(value)}")
    if len(value) > f.MAX_HEADERS:
        raise ValidationError(field, f"at most {f.MAX_HEADERS} headers")
    for name, val in value.items():
        if not f.HEADER_NAME.match(name):
            raise ValidationError(f"{field}.{name}", "is not a valid header name")
        lower = name.lower()
        if lower in RESERVED_HEADERS or lower.startswith("x-mininq-"):
            raise ValidationError(f"{field}.{name}", "is set by mininq and can't be overridden")
        if not isinstance(val, str):
            raise ValidationError(f"{field}.{name}", f"expected a string, got {_show(val)}")
        if len(val) > f.MAX_HEADER_VALUE or any(c in val for c in "\r\n\0"):
            raise ValidationError(
                f"{field}.{name}", f"must be one line of at most {f.MAX_HEADER_VALUE} characters"
            )
    return orjson.dumps(value).decode()


def _json(field: str, spec: Field, value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:  # integers beyond 64 bits, nesting past 255
        raise ValidationError(field, f"can't be stored as JSON ({exc})") from None


def _time(field: str, spec: Field, value: Any) -> int:
    try:
        return max(0, parse_rfc3339(value))
    except (ValueError, TypeError, OverflowError):
        raise ValidationError(
            field, "expected an RFC 3339 time like 2026-11-27T10:00:00Z"
        ) from None


CHECKS: dict[str, Callable[[str, Any, Any], Any]] = {
    "int": _int, "number": _number, "string": _str, "bool": _bool, "enum": _enum, "url": _url,
    "queue": _queue, "headers": _headers, "json": _json, "time": _time,
}  # fmt: skip


def check(field: str, spec: Field, value: Any) -> Any:
    """One value against its declaration; null passes where the field is nullable."""
    if value is None and spec.nullable:
        return None
    return CHECKS[spec.kind](field, spec, value)


def _object(field: str, body: Any) -> dict:
    if not isinstance(body, dict):
        raise ValidationError(field, f"expected a JSON object, got {_show(body)}")
    return body


def _no_unknown(prefix: str, body: dict, allowed: Any) -> None:
    for key in body:
        if key not in allowed:
            raise ValidationError(f"{prefix}{key}", "unknown field")


class _Table:
    """A field table made ready for checking many bodies: each field's check
    function looked up, its default checked, once."""

    def __init__(self, table: dict[str, Field]) -> None:
        self.checks = {name: (CHECKS[spec.kind], spec) for name, spec in table.items()}
        self.required = tuple(name for name, spec in table.items() if spec.required)
        self.defaults = {
            name: check(name, spec, spec.default)
            for name, spec in table.items()
            if spec.default is not NO_DEFAULT
        }


JOB, QUEUE_CREATE, QUEUE_UPDATE, SCHEDULE_CREATE, SCHEDULE_UPDATE = (
    _Table(t) for t in (f.JOB, f.QUEUE_CREATE, f.QUEUE_UPDATE, f.SCHEDULE_CREATE, f.SCHEDULE_UPDATE)
)


def _fields(prefix: str, body: Any, table: _Table, null_is_absent: bool = False) -> dict[str, Any]:
    """The body's fields, checked, with the table's defaults for absent ones.
    Unknown fields are refused first, then missing required ones, then values
    in the body's order. A null is kept as None (for a queue or schedule:
    "back to the default"), or with `null_is_absent` dropped like a missing field."""
    body = _object(prefix.rstrip(".") or "body", body)
    checks = table.checks
    _no_unknown(prefix, body, checks)
    for name in table.required:
        if name not in body:
            raise ValidationError(prefix + name, "is required")
    out = dict(table.defaults)
    for name, value in body.items():
        fn, spec = checks[name]
        if value is None and spec.nullable:
            if not null_is_absent:
                out[name] = None
        else:
            out[name] = fn(prefix + name, spec, value)
    return out


def job_create(body: Any, prefix: str = "", now: int | None = None) -> dict:
    """A job spec for the store: payload/headers as JSON text, visible_at in ms."""
    # A null job setting is an unset one: the queue's or [defaults] apply.
    spec = _fields(prefix, body, JOB, null_is_absent=True)
    delay, run_at = spec.pop("delay_ms", None), spec.pop("run_at", None)
    if delay is not None and run_at is not None:
        raise ValidationError(prefix + "run_at", "give either delay_ms or run_at, not both")
    now = now_ms() if now is None else now
    spec["visible_at"] = run_at if run_at is not None else now + (delay or 0)
    return spec


def job_batch(body: Any) -> list[dict]:
    body = _object("body", body)
    _no_unknown("", body, {"jobs"})
    items = body.get("jobs")
    if not isinstance(items, list):
        raise ValidationError("jobs", f"expected an array of jobs, got {_show(items)}")
    if not items:
        raise ValidationError("jobs", "must hold at least one job")
    if len(items) > f.MAX_BATCH:
        raise ValidationError("jobs", f"at most {f.MAX_BATCH} jobs per batch, got {len(items)}")
    now = now_ms()
    return [job_create(item, f"jobs[{i}].", now) for i, item in enumerate(items)]


def queue_settings(body: Any, *, create: bool) -> tuple[str | None, dict]:
    """(name, settings) for POST /queues, or (None, changes) for PUT; a null
    setting means "back to [defaults]"."""
    out = _fields("", body, QUEUE_CREATE if create else QUEUE_UPDATE)
    if not create and not out:
        raise ValidationError("body", "give at least one field to change")
    return out.pop("name", None), out


def schedule(body: Any, *, create: bool) -> dict:
    """Validated schedule fields; the cron expression and zone are checked by the
    caller through `mininq.scheduling.cron` (they need croniter)."""
    out = _fields("", body, SCHEDULE_CREATE if create else SCHEDULE_UPDATE)
    if not create and not out:
        raise ValidationError("body", "give at least one field to change")
    return out


def page(args: dict[str, str]) -> dict:
    """limit/offset/after from a query string; limit capped at 1000."""
    out: dict[str, Any] = {"limit": 50, "offset": 0, "after": None}
    for key in ("limit", "offset"):
        if key in args:
            raw = args[key]
            # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
            if not DIGITS.fullmatch(raw):
                raise ValidationError(key, f"expected a non-negative integer, got {_show(raw)}")
            # Past 18 digits the exact value no longer matters (limit is capped,
            # offset refused), and int() refuses strings of over 4300 digits.
            out[key] = int(raw) if len(raw) <= 18 else 10**18
    if out["offset"] > f.MAX_INT:
        raise ValidationError("offset", f"must be at most {f.MAX_INT}")
    if out["limit"] < 1:
        raise ValidationError("limit", "must be at least 1")
    out["limit"] = min(out["limit"], 1000)
    if "after" in args:
        if not is_uuid(args["after"]):
            raise ValidationError("after", "expected a job id")
        out["after"] = args["after"].lower()
    return out


def schedule_filters(args: dict[str, str]) -> dict:
    _no_unknown("", args, {"limit", "offset", "after"})
    return page(args)


def job_filters(args: dict[str, str]) -> dict:
    _no_unknown("", args, {"queue", "status", "schedule_id", "limit", "offset", "after"})
    out = page(args)
    out["queue"] = queue_name("queue", args["queue"]) if "queue" in args else None
    status = args.get("status")
    if status is not None and status not in f.JOB_STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(f.JOB_STATUSES)}")
    out["status"] = status
    schedule_id = args.get("schedule_id")
    if schedule_id is not None and not is_uuid(schedule_id):
        raise ValidationError("schedule_id", "expected a schedule id")
    out["schedule_id"] = schedule_id.lower() if schedule_id else None
    return out


def purge_status(args: dict[str, str]) -> str:
    status = args.get("status")
    if status is None:
        raise ValidationError("status", "is required (pending, completed, dead or cancelled)")
    if status not in f.PURGE_STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(f.PURGE_STATUSES)}")
    return status
