"""The engine process is brought back if it dies (SPEC §1, issue 3): Sanic
leaves a dead managed process FAILED, so the HTTP process watches it and has
Sanic restart it. The new engine recovers the job the dead one had in flight,
and jobs created meanwhile are delivered as usual.

Only one engine delivers from a database file: it holds `<db>-engine.lock`.
A second server on the same file serves the API and waits for the lock.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from conftest import MakeServer
from support import MininqServer, Receiver, Reply, wait_until

LEASE_LOST = "delivery interrupted: the process delivering it stopped before an answer"


def engine_pid(srv: MininqServer) -> int | None:
    """The server's process holding the flock on `<db>-engine.lock`: the engine.

    (The HTTP process has that file open too, for the wake flag; only the
    engine holds the lock, and /proc/locks names the holder.)"""
    try:
        inode = os.stat(f"{srv.db_path}-engine.lock").st_ino
    except FileNotFoundError:
        return None
    children = set(srv.pids()[1:])
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "FLOCK" in fields and fields[-3].endswith(f":{inode}"):
            pid = int(fields[-4])
            if pid in children:
                return pid
    return None


def wait_for_new_engine(srv: MininqServer, old: int, what: str) -> int:
    def check() -> int | None:
        pid = engine_pid(srv)
        return pid if pid not in (None, old) else None

    return wait_until(
        check,
        timeout=15,
        message=lambda: (
            f"{what}: no new engine after SIGKILL of {old}; "
            f"processes {srv.pids()}\n{srv.log_tail(20)}"
        ),
    )


def test_killed_engine_is_restarted_and_recovers_its_job(
    make_server: MakeServer, receiver: Receiver, qname: str
) -> None:
    srv = make_server()
    api = srv.client()
    first = wait_until(lambda: engine_pid(srv), timeout=10, message="no engine process found")
    restarts = []
    for round_no in (1, 2):  # twice: a restarted engine is watched like the first
        path = receiver.new_path()
        receiver.respond(path, Reply(200, b"never seen", delay_s=5.0), Reply(200, b"recovered"))
        job = api.post("/jobs", json={"callback_url": receiver.url(path), "queue_name": qname})
        job = job.expect(201)
        receiver.wait_for(path, 1)  # in flight now

        old = engine_pid(srv)
        assert old is not None
        os.kill(old, signal.SIGKILL)
        killed_at = time.monotonic()
        # The HTTP process does not depend on the engine: it still takes jobs.
        during = receiver.new_path()
        late = api.post("/jobs", json={"callback_url": receiver.url(during), "queue_name": qname})
        late = late.expect(201)

        new = wait_for_new_engine(srv, old, f"round {round_no}")
        restarts.append(time.monotonic() - killed_at)
        api.wait_job(late["id"], "completed", timeout=5)

        done = api.wait_job(job["id"], ("completed", "dead"), timeout=10)
        assert done["status"] == "completed" and done["attempt"] == 2, done
        assert done["result"] == "recovered", done
        rows = api.get(f"/jobs/{job['id']}/attempts").expect(200)
        assert [(r["outcome"], r["error"]) for r in rows] == [
            ("retry", LEASE_LOST),
            ("completed", None),
        ], rows
        assert new != first
    print(f"engine back {', '.join(f'{s:.1f} s' for s in restarts)} after SIGKILL")
    assert max(restarts) < 10, f"engine restarts took {restarts} s"
    api.close()


def test_second_server_on_one_file_waits_then_takes_over(
    make_server: MakeServer, receiver: Receiver, qname: str
) -> None:
    first = make_server()
    second = make_server(args=["--db-path", str(first.db_path)])  # the last --db-path wins
    path = receiver.new_path()
    with second.client() as api:
        jobs = [
            api.post(
                "/jobs", json={"callback_url": receiver.url(path), "queue_name": qname}
            ).expect(201)["id"]
            for _ in range(5)
        ]
        for job_id in jobs:
            api.wait_job(job_id, "completed", timeout=5)
        time.sleep(0.5)
        hits = receiver.hits(path)
        assert len(hits) == 5, f"5 jobs, {len(hits)} deliveries: two engines delivered"
        assert "another mininq engine delivers from this database" in second.log_text()

        assert first.stop() == 0
        stopped_at = time.monotonic()
        job = api.post("/jobs", json={"callback_url": receiver.url(path), "queue_name": qname})
        job = api.wait_job(job.expect(201)["id"], "completed", timeout=15)
        print(
            f"second engine delivered {time.monotonic() - stopped_at:.1f} s after the first stopped"
        )
        assert len(receiver.hits(path)) == 6
