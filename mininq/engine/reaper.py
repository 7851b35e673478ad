"""Returns jobs left `running` to pending (or dead when no retries are left).

Two cases, told apart in the log and in the lost attempt's error: at start-up
the new engine holds the engine lock, so every running job was left by a
process that stopped (killed, crashed, power lost) and is recovered at once;
afterwards the reaper returns jobs whose lease ran out under a live engine.
"""

from __future__ import annotations

import logging

from mininq.clock import now_ms
from mininq.logs import get_logger, log_event
from mininq.store import Store
from mininq.wake import Signal

log = get_logger("mininq.engine")

FAR_FUTURE_MS = 2**62


async def recover_after_stop(store: Store) -> int:
    """At start-up: every running job was left by a process that stopped."""
    rows = await store.reap(FAR_FUTURE_MS, process_died=True)
    for r in rows:
        log_event(log, logging.WARNING, "job recovered: left running by a process that stopped",
                  job=r["id"], queue=r["queue_name"], attempt=r["attempt"], now=r["status"])
    if rows:
        log_event(log, logging.WARNING,
                  f"recovered {len(rows)} jobs left running by a process that stopped",
                  recovered=len(rows))
    return len(rows)


async def reap_expired(store: Store, before: int) -> int:
    """Return running jobs whose lease ended before `before`; returns how many."""
    rows = await store.reap(before, process_died=False)
    for r in rows:
        log_event(log, logging.WARNING, "job recovered: its lease expired", job=r["id"],
                  queue=r["queue_name"], attempt=r["attempt"], now=r["status"])
    return len(rows)


async def run_reaper(store: Store, interval_s: float, signal: Signal, dispatch_signal: Signal,
                     stopping) -> None:
    while not stopping():
        if await reap_expired(store, now_ms()):
            dispatch_signal.set()
        await signal.wait(interval_s)
