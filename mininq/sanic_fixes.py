"""Two changes to Sanic's worker manager, applied before the server starts.

Sanic 25.x: a SIGTERM that arrives while the manager still waits for workers
to report ready (the first ~100 ms after /health first answers) makes
`WorkerManager.wait_for_ack` re-send the shutdown message to itself forever,
without counting the wait: the main process spins at 100% CPU and never
exits. The version below stops waiting once shutdown has begun and leaves the
message for the monitor loop, which then ends and joins the processes.

Idle cost: between messages the manager syncs every process's state through
its multiprocessing manager 10 times a second, about 1 % of a core for the
main and manager processes together with nothing to do. Waiting up to a
second for the next message first keeps messages (signals, restarts) handled
at once and notices a dead process within about a second.
"""

from __future__ import annotations

from sanic.log import error_logger
from sanic.worker.manager import WorkerManager

_poll_monitor = WorkerManager._poll_monitor
MONITOR_IDLE_WAIT_S = 1.0


def _wait_for_ack(self: WorkerManager) -> None:
    misses = 0
    while not self._all_workers_ack():
        if getattr(self, "_shutting_down", False):
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
    return _poll_monitor(self)


def apply() -> None:
    WorkerManager.wait_for_ack = _wait_for_ack  # type: ignore[method-assign]
    if WorkerManager._poll_monitor is _poll_monitor:
        WorkerManager._poll_monitor = _patient_poll_monitor  # type: ignore[method-assign]
