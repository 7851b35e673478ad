"""Which SQLite errors mean "the database can't do this now", and their HTTP answer.

Each error here is produced by real SQLite, not constructed: a full database
(SQLite's page-count cap, `PRAGMA max_page_count`, which fails exactly like a
full disk), a read-only file, and a lock held past the busy timeout.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mininq.store.errors import Unavailable
from mininq.store.sqlite.faults import unavailable


def _error(action) -> sqlite3.Error:
    with pytest.raises(sqlite3.Error) as caught:
        action()
    return caught.value


def test_page_count_cap_is_disk_full_507(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute("CREATE TABLE t (b BLOB)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    exc = _error(lambda: conn.execute("INSERT INTO t VALUES (zeroblob(100000))"))
    fault = unavailable(exc)
    assert isinstance(fault, Unavailable) and fault.status == 507, (exc, fault)
    assert str(fault).startswith("database: disk full ("), fault


def test_read_only_file_is_503(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    sqlite3.connect(path).execute("CREATE TABLE t (a)").connection.close()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    fault = unavailable(_error(lambda: conn.execute("INSERT INTO t VALUES (1)")))
    assert fault is not None and (fault.status, fault.cause) == (503, "read-only"), fault


def test_lock_held_past_busy_timeout_is_503(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (a)")
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    fault = unavailable(_error(lambda: waiter.execute("BEGIN IMMEDIATE")))
    holder.execute("ROLLBACK")
    assert fault is not None and (fault.status, fault.cause) == (503, "locked by another process")


def test_other_errors_stay_what_they_are(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db")
    conn.execute("CREATE TABLE t (a UNIQUE)")
    conn.execute("INSERT INTO t VALUES (1)")
    assert unavailable(_error(lambda: conn.execute("INSERT INTO t VALUES (1)"))) is None
    assert unavailable(_error(lambda: conn.execute("SELECT nonsense FROM t"))) is None
    assert unavailable(ValueError("not SQLite")) is None


def test_fault_log_says_each_cause_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from mininq.faults import FaultLog

    now = [1_000_000]
    faults = FaultLog(logging.getLogger("mininq.test-faults"), now=lambda: now[0])
    full = Unavailable("disk full", "database or disk is full", 507)
    locked = Unavailable("locked by another process", "database is locked")
    caplog.set_level(logging.INFO, logger="mininq.test-faults")
    for _ in range(1000):
        faults.report(full, "POST /jobs")
        now[0] += 50  # 50 s in all: still within the minute
    faults.report(locked, "POST /jobs")
    now[0] += 11_000
    faults.report(full, "POST /jobs")
    faults.cleared("disk full")
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("ERROR", "database: disk full; writes fail until fixed"),
        ("ERROR", "database: locked by another process; writes fail until fixed"),
        ("ERROR", "database: disk full; writes fail until fixed"),
        ("WARNING", "database: writable again after disk full"),
    ], lines
    assert caplog.records[2].mininq_fields["failures_since_last_line"] == 999
