"""Writes delivery outcomes in batches: one transaction for everything that
finished while the previous batch was being written."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from mininq.faults import FAULTS
from mininq.logs import get_logger
from mininq.store import Store, Unavailable

log = get_logger("mininq.engine")


class Finisher:
    def __init__(self, store: Store,
                 written: Callable[[Iterable[str]], None] = lambda queues: None) -> None:
        self.store = store
        self._written = written  # told the queues of every batch written
        self._buffer: list[dict] = []
        self._task: asyncio.Task | None = None

    def add(self, outcome: dict) -> None:
        self._buffer.append(outcome)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        delay = 0.05
        while self._buffer:
            batch, self._buffer = self._buffer, []
            try:
                await self.store.finish(batch)
                delay = 0.05
                self._written({o["queue_name"] for o in batch})
            except Exception as exc:
                # Keep the outcomes and try again: losing them would re-deliver jobs.
                if isinstance(exc, Unavailable):
                    FAULTS.report(exc, "engine finisher")
                else:
                    log.exception("writing %d delivery outcomes failed; retrying", len(batch))
                self._buffer[:0] = batch
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def flush(self) -> None:
        """Wait until every outcome added so far is written."""
        while self._buffer or (self._task is not None and not self._task.done()):
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._flush())
            await asyncio.shield(self._task)
