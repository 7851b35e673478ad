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


def add_many(conn: sqlite3.Connection, calls: list[tuple[str]]) -> list[int]:
    conn.executemany("INSERT INTO t (k) VALUES (?)", calls)
    total = conn.execute("SELECT count(*) FROM t").fetchone()[0]
    return [total] * len(calls)


def add_mergeable(conn: sqlite3.Connection, key: str) -> int:
    return add(conn, key)


add_mergeable.merged = add_many  # type: ignore[attr-defined]


def test_consecutive_calls_of_a_mergeable_write_run_as_one(tmp_path: Path) -> None:
    calls = [(add_mergeable, "m1"), (add_mergeable, "m2"), (add, "plain"), (add_mergeable, "m3")]
    results, rows = asyncio.run(run_together(tmp_path / "d.db", calls))
    # m1 and m2 ran as one call (both see 2 rows); `add` broke the run, so m3 ran alone.
    assert results == [2, 2, 3, 4], results
    assert rows == ["m1", "m2", "m3", "plain"]


def test_a_failing_merged_write_fails_alone(tmp_path: Path) -> None:
    calls = [(add_mergeable, "a"), (add_mergeable, "dup"), (add_mergeable, "dup"), (add_mergeable, "b")]
    results, rows = asyncio.run(run_together(tmp_path / "e.db", calls))
    assert results[0] == 1 and results[1] == 2 and results[3] == 3, results
    assert isinstance(results[2], sqlite3.IntegrityError), results
    assert rows == ["a", "b", "dup"]


async def create_concurrently(path: Path, specs: list[dict]) -> tuple[list, list[dict]]:
    from mininq.config import load_config
    from mininq.store.sqlite import SqliteStore, migrate_file

    migrate_file(str(path))
    store = SqliteStore(str(path), load_config(env={}).defaults)
    await store.open()
    try:
        results = await asyncio.gather(*(store.create_jobs([s]) for s in specs))
        queues = await store.list_queues()
        return results, queues
    finally:
        await store.close()


def test_single_job_creates_sharing_a_commit_keep_their_own_results(tmp_path: Path) -> None:
    """POST /jobs requests that arrive together become one merged insert: each
    still gets its own job, an idempotency key repeated within the batch gets
    the first job, and the queue counts add up."""
    base = {"callback_url": "http://127.0.0.1:9/hook", "payload": "{}"}
    specs = [
        {**base, "queue_name": "a"},
        {**base, "queue_name": "b", "idempotency_key": "k1"},
        {**base, "queue_name": "a"},
        {**base, "queue_name": "b", "idempotency_key": "k1"},
        {**base, "queue_name": "b", "priority": 5},
    ]
    results, queues = asyncio.run(create_concurrently(tmp_path / "f.db", specs))
    assert [len(r) for r in results] == [1] * 5
    jobs = [r[0][0] for r in results]
    created = [r[0][1] for r in results]
    assert created == [True, True, True, False, True]
    assert jobs[3]["id"] == jobs[1]["id"]
    assert len({j["id"] for j in jobs}) == 4
    assert [j["queue_name"] for j in jobs] == ["a", "b", "a", "b", "b"]
    assert jobs[4]["priority"] == 5
    pending = {q["name"]: q["pending"] for q in queues}
    assert pending == {"a": 2, "b": 2}, queues
