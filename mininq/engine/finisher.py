"""Writes delivery outcomes in batches: one transaction for everything that
finished while the previous batch was being written, with the rows of the
destinations whose state changed meanwhile (what GET /destinations reads)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable

from mininq.faults import FAULTS
from mininq.logs import get_logger
from mininq.store import Store, Unavailable

log = get_logger("mininq.engine")


# Destination rows changed without any outcome (deliveries started, a breaker
# turning half-open) are written at most this often on their own.
POKE_DELAY_S = 0.25


class Finisher:
    def __init__(self, store: Store,
                 written: Callable[[Iterable[str]], None] = lambda queues: None,
                 destinations: Callable[[], list[dict]] = list) -> None:
        self.store = store
        self._written = written  # told the queues of every batch written
        self._destinations = destinations  # the destination rows changed since last asked
        self._buffer: list[dict] = []
        # Outcomes added and not written yet, per queue: with limits kept in
        # the store, their jobs still hold their queue's slots there.
        self.unwritten: Counter[str] = Counter()
        self._rows: dict[str, dict] = {}  # destination rows not written yet
        self._task: asyncio.Task | None = None
        self._poke: asyncio.TimerHandle | None = None

    def poke(self) -> None:
        """Destination rows changed: write them soon, with or without outcomes."""
        if self._poke is None:
            self._poke = asyncio.get_running_loop().call_later(POKE_DELAY_S, self._poked)

    def _poked(self) -> None:
        self._poke = None
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    def _take_rows(self) -> list[dict]:
        for row in self._destinations():
            self._rows[row["destination"]] = row
        rows, self._rows = list(self._rows.values()), {}
        return rows

    def add(self, outcome: dict) -> None:
        self._buffer.append(outcome)
        self.unwritten[outcome["queue_name"]] += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        delay = 0.05
        first = True
        while self._buffer or first:
            first = False
            batch, self._buffer = self._buffer, []
            rows = self._take_rows()
            if not batch and not rows:
                break
            try:
                await self.store.finish(batch, rows)
                delay = 0.05
                if batch:
                    done = Counter(o["queue_name"] for o in batch)
                    self.unwritten -= done
                    self._written(done)
            except Exception as exc:
                # Keep the outcomes and try again: losing them would re-deliver jobs.
                if isinstance(exc, Unavailable):
                    FAULTS.report(exc, "engine finisher")
                else:
                    log.exception("writing %d delivery outcomes failed; retrying", len(batch))
                self._buffer[:0] = batch
                for row in rows:
                    self._rows.setdefault(row["destination"], row)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def flush(self) -> None:
        """Wait until every outcome added so far, and the destination rows, are written."""
        if self._poke is not None:
            self._poke.cancel()
            self._poke = None
        while True:
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._flush())
            await asyncio.shield(self._task)
            if not self._buffer:
                break
