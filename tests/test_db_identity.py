"""Which file mininq writes to (SPEC §8): only a mininq database, reached by one name.

- A file at `db_path` that is not a mininq database (another application's
  SQLite file, random bytes, a mininq database cut short) stops start-up
  with one line naming the file and a non-zero exit, and stays byte for byte
  as it was, with no file created beside it.
- A database made before mininq marked its files (no application_id) is
  upgraded, not refused.
- A symlink and the real path are one database: one engine lock.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MakeServer
from support import MininqServer, Receiver, wait_until

from mininq.store.sqlite.identity import MININQ_APPLICATION_ID
from mininq.store.sqlite.schema import MIGRATIONS


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _other_apps_database(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)")
        conn.executemany("INSERT INTO users (email) VALUES (?)", [("a@example.com",), ("b@x.org",)])
    conn.close()


def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(64 * 1024))


def _truncated_mininq_database(path: Path) -> None:
    # A real mininq database with some jobs in it, stopped cleanly, then cut in half.
    source = MininqServer(path.parent / "source")
    with source, source.client() as api:
        job = {"callback_url": "http://127.0.0.1:9/", "delay_ms": 3_600_000, "payload": {"p": "x" * 2000}}
        api.post("/jobs/batch", json={"jobs": [job] * 200}).expect(201)
    whole = source.db_path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


@pytest.mark.parametrize(
    "make_file, words",
    [
        (_other_apps_database, "another application's SQLite file"),
        (_random_bytes, "not a SQLite database file"),
        (_truncated_mininq_database, "cut short"),
    ],
    ids=["another-apps-sqlite", "random-bytes", "truncated-copy"],
)
def test_a_file_that_is_not_a_mininq_database_is_refused_and_left_untouched(
    tmp_path: Path, make_file: Callable[[Path], None], words: str
) -> None:
    srv = MininqServer(tmp_path / "run")
    make_file(srv.db_path)
    before = _sha256(srv.db_path)
    env = srv.environment()  # (makes the executable's TMPDIR in the workdir)
    files_before = sorted(p.name for p in srv.workdir.iterdir())

    done = subprocess.run(
        srv.command, cwd=srv.workdir, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0, f"mininq started on a foreign file:\n{output}"
    lines = output.splitlines()
    assert len(lines) == 1, f"expected one line saying why, got:\n{output}"
    assert str(srv.db_path) in lines[0] and words in lines[0], lines[0]
    assert "Traceback" not in output
    assert _sha256(srv.db_path) == before, "the file was changed"
    assert sorted(p.name for p in srv.workdir.iterdir()) == files_before, (
        "files were created beside it"
    )


def test_a_database_from_before_the_mark_is_upgraded(make_server: MakeServer, tmp_path: Path) -> None:
    srv = make_server(start=False)
    conn = sqlite3.connect(srv.db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for statement in MIGRATIONS[0][1]:  # the first schema, as an earlier mininq made it
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO queues (name, paused, created_at, updated_at) VALUES ('old-queue', 0, 0, 0)"
    )
    conn.close()

    srv.start()
    with srv.client() as api:
        assert api.get("/queues/old-queue").expect(200)["name"] == "old-queue"
        api.post("/jobs", json={"callback_url": "http://127.0.0.1:9/", "delay_ms": 60_000}).expect(201)
    with sqlite3.connect(srv.db_path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == MININQ_APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_a_symlink_and_the_real_path_share_one_engine(
    make_server: MakeServer, receiver: Receiver, qname: str
) -> None:
    first = make_server()
    link = first.workdir.parent / "elsewhere" / "link.db"
    link.parent.mkdir()
    link.symlink_to(first.db_path)
    second = make_server(args=["--db-path", str(link)])

    wait_until(
        lambda: "another mininq engine delivers from this database" in second.log_text(),
        timeout=15,
        message=lambda: f"the second server took its own engine lock:\n{second.log_tail()}",
    )
    assert not list(link.parent.glob("link.db-*")), list(link.parent.iterdir())
    assert sorted(p.name for p in first.workdir.glob("mininq.db-*lock")) == [
        "mininq.db-engine.lock", "mininq.db-write.lock"
    ]
    # One database: a job created through the link is delivered by the first engine.
    path = receiver.new_path()
    with second.client() as api:
        job = api.post("/jobs", json={"callback_url": receiver.url(path), "queue_name": qname})
        job_id = job.expect(201)["id"]
    receiver.wait_for(path, 1, timeout=10)
    with first.client() as api:
        assert api.wait_job(job_id, "completed")["attempt"] == 1
