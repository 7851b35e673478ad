"""PostgreSQL for tests: the server named by MININQ_TEST_DATABASE_URL (default
the local one, trust auth), and fresh databases on it with unique names.

Without a server that answers, PostgreSQL tests skip with the reason; under
CI=true they fail instead, because CI machines have one and a skip there
would hide a broken backend.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

URL_ENV = "MININQ_TEST_DATABASE_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_checked: dict[str, str | None] = {}


def server_url() -> str:
    return os.environ.get(URL_ENV) or DEFAULT_URL


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _execute(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _unreachable(url: str) -> str | None:
    """Why the server can't be used, or None when it answers."""
    if url not in _checked:
        try:
            asyncio.run(_execute(url, "SELECT 1"))
            _checked[url] = None
        except Exception as e:  # noqa: BLE001 - any failure means "no server"
            _checked[url] = f"{type(e).__name__}: {e}"
    return _checked[url]


def require_server() -> str:
    """The server's URL; skips the test (fails it under CI=true) when none answers."""
    url = server_url()
    why = _unreachable(url)
    if why is not None:
        message = (f"no PostgreSQL server answers at {URL_ENV} ({url}): {why}; "
                   f"set {URL_ENV} to run the PostgreSQL tests")
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return url


@contextmanager
def fresh_database(prefix: str = "mininq_test") -> Iterator[str]:
    """A new empty database, its URL yielded, dropped after (connections ended)."""
    url = require_server()
    name = f"{prefix}_{secrets.token_hex(6)}"
    asyncio.run(_execute(url, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(url, name)
    finally:
        asyncio.run(_execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
