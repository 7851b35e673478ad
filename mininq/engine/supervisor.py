"""Keeps the engine's loops alive: a loop that raises is logged and restarted
with backoff, so one bad moment (a locked file, a bug on one row) never stops
delivery for good."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from mininq.logs import get_logger

log = get_logger("mininq.engine")

MAX_BACKOFF_S = 30.0


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
        except Exception:
            log.exception("engine loop %s failed; restarting in %.1f s", name, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
