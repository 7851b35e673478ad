"""Per-destination delivery control (SPEC §10): the adaptive in-flight limit,
the circuit breaker and the destination-wide Retry-After pause.

Pure: no I/O and no clock; every method takes the time (epoch ms). The
dispatcher keeps one `DestinationControl` per destination, asks it how many
deliveries may start (`room`), tells it when one starts and how it ended,
and logs the transitions it returns.

Control law: AIMD, as TCP Reno does it. The limit starts at the maximum, so
a healthy destination is never held back. A 429 or 503 (the receiver says
"too much") halves it; a timeout or connection failure (no answer at all,
TCP's retransmission timeout) drops it to 1; either at most once per round
trip: a failure of a delivery that started before the last decrease says
nothing new, its request went out at the old limit. A 2xx answered within
half the job's timeout raises it by one. A webhook receiver's overload
signals are hard ones (it hangs, refuses, or answers 429/503); its latency
depends mostly on what the application does with each request, so a
latency-gradient limiter would read work as congestion. Dropping to 1 on a
timeout frees a hanging destination's slots after one timeout instead of
log2(limit) of them; one more per good answer gives a recovered destination
its full limit back after about as many answers as the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mininq.engine.outcome import RETRYABLE_4XX

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
STATE_NUMBER = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}

COOL_DOWN_MS = 5_000
MAX_COOL_DOWN_MS = 300_000
MAX_PAUSE_MS = 300_000

# What an attempt's answer says about its destination.
SUCCESS = "success"  # 2xx: alive and willing
FAILURE = "failure"  # timeout, connection error, 5xx, 429: counts toward the breaker
ALIVE = "alive"  # a 4xx but RETRYABLE_4XX (408/425/429): the receiver answers, ends a failure run
NEUTRAL = "neutral"  # anything else (3xx, 408, 425, a delivery refused before sending)


def judge(status: int | None, transport_failure: bool) -> str:
    """The meaning for the destination of one attempt's result."""
    if status is None:
        return FAILURE if transport_failure else NEUTRAL
    if 200 <= status <= 299:
        return SUCCESS
    if status >= 500 or status == 429:
        return FAILURE
    if 400 <= status <= 499 and status not in RETRYABLE_4XX:
        return ALIVE
    return NEUTRAL


def overloaded(status: int | None, transport_failure: bool) -> bool:
    """Signals that halve the limit: timeouts, connection failures, 429, 503."""
    return transport_failure if status is None else status in (429, 503)


@dataclass
class Transition:
    """A breaker change worth a log line."""

    event: str  # "opened", "half_open", "closed", "reopened", "paused"
    reason: str


@dataclass
class DestinationControl:
    max_limit: int
    threshold: int  # failures in a row that open the breaker; 0: never
    limit: int = 0
    state: str = CLOSED
    failures: int = 0  # the current run of failures
    open_until: int = 0  # while OPEN: when the probe may go
    paused_until: int = 0  # Retry-After: nothing starts before this
    reopenings: int = 0  # cool-down doublings since the breaker last closed
    probe_out: bool = False
    last_decrease: int = -(2**62)
    delivered: int = 0
    failed: int = 0
    last_status: int | None = None
    last_error: str | None = None
    seen_at: int = 0
    changes: list[Transition] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.max_limit = max(1, self.max_limit)
        if self.limit <= 0:
            self.limit = self.max_limit

    # -- questions ----------------------------------------------------------
    def room(self, now: int, in_flight: int) -> int:
        """How many deliveries may start now, given `in_flight` already out.
        An open breaker whose cool-down is over turns half-open here."""
        if self.paused_until > now:
            return 0
        self.paused_until = 0
        if self.state == OPEN:
            if now < self.open_until:
                return 0
            self.state = HALF_OPEN
            self.changes.append(Transition("half_open", "cool-down over; sending one probe"))
        if self.state == HALF_OPEN:
            return 0 if self.probe_out else 1
        return max(0, self.limit - in_flight)

    def reopens_at(self, now: int) -> int | None:
        """When a destination shut by time (open or paused) may send again."""
        times = [t for t in (self.paused_until,
                             self.open_until if self.state == OPEN else 0) if t > now]
        return max(times) if times else None

    @property
    def normal(self) -> bool:
        """Closed, not paused, at the full limit: nothing to look at each pass."""
        return (self.state == CLOSED and self.limit >= self.max_limit and self.paused_until == 0
                and not self.probe_out)

    # -- events -------------------------------------------------------------
    def started(self, now: int) -> bool:
        """A delivery starts; True when it is the half-open probe."""
        self.seen_at = now
        if self.state == HALF_OPEN and not self.probe_out:
            self.probe_out = True
            return True
        return False

    def finished(self, now: int, *, started_at: int, status: int | None,
                 transport_failure: bool, duration_ms: int, timeout_ms: int,
                 retry_after_ms: int | None, probe: bool, error: str | None) -> None:
        """Account for one attempt's result (transitions land in `changes`)."""
        self.seen_at = now
        if self.paused_until and self.paused_until <= now:
            self.paused_until = 0
        verdict = judge(status, transport_failure)
        if verdict == NEUTRAL and status is None:
            # Not sent (shutdown, refused by policy): says nothing about the receiver.
            if probe:
                self.probe_out = False
            return
        self.last_status = status
        self.last_error = error
        if verdict == SUCCESS:
            self.delivered += 1
            if duration_ms * 2 <= timeout_ms:
                self.limit = min(self.max_limit, self.limit + 1)
        elif verdict == FAILURE:
            self.failed += 1
        if overloaded(status, transport_failure) and started_at >= self.last_decrease:
            self.limit = 1 if status is None else max(1, self.limit // 2)
            self.last_decrease = now
        if status in (429, 503) and retry_after_ms is not None and retry_after_ms > 0:
            until = now + min(retry_after_ms, MAX_PAUSE_MS)
            if until > self.paused_until:
                self.paused_until = until
                self.changes.append(Transition(
                    "paused", f"HTTP {status} with Retry-After: nothing sent for "
                              f"{until - now} ms"))
        if probe:
            self.probe_out = False
            if verdict == SUCCESS:
                self._close(f"probe answered HTTP {status}")
            else:
                self.reopenings += 1
                self._open(now, f"probe failed: {error or f'HTTP {status}'}", "reopened")
            return
        if verdict in (SUCCESS, ALIVE):
            self.failures = 0
        elif verdict == FAILURE:
            self.failures += 1
            if self.state == CLOSED and self.threshold and self.failures >= self.threshold:
                self._open(now, f"{self.failures} failed deliveries in a row, the last: "
                                f"{error or f'HTTP {status}'}", "opened")

    def reset(self) -> None:
        """Close the breaker, end the failure run, lift a pause, full limit."""
        self.state = CLOSED
        self.failures = 0
        self.limit = self.max_limit
        self.open_until = 0
        self.paused_until = 0
        self.reopenings = 0
        self.probe_out = False

    def take_changes(self) -> list[Transition]:
        changes, self.changes = self.changes, []
        return changes

    # -- inside -------------------------------------------------------------
    def _open(self, now: int, reason: str, event: str) -> None:
        cool = min(COOL_DOWN_MS * 2 ** min(self.reopenings, 16), MAX_COOL_DOWN_MS)
        self.state = OPEN
        self.open_until = now + cool
        self.changes.append(Transition(event, f"{reason}; cool-down {cool} ms"))

    def _close(self, reason: str) -> None:
        self.state = CLOSED
        self.failures = 0
        self.reopenings = 0
        self.open_until = 0
        self.changes.append(Transition("closed", reason))
