"""Wake-ups with PostgreSQL: NOTIFY after commit, LISTEN on one connection per node.

The waker sends `pg_notify` in a statement of its own after the write that
made work due has committed: a NOTIFY inside every insert's transaction
would make commits wait on the server's notification queue lock. Wakes are
coalesced per loop turn and sent at most once per `DEBOUNCE_S` per
(kind, queue); one more follows at the end of that window if another wake
came meanwhile, so the last change is never left unannounced.

The listener holds one dedicated connection outside the pool (a pooled
connection is handed to other calls between uses, so it can't hold a LISTEN
open), reconnects when it drops, and after a reconnect sets every signal:
wakes sent while it was away are lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import asyncpg

from mininq.logs import get_logger
from mininq.store.postgres.connect import connect
from mininq.wake import JOBS, KINDS, WakeListener, Waker

log = get_logger("mininq.engine")

CHANNEL = "mininq_wake"
DEBOUNCE_S = 0.005
# Finished deliveries wake other nodes less often: only a node waiting for
# room in a queue's global max_concurrency needs to hear it, and it also polls.
FREED_DEBOUNCE_S = 0.025
FREED = b"f"
RECONNECT_S = (0.1, 0.5, 1.0, 2.0, 5.0)


class NotifyWaker(Waker):
    def __init__(self, pool: asyncpg.Pool, node_id: str | None = None) -> None:
        super().__init__()
        self._pool = pool
        self._node = node_id or ""
        self._due: set[str] = set()  # payloads to send on the next flush
        self._last: dict[str, float] = {}  # payload -> when it was last sent
        self._later: set[str] = set()  # payloads held back by the debounce window
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task] = set()

    def wake(self, kind: bytes = JOBS, queue: str = "") -> None:
        self._want(f"{kind.decode()}:{queue}")

    def jobs_created(self, queue_names: Iterable[str]) -> None:
        for name in queue_names:
            self.wake(JOBS, name)
            self._wake_if_new_queue(name)

    def slots_freed(self, queue_names: Iterable[str]) -> None:
        for name in queue_names:
            # Signed: the node's own engine knows already (a finished delivery
            # wakes its dispatcher) and ignores it.
            self.wake(FREED, f"{name}\t{self._node}")

    def _want(self, payload: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        window = FREED_DEBOUNCE_S if payload.startswith(FREED.decode()) else DEBOUNCE_S
        wait = self._last.get(payload, 0.0) + window - time.monotonic()
        if wait > 0:
            if payload not in self._later:
                self._later.add(payload)
                loop.call_later(wait, self._release, payload)
            return
        self._due.add(payload)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)

    def _release(self, payload: str) -> None:
        self._later.discard(payload)
        self._last.pop(payload, None)
        self._want(payload)

    def _flush(self) -> None:
        self._flush_scheduled = False
        payloads, self._due = sorted(self._due), set()
        if not payloads:
            return
        now = time.monotonic()
        for p in payloads:
            self._last[p] = now
        if len(self._last) > 10_000:
            self._last = {p: t for p, t in self._last.items() if now - t < FREED_DEBOUNCE_S}
        task = asyncio.get_running_loop().create_task(self._send(payloads))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, payloads: list[str]) -> None:
        try:
            async with self._pool.acquire() as conn:
                await conn.execute(
                    f"SELECT pg_notify('{CHANNEL}', p) FROM unnest($1::text[]) AS p", payloads)
        except Exception as exc:  # noqa: BLE001 - a lost wake costs latency only
            log.debug("wake not sent: %s", exc)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class ListenConnection(WakeListener):
    def __init__(self, url: str, node_id: str | None = None) -> None:
        super().__init__()
        self._url = url
        self._own_freed = f"\t{node_id}" if node_id else None
        self._conn: asyncpg.Connection | None = None
        self._closing = False
        self._reconnect: asyncio.Task | None = None

    async def open(self) -> None:
        self._conn = await connect(self._url)
        self._conn.add_termination_listener(self._lost)
        await self._conn.add_listener(CHANNEL, self._on_notify)

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        kind = payload[:1].encode()
        if kind == FREED:
            if self._own_freed and payload.endswith(self._own_freed):
                return
            kind = JOBS
        if kind in KINDS:
            self.deliver((kind,))

    def _lost(self, conn: object) -> None:
        if not self._closing and (self._reconnect is None or self._reconnect.done()):
            self._reconnect = asyncio.get_running_loop().create_task(self._reopen())

    async def _reopen(self) -> None:
        for attempt in range(1_000_000):
            if self._closing:
                return
            await asyncio.sleep(RECONNECT_S[min(attempt, len(RECONNECT_S) - 1)])
            try:
                await self.open()
            except Exception as exc:  # noqa: BLE001 - keep trying; polling covers meanwhile
                log.warning("LISTEN connection lost; reconnecting: %s", exc)
                continue
            self.wake_all()
            return

    async def close(self) -> None:
        self._closing = True
        if self._reconnect is not None:
            self._reconnect.cancel()
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()
