"""Storage: the only layer that speaks SQL. `open_store` picks the backend."""

from __future__ import annotations

from typing import Any

from mininq.store.base import Store
from mininq.store.errors import Conflict, DatabaseRefused, NotFound, StoreError, Unavailable

__all__ = [
    "Conflict", "DatabaseRefused", "NotFound", "Store", "StoreError", "Unavailable",
    "open_store", "prepare_database",
]


def prepare_database(db_path: str) -> None:
    """Create or migrate the database before any process opens it; DatabaseRefused
    (nothing written) when the file is not a mininq database."""
    from mininq.store.sqlite import migrate_file
    from mininq.store.sqlite.identity import check_database_file

    check_database_file(db_path)
    migrate_file(db_path)


async def open_store(db_path: str, defaults: Any) -> Store:
    from mininq.store.sqlite import SqliteStore

    store = SqliteStore(db_path, defaults)
    await store.open()
    return store
