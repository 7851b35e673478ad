"""What the dashboard shows, computed from store rows: pure, no I/O, no clock.

Templates get plain values from here (strings, numbers, lists of dicts);
escaping is the template engine's job, so nothing here builds HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from mininq.clock import to_rfc3339

STATUSES = ("pending", "running", "completed", "dead", "cancelled")
PAGE_SIZE = 50
MAX_TRAIL = 100  # pages remembered for "Newer"; deeper than that "Newer" jumps to the first page


# -- times -------------------------------------------------------------------


def iso(ms: int | None) -> str:
    """RFC 3339 UTC with milliseconds, for `<time datetime>`."""
    return to_rfc3339(ms) or ""


def abs_time(ms: int | None) -> str:
    """`2026-11-27 10:00:01 UTC`: the absolute time shown beside relative ones."""
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def zone_time(ms: int | None, tz: str) -> str:
    """`2026-11-28 09:00:00 CET`: a schedule's time on its own zone's wall clock."""
    if ms is None:
        return "—"
    try:
        zone = ZoneInfo(tz)
    except (ValueError, KeyError, OSError):
        zone = ZoneInfo("UTC")
    local = datetime.fromtimestamp(ms / 1000, zone)
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or tz)


def duration(ms: int | None) -> str:
    """`850 ms`, `1.25 s`, `30 s`, `5 min`, `2 min 5 s`, `3 h 20 min`."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms // 1000} s" if ms % 1000 == 0 else f"{ms / 1000:.2f} s"
    secs = ms // 1000
    if secs < 3600:
        minutes, seconds = divmod(secs, 60)
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(secs // 60, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


# -- values --------------------------------------------------------------------


def short_id(value: str | None) -> str:
    """The random tail of a UUIDv7: its head is a timestamp, alike across recent jobs."""
    return "" if not value else value[-8:]


def pretty_json(text: str | None) -> str:
    """Stored JSON text indented for reading; text that isn't JSON is shown as is."""
    if text is None:
        return ""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def header_pairs(text: str | None) -> list[tuple[str, str]]:
    """A job's stored headers (a JSON object) as sorted (name, value) pairs."""
    if not text:
        return []
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(value, dict):
        return []
    return sorted((str(k), v if isinstance(v, str) else orjson.dumps(v).decode())
                  for k, v in value.items())


def attempts_label(job: dict) -> str:
    """`2 / 4`: attempts started of the most this job may get."""
    return f"{job['attempt']} / {job['max_retries'] + 1}"


# -- stat cards ----------------------------------------------------------------


def stat_cards(stats: dict) -> list[dict[str, Any]]:
    """The cards at the top, from Store.stats(): job totals, queues, schedules."""
    totals = dict.fromkeys(STATUSES, 0)
    for row in stats["counts"]:
        totals[row["status"]] = totals.get(row["status"], 0) + row["n"]
    schedules = stats["schedules"]
    return [
        _card("Total", sum(totals.values())),
        _card("Pending", totals["pending"], "pending"),
        _card("Running", totals["running"], "running"),
        _card("Completed", totals["completed"], "completed"),
        _card("Dead", totals["dead"], "dead"),
        _card("Queues", len(stats["queues"])),
        _card("Schedules", schedules["total"], note=f"{schedules['enabled']} enabled"),
    ]


def _card(label: str, value: int, status: str | None = None, note: str | None = None) -> dict:
    return {"label": label, "value": value, "status": status, "note": note}


# -- job list filters and keyset paging ----------------------------------------


@dataclass(frozen=True)
class JobFilter:
    """The jobs table's state: filters and the keyset cursor, as query parameters."""

    queue: str | None = None
    status: str | None = None
    after: str | None = None
    trail: tuple[str, ...] = ()  # the `after` of each page before this one, oldest first

    @property
    def page(self) -> int:
        return 1 if self.after is None else len(self.trail) + 2

    def older(self, last_id: str) -> JobFilter:
        trail = (*self.trail, self.after) if self.after else ()
        return JobFilter(self.queue, self.status, last_id, trail[-MAX_TRAIL:])

    def newer(self) -> JobFilter:
        if not self.trail:
            return JobFilter(self.queue, self.status)
        return JobFilter(self.queue, self.status, self.trail[-1], self.trail[:-1])

    def cursor_params(self) -> dict[str, str]:
        """`after` and `trail` for a pager button (filters come from the form)."""
        if self.after is None:
            return {}
        return {"after": self.after, "trail": ",".join(self.trail)}

    def query(self, job: str | None = None) -> dict[str, str]:
        """Every non-empty parameter, for the page's URL."""
        out = {"queue": self.queue, "status": self.status, **self.cursor_params(), "job": job}
        return {k: v for k, v in out.items() if v}


def parse_filter(args: dict[str, str], is_id, is_queue) -> JobFilter:
    """Filters from query parameters; a value that can't be valid is dropped, not an error.

    `is_id` and `is_queue` check an id and a queue name (passed in to keep this pure).
    """
    queue = args.get("queue", "").strip() or None
    if queue is not None and not is_queue(queue):
        queue = None
    status = args.get("status") if args.get("status") in STATUSES else None
    after = args.get("after") if args.get("after") and is_id(args["after"]) else None
    trail: tuple[str, ...] = ()
    if after is not None and args.get("trail"):
        trail = tuple(t for t in args["trail"].split(",") if is_id(t))[-MAX_TRAIL:]
    return JobFilter(queue, status, after.lower() if after else None, tuple(t.lower() for t in trail))


def job_page(rows: list[dict], flt: JobFilter) -> dict[str, Any]:
    """One page of the jobs table: rows fetched with limit PAGE_SIZE + 1 to know if more exist."""
    shown = rows[:PAGE_SIZE]
    has_older = len(rows) > PAGE_SIZE
    return {
        "jobs": shown,
        "filter": flt,
        "older": flt.older(shown[-1]["id"]).cursor_params() if has_older and shown else None,
        "newer": flt.newer().cursor_params() if flt.after is not None else None,
    }
