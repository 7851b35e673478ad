"""Activity over time (SPEC §11): per-minute rollups per queue, pure.

A rollup is one row per (queue, minute): jobs created, attempts by outcome
(completed, retried, dead) and a fixed-bucket histogram of attempt durations.
Writes add to the rows of the minutes they fall in, inside the transactions
they commit anyway: every job create adds to created, the HTTP process's
(API creates, schedule triggers) as well as the engine's (schedule fires),
and the engine's attempt outcomes add the rest; readers sum rows over
minutes (and queues), and percentiles come from the summed histogram, so a
wide bucket of the chart has the true p99 of its minutes, not an average of
p99s.

Rows travel as flat integer lists in `COLUMNS` order, the order the store
keeps them in.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MINUTE_MS = 60_000
MAX_MINUTES = 10_080  # 7 days: the longest window GET /metrics/history serves

COUNTS = ("created", "completed", "retried", "dead")
# Upper bounds (ms, inclusive) of the duration buckets; one more bucket holds
# everything slower. Roughly geometric, so a percentile read from them is off
# by at most a third of its value.
BOUNDS_MS = (
    1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 250, 400, 600, 1000, 1500, 2500,
    4000, 6000, 10_000, 15_000, 30_000, 60_000, 120_000,
)
HIST = tuple(f"d{i}" for i in range(len(BOUNDS_MS) + 1))
COLUMNS = COUNTS + HIST
_FIRST_HIST = len(COUNTS)
# An attempt's outcome (as the engine names it) and the count it adds to.
_OUTCOME_COLUMN = {"completed": 1, "retry": 2, "dead": 3}

Rollups = dict[tuple[str, int], list[int]]  # (queue, minute start ms) -> COLUMNS values


def minute_start(ms: int) -> int:
    """Start of the minute `ms` falls in (epoch ms)."""
    return ms - ms % MINUTE_MS


def bucket_of(duration_ms: int) -> int:
    """Index of the histogram bucket a duration is counted in."""
    return bisect_left(BOUNDS_MS, duration_ms)


def _row(rollups: Rollups, queue: str, at_ms: int) -> list[int]:
    key = (queue, minute_start(at_ms))
    row = rollups.get(key)
    if row is None:
        row = rollups[key] = [0] * len(COLUMNS)
    return row


def add_created(rollups: Rollups, queue: str, at_ms: int, n: int = 1) -> None:
    _row(rollups, queue, at_ms)[0] += n


def add_attempt(rollups: Rollups, queue: str, at_ms: int, outcome: str,
                duration_ms: int | None) -> None:
    """One finished attempt; `duration_ms` None keeps it out of the percentiles."""
    row = _row(rollups, queue, at_ms)
    row[_OUTCOME_COLUMN[outcome]] += 1
    if duration_ms is not None:
        row[_FIRST_HIST + bucket_of(duration_ms)] += 1


def timed(outcome: dict) -> bool:
    """Whether an attempt's duration counts in the percentiles: it got an answer
    or timed out. A refused connection or a cut-short attempt says nothing
    about how fast the receiver is."""
    return outcome.get("status_code") is not None or bool(outcome.get("timed_out"))


def of_deliveries(outcomes: Iterable[dict]) -> Rollups:
    """Rollups of attempt outcomes, each in the minute it ended."""
    rollups: Rollups = {}
    for o in outcomes:
        add_attempt(
            rollups, o["queue_name"], o["started_at"] + o["duration_ms"], o["outcome"],
            o["duration_ms"] if timed(o) else None,
        )
    return rollups


def of_lost(rows: Iterable[dict], now: int) -> Rollups:
    """Rollups of attempts lost with their process (reaped or recovered): retried
    or dead, with no duration (they got no answer)."""
    rollups: Rollups = {}
    for r in rows:
        add_attempt(rollups, r["queue_name"], now, "dead" if r["status"] == "dead" else "retry", None)
    return rollups


def of_created(per_queue_minute: Iterable[tuple[tuple[str, int], int]]) -> Rollups:
    """Rollups of created jobs from ((queue, at_ms), n) pairs."""
    rollups: Rollups = {}
    for (queue, at_ms), n in per_queue_minute:
        if n:
            add_created(rollups, queue, at_ms, n)
    return rollups


# -- reading ----------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """Totals of one time bucket (a minute, or several summed)."""

    start: int  # epoch ms
    values: tuple[int, ...]  # COLUMNS order

    @property
    def created(self) -> int:
        return self.values[0]

    @property
    def completed(self) -> int:
        return self.values[1]

    @property
    def retried(self) -> int:
        return self.values[2]

    @property
    def dead(self) -> int:
        return self.values[3]

    @property
    def deliveries(self) -> int:
        return self.values[1] + self.values[2] + self.values[3]

    @property
    def timed(self) -> int:
        """Attempts in the histogram."""
        return sum(self.values[_FIRST_HIST:])

    def percentile(self, q: float) -> int | None:
        """Estimated q-quantile (0 < q ≤ 1) of the durations in ms; None without any."""
        return percentile(self.values[_FIRST_HIST:], q)


def percentile(hist: Sequence[int], q: float) -> int | None:
    """q-quantile from bucket counts (`BOUNDS_MS` plus the overflow bucket),
    interpolated linearly inside its bucket as Prometheus' histogram_quantile
    does; the overflow bucket answers with the last bound."""
    total = sum(hist)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(hist):
        if n and seen + n >= rank:
            if i == len(BOUNDS_MS):
                return BOUNDS_MS[-1]
            lower = BOUNDS_MS[i - 1] if i else 0
            return round(lower + (BOUNDS_MS[i] - lower) * max(0.0, rank - seen) / n)
        seen += n
    return BOUNDS_MS[-1]


def window(now: int, buckets: int, step_ms: int = MINUTE_MS) -> tuple[int, int]:
    """[start, end) of the last `buckets` buckets of `step_ms`, the last holding `now`.

    Buckets are aligned to multiples of `step_ms` since the epoch, so a chart's
    bars don't shift their edges from one poll to the next.
    """
    end = now - now % step_ms + step_ms
    return end - buckets * step_ms, end


def series(rows: Iterable[Sequence[int]], start: int, buckets: int,
           step_ms: int = MINUTE_MS) -> list[Point]:
    """Every bucket of the window, oldest first, zeros where no row fell.

    `rows` are (bucket start, *COLUMNS values) as the store sums them; a row
    whose start is not a bucket of the window is ignored."""
    found = {row[0]: tuple(int(v) for v in row[1:]) for row in rows}
    zeros = (0,) * len(COLUMNS)
    return [
        Point(t, found.get(t, zeros))
        for t in range(start, start + buckets * step_ms, step_ms)
    ]
