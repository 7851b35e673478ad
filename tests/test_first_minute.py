"""The first minute: the start-up line (address, database, dashboard, limits; no
secret) and `logging.format = "auto"` choosing pretty on a terminal, JSON on a pipe.

The server is started here with its stderr on a real pseudo-terminal (`pty`) or a
real pipe, since the choice depends on what stderr is.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import orjson
import pytest
from support import MininqServer

import mininq
from mininq.announce import base_url, host_port

TOKEN = "tok-never-printed-7c1e"
SECRET_B64 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET = "whsec_" + SECRET_B64
LINE_EVENT = "mininq listening"
PRETTY = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} INFO  mininq listening (?P<fields>.*)$")
START_TIMEOUT_S = 30.0


class Started:
    """A mininq process whose stdout+stderr is a pty or a pipe we read ourselves."""

    def __init__(self, workdir: Path, terminal: bool, config_toml: str) -> None:
        # MininqServer gives the command line and environment, with binary-under-test
        # support; only its output handling differs from what these tests need.
        self.spec = MininqServer(workdir, config_toml=config_toml)
        if terminal:
            self.fd, child_end = pty.openpty()
        else:
            self.fd, child_end = os.pipe()
        try:
            self.proc = subprocess.Popen(
                self.spec.command, cwd=workdir, env=self.spec.environment(),
                stdin=subprocess.DEVNULL, stdout=child_end, stderr=child_end,
                start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(child_end)
        self.output = b""

    def read_until(self, needle: bytes, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(
                    f"no {needle!r} within {timeout} s; output so far:\n"
                    + self.output.decode(errors="replace")
                )

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the pty's other end is closed
            return False
        self.output += chunk
        return bool(chunk)

    def stop(self) -> int:
        """SIGTERM the main process, keep reading until every writer is gone."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(40)
            while self._read(5):
                pass
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # anything left of the group
            except ProcessLookupError:
                pass
            self.proc.wait(10)
            os.close(self.fd)
        return code

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace").replace("\r\n", "\n")


def run_server(tmp_path: Path, terminal: bool, log_format: str | None = None) -> Started:
    config = f'[server]\napi_token = "{TOKEN}"\n[webhooks]\nsigning_secret = "{SECRET}"\n'
    config += "[worker]\nconcurrency = 17\n[defaults]\nqueue_max_concurrency = 3\n"
    if log_format:
        config += f'[logging]\nformat = "{log_format}"\n'
    started = Started(tmp_path, terminal, config)
    try:
        started.read_until(LINE_EVENT.encode())
        # The line says the port is bound: it accepts a connection already.
        socket.create_connection((started.spec.host, started.spec.port), timeout=5).close()
        started.read_until(b"Worker ready")
    finally:
        code = started.stop()
    assert code == 0, f"exit code {code}; output:\n{started.text}"
    return started


def assert_no_secret(text: str) -> None:
    for secret in (TOKEN, SECRET, SECRET_B64):
        assert secret not in text, f"{secret!r} printed:\n{text}"


def expected_fields(started: Started) -> dict[str, object]:
    spec = started.spec
    url = f"http://127.0.0.1:{spec.port}"
    return {
        "version": mininq.__version__,
        "listen": f"127.0.0.1:{spec.port}",
        "url": url,
        "dashboard": url + "/dashboard",
        "db": str(spec.db_path),
        "api_token": "set",
        "signing": "on",
        "concurrency": 17,
        "queue_max_concurrency": 3,
    }


def test_with_a_pipe_auto_logs_json_and_the_start_up_line(tmp_path):
    started = run_server(tmp_path, terminal=False)
    text = started.text
    records = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    lines = [r for r in records if r["event"] == LINE_EVENT]
    assert len(lines) == 1, text
    line = lines[0]
    assert line["level"] == "info" and line["logger"] == "mininq.app"
    for key, value in expected_fields(started).items():
        assert line[key] == value, f"{key}: {line[key]!r} != {value!r} in {line}"
    for key in ("max_retries", "timeout_ms", "max_body_bytes", "max_result_bytes", "queues"):
        assert key in line, line
    assert_no_secret(text)


def test_on_a_terminal_auto_logs_pretty_lines(tmp_path):
    started = run_server(tmp_path, terminal=True)
    text = started.text
    assert '{"ts"' not in text, f"JSON on a terminal:\n{text}"
    assert "PRODUCTION mode" not in text, text  # Sanic's warning for terminals is off
    matches = [m for line in text.splitlines() if (m := PRETTY.match(line))]
    assert len(matches) == 1, text
    # key=value, with values holding spaces in double quotes: shell-like words.
    fields = dict(word.split("=", 1) for word in shlex.split(matches[0]["fields"]))
    for key, value in expected_fields(started).items():
        assert fields[key] == str(value), f"{key}: {fields[key]!r} != {value!r} in {fields}"
    assert_no_secret(text)


@pytest.mark.parametrize("terminal, log_format", [(True, "json"), (False, "pretty")])
def test_an_explicit_format_wins_over_auto(tmp_path, terminal, log_format):
    started = run_server(tmp_path, terminal=terminal, log_format=log_format)
    text = started.text
    lines = [line for line in text.splitlines() if LINE_EVENT in line]
    assert len(lines) == 1, text
    if log_format == "json":
        assert orjson.loads(lines[0])["event"] == LINE_EVENT
    else:
        assert PRETTY.match(lines[0]), lines[0]
    assert_no_secret(text)


@pytest.mark.parametrize(
    "host, port, listen, url",
    [
        ("127.0.0.1", 6390, "127.0.0.1:6390", "http://127.0.0.1:6390"),
        ("0.0.0.0", 80, "0.0.0.0:80", "http://127.0.0.1:80"),
        ("::", 6390, "[::]:6390", "http://[::1]:6390"),
        ("::1", 6390, "[::1]:6390", "http://[::1]:6390"),
        ("fe80::1", 1, "[fe80::1]:1", "http://[fe80::1]:1"),
        ("localhost", 8080, "localhost:8080", "http://localhost:8080"),
    ],
)
def test_listen_address_and_url(host, port, listen, url):
    assert host_port(host, port) == listen
    assert base_url(host, port) == url
