"""Returns jobs left `running` to pending (or dead when no retries are left).

Three cases, told apart in the log and in the lost attempt's error: at
start-up the engine's liveness (SQLite: the engine lock) proves which running
jobs were left by a process that stopped (killed, crashed, power lost) and
they are recovered at once; with several nodes (PostgreSQL) a node silent for
`worker.node_timeout_secs` is dead and any live node recovers its jobs at
heartbeat pace; and the reaper returns jobs whose lease ran out under a live
engine.
"""

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


def _log_recovered(rows: list[dict], why: str) -> int:
    for r in rows:
        log_event(log, logging.WARNING, f"job recovered: {why}", job=r["id"],
                  queue=r["queue_name"], attempt=r["attempt"], now=r["status"])
    return len(rows)


async def recover_after_stop(liveness: Liveness) -> int:
    """At start-up: the running jobs left by processes that stopped."""
    n = _log_recovered(await liveness.recover(), "left running by a process that stopped")
    if n:
        log_event(log, logging.WARNING,
                  f"recovered {n} jobs left running by a process that stopped", recovered=n)
    return n


async def reap_expired(store: Store, before: int) -> int:
    """Return running jobs whose lease ended before `before`; returns how many."""
    return _log_recovered(await store.reap(before, process_died=False), "its lease expired")


async def run_reaper(store: Store, interval_s: float, signal: Signal, dispatch_signal: Signal,
                     stopping) -> None:
    while not stopping():
        if await reap_expired(store, now_ms()):
            dispatch_signal.set()
        await signal.wait(interval_s)


async def run_heartbeat(liveness: Liveness, dispatch_signal: Signal,
                        stopping: Callable[[], bool]) -> None:
    """Say this node is alive every `liveness.interval_s`, and hand the jobs
    rescued from dead nodes to the dispatcher. Runs only for a liveness with
    an interval (the runner starts it only then)."""
    while not stopping():
        if _log_recovered(await liveness.beat(), "its node stopped answering"):
            dispatch_signal.set()
        await asyncio.sleep(liveness.interval_s)
