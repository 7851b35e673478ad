"""A full disk (SPEC §5, §8), on a real 3 MB file system the test mounts.

The database lives on a tmpfs of 3 MB, a third of which a ballast file takes.
Jobs are posted until the disk is full. Then:
- every POST /jobs answers 507 with the cause in JSON, never 500;
- /health answers 503 while writes fail;
- the log says so once per cause and process, with no traceback;
- the server and its engine stay up;
- deleting the ballast frees space: /health is 200 again, jobs are accepted,
  every acknowledged job is delivered, and `PRAGMA integrity_check` is ok.

Mounting needs root (or CAP_SYS_ADMIN); elsewhere the test is skipped and says why.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MakeServer
from support import Receiver, wait_until

SIZE = "3m"
BALLAST_BYTES = 1_000_000

CONFIG = """\
[defaults]
base_delay_ms = 100
max_delay_ms = 1000
timeout_ms = 5000
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {SIZE} tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_answers_507_then_recovers(
    make_server: MakeServer, small_disk: Path, receiver: Receiver, qname: str
) -> None:
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * BALLAST_BYTES)
    db = small_disk / "mininq.db"
    srv = make_server(CONFIG, args=["--db-path", str(db)])
    path = receiver.new_path()
    job = {"callback_url": receiver.url(path), "queue_name": qname, "payload": {"pad": "x" * 1500}}

    accepted: list[str] = []
    refused: list[dict] = []
    statuses: dict[int, int] = {}
    with srv.client() as api:
        deadline = time.monotonic() + 30
        while len(refused) < 200:  # well past the first failure
            assert time.monotonic() < deadline, (
                f"the disk never filled: {len(accepted)} accepted, statuses {statuses}"
            )
            resp = api.post("/jobs", json=job)
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
            if resp.status == 201:
                accepted.append(resp.json["id"])
            elif resp.status == 507:
                refused.append(resp.json)
            else:
                pytest.fail(f"POST /jobs on a full disk answered {resp.status}: {resp.text}")
        full_at = time.monotonic()
        print(f"{len(accepted)} jobs accepted before the disk filled; statuses {statuses}")
        assert refused[0]["status"] == 507, refused[0]
        assert refused[0]["error"].startswith("database: disk full"), refused[0]

        for _ in range(3):  # and stays so: no flapping back to 200 on a tiny write
            health = api.get("/health")
            assert health.status == 503, health
            assert "disk full" in health.json["error"], health.json

        # The engine is still there and still the engine.
        prom = api.get("/metrics/prometheus").expect(200)
        assert "mininq_engine_up 1" in api.get("/metrics/prometheus").text, prom

        ballast.unlink()
        freed_at = time.monotonic()
        wait_until(lambda: api.get("/health").status == 200, timeout=20,
                   message=lambda: f"/health after freeing space: {api.get('/health').text}")
        back_s = time.monotonic() - freed_at
        after = api.post("/jobs", json=job).expect(201)
        accepted.append(after["id"])
        print(f"/health 200 again {back_s:.2f} s after the space was freed "
              f"({freed_at - full_at:.1f} s after the disk filled)")

        def delivered() -> bool:
            return {h.headers["x-mininq-job-id"] for h in receiver.hits(path)} >= set(accepted)

        wait_until(delivered, timeout=40, message=lambda: (
            f"not every acknowledged job was delivered: "
            f"{len(set(accepted) - {h.headers['x-mininq-job-id'] for h in receiver.hits(path)})}"
            f" of {len(accepted)} missing; queue {api.get(f'/queues/{qname}').json}"
        ))
        assert srv.running

    assert srv.stop() == 0
    log = srv.log_text()
    assert "Traceback" not in log and "internal error" not in log, log[-4000:]
    disk_full_lines = [json.loads(line) for line in log.splitlines()
                       if line.startswith("{") and "disk full" in line]
    # One line per cause per minute in each process that met it (the HTTP
    # worker, perhaps the engine), plus one "writable again".
    assert 1 <= len(disk_full_lines) <= 4, disk_full_lines
    assert all(line["level"] in ("error", "warn") for line in disk_full_lines), disk_full_lines

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {row[0]: row[1] for row in conn.execute("SELECT id, status FROM jobs")}
    finally:
        conn.close()
    assert set(accepted) <= set(stored), "acknowledged jobs are missing from the database"
    assert {stored[i] for i in accepted} == {"completed"}, {stored[i] for i in accepted}
    assert os.path.getsize(db) > 0
