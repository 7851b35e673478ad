"""The engine: everything the managed background process does, started and
stopped in order.

Start: open the store, become a live node (SQLite: take the engine lock, one
engine per file), recover jobs left running by dead engines, then run dispatch, reaper, scheduler and
cleanup under supervision, and the heartbeat when the backend's liveness
needs one (PostgreSQL: it keeps this node live and rescues dead nodes' jobs). Stop (SIGTERM or SIGINT): stop claiming, let
deliveries in flight finish for up to `shutdown_timeout_secs`, interrupt the
rest back to pending, write every outcome, close.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterable

from mininq.clock import now_ms
from mininq.config import Config
from mininq.egress import EgressPolicy
from mininq.engine.cleanup import run_cleanup
from mininq.engine.delivery import Deliverer
from mininq.engine.dispatcher import Dispatcher
from mininq.engine.finisher import Finisher
from mininq.engine.reaper import recover_after_stop, run_heartbeat, run_reaper
from mininq.engine.scheduler import run_scheduler
from mininq.engine.supervisor import supervise
from mininq.logs import get_logger, log_event
from mininq.nodes import Liveness, NodeInfo
from mininq.store import Backend, Store, backend_for
from mininq.wake import JOBS, QUEUES, SCHEDULES, Signal

log = get_logger("mininq.engine")


class Engine:
    def __init__(self, config: Config, node: NodeInfo) -> None:
        self.config = config
        self.node = node
        self.stopping = False
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        if not self.stopping:
            log_event(log, logging.INFO, "engine stopping")
        self.stopping = True
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        backend = backend_for(self.config.server)
        store = await backend.open_store(self.config.defaults, self.node.id,
                                         durable_writes=False)
        try:
            liveness = backend.liveness(store, self.node, self.config.worker)
            if not await liveness.acquire(lambda: self.stopping):
                return
            try:
                await self._run_live(backend, store, liveness)
            finally:
                await liveness.release()
        finally:
            await store.close()

    async def _run_live(self, backend: Backend, store: Store, liveness: Liveness) -> None:
        cfg = self.config
        wake = await backend.listener(store)
        waker = backend.waker(store)
        deliverer = Deliverer(cfg.worker.concurrency, cfg.webhooks.signing_secret,
                              cfg.webhooks.max_result_bytes,
                              EgressPolicy.from_config(cfg.webhooks))
        await deliverer.open()
        dispatch_signal = wake.signal(JOBS)

        def written(queues: Iterable[str]) -> None:
            waker.slots_freed(queues)
            if store.global_limits:
                dispatch_signal.set()  # the store has those slots free only now

        finisher = Finisher(store, written,
                            lambda: dispatcher.destinations.snapshot(now_ms()))
        wake.attach(dispatch_signal, QUEUES, notify=True)
        schedule_signal = wake.signal(SCHEDULES)
        reaper_signal, cleanup_signal = Signal(), Signal()
        dispatcher = Dispatcher(cfg, store, deliverer, finisher, dispatch_signal, wake)
        try:
            recovered = await recover_after_stop(liveness)
            log_event(log, logging.INFO, "engine started", recovered=recovered,
                      concurrency=cfg.worker.concurrency, node=self.node.id)
            stopping = lambda: self.stopping
            loops = [
                supervise("dispatch", dispatcher.run, stopping),
                supervise("reaper", lambda: run_reaper(
                    store, cfg.worker.reaper_interval_secs, reaper_signal, dispatch_signal,
                    stopping), stopping),
                supervise("scheduler", lambda: run_scheduler(
                    store, cfg.worker.scheduler_interval_secs, schedule_signal, dispatch_signal,
                    stopping), stopping),
                supervise("cleanup", lambda: run_cleanup(
                    store, cfg.worker, cleanup_signal, stopping), stopping),
            ]
            if liveness.interval_s:
                loops.append(supervise("heartbeat", lambda: run_heartbeat(
                    liveness, dispatch_signal, stopping), stopping))
            tasks = [asyncio.create_task(c) for c in loops]
            await self._stop.wait()
            for sig in (schedule_signal, reaper_signal, cleanup_signal):
                sig.set()
            await dispatcher.drain(cfg.worker.shutdown_timeout_secs)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await finisher.flush()
            log_event(log, logging.INFO, "engine stopped")
        finally:
            await wake.close()
            await waker.close()
            await deliverer.close()
