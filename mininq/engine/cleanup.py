"""Retention: deletes finished jobs past `retention_days`, with their attempts,
and the per-minute history past `history_days`.

A job is finished when completed, dead or cancelled; its `updated_at` is the
moment it became so (a retried job is pending again and not touched).
Pending and running jobs are never deleted.

Deletion goes in small batches, each its own transaction of at most
`MAX_ROWS` rows (jobs plus their attempts), oldest first, with a pause
between batches, so enqueueing never waits long behind cleanup. The finished
statuses take turns batch by batch: each scan then starts at rows that can go,
instead of re-reading old rows of another status that a status-by-status
order would leave in front of it.

No VACUUM: it rewrites the whole file while holding the write lock (seconds
to minutes on a big database, with every enqueue waiting) and needs as much
free disk again as the file. SQLite puts the pages freed by the deletions on
its freelist and reuses them for new rows, so under a steady load the file
stops growing at the size its retention window needs; it does not shrink. A
user who wants the space back runs `VACUUM` offline, or `mininq backup`, whose
copy is compact.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from mininq.clock import now_ms
from mininq.config import WorkerConfig
from mininq.logs import get_logger, log_event
from mininq.store import Store
from mininq.wake import Signal

log = get_logger("mininq.cleanup")

MAX_ROWS = 1000
PAUSE_S = 0.02
START_DELAY_S = 5.0
DAY_MS = 86_400_000


def cutoffs(worker: WorkerConfig, now: int) -> dict[str, int]:
    """Per finished status, the time before which its jobs are deleted; a status
    missing from the answer is kept forever (retention 0)."""
    out = {}
    if worker.retention_days > 0:
        out["completed"] = out["cancelled"] = now - worker.retention_days * DAY_MS
    dead_days = worker.dead_retention_days or worker.retention_days
    if dead_days > 0:
        out["dead"] = now - dead_days * DAY_MS
    return out


async def clean(store: Store, worker: WorkerConfig,
                stopping: Callable[[], bool] = lambda: False) -> int:
    """Delete every finished job past retention, batch by batch; returns how many.
    Then prune the history and checkpoint the WAL, which this hourly run also
    stands for."""
    now = now_ms()
    active = cutoffs(worker, now)
    started = time.monotonic()
    deleted = batches = 0
    while active and not stopping():
        for status, before in list(active.items()):
            n = await store.delete_finished(status, before, MAX_ROWS)
            batches += 1
            deleted += n
            if n == 0:
                del active[status]
        await asyncio.sleep(PAUSE_S)
    pruned = await _prune_history(store, now - worker.history_days * DAY_MS, stopping)
    if deleted or pruned:
        log_event(log, logging.INFO, "retention cleanup", deleted=deleted, batches=batches,
                  history_rows=pruned, duration_ms=round((time.monotonic() - started) * 1000))
    await store.checkpoint()
    return deleted


async def _prune_history(store: Store, before: int, stopping: Callable[[], bool]) -> int:
    """History rows of minutes before `before`, in batches like the jobs."""
    pruned = 0
    while not stopping():
        n = await store.prune_history(before, MAX_ROWS)
        pruned += n
        if n < MAX_ROWS:
            break
        await asyncio.sleep(PAUSE_S)
    return pruned


async def run_cleanup(store: Store, worker: WorkerConfig, signal: Signal,
                      stopping: Callable[[], bool]) -> None:
    """Clean once shortly after start, then every `cleanup_interval_secs`."""
    # let start-up (recovery, first deliveries) go first
    await signal.wait(min(START_DELAY_S, worker.cleanup_interval_secs))
    while not stopping():
        await clean(store, worker, stopping)
        await signal.wait(worker.cleanup_interval_secs)
