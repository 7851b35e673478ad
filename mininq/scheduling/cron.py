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

Daylight saving time follows classic cron (Vixie cron, cronie: "Only jobs
that run at a particular time (not specified as @hourly, nor with '*' in the
hour or minute specifier) are affected by time changes"). A schedule is a
*wildcard* schedule when its seconds, minutes or hours field has an item
starting with `*` (`*`, `*/15`) or lists every value of the field (`0-23`);
every other schedule runs at fixed times of day. Then:
- a wildcard schedule follows real time: when the clocks go back it fires in
  both copies of the repeated hour, so `@hourly` stays one real hour apart
  across both transitions; a time skipped by spring-forward is not made up
  (it simply didn't exist that day);
- a fixed-time schedule fires once per wall-clock time: a time that happens
  twice at fall-back fires at its first occurrence only (02:30 on Europe/
  Prague's 2026-10-25 fires at 02:30+02:00, not again at 02:30+01:00; this
  holds even for a schedule created between the two); a time skipped by
  spring-forward fires at the first instant after the gap, once (02:30 on
  2026-03-29 fires at 03:00+02:00).
Fire times are strictly increasing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, CroniterError, croniter

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

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
    return (moment - _EPOCH) // _MS


def _local(ms: int, zone: ZoneInfo) -> datetime:
    """The aware local time of an instant, with `fold` set as PEP 495 says."""
    moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    return moment.astimezone(zone)


@lru_cache(maxsize=1024)
def is_wildcard(normalized: str) -> bool:
    """Whether a normalized expression follows real time across DST changes
    (see the module docstring): a `*` item or a full range in its seconds,
    minutes or hours field."""
    expanded, _ = croniter.expand(normalized, second_at_beginning=True)
    fields = normalized.split()
    # croniter.expand orders fields minute, hour, ..., second; a full range is ['*'].
    time_fields = ((fields[0], expanded[5]), (fields[1], expanded[0]), (fields[2], expanded[1]))
    return any(
        values == ["*"] or any(item.startswith("*") for item in text.split(","))
        for text, values in time_fields
    )


def _skip_to(normalized: str, fire_ms: int, zone: ZoneInfo) -> int | None:
    """None when the schedule fires at croniter's candidate `fire_ms`; else the
    instant to search on from, past the DST instants it must not fire at."""
    fire = _local(fire_ms, zone)
    if fire.fold == 1:
        # The second occurrence of a repeated wall time.
        if is_wildcard(normalized):
            return None
        # A fixed-time schedule skips the whole second copy of the repeated
        # period at once: find where it ends (fold back to 0).
        repeat = fire.replace(fold=0).utcoffset() - fire.utcoffset()  # type: ignore[operator]
        low, high = fire_ms, fire_ms + repeat // _MS
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if _local(mid, zone).fold == 1 else (low, mid)
        return low
    at_gap_end = fire.utcoffset() != _local(fire_ms - 1000, zone).utcoffset()
    # At the end of a spring-forward gap croniter stands in for a skipped time
    # (its wall clock doesn't match); a wildcard schedule does not make those up.
    if (
        at_gap_end
        and is_wildcard(normalized)
        and not croniter.match(normalized, fire.replace(tzinfo=None), second_at_beginning=True)
    ):
        return fire_ms
    return None


def next_fire_ms(expression: str, tz: str, after_ms: int) -> int:
    """The first fire time strictly after `after_ms`, in epoch ms."""
    normalized = parse_cron(expression)
    zone = parse_timezone(tz)
    start_ms = after_ms
    # croniter walks the local wall clock; the loop skips the DST instants
    # this schedule does not fire at, and guards against any corner handing
    # back a time at or before `after_ms`.
    for _ in range(20):
        try:
            start = _local(start_ms, zone)
            fire = croniter(normalized, start, second_at_beginning=True).get_next(datetime)
        except CroniterBadDateError:
            raise CronError("cron_expression: never fires") from None
        fire_ms = _to_ms(fire)
        if fire_ms <= after_ms:
            start_ms += 1000
            continue
        skip_to = _skip_to(normalized, fire_ms, zone)
        if skip_to is None:
            return fire_ms
        start_ms = skip_to
    raise CronError("cron_expression: could not compute the next fire time")


def next_fire_after_missed(expression: str, tz: str, due_ms: int, now_ms: int) -> int:
    """The `next_run_at` to store after firing the run that was due at `due_ms`.

    After downtime (`due_ms` well before `now_ms`) the schedule fires once for
    all the missed times, and its next run is the first fire time after now.
    """
    return next_fire_ms(expression, tz, max(due_ms, now_ms))
