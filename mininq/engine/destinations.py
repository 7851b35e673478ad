"""This node's view of every destination it delivers to: the control state
of each (`adaptive.py`), its deliveries in flight, and the log lines of its
breaker. The dispatcher asks it which destinations to leave out of a claim
and which may take only a few jobs; `snapshot` gives the rows the engine
writes for `GET /destinations`.
"""

from __future__ import annotations

import logging
from collections import Counter

from mininq.engine.adaptive import DestinationControl, Transition
from mininq.logs import get_logger, log_event
from mininq.store.rules import DESTINATIONS_KEPT, DESTINATIONS_SEEN_MS

log = get_logger("mininq.engine")

_LOG_LINES = {
    "opened": (logging.WARNING, "breaker opened"),
    "reopened": (logging.WARNING, "breaker re-opened"),
    "half_open": (logging.INFO, "breaker half-open"),
    "closed": (logging.INFO, "breaker closed"),
    "paused": (logging.INFO, "destination paused"),
}


ACTIVE_MS = 1_000  # a destination that started a delivery this recently competes for slots
ACTIVE_RECOUNT_MS = 100


class Plan:
    """What one claim round may take: destinations to leave out, those that
    may take only a few jobs (room below the round's size), those holding
    their fair share already, and the earliest moment a destination shut by
    time opens again."""

    def __init__(self) -> None:
        self.exclude: list[str] = []
        self.few: dict[str, int] = {}
        self.over_share: list[str] = []
        self.reopens_at: int | None = None


class Destinations:
    def __init__(self, max_limit: int, threshold: int, slots: int) -> None:
        self.max_limit = max_limit
        self.threshold = threshold
        self.slots = slots  # worker.concurrency
        self._active = 1
        self._active_at = -ACTIVE_RECOUNT_MS
        self.controls: dict[str, DestinationControl] = {}
        self.in_flight: Counter[str] = Counter()
        self.dirty: set[str] = set()

    def control(self, destination: str, now: int) -> DestinationControl:
        c = self.controls.get(destination)
        if c is None:
            if len(self.controls) >= DESTINATIONS_KEPT:  # destinations remembered (SPEC §10)
                self._forget(now)
            c = DestinationControl(self.max_limit, self.threshold, seen_at=now)
            self.controls[destination] = c
            self._active_at = -ACTIVE_RECOUNT_MS  # a newcomer changes the fair share
        return c

    def plan(self, now: int, round_size: int) -> Plan:
        """Which destinations a claim of up to `round_size` jobs must leave out
        or take only a few from. Destinations neither in flight nor troubled
        have room for the full maximum, which a round never exceeds."""
        plan = Plan()
        share = -(-self.slots // self._count_active(now))
        if share < self.slots:
            plan.over_share = [d for d, n in self.in_flight.items() if n >= share]
        for d, c in self.controls.items():
            n = self.in_flight.get(d, 0)
            if not n and c.normal:
                continue
            room = c.room(now, n)
            self._log(d, c.take_changes())
            if room <= 0:
                plan.exclude.append(d)
                at = c.reopens_at(now)
                if at is not None and (plan.reopens_at is None or at < plan.reopens_at):
                    plan.reopens_at = at
            elif room < round_size:
                plan.few[d] = room
        return plan

    def _count_active(self, now: int) -> int:
        """Destinations in flight or started one lately (recounted now and then:
        it only sets the fair share)."""
        if now - self._active_at >= ACTIVE_RECOUNT_MS:
            since = now - ACTIVE_MS
            self._active = max(1, sum(
                1 for d, c in self.controls.items() if c.seen_at >= since or d in self.in_flight))
            self._active_at = now
        return self._active

    def started(self, destination: str, now: int) -> bool:
        """A delivery starts; True when it is the destination's half-open probe."""
        self.in_flight[destination] += 1
        self.dirty.add(destination)
        return self.control(destination, now).started(now)

    def finished(self, destination: str, outcome: dict, probe: bool, timeout_ms: int,
                 now: int) -> None:
        self.in_flight[destination] -= 1
        if self.in_flight[destination] <= 0:
            del self.in_flight[destination]
        self.dirty.add(destination)
        c = self.control(destination, now)
        c.finished(
            now, started_at=outcome["started_at"], status=outcome["status_code"],
            transport_failure=outcome.get("transport_failure", False),
            duration_ms=outcome["duration_ms"], timeout_ms=timeout_ms,
            retry_after_ms=outcome.get("retry_after_ms"), probe=probe, error=outcome["error"],
        )
        self._log(destination, c.take_changes())

    def reset(self, destination: str) -> None:
        c = self.controls.get(destination)
        if c is None:
            return
        c.reset()
        self.dirty.add(destination)
        log_event(log, logging.INFO, "breaker reset", destination=destination)

    def snapshot(self, now: int) -> list[dict]:
        """Rows for the destinations table: what changed since the last call."""
        names, self.dirty = self.dirty, set()
        rows = []
        for d in names:
            c = self.controls.get(d)
            if c is None:
                continue
            rows.append({
                "destination": d, "state": c.state, "limit": c.limit,
                "in_flight": self.in_flight.get(d, 0),
                "consecutive_failures": c.failures, "last_status": c.last_status,
                "last_error": c.last_error, "open_until": c.reopens_at(now),
                "delivered": c.delivered, "failed": c.failed, "seen_at": c.seen_at,
            })
        return rows

    def _forget(self, now: int) -> None:
        """Drop the destinations idle longest (none in flight) to make room."""
        idle = sorted((c.seen_at, d) for d, c in self.controls.items() if d not in self.in_flight)
        for seen_at, d in idle[: max(1, len(idle) // 10)]:
            if seen_at < now - DESTINATIONS_SEEN_MS or len(self.controls) >= DESTINATIONS_KEPT:
                del self.controls[d]

    def _log(self, destination: str, changes: list[Transition]) -> None:
        if changes:
            self.dirty.add(destination)
        for t in changes:
            level, message = _LOG_LINES[t.event]
            log_event(log, level, message, destination=destination, reason=t.reason)
