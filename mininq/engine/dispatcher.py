"""The claim loop: lease due jobs within every limit and start their deliveries.

Limits: `worker.concurrency` in flight overall, always here; per destination
(scheme://host:port) the adaptive limit, breaker and Retry-After pause of
`destinations.py`, on this node: claims leave out the destinations that may
take nothing now, and those with room for only a few jobs are claimed on their
own first. Each queue's
`max_concurrency` and token bucket are enforced here when this engine is the
only one delivering (SQLite, see `store/sqlite/liveness.py`); with a backend
shared by several nodes (`Store.global_limits`) the store's claim enforces them
across nodes and `next_due` leaves out queues without room. Free slots are dealt to
queues round-robin, starting one queue further on each pass, so a large
backlog can't starve a small queue. Between passes the loop sleeps until the
earliest moment something can change: a delayed job or retry becoming due, a
token arriving, a shut destination opening again, a delivery finishing, or a
wake from the HTTP process. Jobs of a shut destination are skipped, not
touched: they keep their visible_at and spend no attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from mininq.clock import now_ms
from mininq.config import Config
from mininq.engine.delivery import Deliverer
from mininq.engine.destinations import Destinations
from mininq.engine.finisher import Finisher
from mininq.engine.ratelimit import TokenBucket
from mininq.logs import get_logger, log_event
from mininq.store import Store
from mininq.wake import Signal, WakeListener

log = get_logger("mininq.engine")

LEASE_MARGIN_MS = 5_000
# Under load, wait up to CLAIM_HOLD_MS for a few more free slots rather than
# claiming one or two at a time: each claim is a write transaction, and batches
# of ~16 cut the engine's CPU per delivery by about a tenth.
CLAIM_BATCH = 16
CLAIM_HOLD_MS = 2


def deal(free: int, room: dict[str, int], order: list[str]) -> dict[str, int]:
    """Deal `free` slots one at a time round-robin over `order`, up to each queue's room."""
    alloc = dict.fromkeys(order, 0)
    while free > 0:
        progressed = False
        for name in order:
            if free > 0 and alloc[name] < room[name]:
                alloc[name] += 1
                free -= 1
                progressed = True
        if not progressed:
            break
    return {q: n for q, n in alloc.items() if n > 0}


