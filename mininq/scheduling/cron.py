"""Cron expressions and time zones for schedules: validation and next fire times.

Pure: nothing here reads a clock; the caller passes times as epoch ms.

Grammar (what `parse_cron` accepts), case-insensitive:
- 6 fields, seconds first: `sec min hour day-of-month month day-of-week`,
  or the classic 5 fields (seconds = 0);
- per field a comma list of `*`, `N`, `A-B` (a range that wraps when A > B,
  e.g. `Fri-Mon`, `22-2`), each optionally `/STEP`; `N/STEP` means N to the
  field's end; `?` alone in day-of-month or day-of-week means `*`;
- names `Jan`..`Dec` and `Sun`..`Sat`; day-of-week 0 and 7 are both Sunday;
- `@yearly` `@annually` `@monthly` `@weekly` `@daily` `@midnight` `@hourly`.
Not accepted: a 7th (year) field, `@reboot`, and croniter's extensions
`L`, `W`, `#`, `H`, `R` (the last two are hashed/random per process, which
would move a schedule's fire time between restarts).

As in classic cron, when both day-of-month and day-of-week are restricted a
day matching either fires.

Daylight saving time: fire times follow the zone's wall clock. A time
skipped by spring-forward fires at the first instant after the gap (02:30 on
Europe/Prague's 2026-03-29 fires at 03:00+02:00); a wall time that happens
twice at fall-back fires at both instants (02:30+02:00 and 02:30+01:00 on
2026-10-25), which keeps hourly schedules exactly one hour apart. Fire times
are strictly increasing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, CroniterError, croniter

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# (name used in messages, lowest value, highest value), seconds-first order.
_FIELDS = (
    ("seconds", 0, 59),
    ("minutes", 0, 59),
    ("hours", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)
_DOM, _MONTH, _DOW = 3, 4, 5
_NAMES = {
    _MONTH: {
        m: i
        for i, m in enumerate(
            ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
            start=1,
        )
    },
    _DOW: {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}
_ALIASES = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
_ITEM_RE = re.compile(
    r"(?:(?P<star>\*)|(?P<low>[0-9a-z]+)(?:-(?P<high>[0-9a-z]+))?)(?:/(?P<step>[0-9]+))?",
    re.ASCII | re.IGNORECASE,
)
# Zone names that parse but would make a schedule mean different things on
# different machines (`localtime`) or count leap seconds (`right/...`).
_REJECTED_ZONES = re.compile(r"localtime|posixrules|right/.*", re.IGNORECASE)


class CronError(ValueError):
    """An invalid cron expression or time zone; the message names the field."""


def _value(token: str, index: int) -> int | None:
    """A number or name in field `index`, or None when it is neither or out of range."""
    _, low, high = _FIELDS[index]
    if token.isdigit():
        value = int(token)
    else:
        named = _NAMES.get(index, {}).get(token.lower())
        if named is None:
            return None
        value = named
    return value if low <= value <= high else None


def _normalize_item(item: str, index: int) -> str:
    """Check one comma-separated item; return it, with `A-A` reduced to `A`."""
    name, low, high = _FIELDS[index]
    if not item:
        raise CronError(f"cron_expression: empty list item in the {name} field")
    match = _ITEM_RE.fullmatch(item)
    if match is None:
        raise CronError(f"cron_expression: invalid value '{item}' in the {name} field")
    step = match["step"]
    if step is not None and not 1 <= int(step) <= high - low + 1:
        raise CronError(f"cron_expression: invalid step '{step}' in the {name} field")
    if match["star"]:
        return item
    for token in (match["low"], match["high"]):
        if token is not None and _value(token, index) is None:
            raise CronError(f"cron_expression: invalid value '{token}' in the {name} field")
    # croniter reads an equal range (`5-5`, `Mon-Mon`) as the whole cycle;
    # classic cron reads it as the one value, which is what a user means.
    if match["high"] is not None and _value(match["low"], index) == _value(match["high"], index):
        return match["low"]
    return item


def _normalize_field(field: str, index: int) -> str:
    if field == "?" and index in (_DOM, _DOW):
        return "*"
    return ",".join(_normalize_item(item, index) for item in field.split(","))


def parse_cron(expression: str) -> str:
    """Validate a cron expression and return it as 6 seconds-first fields.

    Whitespace is collapsed, 5 fields get `0` seconds, equal ranges become
    one value, aliases are spelled out; raises CronError naming the problem.
    """
    if not isinstance(expression, str):
        raise CronError("cron_expression: must be a string")
    return _parse_cron(expression)


@lru_cache(maxsize=1024)
def _parse_cron(expression: str) -> str:
    text = expression.strip()
    if not text:
        raise CronError("cron_expression: must not be empty")
    if text.startswith("@"):
        alias = _ALIASES.get(text.lower())
        if alias is None:
            raise CronError(
                f"cron_expression: '{text}' is not supported; use 5 or 6 fields or one of "
                + ", ".join(_ALIASES)
            )
        return alias
    fields = re.split(r"[ \t]+", text)
    if len(fields) == 5:
        fields.insert(0, "0")
    elif len(fields) != 6:
        raise CronError(f"cron_expression: expected 5 or 6 fields, got {len(fields)}")
    normalized = " ".join(_normalize_field(f, i) for i, f in enumerate(fields))
    try:
        croniter.expand(normalized, second_at_beginning=True, strict=True)
    except CroniterError as exc:
        if "can never occur" in str(exc):
            raise CronError(
                "cron_expression: the day-of-month never occurs in the given month(s)"
            ) from None
        raise CronError(f"cron_expression: not a valid cron expression ({exc})") from None
    return normalized


def parse_timezone(name: str = "UTC") -> ZoneInfo:
    """An IANA time zone (`Europe/Prague`, `UTC`); raises CronError naming `timezone`."""
    if not isinstance(name, str):
        raise CronError("timezone: must be a string")
    if not name.strip():
        raise CronError("timezone: must not be empty")
    if _REJECTED_ZONES.fullmatch(name):
        raise CronError(f"timezone: '{name}' is not a portable IANA time zone name")
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        raise CronError(f"timezone: unknown time zone '{name}'") from None


def _to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def next_fire_ms(expression: str, tz: str, after_ms: int) -> int:
    """The first fire time strictly after `after_ms`, in epoch ms."""
    normalized = parse_cron(expression)
    zone = parse_timezone(tz)
    start_ms = after_ms
    # croniter walks the local wall clock; the loop is a guard so that no DST
    # corner can ever hand back a time at or before `after_ms`.
    for _ in range(10):
        start = (
            datetime.fromtimestamp(start_ms // 1000, UTC)
            .replace(microsecond=start_ms % 1000 * 1000)
            .astimezone(zone)
        )
        try:
            fire = croniter(normalized, start, second_at_beginning=True).get_next(datetime)
        except CroniterBadDateError:
            raise CronError("cron_expression: never fires") from None
        fire_ms = _to_ms(fire)
        if fire_ms > after_ms:
            return fire_ms
        start_ms += 1000
    raise CronError("cron_expression: could not compute the next fire time")


def next_fire_after_missed(expression: str, tz: str, due_ms: int, now_ms: int) -> int:
    """The `next_run_at` to store after firing the run that was due at `due_ms`.

    After downtime (`due_ms` well before `now_ms`) the schedule fires once for
    all the missed times, and its next run is the first fire time after now.
    """
    return next_fire_ms(expression, tz, max(due_ms, now_ms))
