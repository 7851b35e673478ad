"""Returns jobs whose lease ran out (their delivering process died) to pending."""

from __future__ import annotations

import logging

from mininq.clock import now_ms
from mininq.logs import get_logger, log_event
from mininq.store import Store
from mininq.wake import Signal

log = get_logger("mininq.engine")

FAR_FUTURE_MS = 2**62


async def recover(store: Store, before: int) -> int:
    """Reap every running job whose lease ended before `before`; returns how many."""
    rows = await store.reap(before)
    for r in rows:
        log_event(log, logging.WARNING, "lease expired", job=r["id"], queue=r["queue_name"],
                  attempt=r["attempt"], now=r["status"])
    return len(rows)


async def run_reaper(store: Store, interval_s: float, signal: Signal, dispatch_signal: Signal,
                     stopping) -> None:
    while not stopping():
        if await recover(store, now_ms()):
            dispatch_signal.set()
        await signal.wait(interval_s)
