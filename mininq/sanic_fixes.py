"""A fix for Sanic's worker manager, applied before the server starts.

Sanic 25.x: a SIGTERM that arrives while the manager still waits for workers
to report ready (the first ~100 ms after /health first answers) makes
`WorkerManager.wait_for_ack` re-send the shutdown message to itself forever,
without counting the wait: the main process spins at 100% CPU and never
exits. The version below stops waiting once shutdown has begun and leaves the
message for the monitor loop, which then ends and joins the processes.
"""

from __future__ import annotations

from sanic.log import error_logger
from sanic.worker.manager import WorkerManager

_original = WorkerManager.wait_for_ack


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


def apply() -> None:
    WorkerManager.wait_for_ack = _wait_for_ack  # type: ignore[method-assign]
