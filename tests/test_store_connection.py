"""The group-committing writer (mininq/store/sqlite/connection.py) on a real file:
writes that arrive together share one transaction, and one failing write
fails alone, with nothing of it left behind."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from mininq.store.sqlite.connection import Database


def add(conn: sqlite3.Connection, key: str) -> int:
    conn.execute("INSERT INTO t (k) VALUES (?)", (key,))
    return conn.execute("SELECT count(*) FROM t").fetchone()[0]


def add_then_fail(conn: sqlite3.Connection, key: str) -> None:
    conn.execute("INSERT INTO t (k) VALUES (?)", (key,))
    raise LookupError(f"{key} refused after its insert")


def commits(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM t").fetchone()[0]


async def run_together(path: Path, calls: list) -> tuple[list, list[str]]:
    db = Database(str(path))
    await db.open()
    try:
        await db.write(lambda conn: conn.execute("CREATE TABLE IF NOT EXISTS t (k TEXT UNIQUE)"))
        results = await asyncio.gather(
            *(db.write(fn, key) for fn, key in calls), return_exceptions=True
        )
        rows = await db.read(
            lambda conn: [r[0] for r in conn.execute("SELECT k FROM t ORDER BY k")]
        )
        return results, rows
    finally:
        await db.close()


def test_writes_arriving_together_share_one_transaction(tmp_path: Path) -> None:
    results, rows = asyncio.run(
        run_together(tmp_path / "a.db", [(add, f"k{i}") for i in range(20)])
    )
    # Each write saw the ones before it in the same transaction: one batch, in order.
    assert results == list(range(1, 21))
    assert rows == sorted(f"k{i}" for i in range(20))


@pytest.mark.parametrize("failing", [0, 7, 19])
def test_one_failing_write_fails_alone_and_leaves_nothing(tmp_path: Path, failing: int) -> None:
    calls = [(add_then_fail if i == failing else add, f"k{i:02d}") for i in range(20)]
    results, rows = asyncio.run(run_together(tmp_path / "b.db", calls))
    assert isinstance(results[failing], LookupError), results
    others = [r for i, r in enumerate(results) if i != failing]
    assert others == list(range(1, 20)), f"the other writes: {others}"
    assert f"k{failing:02d}" not in rows, "the failed write's insert was kept"
    assert len(rows) == 19


def test_a_constraint_error_reaches_only_its_caller(tmp_path: Path) -> None:
    calls = [(add, "same"), (add, "other"), (add, "same"), (add, "third")]
    results, rows = asyncio.run(run_together(tmp_path / "c.db", calls))
    assert results[0] == 1 and results[1] == 2 and results[3] == 3, results
    assert isinstance(results[2], sqlite3.IntegrityError), results
    assert rows == ["other", "same", "third"]
