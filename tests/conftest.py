"""Fixtures shared by every test: the webhook receiver, servers, the API client.

Integration tests run against a real mininq process: from source
(`python -m mininq`) by default, or the executable named by MININQ_TEST_BINARY.
"""

from __future__ import annotations

import sqlite3
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import ApiClient, MininqServer, Receiver, ServerError
from support.fuzz import summary_lines
from support.server import describe_target, stop_all

# The shared server retries fast and reaps fast so API tests don't wait long.
# Every test's receiver path is on one destination (the session's receiver),
# so its breaker is off: one test's failures must not hold back the next test.
SHARED_SERVER_CONFIG = """\
[worker]
reaper_interval_secs = 1

[webhooks]
breaker_threshold = 0

[defaults]
base_delay_ms = 100
max_delay_ms = 2000
timeout_ms = 5000
"""

MakeServer = Callable[..., MininqServer]


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"sqlite: {sqlite3.sqlite_version}", describe_target()]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    for line in summary_lines(config):
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    killed = stop_all()
    if killed:
        warnings.warn(f"killed mininq servers still running at session end: {killed}")


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    """One webhook receiver for the session; each test takes its own `receiver.new_path()`."""
    recv = Receiver()
    yield recv
    recv.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MininqServer]:
    """One mininq server shared by API tests; tests keep apart by unique queue names."""
    with MininqServer(
        tmp_path_factory.mktemp("shared-server"), config_toml=SHARED_SERVER_CONFIG
    ) as srv:
        yield srv


@pytest.fixture(scope="session")
def api(server: MininqServer) -> Iterator[ApiClient]:
    """Client of the shared server."""
    client = server.client()
    yield client
    client.close()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[MakeServer]:
    """Factory for servers of one test: make_server(config_toml="", env=None, args=None, start=True).

    Each gets its own workdir under tmp_path. At test end every one of them is
    stopped with SIGTERM (kill -9 if that fails); a failing stop is a test error.
    """
    made: list[MininqServer] = []

    def make(
        config_toml: str = "",
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        start: bool = True,
    ) -> MininqServer:
        srv = MininqServer(tmp_path / f"server{len(made) + 1}", config_toml, env, args)
        made.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    errors = []
    for srv in made:
        if srv.proc is None:
            continue
        try:
            if srv.running:
                srv.stop()
            else:
                srv.kill9()  # reaps it and sweeps orphans of a crash
        except (ServerError, OSError) as exc:
            errors.append(exc)
            srv.kill9()
    if errors:
        raise errors[0]


@pytest.fixture
def qname() -> str:
    """A queue name no other test uses."""
    return f"t-{uuid.uuid4().hex[:10]}"
