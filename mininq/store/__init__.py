"""Storage: the only layer that speaks SQL. `backend_for` picks the backend
from `server.database_url`: empty means SQLite at `server.db_path`."""

from __future__ import annotations

from typing import Any

from mininq.store.base import Backend, Store
from mininq.store.errors import (
    Conflict,
    DatabaseRefused,
    NotFound,
    StartupError,
    StoreError,
    Unavailable,
)

__all__ = [
    "Backend", "Conflict", "DatabaseRefused", "NotFound", "StartupError", "Store",
    "StoreError", "Unavailable", "backend_for",
]


def backend_for(server: Any) -> Backend:
    """The backend the server configuration names."""
    if server.database_url:
        from mininq.store.postgres import PostgresBackend

        return PostgresBackend(server.database_url)
    from mininq.store.sqlite import SqliteBackend

    return SqliteBackend(server.db_path)
