"""Three changes to Sanic's worker manager, applied before the server starts.

Sanic 25.x: a SIGTERM that arrives while the manager still waits for workers
to report ready (the first ~100 ms after /health first answers) makes
`WorkerManager.wait_for_ack` re-send the shutdown message to itself forever,
without counting the wait: the main process spins at 100% CPU and never
exits. The version below stops waiting once shutdown has begun and leaves the
message for the monitor loop, which then ends and joins the processes.

Signals: Sanic's SIGTERM handler shuts down right inside the handler, and
that talks to the multiprocessing manager; when the signal lands while the
main thread is itself mid-call to the manager (it polls it constantly during
start-up), the two calls interleave on one connection and the main process
dies with a traceback and exit 1. The handler below only records the request
and wakes the monitor loop, which shuts down outside the handler (checked
again after every poll, since the wake-up message itself ends the loop).

Idle cost: between messages the manager syncs every process's state through
its multiprocessing manager 10 times a second, about 1 % of a core for the
main and manager processes together with nothing to do. Waiting up to a
second for the next message first keeps messages (signals, restarts) handled
at once and notices a dead process within about a second.
"""

from __future__ import annotations

from signal import Signals

from sanic.log import error_logger, logger
from sanic.worker.manager import WorkerManager

_poll_monitor = WorkerManager._poll_monitor
_shutdown_signal = WorkerManager.shutdown_signal
MONITOR_IDLE_WAIT_S = 1.0


def _deferred_shutdown_signal(self: WorkerManager, signal, frame) -> None:  # type: ignore[no-untyped-def]
    if getattr(self, "_shutdown_requested", False) or self._shutting_down:
        _shutdown_signal(self, signal, frame)  # a second signal: Sanic kills at once
        return
    self._shutdown_requested = True
    logger.info("Received signal %s. Shutting down.", Signals(signal).name)
    self.monitor_publisher.send(None)


def _shutdown_if_requested(self: WorkerManager) -> bool:
    if getattr(self, "_shutdown_requested", False) and not self._shutting_down:
        self.shutdown()
    return self._shutting_down


def _wait_for_ack(self: WorkerManager) -> None:
    misses = 0
    while True:
        if _shutdown_if_requested(self):
            return
        if self._all_workers_ack():
            return
        if self.monitor_subscriber.poll(0.1):
            message = self.monitor_subscriber.recv()
            if message is None or message == "__TERMINATE__":
                self.monitor_publisher.send(message)  # for monitor() to act on
                return
            if message != "__TERMINATE_EARLY__":
                self.monitor_publisher.send(message)
                misses += 1
                continue
            misses = self.THRESHOLD
        misses += 1
        if misses > self.THRESHOLD:
            error_logger.error(
                "Not all workers acknowledged a successful startup. Shutting down."
            )
            self.kill()


def _patient_poll_monitor(self: WorkerManager):  # type: ignore[no-untyped-def]
    self.monitor_subscriber.poll(MONITOR_IDLE_WAIT_S)  # returns as soon as a message is there
    _shutdown_if_requested(self)
    cycle = _poll_monitor(self)
    # A signal that lands inside Sanic's own poll leaves its wake-up None in the
    # pipe, and that None ends the monitor loop: shut down before the loop
    # joins the workers, or they are never told to stop and the join waits forever.
    _shutdown_if_requested(self)
    return cycle


def apply() -> None:
    WorkerManager.wait_for_ack = _wait_for_ack  # type: ignore[method-assign]
    WorkerManager.shutdown_signal = _deferred_shutdown_signal  # type: ignore[method-assign]
    if WorkerManager._poll_monitor is _poll_monitor:
        WorkerManager._poll_monitor = _patient_poll_monitor  # type: ignore[method-assign]
