"""At-least-once delivery across a crash (SPEC §2, §8): `kill -9` of the whole
server while deliveries are in flight loses no job. On restart the new engine
takes the engine lock, so every job left `running` belongs to a dead process
and is recovered at once, without waiting for its lease to run out.
"""

from __future__ import annotations

import time
from typing import Any

from conftest import MakeServer
from support import ApiClient, Receiver, Reply, wait_until

LEASE_LOST = "delivery interrupted: the process delivering it stopped before an answer"


def test_kill9_during_deliveries_loses_no_job(
    make_server: MakeServer, receiver: Receiver, qname: str
) -> None:
    total, in_flight = 30, 10
    path = receiver.new_path()
    # Slow answers keep 10 deliveries in flight when the server dies; the 30 s
    # default timeout gives leases that would outlive the whole test.
    receiver.respond(path, Reply(200, b"slow", delay_s=5.0))
    srv = make_server()
    with srv.client() as api:
        api.post("/queues", json={"name": qname, "max_concurrency": in_flight}).expect(201)
        jobs = api.post(
            "/jobs/batch",
            json={"jobs": [{"callback_url": receiver.url(path), "queue_name": qname}] * total},
        ).expect(201)["jobs"]
    receiver.wait_for(path, in_flight)
    srv.kill9()
    killed_at = time.monotonic()

    receiver.respond(path, Reply(200, b"fast"))
    srv.start()
    with srv.client() as api:

        def all_done() -> dict[str, Any] | None:
            q = api.get(f"/queues/{qname}").expect(200)
            return q if q["completed"] == total else None

        queue = wait_until(
            all_done,
            timeout=20,
            message=lambda: (
                f"not every job completed after restart: {api.get(f'/queues/{qname}').json}"
            ),
        )
        took = time.monotonic() - killed_at
        assert queue["running"] == 0 and queue["pending"] == 0, queue

        delivered = {h.headers["x-mininq-job-id"] for h in receiver.hits(path)}
        missing = {j["id"] for j in jobs} - delivered
        assert not missing, f"jobs never delivered: {missing}"

        interrupted = [j for j in jobs if _attempts(api, j["id"])[0]["error"] == LEASE_LOST]
        print(
            f"all {total} completed {took:.1f} s after kill -9 (incl. restart); "
            f"{len(interrupted)} had been in flight, {len(receiver.hits(path))} deliveries"
        )
        assert len(interrupted) == in_flight, (
            f"{len(interrupted)} jobs show the lost attempt, {in_flight} were in flight"
        )
        for job in interrupted:
            rows = _attempts(api, job["id"])
            summary = [(r["attempt"], r["outcome"], r["status_code"]) for r in rows]
            assert summary == [(1, "retry", None), (2, "completed", 200)], (job["id"], rows)


def _attempts(api: ApiClient, job_id: str) -> list[dict[str, Any]]:
    return api.get(f"/jobs/{job_id}/attempts").expect(200)
