"""Changes to Sanic's multi-process mode, applied before the server starts.

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

Memory: besides its workers, Sanic's multi-process mode starts two helper
processes, each a whole Python interpreter: the multiprocessing manager
process that holds the workers' state, and multiprocessing's resource
tracker. Together they were a fifth of mininq's idle memory (about 32 MiB from
source). The state manager below serves the same shared dict from a thread of
Sanic's main process instead; the workers reach it through the same proxies as
before. Its socket is in Linux's abstract namespace: nothing on disk, so a
killed instance leaves no `pymp-*` folder in the temp directory, and a long
TMPDIR can't push the path past the 107-byte limit of a Unix socket path.
The resource tracker only unlinks named semaphores and shared memory
that a crashed process leaves behind, and neither Sanic nor mininq creates
any, so no tracker is started (`skip_resource_tracker`).

All of this reaches into code that is not a public API, as written for Sanic
25.12: tests/test_dependency_guards.py compares the installed source of every
function replaced, wrapped or relied on here with that version's, and says
what to re-check when one changed.
"""

from __future__ import annotations

import os
import secrets
import threading
from multiprocessing import resource_tracker
from multiprocessing.managers import State, SyncManager
from signal import Signals

import sanic.mixins.startup
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


class ThreadedStateManager(SyncManager):
    """A SyncManager whose server runs in daemon threads of this process
    rather than in a process of its own. Proxies made from it pickle into spawned
    children and work there exactly as with a started SyncManager."""

    def start(self, initializer=None, initargs=()) -> None:  # type: ignore[no-untyped-def]
        server = self.get_server()
        server.stop_event = threading.Event()  # what the server's `shutdown` request sets
        self._address = server.address
        threading.Thread(target=server.accepter, name="sanic-state", daemon=True).start()
        self._state.value = State.STARTED

    def shutdown(self) -> None:  # type: ignore[override]
        # The accepting thread stays blocked in accept() (closing the listener would
        # make it spin on errors) and ends with the process, moments later.
        self._state.value = State.SHUTDOWN


def state_manager() -> SyncManager:
    """What Sanic calls as `multiprocessing.Manager()`."""
    manager = ThreadedStateManager(address=f"\0mininq-state-{os.getpid()}-{secrets.token_hex(6)}")
    manager.start()
    return manager


def skip_resource_tracker() -> None:
    """Give multiprocessing a tracker pipe that leads nowhere, so that spawning
    a process does not start the tracker process; see the module docstring."""
    tracker = resource_tracker._resource_tracker
    if tracker._fd is None:
        tracker._fd = os.open(os.devnull, os.O_WRONLY)


def apply() -> None:
    sanic.mixins.startup.Manager = state_manager  # type: ignore[attr-defined,assignment]
    skip_resource_tracker()
    WorkerManager.wait_for_ack = _wait_for_ack  # type: ignore[method-assign]
    WorkerManager.shutdown_signal = _deferred_shutdown_signal  # type: ignore[method-assign]
    if WorkerManager._poll_monitor is _poll_monitor:
        WorkerManager._poll_monitor = _patient_poll_monitor  # type: ignore[method-assign]
