"""Connections to the SQLite file: a group-committing writer and a reader.

Every write is a plain synchronous function `fn(conn, *args)` over a
`sqlite3.Connection`. Writes that arrive while a transaction is being
written wait, then all run together inside ONE `BEGIN IMMEDIATE … COMMIT`:
concurrent requests share a commit instead of paying one each, and every
caller still learns only after COMMIT that its write is durable. If one of
them fails, the transaction is rolled back and run again with each write in
its own savepoint, so that one failing write does not undo the others.

Consecutive calls of one write in a batch run as a single call when the
write offers a `merged` form, `fn.merged(conn, [args, ...])` returning one
value per call: single-job POSTs that share a commit become one insert.

A whole batch runs in aiosqlite's connection thread in one hop
(`Connection._execute`, a private method: tests/test_dependency_guards.py
watches it), instead of one hop per statement; reads get their
own connection so they never wait behind a commit (WAL lets them run
concurrently with the writer).

The HTTP process and the engine both write. Before `BEGIN IMMEDIATE` each
writer takes an exclusive `flock` on `<db>-write.lock`: the kernel hands the
lock over the moment it is released, where SQLite's own busy handler would
sleep 1, 2, 5, 10… ms between tries, which shows as latency spikes when
the two processes write at once.

SQLite errors that are the machine's fault (disk full, read-only, locked
past the busy timeout, I/O) leave here as `Unavailable` (see faults.py); the
last one a write met stays in `Database.fault` for /health.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite

from mininq.store.errors import Unavailable
from mininq.store.sqlite.faults import unavailable

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000


def configure(conn: sqlite3.Connection) -> None:
    """Per-connection settings (WAL itself persists in the file)."""
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -16000")


def connect_sync(path: str) -> sqlite3.Connection:
    """A configured synchronous connection in autocommit mode (explicit BEGINs)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    configure(conn)
    return conn


def _run_batch(conn: sqlite3.Connection, lock_fd: int, ops: list[tuple[Callable[..., Any], tuple]]) -> list:
    """Run every op in one IMMEDIATE transaction; returns (ok, value) per op."""
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    try:
        return _run_locked(conn, ops)
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)


def _run_locked(conn: sqlite3.Connection, ops: list[tuple[Callable[..., Any], tuple]]) -> list:
    if len(ops) > 1:
        values = _run_together(conn, ops)
        if values is not None:
            return [(True, value) for value in values]
    return _run_apart(conn, ops)


def _run_together(conn: sqlite3.Connection, ops: list[tuple[Callable[..., Any], tuple]]) -> list | None:
    """Every op in one transaction without savepoints (two statements fewer per
    op, a tenth of a single-job insert); None, with nothing written, if any op
    failed. Ops are plain functions of the connection and their own arguments,
    so running them again after the rollback is safe."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        values: list = []
        for fn, calls in _consecutive(ops):
            merged = getattr(fn, "merged", None)
            if merged is not None and len(calls) > 1:
                values.extend(merged(conn, calls))
            else:
                values.extend(fn(conn, *args) for args in calls)
    except Exception:  # noqa: BLE001 - _run_apart tells each caller its own result
        conn.execute("ROLLBACK")
        return None
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return values


def _consecutive(ops: list[tuple[Callable[..., Any], tuple]]) -> list[tuple[Callable[..., Any], list[tuple]]]:
    """Ops grouped into runs of the same function, in order."""
    runs: list[tuple[Callable[..., Any], list[tuple]]] = []
    for fn, args in ops:
        if runs and runs[-1][0] is fn:
            runs[-1][1].append(args)
        else:
            runs.append((fn, [args]))
    return runs


def _run_apart(conn: sqlite3.Connection, ops: list[tuple[Callable[..., Any], tuple]]) -> list:
    """Every op in one transaction, each in its own savepoint: a failing op is
    undone alone and its caller gets the error; the others commit."""
    conn.execute("BEGIN IMMEDIATE")
    out: list[tuple[bool, Any]] = []
    try:
        if len(ops) == 1:
            fn, args = ops[0]
            try:
                out.append((True, fn(conn, *args)))
            except Exception as exc:  # noqa: BLE001 - the caller gets its own error
                conn.execute("ROLLBACK")
                return [(False, exc)]
        else:
            for fn, args in ops:
                conn.execute("SAVEPOINT op")
                try:
                    value = fn(conn, *args)
                except Exception as exc:  # noqa: BLE001 - that op alone fails
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    out.append((False, exc))
                else:
                    conn.execute("RELEASE op")
                    out.append((True, value))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return out


def _run_exclusive(conn: sqlite3.Connection, lock_fd: int, fn: Callable[..., T], args: tuple) -> T:
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    try:
        return fn(conn, *args)
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)


def _run_read(conn: sqlite3.Connection, fn: Callable[..., T], args: tuple) -> T:
    # One read transaction: a read made of several SELECTs sees one snapshot,
    # not jobs moving between statuses halfway through.
    conn.execute("BEGIN")
    try:
        return fn(conn, *args)
    finally:
        conn.execute("COMMIT")


class Database:
    """One SQLite file seen through a writer and a reader connection."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._pending: list[tuple[Callable[..., Any], tuple, asyncio.Future]] = []
        self._flushing = False
        self._lock_fd = -1
        # The last write failure that was the machine's fault (disk full,
        # read-only, locked...); SqliteStore clears it when a job create or the
        # /health write check succeeds (no other write clears it).
        self.fault: Unavailable | None = None

    async def open(self) -> None:
        self._lock_fd = os.open(f"{self.path}-write.lock", os.O_RDWR | os.O_CREAT, 0o644)
        self._writer = await aiosqlite.connect(self.path, isolation_level=None)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        for conn in (self._writer, self._reader):
            await conn._execute(configure, conn._conn)

    async def close(self) -> None:
        while self._flushing or self._pending:
            await asyncio.sleep(0.005)
        for conn in (self._writer, self._reader):
            if conn is not None:
                await conn.close()
        self._writer = self._reader = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` in a shared write transaction; returns after COMMIT."""
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.append((fn, args, fut))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        try:
            return await fut
        except sqlite3.Error as exc:
            fault = unavailable(exc)
            if fault is None:
                raise
            self.fault = fault
            raise fault from None

    async def exclusive(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on the writer connection outside any transaction,
        holding the write lock (for checkpoints)."""
        assert self._writer is not None, "database is not open"
        try:
            return await self._writer._execute(
                _run_exclusive, self._writer._conn, self._lock_fd, fn, args
            )
        except sqlite3.Error as exc:
            raise unavailable(exc) or exc from None

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on the reader connection, in one read transaction."""
        assert self._reader is not None, "database is not open"
        try:
            return await self._reader._execute(_run_read, self._reader._conn, fn, args)
        except sqlite3.Error as exc:
            raise unavailable(exc) or exc from None

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                ops = [(fn, args) for fn, args, _ in batch]
                try:
                    assert self._writer is not None, "database is not open"
                    results = await self._writer._execute(
                        _run_batch, self._writer._conn, self._lock_fd, ops
                    )
                except Exception as exc:  # noqa: BLE001 - every waiter learns it
                    for _, _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, _, fut), (ok, value) in zip(batch, results):
                    if fut.done():
                        continue
                    if ok:
                        fut.set_result(value)
                    else:
                        fut.set_exception(value)
        finally:
            self._flushing = False
