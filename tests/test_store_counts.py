"""The job_counts table agrees with the jobs table after every kind of write.

Drives the SQLite backend's statements directly on a real file (no server),
through random sequences of creates, claims, outcomes, reaps, cancels,
retries, purges and cleanups, and compares against a GROUP BY after each step.
"""

from __future__ import annotations

import random

import orjson
import pytest
from support.sqlite_tx import tx

from mininq.config import DefaultsConfig
from mininq.store.errors import Conflict
from mininq.store.sqlite import dispatch, jobs, queues
from mininq.store.sqlite.connection import connect_sync
from mininq.store.sqlite.schema import migrate

DEFAULTS = DefaultsConfig()


def actual(conn) -> dict:
    return {
        (r[0], r[1]): r[2]
        for r in conn.execute("SELECT queue_name, status, COUNT(*) FROM jobs GROUP BY 1, 2")
    }


def kept(conn) -> dict:
    return {(r[0], r[1]): r[2] for r in conn.execute("SELECT * FROM job_counts") if r[2]}


@pytest.mark.parametrize("seed", range(5))
def test_counts_follow_every_write(tmp_path, seed):
    rnd = random.Random(seed)
    conn = connect_sync(str(tmp_path / "c.db"))
    migrate(conn)
    now = 1_000_000
    names = ["a", "b", "c"]
    for step in range(300):
        now += rnd.randint(1, 50)
        op = rnd.choice(["create", "create", "claim", "finish", "reap", "cancel", "retry",
                         "retry_dead", "purge", "clean"])
        if op == "create":
            specs = [
                {"queue_name": rnd.choice(names), "callback_url": "http://x/h",
                 "payload": orjson.dumps({"i": i}).decode(), "visible_at": now,
                 "max_retries": rnd.randint(0, 2),
                 "idempotency_key": rnd.choice([None, None, f"k{rnd.randint(0, 20)}"])}
                for i in range(rnd.randint(1, 8))
            ]
            tx(conn, jobs.create_jobs, specs, DEFAULTS, now)
        elif op == "claim":
            tx(conn, dispatch.claim, [(q, rnd.randint(0, 4)) for q in names], now, 100)
        elif op == "finish":
            running = conn.execute("SELECT * FROM jobs WHERE status = 'running'").fetchall()
            outcomes = [
                {"id": r["id"], "attempt": r["attempt"], "queue_name": r["queue_name"],
                 "started_at": now, "duration_ms": 3, "status_code": 200, "result": "ok",
                 "error": None, "visible_at": now + 1,
                 "outcome": rnd.choice(["completed", "retry", "dead"])}
                for r in rnd.sample(running, k=min(len(running), rnd.randint(0, 5)))
            ]
            late = bool(outcomes) and rnd.random() < 0.3
            if late:
                tx(conn, dispatch.reap, now, now + 10**9)  # these outcomes arrive too late
            if outcomes:
                changed = tx(conn, dispatch.finish, outcomes, now)
                assert changed == (0 if late else len(outcomes))
        elif op == "reap":
            tx(conn, dispatch.reap, now, now - rnd.randint(0, 200))
        elif op in ("cancel", "retry"):
            row = conn.execute("SELECT id FROM jobs ORDER BY random() LIMIT 1").fetchone()
            if row:
                fn = jobs.cancel_job if op == "cancel" else jobs.retry_job
                try:
                    tx(conn, fn, row[0], now)
                except Conflict:
                    pass
        elif op == "retry_dead":
            if conn.execute("SELECT 1 FROM queues WHERE name = 'a'").fetchone():
                tx(conn, queues.retry_dead, "a", now)
        elif op == "purge":
            if conn.execute("SELECT 1 FROM queues WHERE name = 'b'").fetchone():
                tx(conn, queues.purge, "b", rnd.choice(["pending", "completed", "dead", "cancelled"]))
        elif op == "clean":
            tx(conn, dispatch.delete_finished, rnd.choice(["completed", "dead", "cancelled"]),
               now, rnd.randint(1, 5))
        assert kept(conn) == actual(conn), f"after step {step} ({op})"


def test_claim_respects_a_pause_committed_after_the_plan(tmp_path):
    """The engine decides what to claim from settings read a moment earlier; a
    pause committed in between must still stop the claim."""
    conn = connect_sync(str(tmp_path / "p.db"))
    migrate(conn)
    spec = {"queue_name": "q", "callback_url": "http://x/h", "payload": "{}", "visible_at": 1}
    tx(conn, jobs.create_jobs, [spec, spec], DEFAULTS, 1)
    tx(conn, queues.update_queue, "q", {"paused": True}, 2)
    assert tx(conn, dispatch.claim, [("q", 5)], 3, 100) == []
    tx(conn, queues.update_queue, "q", {"paused": False}, 4)
    assert len(tx(conn, dispatch.claim, [("q", 5)], 5, 100)) == 2


def test_outcomes_of_reaped_jobs_change_nothing_beside_live_ones(tmp_path):
    """One batch of outcomes, two of whose jobs the reaper took back meanwhile:
    only the two still running change; every attempt row is kept."""
    conn = connect_sync(str(tmp_path / "r.db"))
    migrate(conn)
    spec = {"queue_name": "q", "callback_url": "http://x/h", "payload": "{}", "visible_at": 1}
    tx(conn, jobs.create_jobs, [spec] * 4, DEFAULTS, 1)
    early = tx(conn, dispatch.claim, [("q", 2)], 10, 0)  # leases end at 10 + timeout
    late = tx(conn, dispatch.claim, [("q", 2)], 10_000, 0)
    reaped = tx(conn, dispatch.reap, 20_000, 10 + DEFAULTS.timeout_ms + 1)
    assert sorted(r["id"] for r in reaped) == sorted(j["id"] for j in early)
    outcomes = [
        {"id": j["id"], "attempt": j["attempt"], "queue_name": "q", "started_at": 10,
         "duration_ms": 3, "status_code": 200, "result": "ok", "error": None,
         "visible_at": None, "outcome": "completed"}
        for j in early + late
    ]
    assert tx(conn, dispatch.finish, outcomes, 20_001) == 2
    status = dict(conn.execute("SELECT id, status FROM jobs"))
    assert {status[j["id"]] for j in early} == {"pending"}
    assert {status[j["id"]] for j in late} == {"completed"}
    assert kept(conn) == actual(conn) == {("q", "pending"): 2, ("q", "completed"): 2}
    attempts = conn.execute("SELECT count(*) FROM attempts").fetchone()[0]
    assert attempts == 2 + 4, "the reaper's two attempt rows and the batch's four"
