"""Run a real mininq server process for integration tests.

The server runs in its own session and process group, as under a terminal or
systemd, so a test can signal the main process alone (a clean stop) or the
whole group (a crash). Every started server is registered until it is stopped;
`stop_all()` (called by conftest at session end and by atexit) kills whatever
a failing test left behind.
"""

from __future__ import annotations

import atexit
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

from .client import ApiClient

REPO_ROOT = Path(__file__).resolve().parents[2]
BINARY_ENV = "MININQ_TEST_BINARY"
LOG_TAIL_LINES = 60


class ServerError(RuntimeError):
    """The server process did not start, stop or die as expected."""


def binary_under_test() -> str | None:
    """The executable named by MININQ_TEST_BINARY, or None to run from source."""
    return os.environ.get(BINARY_ENV) or None


def describe_target() -> str:
    """One line saying what the integration tests run, for the pytest header."""
    binary = binary_under_test()
    if binary:
        return f"mininq under test: executable {binary} (from {BINARY_ENV})"
    return f"mininq under test: source ({sys.executable} -m mininq, {REPO_ROOT})"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


PORT_FREE_WAIT_S = 5.0


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the server uses: TIME_WAIT leftovers don't count, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


# -- the registry of running servers ------------------------------------------

_registry: set[MininqServer] = set()
_registry_lock = threading.Lock()


def running_servers() -> list[MininqServer]:
    with _registry_lock:
        return list(_registry)


def stop_all(only: Iterable[MininqServer] | None = None) -> list[str]:
    """Kill every server still registered (or those of `only` among them);
    return their URLs (empty when all was clean)."""
    killed = []
    chosen = None if only is None else set(map(id, only))
    for server in running_servers():
        if chosen is not None and id(server) not in chosen:
            continue
        killed.append(server.url)
        try:
            server.kill9()
        except ServerError:
            pass  # best effort at shutdown; kill9 already tried everything
    return killed


atexit.register(stop_all)


# -- /proc -------------------------------------------------------------------


def _proc_table() -> list[tuple[int, int, int, int, str, int]]:
    """(pid, ppid, pgrp, session, state, starttime) of every live process."""
    rows = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # The command name may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rindex(b")") + 2 :].split()
        rows.append(
            (
                int(entry.name),
                int(fields[1]),
                int(fields[2]),
                int(fields[3]),
                fields[0].decode(),
                int(fields[19]),
            )
        )
    return rows


def _family(leader: int, descendants: bool) -> dict[int, int]:
    """Live (non-zombie) processes of `leader`'s session or group, plus its descendants.

    Maps pid to start time, so a later kill can check the pid was not reused.
    Ask for descendants only while the leader is not yet reaped: after that
    its pid may belong to an unrelated process.
    """
    table = [row for row in _proc_table() if row[4] != "Z"]
    found = {pid: start for pid, _, pgrp, sid, _, start in table if leader in (pgrp, sid)}
    if not descendants:
        return found
    children: dict[int, list[tuple[int, int]]] = {}
    for pid, ppid, _, _, _, start in table:
        children.setdefault(ppid, []).append((pid, start))
    todo = [leader, *found]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            if pid not in found:
                found[pid] = start
                todo.append(pid)
    return found


