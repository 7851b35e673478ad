"""SPEC §8 data safety through a real server: a 201 survives `kill -9`, and
`mininq backup DEST` copies a live database with its jobs."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support import MininqServer
from support.server import binary_under_test

NOWHERE = "http://127.0.0.1:9/never"  # never called: the queue is paused
CREATES = 500
THREADS = 8


@pytest.fixture(scope="module")
def durable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MininqServer]:
    srv = MininqServer(tmp_path_factory.mktemp("durable"))
    with srv:
        yield srv


def db_ids(path: Path, queue: str) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM jobs WHERE queue_name = ?", (queue,))}
    finally:
        conn.close()


def test_500_creates_survive_kill_9(durable):
    srv = durable
    queue = "durable"
    with srv.client() as api:
        api.post("/queues", {"name": queue, "paused": True}).expect(201)

        def create(i: int) -> str:
            body = {"callback_url": NOWHERE, "queue_name": queue, "payload": {"i": i}}
            return api.post("/jobs", body).expect(201)["id"]

        started = time.monotonic()
        with ThreadPoolExecutor(THREADS) as pool:
            ids = list(pool.map(create, range(CREATES)))
        elapsed = time.monotonic() - started
        srv.kill9()  # right after the last 201: no clean shutdown, no checkpoint
    assert len(set(ids)) == CREATES
    print(f"{CREATES} creates from {THREADS} threads in {elapsed:.2f} s "
          f"({CREATES / elapsed:.0f}/s) before kill -9")  # fmt: skip

    srv.start()
    with srv.client() as api:
        jobs = api.get("/jobs", queue=queue, limit=1000).expect(200)
        missing = set(ids) - {j["id"] for j in jobs}
        assert not missing, (
            f"{len(missing)} of {CREATES} acknowledged jobs lost: {sorted(missing)[:5]}"
        )
        assert len(jobs) == CREATES
        assert {(j["status"], j["attempt"]) for j in jobs} == {("pending", 0)}
        assert sorted(j["payload"]["i"] for j in jobs) == list(range(CREATES))
        q = api.get(f"/queues/{queue}").expect(200)
        assert (q["paused"], q["pending"], q["running"]) == (True, CREATES, 0), q


def test_backup_of_a_live_server_has_its_jobs(durable, tmp_path):
    srv = durable
    if not srv.running:
        srv.start()
    queue = "backup"
    dest = tmp_path / "copy.db"
    with srv.client() as api:
        api.post("/queues", {"name": queue, "paused": True}).expect(201)
        before = {
            j["id"]
            for j in api.post(
                "/jobs/batch",
                {"jobs": [{"callback_url": NOWHERE, "queue_name": queue}] * 200},
            ).expect(201)["jobs"]
        }
        during: set[str] = set()
        stop = threading.Event()

        def keep_writing() -> None:
            with srv.client() as writer:
                while not stop.is_set():
                    body = {"callback_url": NOWHERE, "queue_name": queue}
                    during.add(writer.post("/jobs", body).expect(201)["id"])

        thread = threading.Thread(target=keep_writing)
        thread.start()
        try:
            time.sleep(0.1)
            result = run_backup(srv, dest)
        finally:
            stop.set()
            thread.join(10)
        assert result.returncode == 0, result.stderr
        assert "backed up" in result.stdout, result.stdout

        copied = db_ids(dest, queue)
        assert before <= copied, (
            f"{len(before - copied)} jobs committed before the backup are missing"
        )
        assert copied <= before | during, "the copy holds jobs that were never created"
        assert during, "no job was created while the backup ran"

        # Once writes stop, a second copy has exactly the jobs the API lists.
        dest2 = tmp_path / "quiet.db"
        assert run_backup(srv, dest2).returncode == 0
        listed = {j["id"] for j in api.get("/jobs", queue=queue, limit=1000).expect(200)}
        assert db_ids(dest2, queue) == listed == before | during
        assert db_ids(dest2, "durable") == db_ids(srv.db_path, "durable")

    conn = sqlite3.connect(dest)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        live = sqlite3.connect(f"file:{srv.db_path}?mode=ro", uri=True)
        try:
            assert (
                conn.execute("PRAGMA user_version").fetchone()
                == live.execute("PRAGMA user_version").fetchone()
            )
        finally:
            live.close()
    finally:
        conn.close()


def run_backup(srv: MininqServer, dest: Path) -> subprocess.CompletedProcess[str]:
    """`mininq backup DEST --db-path ...` from the executable under test or the source."""
    binary = binary_under_test()
    program = [binary] if binary else [sys.executable, "-m", "mininq"]
    return subprocess.run(
        [*program, "backup", str(dest), "--db-path", str(srv.db_path)],
        cwd=srv.workdir,
        env=srv.environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
