"""Retention: deletes finished jobs past `retention_days` in small batches.

Each batch is its own short transaction, with a pause between batches, so
enqueueing never waits long behind cleanup. Freed pages are reused by SQLite
for new rows; the file is not VACUUMed (that would rewrite it whole and block
writers), so it stops growing under a steady load instead of shrinking.
"""

from __future__ import annotations

import asyncio
import logging

from mininq.clock import now_ms
from mininq.config import WorkerConfig
from mininq.logs import get_logger, log_event
from mininq.store import Store
from mininq.wake import Signal

log = get_logger("mininq.cleanup")

BATCH = 500
PAUSE_S = 0.02
DAY_MS = 86_400_000


def cutoffs(worker: WorkerConfig, now: int) -> dict[str, int]:
    """Per finished status, the time before which its jobs are deleted."""
    out = {}
    if worker.retention_days > 0:
        out["completed"] = out["cancelled"] = now - worker.retention_days * DAY_MS
    dead_days = worker.dead_retention_days or worker.retention_days
    if dead_days > 0:
        out["dead"] = now - dead_days * DAY_MS
    return out


async def clean(store: Store, worker: WorkerConfig, stopping=lambda: False) -> int:
    deleted = 0
    for status, before in cutoffs(worker, now_ms()).items():
        while not stopping():
            n = await store.delete_finished(status, before, BATCH)
            deleted += n
            if n < BATCH:
                break
            await asyncio.sleep(PAUSE_S)
    if deleted:
        log_event(log, logging.INFO, "retention cleanup", deleted=deleted)
    await store.checkpoint()
    return deleted


async def run_cleanup(store: Store, worker: WorkerConfig, signal: Signal, stopping) -> None:
    await signal.wait(5.0)  # let start-up settle first
    while not stopping():
        await clean(store, worker, stopping)
        await signal.wait(worker.cleanup_interval_secs)