class Dispatcher:
    def __init__(self, config: Config, store: Store, deliverer: Deliverer, finisher: Finisher,
                 signal: Signal, listener: WakeListener | None = None) -> None:
        self.config = config
        self.store = store
        self.deliverer = deliverer
        self.finisher = finisher
        self.signal = signal
        self.listener = listener
        self.in_flight: Counter[str] = Counter()
        self.tasks: set[asyncio.Task] = set()
        self.buckets: dict[str, tuple[float, float, TokenBucket]] = {}
        self.stopping = False
        self._turn = 0
        self._only = set(config.worker.queues)
        self._settings: list[dict] = []
        self._settings_read_at = -1
        self._settings_generation = -1
        self._between_ticks = asyncio.Event()
        self._holding_since: int | None = None
        self._between_ticks.set()
        self._resets_seen: dict[str, int] | None = None
        self.max_per_destination = config.destination_limit
        self.destinations = Destinations(self.max_per_destination,
                                         config.webhooks.breaker_threshold,
                                         config.worker.concurrency)

    @property
    def total_in_flight(self) -> int:
        return sum(self.in_flight.values())

    async def run(self) -> None:
        poll_s = self.config.worker.poll_interval_ms / 1000
        woken = True
        while not self.stopping:
            self._between_ticks.clear()
            try:
                sleep_ms = await self.tick(probe=not woken)
            finally:
                self._between_ticks.set()
            if self.stopping:
                break
            timeout = poll_s if sleep_ms is None else min(poll_s, sleep_ms / 1000)
            woken = await self.signal.wait(timeout)

    def _bucket(self, queue: dict, now: int) -> TokenBucket | None:
        rps = queue["rate_limit_rps"]
        if rps is None:
            self.buckets.pop(queue["name"], None)
            return None
        burst = queue["rate_limit_burst"] or max(1.0, rps)
        known = self.buckets.get(queue["name"])
        if known is None:
            bucket = TokenBucket(rps, burst, now)
            self.buckets[queue["name"]] = (rps, burst, bucket)
            return bucket
        if known[:2] != (rps, burst):
            known[2].reconfigure(rps, burst, now)
            self.buckets[queue["name"]] = (rps, burst, known[2])
        return known[2]

    def _hold_for_batch(self, free: int, now: int) -> int:
        """Ms to wait for more free slots before claiming (0: claim now)."""
        batch = max(1, min(CLAIM_BATCH, self.config.worker.concurrency // 4))
        if free >= batch or not self.tasks:
            self._holding_since = None
            return 0
        if self._holding_since is None:
            self._holding_since = now
        waited = now - self._holding_since
        if waited >= CLAIM_HOLD_MS:
            self._holding_since = None
            return 0
        return CLAIM_HOLD_MS - waited

    async def _queue_settings(self, now: int) -> list[dict]:
        """Queue settings, read again after a wake from the HTTP process (which
        follows every change) or once per poll interval; between those, ticks
        caused by finished deliveries reuse them."""
        stale = now - self._settings_read_at >= self.config.worker.poll_interval_ms
        if stale or self.signal.generation != self._settings_generation:
            self._settings_generation = self.signal.generation
            self._settings = await self.store.queue_settings()
            self._settings_read_at = now
            await self._apply_resets()
        return self._settings

    async def _apply_resets(self) -> None:
        """Resets asked through POST /destinations/reset since the last look
        (the first look only notes what was asked before this engine ran).
        `tick` pokes the finisher to write the reset rows as it ends."""
        asked = await self.store.destination_resets()
        if self._resets_seen is not None:
            for d, n in asked.items():
                if n > self._resets_seen.get(d, 0):
                    self.destinations.reset(d)
        self._resets_seen = asked

    async def tick(self, probe: bool = False) -> int | None:
        try:
            return await self._tick(probe)
        finally:
            if self.destinations.dirty:
                self.finisher.poke()

    async def _tick(self, probe: bool) -> int | None:
        """One pass: claim what may run now. Returns ms until the next moment worth
        waking for (None: only a wake or a finished delivery can change anything).

        With `probe` (the sleep ran out, nobody woke us) it first asks which
        queues have anything due, a read, so an idle engine never takes the
        write lock just to find nothing."""
        if self.listener is not None:
            self.listener.before_claim()
        now = now_ms()
        defaults = self.config.defaults
        free = self.config.worker.concurrency - self.total_in_flight
        queues = [
            q for q in await self._queue_settings(now)
            if not q["paused"] and (not self._only or q["name"] in self._only)
        ]
        room: dict[str, int] = {}
        waits: list[int] = []
        buckets: dict[str, TokenBucket] = {}
        for q in queues:
            limit = q["max_concurrency"] or defaults.queue_max_concurrency
            space = limit - self.in_flight[q["name"]]
            if self.store.global_limits:
                # Finished here but not written: the store still counts them
                # running, so a claim for their slots would come up short.
                space -= self.finisher.unwritten[q["name"]]
            # With limits kept by the store across nodes, its claim enforces
            # the bucket; a bucket here would only be this node's share.
            bucket = None if self.store.global_limits else self._bucket(q, now)
            if bucket is not None:
                buckets[q["name"]] = bucket
                tokens = bucket.available(now)
                if tokens <= 0 and space > 0:
                    waits.append(bucket.ms_until_available(now))
                space = min(space, tokens)
            if space > 0:
                room[q["name"]] = space
        if free <= 0 or not room:
            return min(waits) if waits else None
        hold = self._hold_for_batch(free, now)
        if hold:
            return hold
        if probe:
            plan = self.destinations.plan(now, min(free, self.max_per_destination))
            due = await self.store.next_due(sorted(room), plan.exclude)
            now = now_ms()
            if plan.reopens_at is not None:
                waits.append(max(0, plan.reopens_at - now))
            later = [t - now for name, t in due.items() if t > now]
            room = {name: n for name, n in room.items() if due.get(name, now + 1) <= now}
            if not room:
                candidates = later + waits
                return min(candidates) if candidates else None
        names = sorted(room)
        k = self._turn % len(names)
        self._turn += 1
        order = names[k:] + names[:k]
        free = await self._claim_few(now, free, room, order, buckets)
        drained: list[str] = []
        fair = True
        while free > 0 and room:
            # No destination outside plan.exclude/plan.few has less room than
            # this round's size, so none can get more jobs than its limit.
            # Destinations holding their fair share of the slots wait while
            # others have jobs due; when none has, they may take the rest.
            size = min(free, self.max_per_destination)
            plan = self.destinations.plan(now, size)
            alloc = deal(size, room, order)
            if not alloc:
                break
            exclude = plan.exclude + list(plan.few)
            held_back = fair and bool(plan.over_share)
            if held_back:
                exclude += plan.over_share
            jobs = await self.store.claim(list(alloc.items()), LEASE_MARGIN_MS, exclude=exclude)
            got = self._started(jobs, now, buckets)
            free -= len(jobs)
            if held_back and any(got[name] < n for name, n in alloc.items()):
                fair = False
                for name in alloc:
                    room[name] -= got[name]
                    if room[name] <= 0:
                        del room[name]
                        order.remove(name)
                continue
            for name, n in alloc.items():
                room[name] -= got[name]
                if got[name] < n:
                    drained.append(name)  # nothing more due in it right now
                if got[name] < n or room[name] <= 0:
                    del room[name]
                    order.remove(name)
        if free <= 0:
            return None  # a finishing delivery sets the signal
        waits = [b.ms_until_available(now) for b in buckets.values() if b.available(now) <= 0]
        plan = self.destinations.plan(now_ms(), free)
        if plan.reopens_at is not None:
            waits.append(max(0, plan.reopens_at - now_ms()))
        if drained:
            due = await self.store.next_due(drained, plan.exclude)
            waits.extend(max(0, t - now_ms()) for t in due.values())
        return min(waits) if waits else None

    async def _claim_few(self, now: int, free: int, room: dict[str, int], order: list[str],
                         buckets: dict[str, TokenBucket]) -> int:
        """Claim first for destinations with room for fewer jobs than a claim
        round takes (a lowered limit, or a half-open probe): free slots are
        dealt among them round-robin, each claim taking that destination's
        jobs alone, so none exceeds its limit and none waits behind a busier
        destination's backlog. Returns the slots still free."""
        few = self.destinations.plan(now, min(free, self.max_per_destination)).few
        if few:
            # A read first: most such destinations have nothing due most of
            # the time, and a claim is a write.
            due = await self.store.due_destinations(sorted(few))
            few = {d: n for d, n in few.items() if d in due}
        if not few:
            return free
        names = sorted(few)
        k = self._turn % len(names)
        for d, n in deal(free, few, names[k:] + names[:k]).items():
            # One claim over every queue with room, at most n jobs in all.
            alloc = [(q, min(n, room[q])) for q in order if room.get(q, 0) > 0]
            if not alloc or free <= 0:
                break
            jobs = await self.store.claim(alloc, LEASE_MARGIN_MS, only=d, total=min(n, free))
            got = self._started(jobs, now, buckets)
            for q, m in got.items():
                room[q] -= m
            free -= len(jobs)
        for q in [q for q, r in room.items() if r <= 0]:
            del room[q]
            order.remove(q)
        return free

    def _started(self, jobs: list[dict], now: int, buckets: dict[str, TokenBucket]) -> Counter:
        """Start the deliveries of claimed jobs; their count per queue."""
        for job in jobs:
            bucket = buckets.get(job["queue_name"])
            if bucket is not None:
                bucket.take(now)
            self._start(job, now)
        return Counter(j["queue_name"] for j in jobs)

    def _start(self, job: dict, now: int) -> None:
        self.in_flight[job["queue_name"]] += 1
        probe = self.destinations.started(job["destination"], now)
        task = asyncio.get_running_loop().create_task(self._deliver(job, probe))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, job: dict, probe: bool) -> None:
        outcome: dict[str, Any] | None = None
        try:
            outcome = await self.deliverer.deliver(job)
        except asyncio.CancelledError:
            outcome = self.deliverer.interrupted(job)
            raise
        finally:
            self.in_flight[job["queue_name"]] -= 1
            if self.in_flight[job["queue_name"]] <= 0:
                del self.in_flight[job["queue_name"]]
            if outcome is not None:
                self.destinations.finished(job["destination"], outcome, probe,
                                           job["timeout_ms"], now_ms())
                self.finisher.add(outcome)
                if log.isEnabledFor(logging.INFO):
                    log_event(
                        log, logging.INFO, "delivery", job=job["id"], queue=job["queue_name"],
                        attempt=job["attempt"], outcome=outcome["outcome"],
                        status=outcome["status_code"], duration_ms=outcome["duration_ms"],
                        error=outcome["error"],
                    )
            self.signal.set()

    async def drain(self, timeout_s: float) -> None:
        """Stop claiming; wait for deliveries in flight, then interrupt what's left."""
        self.stopping = True
        self.signal.set()
        await self._between_ticks.wait()  # a claim under way starts its deliveries first
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

