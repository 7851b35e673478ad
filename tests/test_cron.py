"""Cron parsing and next fire times, as tables (pure functions, real croniter 7)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from mininq.clock import parse_rfc3339, to_rfc3339
from mininq.scheduling.cron import (
    CronError,
    is_wildcard,
    next_fire_after_missed,
    next_fire_ms,
    parse_cron,
    parse_timezone,
)

HOUR_MS = 3_600_000


def fires(expression: str, tz: str, after: str, count: int) -> list[str]:
    """The next `count` fire times after `after`, as RFC 3339 UTC strings."""
    out, t = [], parse_rfc3339(after)
    for _ in range(count):
        nxt = next_fire_ms(expression, tz, t)
        assert nxt > t, f"{expression} went from {to_rfc3339(t)} to {to_rfc3339(nxt)}"
        out.append(to_rfc3339(nxt))
        t = nxt
    return out


# --- parse_cron -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "normalized"),
    [
        ("* * * * * *", "* * * * * *"),
        ("*/20 * * * * *", "*/20 * * * * *"),
        ("*/5 * * * *", "0 */5 * * * *"),
        ("  0   0  9 * *   Mon-Fri ", "0 0 9 * * Mon-Fri"),
        ("0\t0\t9\t*\t*\t*", "0 0 9 * * *"),
        (
            "0 0,30 8-18/2 1,15 Jan-Jun,DEC mon,WED-fri",
            "0 0,30 8-18/2 1,15 Jan-Jun,DEC mon,WED-fri",
        ),
        ("0 5-5 * * * *", "0 5 * * * *"),  # croniter alone reads 5-5 as every minute
        ("0 0 0 * * Mon-Mon", "0 0 0 * * Mon"),
        ("0 0 9 ? * MON", "0 0 9 * * MON"),
        ("0 0 9 1 * ?", "0 0 9 1 * *"),
        ("0 0 22-2 * * *", "0 0 22-2 * * *"),
        ("0 0 0 * * 0-7", "0 0 0 * * 0-7"),
        ("@hourly", "0 0 * * * *"),
        ("@DAILY", "0 0 0 * * *"),
        ("@midnight", "0 0 0 * * *"),
        ("@weekly", "0 0 0 * * 0"),
        ("@monthly", "0 0 0 1 * *"),
        ("@yearly", "0 0 0 1 1 *"),
        ("@annually", "0 0 0 1 1 *"),
    ],
)
def test_parse_cron_normalizes(expression: str, normalized: str) -> None:
    assert parse_cron(expression) == normalized


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "cron_expression: must not be empty"),
        ("   ", "cron_expression: must not be empty"),
        ("* * *", "cron_expression: expected 5 or 6 fields, got 3"),
        ("0 0 0 1 1 * 2030", "cron_expression: expected 5 or 6 fields, got 7"),
        ("60 * * * * *", "cron_expression: invalid value '60' in the seconds field"),
        ("0 61 * * * *", "cron_expression: invalid value '61' in the minutes field"),
        ("61 * * * *", "cron_expression: invalid value '61' in the minutes field"),
        ("0 0 24 * * *", "cron_expression: invalid value '24' in the hours field"),
        ("0 0 0 0 * *", "cron_expression: invalid value '0' in the day-of-month field"),
        ("0 0 0 32 * *", "cron_expression: invalid value '32' in the day-of-month field"),
        ("0 0 0 * 13 *", "cron_expression: invalid value '13' in the month field"),
        ("0 0 0 * Foo *", "cron_expression: invalid value 'Foo' in the month field"),
        ("0 0 0 * * 8", "cron_expression: invalid value '8' in the day-of-week field"),
        ("0 0 0 * * Mon-Xyz", "cron_expression: invalid value 'Xyz' in the day-of-week field"),
        ("0 Mon * * * *", "cron_expression: invalid value 'Mon' in the minutes field"),
        ("0 0 0 * Mon *", "cron_expression: invalid value 'Mon' in the month field"),
        ("-1 * * * * *", "cron_expression: invalid value '-1' in the seconds field"),
        ("１ * * * * *", "cron_expression: invalid value '１' in the seconds field"),
        ("0 0 ? * * *", "cron_expression: invalid value '?' in the hours field"),
        ("0 0 0 L * *", "cron_expression: invalid value 'L' in the day-of-month field"),
        ("0 0 0 15W * *", "cron_expression: invalid value '15W' in the day-of-month field"),
        ("0 0 0 * * Mon#2", "cron_expression: invalid value 'Mon#2' in the day-of-week field"),
        ("H * * * * *", "cron_expression: invalid value 'H' in the seconds field"),
        ("R * * * * *", "cron_expression: invalid value 'R' in the seconds field"),
        ("*/0 * * * * *", "cron_expression: invalid step '0' in the seconds field"),
        ("*/61 * * * * *", "cron_expression: invalid step '61' in the seconds field"),
        ("0 0 0 */32 * *", "cron_expression: invalid step '32' in the day-of-month field"),
        ("*/5/2 * * * * *", "cron_expression: invalid value '*/5/2' in the seconds field"),
        ("1,,2 * * * * *", "cron_expression: empty list item in the seconds field"),
        ("0 0 0 30 2 *", "cron_expression: the day-of-month never occurs in the given month(s)"),
        (
            "0 0 0 31 Apr,Jun *",
            "cron_expression: the day-of-month never occurs in the given month(s)",
        ),
        ("@reboot", "cron_expression: '@reboot' is not supported"),
        ("@every 5m", "cron_expression: '@every 5m' is not supported"),
    ],
)
def test_parse_cron_rejects(expression: str, message: str) -> None:
    with pytest.raises(CronError) as info:
        parse_cron(expression)
    assert str(info.value).startswith(message), str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", [None, 5, ["* * * * *"]])
def test_parse_cron_rejects_non_strings(value: object) -> None:
    with pytest.raises(CronError, match="cron_expression: must be a string"):
        parse_cron(value)  # type: ignore[arg-type]


# --- parse_timezone ---------------------------------------------------------------


def test_parse_timezone_valid() -> None:
    assert parse_timezone() == ZoneInfo("UTC")
    assert parse_timezone("Europe/Prague").key == "Europe/Prague"
    assert parse_timezone("America/Argentina/Buenos_Aires").key == "America/Argentina/Buenos_Aires"
    assert parse_timezone("Etc/GMT+5").key == "Etc/GMT+5"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Mars/Base", "timezone: unknown time zone 'Mars/Base'"),
        ("utc", "timezone: unknown time zone 'utc'"),  # IANA keys are case-sensitive
        ("Europe", "timezone: unknown time zone 'Europe'"),  # a directory
        ("Europe/Prague ", "timezone: unknown time zone 'Europe/Prague '"),
        ("../../etc/passwd", "timezone: unknown time zone '../../etc/passwd'"),
        ("/etc/localtime", "timezone: unknown time zone '/etc/localtime'"),
        ("Europe/Prague\x00", "timezone: unknown time zone"),
        ("zone.tab", "timezone: unknown time zone 'zone.tab'"),
        ("x" * 300, "timezone: unknown time zone"),
        ("localtime", "timezone: 'localtime' is not a portable IANA time zone name"),
        ("right/Europe/Prague", "timezone: 'right/Europe/Prague' is not a portable"),
        ("", "timezone: must not be empty"),
        ("  ", "timezone: must not be empty"),
        (None, "timezone: must be a string"),
    ],
)
def test_parse_timezone_rejects(name: object, message: str) -> None:
    with pytest.raises(CronError) as info:
        parse_timezone(name)  # type: ignore[arg-type]
    assert str(info.value).startswith(message), str(info.value)


def test_next_fire_with_bad_zone_names_the_zone() -> None:
    with pytest.raises(CronError, match="^timezone: unknown time zone 'Mars/Base'$"):
        next_fire_ms("* * * * * *", "Mars/Base", 0)


# --- next_fire_ms -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "tz", "after", "expected"),
    [
        (
            "* * * * * *",
            "UTC",
            "2026-11-27T10:00:00.000Z",
            ["2026-11-27T10:00:01.000Z", "2026-11-27T10:00:02.000Z", "2026-11-27T10:00:03.000Z"],
        ),
        # strictly after, with a millisecond fraction
        (
            "* * * * * *",
            "UTC",
            "2026-11-27T10:00:00.999Z",
            ["2026-11-27T10:00:01.000Z", "2026-11-27T10:00:02.000Z"],
        ),
        # seconds FIRST: every 20 seconds, not every second
        (
            "*/20 * * * * *",
            "UTC",
            "2026-11-27T10:00:05.000Z",
            [
                "2026-11-27T10:00:20.000Z",
                "2026-11-27T10:00:40.000Z",
                "2026-11-27T10:01:00.000Z",
                "2026-11-27T10:01:20.000Z",
            ],
        ),
        ("*/20 * * * * *", "UTC", "2026-11-27T10:00:20.000Z", ["2026-11-27T10:00:40.000Z"]),
        (
            "*/5 * * * *",
            "UTC",
            "2026-11-27T10:02:30.000Z",
            ["2026-11-27T10:05:00.000Z", "2026-11-27T10:10:00.000Z", "2026-11-27T10:15:00.000Z"],
        ),
        (
            "15 * * * * *",
            "UTC",
            "2026-11-27T10:00:15.000Z",
            ["2026-11-27T10:01:15.000Z", "2026-11-27T10:02:15.000Z"],
        ),
        # names: weekdays at 09:00, from Friday 2026-11-27 09:00
        (
            "0 0 9 * * Mon-Fri",
            "UTC",
            "2026-11-27T09:00:00.000Z",
            ["2026-11-30T09:00:00.000Z", "2026-12-01T09:00:00.000Z", "2026-12-02T09:00:00.000Z"],
        ),
        (
            "0 0,30 8-9 * * *",
            "UTC",
            "2026-11-27T07:00:00.000Z",
            [
                "2026-11-27T08:00:00.000Z",
                "2026-11-27T08:30:00.000Z",
                "2026-11-27T09:00:00.000Z",
                "2026-11-27T09:30:00.000Z",
                "2026-11-28T08:00:00.000Z",
            ],
        ),
        (
            "0 0 0 1 Jan,Jul *",
            "UTC",
            "2026-11-27T00:00:00.000Z",
            ["2027-01-01T00:00:00.000Z", "2027-07-01T00:00:00.000Z", "2028-01-01T00:00:00.000Z"],
        ),
        (
            "0 0 22-2 * * *",
            "UTC",
            "2026-11-27T21:00:00.000Z",
            [
                "2026-11-27T22:00:00.000Z",
                "2026-11-27T23:00:00.000Z",
                "2026-11-28T00:00:00.000Z",
                "2026-11-28T01:00:00.000Z",
                "2026-11-28T02:00:00.000Z",
                "2026-11-28T22:00:00.000Z",
            ],
        ),
        (
            "0 0 12 * * Fri-Mon",
            "UTC",
            "2026-11-26T13:00:00.000Z",
            [
                "2026-11-27T12:00:00.000Z",
                "2026-11-28T12:00:00.000Z",
                "2026-11-29T12:00:00.000Z",
                "2026-11-30T12:00:00.000Z",
                "2026-12-04T12:00:00.000Z",
            ],
        ),
        (
            "0 0 12 * * 7",
            "UTC",
            "2026-11-26T00:00:00.000Z",
            ["2026-11-29T12:00:00.000Z", "2026-12-06T12:00:00.000Z"],
        ),
        # day-of-month and day-of-week both set: either matches (13 Apr 2026 is a Monday)
        (
            "0 0 0 13 * Fri",
            "UTC",
            "2026-04-08T00:00:00.000Z",
            ["2026-04-10T00:00:00.000Z", "2026-04-13T00:00:00.000Z", "2026-04-17T00:00:00.000Z"],
        ),
        ("0 0 0 29 Feb *", "UTC", "2026-01-01T00:00:00.000Z", ["2028-02-29T00:00:00.000Z"]),
        (
            "0 5-5 * * * *",
            "UTC",
            "2026-11-27T10:00:00.000Z",
            ["2026-11-27T10:05:00.000Z", "2026-11-27T11:05:00.000Z"],
        ),
        # croniter 7: a start with a step at the field's end is just that value
        (
            "59/15 * * * * *",
            "UTC",
            "2026-11-27T10:00:00.000Z",
            ["2026-11-27T10:00:59.000Z", "2026-11-27T10:01:59.000Z"],
        ),
        (
            "@hourly",
            "UTC",
            "2026-11-27T10:00:00.000Z",
            ["2026-11-27T11:00:00.000Z", "2026-11-27T12:00:00.000Z"],
        ),
        ("@weekly", "UTC", "2026-11-27T10:00:00.000Z", ["2026-11-29T00:00:00.000Z"]),
        # zones: 09:00 in Kathmandu (+05:45), in Prague (CET, +01:00), in New York (EST)
        (
            "0 0 9 * * *",
            "Asia/Kathmandu",
            "2026-11-26T13:00:00.000Z",
            ["2026-11-27T03:15:00.000Z", "2026-11-28T03:15:00.000Z"],
        ),
        ("0 0 9 * * *", "Europe/Prague", "2026-11-26T13:00:00.000Z", ["2026-11-27T08:00:00.000Z"]),
        (
            "0 0 9 * * *",
            "America/New_York",
            "2026-11-26T13:00:00.000Z",
            ["2026-11-26T14:00:00.000Z", "2026-11-27T14:00:00.000Z"],
        ),
    ],
)
def test_next_fire_times(expression: str, tz: str, after: str, expected: list[str]) -> None:
    assert fires(expression, tz, after, len(expected)) == expected


# --- daylight saving time (Europe/Prague, 2026) ---------------------------------------


def test_spring_forward_skipped_time_fires_right_after_the_gap() -> None:
    # 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist that day, so the
    # schedule fires at 03:00 CEST (01:00Z), then at 02:30 CEST (00:30Z) again.
    assert fires("0 30 2 * * *", "Europe/Prague", "2026-03-28T12:00:00.000Z", 3) == [
        "2026-03-29T01:00:00.000Z",
        "2026-03-30T00:30:00.000Z",
        "2026-03-31T00:30:00.000Z",
    ]


def test_fall_back_repeated_time_fires_once_for_a_fixed_time() -> None:
    # 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice, an hour apart.
    # croniter 7 alone fires at both; classic cron, and mininq, at the first only.
    assert fires("0 30 2 * * *", "Europe/Prague", "2026-10-24T12:00:00.000Z", 3) == [
        "2026-10-25T00:30:00.000Z",
        "2026-10-26T01:30:00.000Z",
        "2026-10-27T01:30:00.000Z",
    ]
    # starting inside the repeated hour, after the first 02:30 (also: a schedule
    # created between the two does not fire at the second)
    assert fires("0 30 2 * * *", "Europe/Prague", "2026-10-25T00:40:00.000Z", 1) == [
        "2026-10-26T01:30:00.000Z",
    ]
    # starting inside the second copy of the hour, after its 02:30
    assert fires("0 30 2 * * *", "Europe/Prague", "2026-10-25T01:40:00.000Z", 1) == [
        "2026-10-26T01:30:00.000Z",
    ]
    # a 5-field daily (classic spelling) does the same
    assert fires("30 2 * * *", "Europe/Prague", "2026-10-24T12:00:00.000Z", 2) == [
        "2026-10-25T00:30:00.000Z",
        "2026-10-26T01:30:00.000Z",
    ]


def test_fall_back_skips_the_whole_second_copy_but_not_the_hour_after() -> None:
    # fixed times at 02:30 and 03:30: 02:30 CEST, (02:30 CET skipped), 03:30 CET
    assert fires("0 30 2,3 * * *", "Europe/Prague", "2026-10-24T23:00:00.000Z", 3) == [
        "2026-10-25T00:30:00.000Z",
        "2026-10-25T02:30:00.000Z",
        "2026-10-26T01:30:00.000Z",
    ]
    # many fixed times in the repeated hour are skipped in one step, and the
    # first second after it (03:00:00 CET) still fires
    assert fires("0-58 0-58 2,3 * * *", "Europe/Prague", "2026-10-25T00:58:57.000Z", 3) == [
        "2026-10-25T00:58:58.000Z",
        "2026-10-25T02:00:00.000Z",
        "2026-10-25T02:00:01.000Z",
    ]


@pytest.mark.parametrize(
    ("expression", "tz", "after", "expected"),
    [
        # wildcard minutes in a fixed hour: every minute of both copies of 02:xx
        (
            "0 */20 2 * * *",
            "Europe/Prague",
            "2026-10-24T23:30:00.000Z",
            [
                "2026-10-25T00:00:00.000Z",
                "2026-10-25T00:20:00.000Z",
                "2026-10-25T00:40:00.000Z",
                "2026-10-25T01:00:00.000Z",
                "2026-10-25T01:20:00.000Z",
                "2026-10-25T01:40:00.000Z",
                "2026-10-26T01:00:00.000Z",
            ],
        ),
        # hours 0-23 is every hour: follows real time like `*`
        (
            "0 0 0-23 * * *",
            "Europe/Prague",
            "2026-10-24T23:30:00.000Z",
            ["2026-10-25T00:00:00.000Z", "2026-10-25T01:00:00.000Z", "2026-10-25T02:00:00.000Z"],
        ),
        # a listed range of hours is fixed times: 02:00 CET is not repeated
        (
            "0 0 1-3 * * *",
            "Europe/Prague",
            "2026-10-24T22:30:00.000Z",
            [
                "2026-10-24T23:00:00.000Z",
                "2026-10-25T00:00:00.000Z",
                "2026-10-25T02:00:00.000Z",
                "2026-10-26T00:00:00.000Z",
            ],
        ),
        # hourly at :30 in spring: 02:30 doesn't exist and is not made up
        (
            "0 30 * * * *",
            "Europe/Prague",
            "2026-03-28T23:00:00.000Z",
            ["2026-03-28T23:30:00.000Z", "2026-03-29T00:30:00.000Z", "2026-03-29T01:30:00.000Z"],
        ),
        # every minute of 02:xx in spring: that hour doesn't exist on 2026-03-29
        ("0 * 2 * * *", "Europe/Prague", "2026-03-28T23:30:00.000Z", ["2026-03-30T00:00:00.000Z"]),
        # two fixed times in the gap fire once, right after it
        (
            "0 0,30 2 * * *",
            "Europe/Prague",
            "2026-03-28T23:00:00.000Z",
            ["2026-03-29T01:00:00.000Z", "2026-03-30T00:00:00.000Z"],
        ),
        # Havana falls back at midnight: a daily midnight fires once
        (
            "0 0 0 * * *",
            "America/Havana",
            "2026-11-01T00:00:00.000Z",
            ["2026-11-01T04:00:00.000Z", "2026-11-02T05:00:00.000Z"],
        ),
        # Lord Howe falls back by 30 minutes: 01:45 happens twice, fires once
        (
            "0 45 1 * * *",
            "Australia/Lord_Howe",
            "2026-04-04T13:00:00.000Z",
            ["2026-04-04T14:45:00.000Z", "2026-04-05T15:15:00.000Z"],
        ),
        # Dublin's winter time is a negative DST in tzdata; 01:00 repeats, fires once
        (
            "0 0 1 * * *",
            "Europe/Dublin",
            "2026-10-24T12:00:00.000Z",
            ["2026-10-25T00:00:00.000Z", "2026-10-26T01:00:00.000Z"],
        ),
    ],
)
def test_dst_cases(expression: str, tz: str, after: str, expected: list[str]) -> None:
    assert fires(expression, tz, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("expression", "wildcard"),
    [
        ("* * * * * *", True),
        ("0 0 * * * *", True),
        ("0 */15 * * * *", True),
        ("0 * 2 * * *", True),
        ("*/30 0 2 * * *", True),
        ("0 0 0-23 * * *", True),
        ("0 0 5,*/6 * * *", True),
        ("0 30 2 * * *", False),
        ("0 0 1-3 * * *", False),
        ("0 0,30 8-18 * * Mon-Fri", False),
        ("0 0 0 * * *", False),
        ("0 0 */2 1 * *", True),
        ("0 0 0 */2 * *", False),  # a day-of-month step is still a fixed time of day
    ],
)
def test_is_wildcard(expression: str, wildcard: bool) -> None:
    assert is_wildcard(parse_cron(expression)) is wildcard


@pytest.mark.parametrize(
    ("after", "local_hours"),
    [
        # spring: 01:00 CET, then 03:00 CEST (02:00 doesn't exist), 04:00 ...
        ("2026-03-28T22:30:00.000Z", [0, 1, 3, 4, 5]),
        # autumn: 01:00, 02:00 CEST, 02:00 CET, 03:00 ...
        ("2026-10-24T21:30:00.000Z", [0, 1, 2, 2, 3, 4]),
    ],
)
def test_hourly_across_transitions_is_one_hour_apart(after: str, local_hours: list[int]) -> None:
    zone = ZoneInfo("Europe/Prague")
    times = [
        parse_rfc3339(t) for t in fires("0 0 * * * *", "Europe/Prague", after, len(local_hours))
    ]
    gaps = {b - a for a, b in itertools.pairwise(times)}
    assert gaps == {HOUR_MS}, [to_rfc3339(t) for t in times]
    assert [datetime.fromtimestamp(t / 1000, zone).hour for t in times] == local_hours


def _wall_matcher(expression: str):
    """Whether a naive wall-clock time matches a time-of-day-only expression."""
    (minutes, hours, *dates, seconds), _ = croniter.expand(expression, second_at_beginning=True)
    assert dates == [["*"]] * 3, "the brute force only knows time-of-day fields"

    def allowed(values: list, value: int) -> bool:
        return values == ["*"] or value in values

    return lambda wall: (
        allowed(seconds, wall.second) and allowed(minutes, wall.minute) and allowed(hours, wall.hour)
    )


def _expected_fires(expression: str, tz: str, low: int, high: int) -> list[int]:
    """The classic-cron rule, by brute force over every minute of (low, high]:
    instants whose wall clock matches; for a fixed-time expression not the second
    copy of a repeated time, plus the end of a gap that swallowed a match."""
    zone = ZoneInfo(tz)
    matches = _wall_matcher(expression)
    fixed = not is_wildcard(parse_cron(expression))
    out = []
    for t in range(low + 60_000, high + 1, 60_000):
        local = datetime.fromtimestamp(t / 1000, zone)
        before = datetime.fromtimestamp((t - 60_000) / 1000, zone)
        if matches(local):
            if not (fixed and local.fold == 1):
                out.append(t)
        elif fixed and local.utcoffset() > before.utcoffset():  # type: ignore[operator]
            # t ends a gap: look at the wall-clock minutes that did not exist
            wall = before.replace(tzinfo=None) + timedelta(minutes=1)
            while wall < local.replace(tzinfo=None):
                if matches(wall):
                    out.append(t)
                    break
                wall += timedelta(minutes=1)
    return out


@pytest.mark.parametrize(
    "tz", ["Europe/Prague", "America/New_York", "Australia/Lord_Howe", "Europe/Dublin"]
)
@pytest.mark.parametrize(
    "expression",
    [
        "0 0 * * * *",
        "0 */15 * * * *",
        "0 30 2 * * *",
        "0 0 0 * * *",
        "0 0,30 1-3 * * *",
        "0 45 1 * * *",
        "0 */10 1 * * *",
    ],
)
def test_dst_against_brute_force(tz: str, expression: str) -> None:
    """Around each 2026 transition of four zones, next_fire_ms gives exactly the
    fire times the rule in the module docstring names, checked minute by minute.

    Lord Howe shifts by 30 minutes; Dublin's winter time is a negative DST in tzdata.
    """
    zone = ZoneInfo(tz)

    def offset(ms: int) -> object:
        return datetime.fromtimestamp(ms / 1000, zone).utcoffset()

    start, end = parse_rfc3339("2026-01-01T00:00:00Z"), parse_rfc3339("2027-01-01T00:00:00Z")
    transitions = [t for t in range(start, end, 15 * 60_000) if offset(t) != offset(t - 60_000)]
    assert len(transitions) == 2, [to_rfc3339(t) for t in transitions]
    for transition in transitions:
        low, high = transition - 26 * HOUR_MS, transition + 26 * HOUR_MS
        expected = _expected_fires(expression, tz, low, high)
        got, t = [], low
        while (t := next_fire_ms(expression, tz, t)) <= high:
            got.append(t)
        assert [to_rfc3339(x) for x in got] == [to_rfc3339(x) for x in expected]


# --- catching up after downtime --------------------------------------------------------


def test_missed_fires_once_then_moves_to_the_next_future_time() -> None:
    due = parse_rfc3339("2026-11-24T10:00:00Z")  # three days of hourly fires missed
    now = parse_rfc3339("2026-11-27T12:34:56.789Z")
    assert to_rfc3339(next_fire_after_missed("0 0 * * * *", "UTC", due, now)) == (
        "2026-11-27T13:00:00.000Z"
    )


def test_on_time_fire_moves_to_the_next_time() -> None:
    due = parse_rfc3339("2026-11-27T10:00:00Z")
    now = due + 300  # the scheduler woke up 300 ms late
    assert to_rfc3339(next_fire_after_missed("*/20 * * * * *", "UTC", due, now)) == (
        "2026-11-27T10:00:20.000Z"
    )
    # exactly on time
    assert to_rfc3339(next_fire_after_missed("*/20 * * * * *", "UTC", due, due)) == (
        "2026-11-27T10:00:20.000Z"
    )


def test_early_call_moves_past_due_not_back_to_it() -> None:
    due = parse_rfc3339("2026-11-27T10:00:00Z")
    assert to_rfc3339(next_fire_after_missed("0 0 * * * *", "UTC", due, due - 5000)) == (
        "2026-11-27T11:00:00.000Z"
    )


def test_missed_across_a_dst_change_lands_on_a_real_time() -> None:
    due = parse_rfc3339("2026-03-28T01:30:00Z")  # 02:30 CET, daily
    now = parse_rfc3339("2026-03-29T00:45:00Z")  # 01:45 CET, before the gap
    assert to_rfc3339(next_fire_after_missed("0 30 2 * * *", "Europe/Prague", due, now)) == (
        "2026-03-29T01:00:00.000Z"  # 03:00 CEST, right after the gap
    )
