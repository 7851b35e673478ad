"""Validation of request bodies and query strings: pure, no I/O.

Every error names the field (`jobs[3].callback_url: ...`). Integers are
JSON integers: `true`, `1.5`, `1.0` and `"3"` are refused where an integer
is expected.
"""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import urlsplit

import orjson

from mininq.clock import now_ms, parse_rfc3339
from mininq.ids import is_uuid

DIGITS = re.compile(r"[0-9]+")
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
BACKOFFS = ("exponential", "linear", "fixed")
JOB_STATUSES = ("pending", "running", "completed", "dead", "cancelled")
PURGE_STATUSES = ("pending", "completed", "dead", "cancelled")
# Headers mininq sets itself or that would break the HTTP framing of the delivery.
RESERVED_HEADERS = {
    "host", "content-length", "content-type", "transfer-encoding", "connection",
    "user-agent", "webhook-id", "webhook-timestamp", "webhook-signature", "te", "upgrade",
    "keep-alive", "trailer", "expect",
}
MAX_INT = 2**53
MAX_RETRIES = 1000
MAX_TIMEOUT_MS = 24 * 3600 * 1000
MAX_BATCH = 1000


class ValidationError(ValueError):
    """A request that can't be taken; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


def _int(field: str, value: Any, lo: int = -MAX_INT, hi: int = MAX_INT) -> int:
    if type(value) is not int:
        raise ValidationError(field, f"expected an integer, got {_show(value)}")
    if not lo <= value <= hi:
        raise ValidationError(field, f"must be between {lo} and {hi}, got {value}")
    return value


def _number(field: str, value: Any, positive: bool = True) -> float:
    if type(value) not in (int, float):
        raise ValidationError(field, f"expected a number, got {_show(value)}")
    if positive and not value > 0:
        raise ValidationError(field, f"must be a positive number, got {value}")
    if value > 1e9:
        raise ValidationError(field, f"must be at most 1000000000, got {value}")
    return float(value)


def _str(field: str, value: Any, max_len: int = 2048) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"expected a string, got {_show(value)}")
    if not 1 <= len(value) <= max_len:
        raise ValidationError(field, f"must be 1 to {max_len} characters long")
    return value


def _bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(field, f"expected true or false, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "an array"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _object(field: str, body: Any) -> dict:
    if not isinstance(body, dict):
        raise ValidationError(field, f"expected a JSON object, got {_show(body)}")
    return body


def _no_unknown(prefix: str, body: dict, allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise ValidationError(f"{prefix}{key}", "unknown field")


def callback_url(field: str, value: Any) -> str:
    url = _str(field, value)
    problem = _url_problem(url)
    if problem is not None:
        raise ValidationError(field, problem)
    return url


@functools.lru_cache(maxsize=1024)
def _url_problem(url: str) -> str | None:
    """What is wrong with a callback URL, or None. Cached: an application
    sends most of its jobs to a few URLs, and parsing one is a tenth of
    validating a job."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http or https URL"
    try:
        _ = parts.port  # raises for a port that is not a number
    except ValueError:
        return "has an invalid port"
    if any(c in url for c in "\r\n\t "):
        return "must not contain spaces or control characters"
    return None


def queue_name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not QUEUE_NAME.match(value):
        raise ValidationError(field, "must be 1-128 characters of letters, digits and -_.:")
    return value


