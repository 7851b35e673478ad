"""What the fuzz tests share: a server that delivers nothing, and a watch on its log.

Generated jobs carry generated callback URLs (any host at all), so the fuzzed
server must never request them: its engine claims only a queue that no
generated request can name, and every job just waits in the database.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from .server import MininqServer

UNCLAIMED_QUEUE = "fuzz.only-this-queue-is-claimed.7f3a9c"
NO_DELIVERY_CONFIG = f"""\
[worker]
queues = ["{UNCLAIMED_QUEUE}"]
"""


def no_delivery_server(workdir: Path, token: str = "") -> MininqServer:
    config = NO_DELIVERY_CONFIG + (f'\n[server]\napi_token = "{token}"\n' if token else "")
    return MininqServer(workdir, config_toml=config)


def assert_nothing_delivered(server: MininqServer) -> None:
    """No job of the fuzzed server was ever claimed: no callback URL was requested."""
    db = sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True)
    try:
        attempts = db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
        claimed = db.execute("SELECT COUNT(*) FROM jobs WHERE attempt > 0").fetchone()[0]
    finally:
        db.close()
    assert (attempts, claimed) == (0, 0), f"{attempts} attempts, {claimed} jobs claimed"


SUMMARY_KEY = pytest.StashKey[list[str]]()


def summary_lines(config: pytest.Config) -> list[str]:
    """Lines conftest prints in pytest's closing summary (seeds, request counts)."""
    return config.stash.setdefault(SUMMARY_KEY, [])


class LogWatch:
    """Lines the server logged since the last look, and which of them are errors."""

    def __init__(self, server: MininqServer) -> None:
        self.server = server
        self.offset = len(server.log_text())

    def new_errors(self) -> list[str]:
        """Lines at error level (or worse) and tracebacks logged since the last call."""
        text = self.server.log_text()
        new, self.offset = text[self.offset :], len(text)
        return [line for line in new.splitlines() if _is_error(line)]


def _is_error(line: str) -> bool:
    if "Traceback" in line:
        return True
    try:
        record = json.loads(line)
    except ValueError:
        return False  # not a JSON log line (e.g. a stray print): only tracebacks count
    return isinstance(record, dict) and record.get("level") in ("error", "critical")


def raw_exchange(
    host: str, port: int, request: bytes, timeout: float = 10.0
) -> tuple[int | None, bytes]:
    """Send bytes as they are; (status, body) of the answer, or (None, b"") when the
    server closed the connection without one."""
    import socket

    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None, b""
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    return int(head.split()[1]), rest[:length]
