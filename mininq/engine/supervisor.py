"""Keeps the engine's loops alive: a loop that raises is logged and restarted
with backoff, so one bad moment (a locked file, a bug on one row) never stops
delivery for good.

A database that can't be written (disk full, read-only...) is the machine's
condition, not a bug: it goes to the fault log (one line per cause per
minute, no traceback) and the loop retries within FAULT_BACKOFF_S, so
delivery resumes soon after the disk has room again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from mininq.faults import FAULTS
from mininq.logs import get_logger
from mininq.store import Unavailable

log = get_logger("mininq.engine")

MAX_BACKOFF_S = 30.0
FAULT_BACKOFF_S = 5.0


async def supervise(name: str, loop_fn: Callable[[], Awaitable[None]],
                    stopping: Callable[[], bool]) -> None:
    """Run `loop_fn` until it returns; restart it after an exception."""
    backoff = 0.1
    while not stopping():
        try:
            await loop_fn()
            return
        except asyncio.CancelledError:
            raise
        except Unavailable as exc:
            FAULTS.report(exc, f"engine {name}")
            await asyncio.sleep(min(backoff, FAULT_BACKOFF_S))
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        except Exception:
            log.exception("engine loop %s failed; restarting in %.1f s", name, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
