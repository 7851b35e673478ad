"""The engine process is brought back if it dies (SPEC §1, issue 3): Sanic
leaves a dead managed process FAILED, so the HTTP process watches it and has
Sanic restart it. The new engine recovers the job the dead one had in flight,
and jobs created afterwards are delivered as usual.
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
    """The server's process holding `<db>-engine.lock` open: the engine."""
    lock = f"{srv.db_path}-engine.lock"
    for pid in srv.pids()[1:]:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            if any(os.readlink(fd) == lock for fd in fd_dir.iterdir()):
                return pid
        except OSError:
            continue  # gone meanwhile, or an fd closed under us
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
        api.get("/health").expect(200)  # the HTTP process does not depend on the engine

        new = wait_for_new_engine(srv, old, f"round {round_no}")
        restarts.append(time.monotonic() - killed_at)

        done = api.wait_job(job["id"], ("completed", "dead"), timeout=10)
        assert done["status"] == "completed" and done["attempt"] == 2, done
        assert done["result"] == "recovered", done
        rows = api.get(f"/jobs/{job['id']}/attempts").expect(200)
        assert [(r["outcome"], r["error"]) for r in rows] == [
            ("retry", LEASE_LOST),
            ("completed", None),
        ], rows

        after = receiver.new_path()
        late = api.post("/jobs", json={"callback_url": receiver.url(after), "queue_name": qname})
        late = late.expect(201)
        api.wait_job(late["id"], "completed", timeout=5)
        assert new != first
    print(f"engine back {', '.join(f'{s:.1f} s' for s in restarts)} after SIGKILL")
    assert max(restarts) < 10, f"engine restarts took {restarts} s"
    api.close()
