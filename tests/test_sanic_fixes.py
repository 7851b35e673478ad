"""The patches in mininq/sanic_fixes.py: the monitor loop, driven through a
real pipe, and the helper processes Sanic no longer starts.

A stop must reach the workers wherever in the monitor's cycle the signal
lands. The race is a window of about 0.1 s per second, so instead of many
timed server stops these tests land the signal at each point of the cycle on
purpose: the real signal handler, the real patched poll, a real Pipe, and a
stand-in for the rest of Sanic's WorkerManager.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from multiprocessing import Pipe
from pathlib import Path
from typing import Any

import pytest
from sanic.worker.manager import MonitorCycle
from support import MininqServer
from support.server import binary_under_test

from mininq import sanic_fixes


class SignalDuringPoll:
    """The subscriber end of the monitor pipe; the signal arrives during poll number `at`."""

    def __init__(self, conn: Any, manager: Manager, at: int) -> None:
        self.conn, self.manager, self.at, self.polls = conn, manager, at, 0

    def poll(self, timeout: float) -> bool:
        self.polls += 1
        if self.polls == self.at:
            sanic_fixes._deferred_shutdown_signal(self.manager, signal.SIGTERM, None)
        return self.conn.poll(timeout)

    def recv(self) -> Any:
        return self.conn.recv()


class Manager:
    """What the patched functions touch of a WorkerManager; shutdown() only records the call."""

    def __init__(self, signal_at_poll: int) -> None:
        subscriber, self.monitor_publisher = Pipe()
        self.monitor_subscriber = SignalDuringPoll(subscriber, self, signal_at_poll)
        self._shutting_down = False
        self.shutdowns = 0

    def shutdown(self) -> None:
        self.shutdowns += 1
        self._shutting_down = True


def run_monitor(manager: Manager, cycles: int = 10) -> list[Any]:
    """The monitor loop of Sanic's WorkerManager.monitor, without the state syncing."""
    seen = []
    for _ in range(cycles):
        cycle = sanic_fixes._patient_poll_monitor(manager)  # type: ignore[arg-type]
        seen.append(cycle)
        if cycle is MonitorCycle.BREAK:
            break
    return seen


@pytest.fixture(autouse=True)
def short_idle_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sanic_fixes, "MONITOR_IDLE_WAIT_S", 0.01)


@pytest.mark.parametrize(
    "at", [1, 2, 3, 4], ids=["our-poll", "sanic-poll", "next-our-poll", "next-sanic-poll"]
)
def test_a_signal_anywhere_in_the_cycle_shuts_the_workers_down_before_the_loop_ends(
    at: int,
) -> None:
    manager = Manager(signal_at_poll=at)
    cycles = run_monitor(manager)
    assert cycles[-1] is MonitorCycle.BREAK, f"the monitor loop did not end: {cycles}"
    assert manager.shutdowns == 1, (
        f"signal during poll {at}: the loop ended after {len(cycles)} cycles "
        f"with shutdown() called {manager.shutdowns} times"
    )


def test_a_second_signal_during_shutdown_goes_to_sanic_which_kills() -> None:
    manager = Manager(signal_at_poll=0)
    sanic_fixes._deferred_shutdown_signal(manager, signal.SIGTERM, None)  # type: ignore[arg-type]
    killed = []
    manager.kill = lambda: killed.append(True)  # type: ignore[attr-defined]
    run_monitor(manager)
    sanic_fixes._deferred_shutdown_signal(manager, signal.SIGTERM, None)  # type: ignore[arg-type]
    assert killed == [True]


def _record_pid(state: Any, key: str) -> None:
    state[key] = {"pid": os.getpid()}


def test_state_manager_serves_spawned_children_from_a_thread() -> None:
    """Sanic's worker state, served by a thread of this process, read and written
    by a real spawned child through the pickled proxy."""
    manager = sanic_fixes.state_manager()
    state = manager.dict()
    state["main"] = {"pid": os.getpid()}
    child = multiprocessing.get_context("spawn").Process(target=_record_pid, args=(state, "child"))
    child.start()
    child.join(30)
    assert child.exitcode == 0, f"child exit code {child.exitcode}"
    assert dict(state) == {"main": {"pid": os.getpid()}, "child": {"pid": child.pid}}
    assert multiprocessing.active_children() == [], "the manager started a process"
    manager.shutdown()


def test_server_runs_no_helper_processes(server: MininqServer) -> None:
    """Sanic's main process, the HTTP worker and the engine; the one-file
    executable adds its bootloader. No manager process, no resource tracker."""
    commands = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in server.pids()}
    expected = 4 if binary_under_test() else 3
    assert len(commands) == expected, f"expected {expected} processes, found {commands}"
    assert not [c for c in commands.values() if b"resource_tracker" in c], commands
