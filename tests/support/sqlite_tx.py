"""Run one of the SQLite backend's statement functions in its own write transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any


def tx(conn: sqlite3.Connection, fn: Callable[..., Any], *args: Any) -> Any:
    conn.execute("BEGIN IMMEDIATE")
    try:
        out = fn(conn, *args)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return out
