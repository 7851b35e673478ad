"""INSERT and UPDATE of a row from a dict of columns.

Table and column names come from this backend's own constants, never from a
request, so building the statement text is safe; values are always bound.
"""

from __future__ import annotations

import sqlite3
from typing import Any


def insert(conn: sqlite3.Connection, table: str, values: dict[str, Any]) -> None:
    cols = ", ".join(values)
    marks = ", ".join("?" * len(values))
    conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(values.values()))


def update(conn: sqlite3.Connection, table: str, key: str, key_value: Any,
           values: dict[str, Any]) -> int:
    """Set `values` on the row whose `key` is `key_value`; returns rows changed."""
    sets = ", ".join(f"{col} = ?" for col in values)
    cur = conn.execute(
        f"UPDATE {table} SET {sets} WHERE {key} = ?", (*values.values(), key_value)
    )
    return cur.rowcount