def headers(field: str, value: Any) -> str | None:
    """Validated headers as JSON text (None for null)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(field, f"expected an object of strings, got {_show(value)}")
    if len(value) > 64:
        raise ValidationError(field, "at most 64 headers")
    for name, val in value.items():
        if not HEADER_NAME.match(name):
            raise ValidationError(f"{field}.{name}", "is not a valid header name")
        lower = name.lower()
        if lower in RESERVED_HEADERS or lower.startswith("x-mininq-"):
            raise ValidationError(f"{field}.{name}", "is set by mininq and can't be overridden")
        if not isinstance(val, str):
            raise ValidationError(f"{field}.{name}", f"expected a string, got {_show(val)}")
        if len(val) > 8192 or any(c in val for c in "\r\n\0"):
            raise ValidationError(f"{field}.{name}", "must be one line of at most 8192 characters")
    return orjson.dumps(value).decode()


def _payload(field: str, value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:  # e.g. integers beyond 64 bits
        raise ValidationError(field, f"can't be stored as JSON ({exc})") from None


def _job_defaults(prefix: str, body: dict, out: dict) -> None:
    if body.get("max_retries") is not None:
        out["max_retries"] = _int(prefix + "max_retries", body["max_retries"], 0, MAX_RETRIES)
    if body.get("retry_backoff") is not None:
        if body["retry_backoff"] not in BACKOFFS:
            raise ValidationError(prefix + "retry_backoff", "must be exponential, linear or fixed")
        out["retry_backoff"] = body["retry_backoff"]
    for key in ("base_delay_ms", "max_delay_ms"):
        if body.get(key) is not None:
            out[key] = _int(prefix + key, body[key], 0, MAX_TIMEOUT_MS * 30)
    if body.get("timeout_ms") is not None:
        out["timeout_ms"] = _int(prefix + "timeout_ms", body["timeout_ms"], 1, MAX_TIMEOUT_MS)


JOB_FIELDS = {
    "callback_url", "queue_name", "priority", "payload", "headers", "max_retries",
    "retry_backoff", "base_delay_ms", "max_delay_ms", "timeout_ms", "idempotency_key",
    "delay_ms", "run_at",
}


def job_create(body: Any, prefix: str = "", now: int | None = None) -> dict:
    """A job spec for the store: payload/headers as JSON text, visible_at in ms."""
    body = _object(prefix.rstrip(".") or "body", body)
    _no_unknown(prefix, body, JOB_FIELDS)
    if "callback_url" not in body:
        raise ValidationError(prefix + "callback_url", "is required")
    now = now_ms() if now is None else now
    spec: dict[str, Any] = {
        "callback_url": callback_url(prefix + "callback_url", body["callback_url"]),
        "queue_name": queue_name(prefix + "queue_name", body.get("queue_name", "default")),
        "priority": _int(prefix + "priority", body.get("priority", 0), -(2**31), 2**31 - 1),
        "payload": _payload(prefix + "payload", body.get("payload", {})),
        "headers": headers(prefix + "headers", body.get("headers")),
    }
    _job_defaults(prefix, body, spec)
    if body.get("idempotency_key") is not None:
        spec["idempotency_key"] = _str(prefix + "idempotency_key", body["idempotency_key"], 255)
    delay, run_at = body.get("delay_ms"), body.get("run_at")
    if delay is not None and run_at is not None:
        raise ValidationError(prefix + "run_at", "give either delay_ms or run_at, not both")
    if delay is not None:
        spec["visible_at"] = now + _int(prefix + "delay_ms", delay, 0, 10 * 365 * 86_400_000)
    elif run_at is not None:
        try:
            spec["visible_at"] = max(0, parse_rfc3339(run_at))
        except (ValueError, TypeError):
            raise ValidationError(
                prefix + "run_at", "expected an RFC 3339 time like 2026-11-27T10:00:00Z"
            ) from None
    else:
        spec["visible_at"] = now
    return spec


def job_batch(body: Any) -> list[dict]:
    body = _object("body", body)
    _no_unknown("", body, {"jobs"})
    items = body.get("jobs")
    if not isinstance(items, list):
        raise ValidationError("jobs", f"expected an array of jobs, got {_show(items)}")
    if not items:
        raise ValidationError("jobs", "must hold at least one job")
    if len(items) > MAX_BATCH:
        raise ValidationError("jobs", f"at most {MAX_BATCH} jobs per batch, got {len(items)}")
    now = now_ms()
    return [job_create(item, f"jobs[{i}].", now) for i, item in enumerate(items)]


QUEUE_SETTINGS = {
    "max_concurrency", "rate_limit_rps", "rate_limit_burst", "max_retries", "retry_backoff",
    "base_delay_ms", "max_delay_ms", "timeout_ms", "paused",
}


def queue_settings(body: Any, *, create: bool) -> tuple[str | None, dict]:
    """(name, settings) for POST /queues, or (None, changes) for PUT."""
    body = _object("body", body)
    _no_unknown("", body, QUEUE_SETTINGS | ({"name"} if create else set()))
    name = None
    if create:
        if "name" not in body:
            raise ValidationError("name", "is required")
        name = queue_name("name", body["name"])
    out: dict[str, Any] = {}
    if "max_concurrency" in body:
        value = body["max_concurrency"]
        # null: back to [defaults] queue_max_concurrency
        if value is None and not create:
            out["max_concurrency"] = None
        else:
            out["max_concurrency"] = _int("max_concurrency", value, 1, 100_000)
    for key in ("rate_limit_rps", "rate_limit_burst"):
        if key in body:
            out[key] = None if body[key] is None else _number(key, body[key])
    _job_defaults("", body, out)
    for key in ("max_retries", "retry_backoff", "base_delay_ms", "max_delay_ms", "timeout_ms"):
        if key in body and body[key] is None:
            out[key] = None  # back to the global default
    if "paused" in body:
        out["paused"] = _bool("paused", body["paused"])
    if not create and not out:
        raise ValidationError("body", "give at least one field to change")
    return name, out


SCHEDULE_FIELDS = {
    "cron_expression", "callback_url", "queue_name", "payload", "headers", "max_retries",
    "timeout_ms", "timezone", "enabled",
}


def schedule(body: Any, *, create: bool) -> dict:
    """Validated schedule fields; the cron expression and zone are checked by the
    caller through `mininq.scheduling.cron` (they need croniter)."""
    body = _object("body", body)
    _no_unknown("", body, SCHEDULE_FIELDS)
    out: dict[str, Any] = {}
    if create:
        for key in ("cron_expression", "callback_url"):
            if key not in body:
                raise ValidationError(key, "is required")
    if "cron_expression" in body:
        out["cron_expression"] = _str("cron_expression", body["cron_expression"], 256)
    if "timezone" in body or create:
        out["timezone"] = _str("timezone", body.get("timezone", "UTC"), 64)
    if "callback_url" in body:
        out["callback_url"] = callback_url("callback_url", body["callback_url"])
    if "queue_name" in body or create:
        out["queue_name"] = queue_name("queue_name", body.get("queue_name", "default"))
    if "payload" in body or create:
        out["payload"] = _payload("payload", body.get("payload", {}))
    if "headers" in body:
        out["headers"] = headers("headers", body["headers"])
    if body.get("max_retries") is not None:
        out["max_retries"] = _int("max_retries", body["max_retries"], 0, MAX_RETRIES)
    elif "max_retries" in body:
        out["max_retries"] = None
    if body.get("timeout_ms") is not None:
        out["timeout_ms"] = _int("timeout_ms", body["timeout_ms"], 1, MAX_TIMEOUT_MS)
    elif "timeout_ms" in body:
        out["timeout_ms"] = None
    if "enabled" in body or create:
        out["enabled"] = _bool("enabled", body.get("enabled", True))
    if not create and not out:
        raise ValidationError("body", "give at least one field to change")
    return out


def page(args: dict[str, str], statuses: tuple[str, ...] | None = None) -> dict:
    """limit/offset/after (+ filters) from a query string; limit capped at 1000."""
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
    if out["offset"] > MAX_INT:
        raise ValidationError("offset", f"must be at most {MAX_INT}")
    if out["limit"] < 1:
        raise ValidationError("limit", "must be at least 1")
    out["limit"] = min(out["limit"], 1000)
    if "after" in args:
        if not is_uuid(args["after"]):
            raise ValidationError("after", "expected a job id")
        out["after"] = args["after"].lower()
    return out


def job_filters(args: dict[str, str]) -> dict:
    _no_unknown("", args, {"queue", "status", "schedule_id", "limit", "offset", "after"})
    out = page(args)
    out["queue"] = queue_name("queue", args["queue"]) if "queue" in args else None
    status = args.get("status")
    if status is not None and status not in JOB_STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(JOB_STATUSES)}")
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
    if status not in PURGE_STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(PURGE_STATUSES)}")
    return status
