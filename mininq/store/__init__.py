"""Storage: the only layer that speaks SQL. `open_store` picks the backend."""

from __future__ import annotations

from typing import Any

from mininq.store.base import Store
from mininq.store.errors import Conflict, NotFound, StoreError

__all__ = ["Conflict", "NotFound", "Store", "StoreError", "open_store", "prepare_database"]


def prepare_database(db_path: str) -> None:
    """Create or migrate the database before any process opens it."""
    from mininq.store.sqlite import migrate_file

    migrate_file(db_path)


async def open_store(db_path: str, defaults: Any) -> Store:
    from mininq.store.sqlite import SqliteStore

    store = SqliteStore(db_path, defaults)
    await store.open()
    return store
