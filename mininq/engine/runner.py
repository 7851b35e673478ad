"""The engine: everything the managed background process does, started and
stopped in order.

Start: open the store, take the engine lock (one engine per file), recover
jobs left running by a dead process, then run dispatch, reaper, scheduler and
cleanup under supervision. Stop (SIGTERM or SIGINT): stop claiming, let
deliveries in flight finish for up to `shutdown_timeout_secs`, interrupt the
rest back to pending, write every outcome, close.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from mininq.config import Config
from mininq.engine.cleanup import run_cleanup
from mininq.engine.delivery import Deliverer
from mininq.engine.dispatcher import Dispatcher
from mininq.engine.finisher import Finisher
from mininq.engine.lock import EngineLock
from mininq.engine.reaper import recover_after_stop, run_reaper
from mininq.engine.scheduler import run_scheduler
from mininq.engine.supervisor import supervise
from mininq.logs import get_logger, log_event
from mininq.store import open_store
from mininq.wake import JOBS, QUEUES, SCHEDULES, Signal, WakeFlag, WakeReceiver, engine_file

log = get_logger("mininq.engine")

LOCK_RETRY_S = 5.0


class Engine:
    def __init__(self, config: Config, wake_address: str) -> None:
        self.config = config
        self.wake_address = wake_address
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
        lock = EngineLock(self.config.server.db_path)
        while not lock.try_acquire():
            log_event(log, logging.WARNING, "another mininq engine delivers from this database; "
                      "waiting for it to stop", lock=lock.path)
            try:
                await asyncio.wait_for(self._stop.wait(), LOCK_RETRY_S)
                return
            except TimeoutError:
                pass
        try:
            await self._run_locked()
        finally:
            lock.release()

    async def _run_locked(self) -> None:
        cfg = self.config
        store = await open_store(cfg.server.db_path, cfg.defaults)
        wake = WakeReceiver(self.wake_address)
        deliverer = Deliverer(cfg.worker.concurrency, cfg.webhooks.signing_secret,
                              cfg.webhooks.max_result_bytes)
        await deliverer.open()
        finisher = Finisher(store)
        dispatch_signal = wake.signal(JOBS)
        wake.attach(dispatch_signal, QUEUES, notify=True)
        schedule_signal = wake.signal(SCHEDULES)
        reaper_signal, cleanup_signal = Signal(), Signal()
        flag = WakeFlag(engine_file(cfg.server.db_path))
        dispatcher = Dispatcher(cfg, store, deliverer, finisher, dispatch_signal, flag)
        try:
            recovered = await recover_after_stop(store)
            log_event(log, logging.INFO, "engine started", recovered=recovered,
                      concurrency=cfg.worker.concurrency)
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
            wake.close()
            flag.close()
            await deliverer.close()
            await store.close()