def _is_running(pid: int, start: int) -> bool:
    """The process that had this pid and start time still runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rindex(b")") + 2 :].split()
        return int(fields[19]) == start and fields[0] != b"Z"
    except (OSError, ValueError, IndexError):
        return False


def _kill_if_same(pid: int, start: int) -> None:
    """SIGKILL the process only if the pid still belongs to it and it still runs."""
    if _is_running(pid, start):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# -- the server --------------------------------------------------------------


class MininqServer:
    """One mininq server process on 127.0.0.1, with its own workdir, DB and log.

    `database_url` makes it a node of that PostgreSQL database (`--database-url`).
    `command` replaces the program (`[sys.executable, "-m", "mininq"]` or
    MININQ_TEST_BINARY); it exists so the harness can test itself with a
    stand-in server. The arguments `serve --host ... --port ... --db-path ...
    [--config ...]` and `args` are always appended.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        workdir: Path,
        config_toml: str = "",
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        port: int | None = None,
        *,
        command: list[str] | None = None,
        database_url: str = "",
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port(self.host)
        self.db_path = self.workdir / "mininq.db"
        self.log_path = self.workdir / "server.log"
        self.config_path: Path | None = None
        if config_toml:
            self.config_path = self.workdir / "mininq.toml"
            self.config_path.write_text(config_toml)
        self.env = dict(env or {})
        self.args = list(args or [])
        self.database_url = database_url
        self._program = list(command) if command else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None
        self.starts = 0
        self._log_offset = 0

    # -- facts ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    @property
    def command(self) -> list[str]:
        """The full argv the server is started with."""
        if self._program:
            program = self._program
        elif binary := binary_under_test():
            program = [binary]
        else:
            program = [sys.executable, "-m", "mininq"]
        argv = program + ["serve", "--host", self.host, "--port", str(self.port)]
        argv += ["--db-path", str(self.db_path)]
        if self.database_url:
            argv += ["--database-url", self.database_url]
        if self.config_path:
            argv += ["--config", str(self.config_path)]
        return argv + self.args

    def environment(self) -> dict[str, str]:
        """os.environ without the caller's own MININQ_* settings, plus `env`.

        Dropping inherited MININQ_* keeps a developer's shell from changing
        what the tests see; `env` is the only way to set them.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("MININQ_")}
        env["PYTHONUNBUFFERED"] = "1"
        if binary_under_test() and not self._program:
            # One-file executables extract to $TMPDIR/_MEI*; kill -9 leaves those
            # behind, so keep them inside the test's workdir.
            tmp = self.workdir / "tmp"
            tmp.mkdir(exist_ok=True)
            env["TMPDIR"] = str(tmp)
        else:
            path = env.get("PYTHONPATH")
            env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
        env.update(self.env)
        return env

    def pids(self) -> list[int]:
        """The main process first, then its children (engine, workers, helpers)."""
        if not self.running or self.proc is None:
            return []
        main = self.proc.pid
        return [main] + sorted(p for p in self._family() if p != main)

    def log_text(self, since_start: bool = False) -> str:
        """The server's stdout+stderr, all runs (or only the latest with since_start)."""
        try:
            with open(self.log_path, "rb") as f:
                if since_start:
                    f.seek(self._log_offset)
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def client(self, token: str | None = None) -> ApiClient:
        return ApiClient(self.url, token=token)

    # -- lifecycle -----------------------------------------------------------

    def start(self, timeout: float = 20.0) -> Self:
        """Launch the server and wait until GET /health answers 200."""
        if self.running:
            raise ServerError(f"server {self.url} is already running (pid {self.pid})")
        # A restart right after kill9 may find the old listener still being torn
        # down for a moment; a port that stays taken is an error.
        deadline = time.monotonic() + PORT_FREE_WAIT_S
        while not _port_is_free(self.host, self.port):
            if time.monotonic() > deadline:
                raise ServerError(
                    f"port {self.port} is already in use; cannot start {self.command}"
                )
            time.sleep(0.05)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        with _registry_lock:
            _registry.add(self)
        deadline = started + timeout
        while not self._healthy():
            code = self.proc.poll()
            if code is not None:
                self._sweep()
                raise ServerError(self._explain(f"exited with code {code} during start-up"))
            if time.monotonic() > deadline:
                self.kill9()
                raise ServerError(
                    self._explain(f"did not answer GET /health 200 within {timeout} s")
                )
            time.sleep(0.02)
        self.start_seconds = time.monotonic() - started
        return self

    def stop(
        self,
        sig: int = signal.SIGTERM,
        timeout: float = 40.0,
        *,
        orphan_grace: float | None = 3.0,
    ) -> int:
        """Signal the main process only, wait for it, and return its exit code.

        If it does not exit within `timeout`, the whole group is killed and
        ServerError raised. Processes of the group that outlive the main
        process by more than `orphan_grace` seconds are killed and reported as
        an error too, since a clean stop leaves nothing behind (None: kill them
        without complaint).
        """
        if self.proc is None:
            raise ServerError("stop() before start()")
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stacks = self._dump_stacks()
            self.kill9()
            name = signal.Signals(sig).name
            raise ServerError(
                self._explain(f"did not exit within {timeout} s after {name}") + stacks
            ) from None
        leftovers = {} if orphan_grace is None else self._wait_family_gone(orphan_grace)
        self._sweep()
        if leftovers:
            raise ServerError(
                self._explain(
                    f"exited with code {code} but left processes {sorted(leftovers)} running"
                )
            )
        return code

    def kill9(self) -> int | None:
        """SIGKILL the whole group, like a crash or power loss, and make sure nothing survives."""
        if self.proc is None:
            return None
        snapshot = self._family()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid, start in snapshot.items():
            _kill_if_same(pid, start)  # includes any that left the group
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            raise ServerError(self._explain("main process survived SIGKILL for 10 s")) from None
        self._sweep()
        # A process that left the group is no longer in _family(); SIGKILL is
        # delivered asynchronously, so wait until it is really gone too.
        deadline = time.monotonic() + 5.0
        while survivors := [pid for pid, start in snapshot.items() if _is_running(pid, start)]:
            if time.monotonic() > deadline:
                raise ServerError(self._explain(f"processes {survivors} survived SIGKILL"))
            time.sleep(0.01)
        return code

    def restart(self, timeout: float = 20.0) -> Self:
        """Start again with the same port, DB and config (stopping it first if running)."""
        if self.running:
            self.stop()
        return self.start(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.running:
            if self.proc is not None:
                self.kill9()  # reaps the main process and sweeps orphans of a crash
            return
        try:
            self.stop()
        except BaseException:
            self.kill9()
            raise

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else f"exit {self.returncode}"
        return f"<MininqServer {self.url} {state} {self.workdir}>"

    # -- internals -----------------------------------------------------------

    def _healthy(self) -> bool:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=1.0)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _family(self) -> dict[int, int]:
        assert self.proc is not None
        # returncode is set only once we reaped the main process; until then its
        # pid cannot be reused, so following its children is safe.
        return _family(self.proc.pid, descendants=self.proc.returncode is None)

    def _wait_family_gone(self, grace: float) -> dict[int, int]:
        assert self.proc is not None
        deadline = time.monotonic() + grace
        while (family := self._family()) and time.monotonic() < deadline:
            time.sleep(0.02)
        return family

    def _sweep(self) -> None:
        """Kill anything left of the group until /proc shows none of it; unregister."""
        assert self.proc is not None
        deadline = time.monotonic() + 5.0
        while family := self._family():
            for pid, start in family.items():
                _kill_if_same(pid, start)
            if time.monotonic() > deadline:
                raise ServerError(self._explain(f"processes {sorted(family)} survived SIGKILL"))
            time.sleep(0.01)
        with _registry_lock:
            _registry.discard(self)

    def _dump_stacks(self) -> str:
        """Every thread's stack in every process of the group (py-spy), for a stuck stop."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not os.access(spy, os.X_OK):
            return "\n(no py-spy to show where the processes were stuck)"
        out = []
        for pid in sorted(self._family()):
            try:
                dump = subprocess.run(
                    [spy, "dump", "--pid", str(pid)],
                    check=False,
                    capture_output=True,
                    text=True,
                    timeout=20,
                )
                text = dump.stdout + dump.stderr
            except (OSError, subprocess.TimeoutExpired) as exc:
                text = f"py-spy failed: {exc}"
            out.append(f"--- stacks of pid {pid} ---\n{text}")
        return "\n" + "\n".join(out)

    def _explain(self, what: str) -> str:
        return (
            f"mininq server {self.url} {what}\n"
            f"command: {' '.join(self.command)}\n"
            f"--- last {LOG_TAIL_LINES} lines of {self.log_path} ---\n{self.log_tail()}"
        )
