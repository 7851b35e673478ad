"""Returns jobs whose lease ran out (their delivering process died) to pending."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mininq.clock import now_ms
from mininq.logs import get_logger, log_event
from mininq.nodes import Liveness
from mininq.store import Store
from mininq.wake import Signal

log = get_logger("mininq.engine")

FAR_FUTURE_MS = 2**62


def log_lost(rows: list[dict], what: str = "lease expired") -> int:
    """One warning per job whose delivery was lost; returns how many."""
    for r in rows:
        log_event(log, logging.WARNING, what, job=r["id"], queue=r["queue_name"],
                  attempt=r["attempt"], now=r["status"])
    return len(rows)


async def recover(store: Store, before: int) -> int:
    """Reap every running job whose lease ended before `before`; returns how many."""
    return log_lost(await store.reap(before))


async def run_heartbeat(liveness: Liveness, dispatch_signal: Signal,
                        stopping: Callable[[], bool]) -> None:
    """Say this node is alive every `liveness.interval_s`, and hand the jobs
    rescued from dead nodes to the dispatcher."""
    while not stopping():
        if log_lost(await liveness.beat(), "node lost"):
            dispatch_signal.set()
        await asyncio.sleep(liveness.interval_s or 1.0)


async def run_reaper(store: Store, interval_s: float, signal: Signal, dispatch_signal: Signal,
                     stopping) -> None:
    while not stopping():
        if await recover(store, now_ms()):
            dispatch_signal.set()
        await signal.wait(interval_s)
