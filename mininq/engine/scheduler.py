"""Fires cron schedules.

The loop sleeps until the earliest `next_run_at` of an enabled schedule (at
most `scheduler_interval_secs`, and a change through the API wakes it at
once), then fires every due schedule through the store's compare-and-swap on
`next_run_at`: whoever else races for the same fire time, a restarted engine
or a second process, one fire time makes one job. A schedule that missed
fire times while mininq was down fires once and moves to its next future
time. The new jobs are handed to the dispatcher at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mininq.clock import now_ms
from mininq.logs import get_logger, log_event
from mininq.scheduling import cron
from mininq.store import Store
from mininq.wake import Signal

log = get_logger("mininq.scheduler")


async def _fire(store: Store, schedule: dict, now: int) -> bool:
    due = schedule["next_run_at"]
    try:
        next_ms = cron.next_fire_after_missed(schedule["cron_expression"], schedule["timezone"],
                                              due, now)
    except cron.CronError as exc:
        # Only a row written past the API (or a zone gone from tzdata) gets
        # here; park it so it doesn't stay due and spin the loop. Changing its
        # expression or enabling it through the API computes next_run_at again.
        log_event(log, logging.ERROR, "schedule cannot fire; parked until it is changed",
                  schedule=schedule["id"], error=str(exc))
        await store.update_schedule(schedule["id"], {"next_run_at": None})
        return False
    job = await store.fire_schedule(schedule["id"], due, next_ms)
    if job is None:
        return False  # someone else fired it, or it was changed or disabled meanwhile
    # late_ms: from the fire time to the job being committed.
    log_event(log, logging.INFO, "schedule fired", schedule=schedule["id"], job=job["id"],
              queue=job["queue_name"], due_ms=due, late_ms=now_ms() - due, next_ms=next_ms)
    return True


async def fire_due(store: Store, now: int) -> int:
    """Fire every schedule due at `now` once; returns how many jobs were created.

    The fires go to the store together, so its group commit writes them in
    one transaction instead of one each.
    """
    due = await store.due_schedules(now)
    fired = await asyncio.gather(*(_fire(store, s, now) for s in due))
    return sum(fired)


async def run_scheduler(store: Store, interval_s: float, signal: Signal, dispatch_signal: Signal,
                        stopping: Callable[[], bool]) -> None:
    """Fire due schedules until `stopping()`; `signal` is set by API changes."""
    while not stopping():
        if await fire_due(store, now_ms()):
            # notify, not set: a fire may have created the job's queue, and the
            # dispatcher re-reads queue settings only on a notify (or its poll).
            dispatch_signal.notify()
        nxt = await store.next_schedule_at()
        sleep_s = interval_s
        if nxt is not None:
            sleep_s = min(interval_s, max(0.0, (nxt - now_ms()) / 1000))
        await signal.wait(sleep_s)
