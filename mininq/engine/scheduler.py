"""Fires cron schedules: sleeps until the earliest next_run_at (at most
`scheduler_interval_secs`), then creates each due schedule's job through the
store's compare-and-swap, so a fire time makes one job whoever else is running."""

from __future__ import annotations

import logging

from mininq.clock import now_ms
from mininq.logs import get_logger, log_event
from mininq.scheduling import cron
from mininq.store import Store
from mininq.wake import Signal

log = get_logger("mininq.scheduler")


async def fire_due(store: Store, now: int) -> int:
    """Fire every schedule due at `now` once; returns how many jobs were created."""
    fired = 0
    for s in await store.due_schedules(now):
        try:
            next_ms = cron.next_fire_after_missed(s["cron_expression"], s["timezone"],
                                                  s["next_run_at"], now)
        except cron.CronError as exc:
            log_event(log, logging.ERROR, "schedule has an invalid cron", schedule=s["id"],
                      error=str(exc))
            continue
        job = await store.fire_schedule(s["id"], s["next_run_at"], next_ms)
        if job is not None:
            fired += 1
            log_event(log, logging.INFO, "schedule fired", schedule=s["id"], job=job["id"],
                      queue=job["queue_name"], due_ms=s["next_run_at"],
                      late_ms=now - s["next_run_at"])
    return fired


async def run_scheduler(store: Store, interval_s: float, signal: Signal, dispatch_signal: Signal,
                        stopping) -> None:
    while not stopping():
        if await fire_due(store, now_ms()):
            dispatch_signal.set()
        nxt = await store.next_schedule_at()
        sleep_s = interval_s
        if nxt is not None:
            sleep_s = min(interval_s, max(0.0, (nxt - now_ms()) / 1000))
        await signal.wait(sleep_s)
