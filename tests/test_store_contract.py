"""The store contract: one suite, run unchanged against every backend.

Modelled on River's driver test suite: each test drives a fresh store (a new
SQLite file; a PostgreSQL database made for this module and emptied before
each test) through the seam the API and engine use, and checks what every
backend must do alike: creates and defaults, idempotency, claim order,
limits, outcome bookkeeping, reaping, schedule fires, retention, counts and
the per-minute history.
PostgreSQL runs need a server (see tests/support/postgres.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest
from support.postgres import _execute, fresh_database

from mininq.clock import now_ms
from mininq.config import DefaultsConfig
from mininq.metrics import history as h
from mininq.nodes import NodeInfo
from mininq.store import Conflict, NotFound, Store
from mininq.store.rules import LEASE_EXPIRED, LEASE_LOST, NODE_LOST

DEFAULTS = DefaultsConfig()
URL = "http://127.0.0.1:9/hook"
TABLES = "jobs, attempts, queues, schedules, job_counts, counters, nodes, destinations, history"


@pytest.fixture(scope="module")
def pg_url():
    with fresh_database("mininq_contract") as url:
        from mininq.store.postgres import PostgresBackend

        PostgresBackend(url).prepare()
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path: Path):
    """A backend over an empty database."""
    if request.param == "sqlite":
        from mininq.store.sqlite import SqliteBackend

        b = SqliteBackend(str(tmp_path / "contract.db"))
    else:
        from mininq.store.postgres import PostgresBackend

        url = request.getfixturevalue("pg_url")
        asyncio.run(_execute(url, f"TRUNCATE {TABLES}"))
        b = PostgresBackend(url)
    b.prepare()
    return b


def contract(body: Callable[..., Awaitable[None]]):
    """Run the async test body with a store opened on the `backend` fixture."""

    def test(backend) -> None:
        async def main() -> None:
            store = await backend.open_store(DEFAULTS, "node-a")
            try:
                await body(store, backend)
            finally:
                await store.close()

        asyncio.run(main())

    # Not functools.wraps: pytest would read the body's arguments as fixtures.
    test.__name__ = test.__qualname__ = body.__name__
    test.__doc__ = body.__doc__
    return test


def spec(queue: str = "q", **extra) -> dict:
    return {"queue_name": queue, "callback_url": URL, "payload": orjson.dumps({}).decode(),
            **extra}


async def counts_of(store: Store, queue: str) -> dict:
    q = await store.get_queue(queue)
    return {s: q[s] for s in ("pending", "running", "completed", "dead", "cancelled") if q[s]}


def outcome(job: dict, kind: str, **extra) -> dict:
    return {"id": job["id"], "queue_name": job["queue_name"], "attempt": job["attempt"],
            "outcome": kind, "started_at": now_ms(), "duration_ms": 12,
            "status_code": 200 if kind == "completed" else 503, "error": None,
            "result": None, "visible_at": None, **extra}


# -- creates ----------------------------------------------------------------------


@contract
async def test_create_resolves_defaults_job_then_queue_then_global(store, backend):
    await store.create_queue("q", {"max_retries": 7, "timeout_ms": 1234})
    [(job, created)] = await store.create_jobs([spec(max_retries=2)])
    assert created and job["status"] == "pending" and job["attempt"] == 0
    assert (job["max_retries"], job["timeout_ms"]) == (2, 1234)
    assert job["base_delay_ms"] == DEFAULTS.base_delay_ms
    stored = await store.get_job(job["id"])
    assert {k: stored[k] for k in job} == job
    assert await store.get_job("01a00000-0000-7000-8000-000000000000") is None


@contract
async def test_create_makes_the_queue_on_first_use(store, backend):
    await store.create_jobs([spec("fresh")])
    assert (await store.get_queue("fresh"))["pending"] == 1
    with pytest.raises(NotFound):
        await store.get_queue("other")


@contract
async def test_idempotency_key_returns_the_holder(store, backend):
    [(first, made)] = await store.create_jobs([spec(idempotency_key="k1")])
    [(again, made_again)] = await store.create_jobs([spec(idempotency_key="k1", priority=5)])
    assert made and not made_again and again["id"] == first["id"]
    batch = await store.create_jobs([spec(idempotency_key="k2"), spec(idempotency_key="k1")])
    assert [c for _, c in batch] == [True, False] and batch[1][0]["id"] == first["id"]
    assert await counts_of(store, "q") == {"pending": 2}


@contract
async def test_concurrent_creates_with_one_key_make_one_job(store, backend):
    other = await backend.open_store(DEFAULTS, "node-b")
    try:
        results = await asyncio.gather(*(
            s.create_jobs([spec(idempotency_key="same")]) for s in [store, other] * 10
        ))
    finally:
        await other.close()
    assert len({r[0][0]["id"] for r in results}) == 1
    assert sum(r[0][1] for r in results) == 1
    assert await counts_of(store, "q") == {"pending": 1}


@contract
async def test_batch_keeps_order(store, backend):
    made = await store.create_jobs([spec(priority=i) for i in range(50)])
    assert [j["priority"] for j, _ in made] == list(range(50))
    listed = await store.list_jobs(queue="q", status=None, schedule_id=None, limit=100,
                                   offset=0, after=None)
    assert [j["id"] for j in listed] == sorted((j["id"] for j, _ in made), reverse=True)


# -- claims -----------------------------------------------------------------------


@contract
async def test_claim_order_is_priority_then_due_time_then_id(store, backend):
    now = now_ms()
    made = await store.create_jobs([
        spec(priority=0, visible_at=now - 3000), spec(priority=5, visible_at=now - 1000),
        spec(priority=5, visible_at=now - 2000), spec(priority=0, visible_at=now - 3000),
        spec(priority=9, visible_at=now + 60_000),
    ])
    ids = [j["id"] for j, _ in made]
    claimed = await store.claim([("q", 10)], 5000)
    assert [j["id"] for j in claimed] == [ids[2], ids[1], ids[0], ids[3]]
    assert all(j["attempt"] == 1 for j in claimed)
    assert await counts_of(store, "q") == {"pending": 1, "running": 4}
    assert await store.claim([("q", 10)], 5000) == []
    assert (await store.next_due(["q"]))["q"] == now + 60_000


@contract
async def test_claim_takes_at_most_n_per_queue(store, backend):
    await store.create_jobs([spec("a") for _ in range(5)] + [spec("b") for _ in range(5)])
    claimed = await store.claim([("a", 2), ("b", 3)], 5000)
    assert sorted(j["queue_name"] for j in claimed) == ["a", "a", "b", "b", "b"]
    lease = (await store.get_job(claimed[0]["id"]))["lease_until"]
    assert lease >= now_ms() + DEFAULTS.timeout_ms


@contract
async def test_claim_leaves_out_excluded_destinations_or_takes_only_one(store, backend):
    """Destinations: the column set at creation, exclusion and `only` claims,
    claim order kept, next_due without the excluded ones."""
    now = now_ms()
    a, b = "http://A.example/x", "https://b.example:8443/y"
    made = await store.create_jobs([
        spec(callback_url=a, visible_at=now - 5000), spec(callback_url=b, visible_at=now - 4000),
        spec(callback_url=a, visible_at=now - 3000), spec(callback_url=b, visible_at=now + 60_000),
        spec(callback_url=b, visible_at=now - 2000, priority=1),
    ])
    ids = [j["id"] for j, _ in made]
    assert (await store.get_job(ids[0]))["destination"] == "http://a.example:80"
    assert (await store.next_due(["q"], ["https://b.example:8443"]))["q"] == now - 5000
    assert (await store.next_due(["q"], ["http://a.example:80"]))["q"] == now - 4000
    got = await store.claim([("q", 10)], 5000, exclude=["http://a.example:80"])
    assert [j["id"] for j in got] == [ids[4], ids[1]]
    assert {j["destination"] for j in got} == {"https://b.example:8443"}
    assert (await store.next_due(["q"], ["http://a.example:80"]))["q"] == now + 60_000
    got = await store.claim([("q", 1)], 5000, only="http://a.example:80")
    assert [j["id"] for j in got] == [ids[0]]
    assert await store.claim([("q", 5)], 5000, exclude=["http://a.example:80",
                                                         "https://b.example:8443"]) == []
    got = await store.claim([("q", 5)], 5000)
    assert [j["id"] for j in got] == [ids[2]]
    assert await counts_of(store, "q") == {"pending": 1, "running": 4}
    assert await store.due_destinations(["http://a.example:80", "https://b.example:8443",
                                         "http://none:80"]) == set()
    # A destination's room over several queues: `total` caps the whole claim.
    await store.create_jobs([spec(q, callback_url=a) for q in ("q1", "q2", "q3") for _ in "xy"])
    assert await store.due_destinations(["http://a.example:80", "http://none:80"]) == {
        "http://a.example:80"}
    got = await store.claim([("q1", 2), ("q2", 2), ("q3", 2)], 5000, only="http://a.example:80",
                            total=3)
    assert len(got) == 3 and {j["destination"] for j in got} == {"http://a.example:80"}


def dest_row(destination: str, **extra) -> dict:
    return {"destination": destination, "state": "closed", "limit": 8, "in_flight": 0,
            "consecutive_failures": 0, "last_status": 200, "last_error": None,
            "open_until": None, "delivered": 1, "failed": 0, "seen_at": now_ms(), **extra}


@contract
async def test_destination_rows_ride_with_outcomes_and_resets_reach_the_engine(store, backend):
    a = "http://a.example:80"
    await store.create_jobs([spec(callback_url="http://a.example/"), spec()])
    [job, _] = await store.claim([("q", 2)], 5000)
    open_row = dest_row(a, state="open", limit=1, in_flight=1, consecutive_failures=10,
                        last_status=503, last_error="HTTP 503", open_until=now_ms() + 5000,
                        failed=10)
    await store.finish([outcome(job, "retry", visible_at=now_ms())], [open_row])
    await store.finish([], [dest_row("http://old.example:80", seen_at=now_ms() - 3_700_000)])
    [row] = await store.list_destinations()
    assert {k: row[k] for k in open_row} == open_row
    assert row["node"] == "node-a" and row["pending"] == 1
    assert await store.destination_resets() == {}
    assert await store.reset_destination("http://nowhere:80", 8) == []
    [reset] = await store.reset_destination(a, 8)
    assert (reset["state"], reset["limit"], reset["consecutive_failures"],
            reset["open_until"], reset["failed"]) == ("closed", 8, 0, None, 10)
    assert await store.destination_resets() == {a: 1}
    # The engine's next write keeps the count of resets asked.
    await store.finish([], [dest_row(a)])
    assert await store.destination_resets() == {a: 1}


@contract
async def test_paused_queue_is_not_claimed(store, backend):
    await store.create_jobs([spec()])
    await store.update_queue("q", {"paused": True})
    assert await store.claim([("q", 5)], 5000) == []
    await store.update_queue("q", {"paused": False})
    assert len(await store.claim([("q", 5)], 5000)) == 1


@contract
async def test_two_stores_never_claim_one_job_twice(store, backend):
    await store.create_queue("q", {"max_concurrency": 100})
    await store.create_jobs([spec() for _ in range(60)])
    other = await backend.open_store(DEFAULTS, "node-b")
    try:
        got = await asyncio.gather(*(s.claim([("q", 7)], 5000) for s in [store, other] * 6))
    finally:
        await other.close()
    ids = [j["id"] for batch in got for j in batch]
    assert len(ids) == len(set(ids)) == 60


@contract
async def test_limits_in_the_claim_when_the_store_keeps_them(store, backend):
    if not store.global_limits:
        pytest.skip("this backend has one engine; its dispatcher enforces the limits")
    await store.create_queue("lim", {"max_concurrency": 3})
    await store.create_jobs([spec("lim") for _ in range(10)])
    first = await store.claim([("lim", 10)], 5000)
    assert len(first) == 3
    assert await store.claim([("lim", 10)], 5000) == []
    assert "lim" not in await store.next_due(["lim"])  # full: wait for a finish
    await store.finish([outcome(first[0], "completed")])
    assert len(await store.reap(now_ms() + 10**9, process_died=False)) == 2  # leases lost free their slots too
    assert len(await store.claim([("lim", 10)], 5000)) == 3
    await store.create_queue("rate", {"rate_limit_rps": 2.0, "rate_limit_burst": 2.0})
    await store.create_jobs([spec("rate") for _ in range(10)])
    assert len(await store.claim([("rate", 10)], 5000)) == 2
    assert await store.claim([("rate", 10)], 5000) == []
    due = (await store.next_due(["rate"]))["rate"]
    assert 0 < due - now_ms() <= 500
    await asyncio.sleep((due - now_ms()) / 1000 + 0.02)
    assert len(await store.claim([("rate", 10)], 5000)) == 1


# -- outcomes ---------------------------------------------------------------------


@contract
async def test_finish_books_each_outcome(store, backend):
    await store.create_jobs([spec(max_retries=1) for _ in range(3)])
    a, b, c = await store.claim([("q", 3)], 5000)
    later = now_ms() + 60_000
    n = await store.finish([
        outcome(a, "completed", result="ok"),
        outcome(b, "retry", visible_at=later, error="HTTP 503"),
        outcome(c, "dead", error="HTTP 404", status_code=404),
    ])
    assert n == 3
    ja, jb, jc = [await store.get_job(j["id"]) for j in (a, b, c)]
    assert (ja["status"], ja["result"], ja["lease_until"]) == ("completed", "ok", None)
    assert ja["completed_at"] is not None
    assert (jb["status"], jb["visible_at"], jb["last_error"]) == ("pending", later, "HTTP 503")
    assert jb["completed_at"] is None
    assert (jc["status"], jc["last_error"]) == ("dead", "HTTP 404")
    assert await counts_of(store, "q") == {"completed": 1, "pending": 1, "dead": 1}
    [att] = await store.list_attempts(b["id"])
    assert (att["attempt"], att["outcome"], att["status_code"], att["duration_ms"]) == (
        1, "retry", 503, 12)
    stats = await store.stats()
    delivered = {(c["name"], c["key"]): c["value"] for c in stats["counters"]
                 if c["queue_name"] == "q"}
    assert delivered[("deliveries", "completed")] == 1
    assert delivered[("delivery_seconds_count", "")] == 3
    assert delivered[("delivery_seconds_bucket", "0.025")] == 3


@contract
async def test_a_stale_outcome_changes_nothing_but_keeps_its_attempt(store, backend):
    await store.create_jobs([spec(max_retries=3)])
    [job] = await store.claim([("q", 1)], 5000)
    assert len(await store.reap(now_ms() + 10**9, process_died=False)) == 1  # the lease is taken back
    assert await store.finish([outcome(job, "completed")]) == 0
    assert (await store.get_job(job["id"]))["status"] == "pending"
    assert [a["outcome"] for a in await store.list_attempts(job["id"])] == ["retry", "completed"]
    assert await counts_of(store, "q") == {"pending": 1}


@contract
async def test_reap_returns_expired_leases_and_records_the_lost_attempt(store, backend):
    await store.create_jobs([spec(max_retries=1), spec(max_retries=0)])
    claimed = await store.claim([("q", 2)], 5000)
    assert await store.reap(now_ms(), process_died=False) == []  # leases still running
    expiry = max([(await store.get_job(j["id"]))["lease_until"] for j in claimed])
    assert expiry >= now_ms() + DEFAULTS.timeout_ms
    reaped = {r["id"]: r["status"] for r in await store.reap(expiry + 1, process_died=False)}
    by_retries = {j["id"]: j["max_retries"] for j in claimed}
    assert {by_retries[i]: s for i, s in reaped.items()} == {1: "pending", 0: "dead"}
    for job_id in reaped:
        [att] = await store.list_attempts(job_id)
        assert att["error"] == LEASE_EXPIRED
    assert await counts_of(store, "q") == {"pending": 1, "dead": 1}


# -- jobs and queues through the API's calls ---------------------------------------


@contract
async def test_cancel_and_retry_follow_the_state_machine(store, backend):
    [(job, _)] = await store.create_jobs([spec()])
    assert (await store.cancel_job(job["id"]))["status"] == "cancelled"
    with pytest.raises(Conflict):
        await store.cancel_job(job["id"])
    again = await store.retry_job(job["id"])
    assert (again["status"], again["attempt"]) == ("pending", 0)
    with pytest.raises(Conflict):
        await store.retry_job(job["id"])
    with pytest.raises(NotFound):
        await store.cancel_job("01a00000-0000-7000-8000-000000000000")
    assert await counts_of(store, "q") == {"pending": 1}


@contract
async def test_queue_settings_and_bulk_changes(store, backend):
    q = await store.create_queue("q", {"max_concurrency": 4, "rate_limit_rps": 1.5})
    assert (q["max_concurrency"], q["rate_limit_rps"], bool(q["paused"])) == (4, 1.5, False)
    with pytest.raises(Conflict):
        await store.create_queue("q", {})
    assert (await store.update_queue("q", {"paused": True}))["paused"]
    with pytest.raises(NotFound):
        await store.update_queue("nope", {"paused": True})
    await store.update_queue("q", {"paused": False, "rate_limit_rps": None})
    await store.create_jobs([spec(max_retries=0) for _ in range(3)])
    claimed = await store.claim([("q", 2)], 5000)
    await store.finish([outcome(j, "dead") for j in claimed])
    with pytest.raises(Conflict):
        await store.delete_queue("q")
    assert await store.retry_dead("q") == 2
    assert await store.purge("q", "pending") == 3
    assert await counts_of(store, "q") == {}
    await store.delete_queue("q")
    assert [q["name"] for q in await store.list_queues()] == []


@contract
async def test_list_jobs_filters_and_pages(store, backend):
    made = [j for j, _ in await store.create_jobs([spec("a"), spec("b"), spec("a")])]
    await store.cancel_job(made[0]["id"])

    async def ids(**f):
        args = {"queue": None, "status": None, "schedule_id": None, "limit": 50, "offset": 0,
                "after": None, **f}
        return [j["id"] for j in await store.list_jobs(**args)]

    assert await ids() == [made[2]["id"], made[1]["id"], made[0]["id"]]
    assert await ids(queue="a") == [made[2]["id"], made[0]["id"]]
    assert await ids(status="pending") == [made[2]["id"], made[1]["id"]]
    assert await ids(queue="a", status="cancelled") == [made[0]["id"]]
    assert await ids(after=made[2]["id"], limit=1) == [made[1]["id"]]
    assert await ids(offset=1, limit=1) == [made[1]["id"]]


# -- schedules ------------------------------------------------------------------------


def schedule_spec(next_run_at: int) -> dict:
    return {"cron_expression": "* * * * * *", "timezone": "UTC", "callback_url": URL,
            "queue_name": "cron", "payload": "{}", "headers": None, "max_retries": None,
            "timeout_ms": None, "enabled": True, "next_run_at": next_run_at}


@contract
async def test_a_fire_time_makes_one_job_whoever_races(store, backend):
    due = now_ms() - 10
    s = await store.create_schedule(schedule_spec(due))
    assert [x["id"] for x in await store.due_schedules(now_ms())] == [s["id"]]
    assert await store.next_schedule_at() == due
    other = await backend.open_store(DEFAULTS, "node-b")
    try:
        fired = await asyncio.gather(*(
            st.fire_schedule(s["id"], due, due + 1000) for st in [store, other] * 4
        ))
    finally:
        await other.close()
    jobs = [j for j in fired if j is not None]
    assert len(jobs) == 1 and jobs[0]["schedule_id"] == s["id"]
    assert (await store.get_schedule(s["id"]))["next_run_at"] == due + 1000
    assert await store.due_schedules(now_ms()) == []
    assert (await store.stats())["schedules"] == {"total": 1, "enabled": 1}
    triggered = await store.trigger_schedule(s["id"])
    assert triggered["schedule_id"] == s["id"]
    await store.delete_schedule(s["id"])
    with pytest.raises(NotFound):
        await store.get_schedule(s["id"])


@contract
async def test_schedule_update_and_list(store, backend):
    a = await store.create_schedule(schedule_spec(now_ms() + 5000))
    b = await store.create_schedule(schedule_spec(now_ms() + 6000))
    assert [s["id"] for s in await store.list_schedules(10, 0, None)] == [b["id"], a["id"]]
    assert [s["id"] for s in await store.list_schedules(10, 0, b["id"])] == [a["id"]]
    changed = await store.update_schedule(a["id"], {"enabled": False, "queue_name": "other"})
    assert not changed["enabled"] and changed["queue_name"] == "other"
    assert await store.next_schedule_at() == b["next_run_at"]


# -- retention and counts -----------------------------------------------------------


@contract
async def test_delete_finished_takes_old_finished_jobs_in_batches(store, backend):
    await store.create_jobs([spec(max_retries=0) for _ in range(5)])
    claimed = await store.claim([("q", 4)], 5000)
    await store.finish([outcome(j, "completed") for j in claimed[:3]]
                       + [outcome(claimed[3], "dead")])
    cutoff = now_ms() + 1
    assert await store.delete_finished("completed", cutoff, 4) == 2  # 2 jobs + 2 attempts
    assert await store.delete_finished("completed", cutoff, 4) == 1
    assert await store.delete_finished("completed", cutoff, 4) == 0
    assert await store.delete_finished("dead", cutoff - 60_000, 100) == 0  # not old enough
    assert await counts_of(store, "q") == {"pending": 1, "dead": 1}
    await store.checkpoint()


@contract
async def test_stats_count_every_status(store, backend):
    await store.create_jobs([spec("a") for _ in range(3)] + [spec("b")])
    [job] = await store.claim([("a", 1)], 5000)
    await store.finish([outcome(job, "completed")])
    stats = await store.stats()
    got = {(r["queue_name"], r["status"]): r["n"] for r in stats["counts"] if r["n"]}
    assert got == {("a", "pending"): 2, ("a", "completed"): 1, ("b", "pending"): 1}
    assert set(stats["oldest_pending"]) == {"a", "b"}
    created = {c["queue_name"]: c["value"] for c in stats["counters"]
               if c["name"] == "jobs_created"}
    assert created == {"a": 3, "b": 1}
    assert [q["name"] for q in stats["queues"]] == ["a", "b"]
    await store.health_write()



# -- the per-minute history (SPEC §11) ----------------------------------------------

MIN = h.MINUTE_MS


async def _points(store: Store, start: int, n: int, queue: str | None = None) -> list[h.Point]:
    return h.series(await store.history(start, start + n * MIN, MIN, queue), start, n)


async def _total(store: Store, start: int, end: int, queue: str | None = None) -> tuple:
    """COLUMNS summed over every minute of [start, end)."""
    rows = await store.history(start, end, MIN, queue)
    return tuple(sum(r[i] for r in rows) for i in range(1, 1 + len(h.COLUMNS)))


@contract
async def test_history_adds_up_creates_outcomes_and_reaps(store, backend):
    """Outcomes land in the minute they ended (times given across a minute
    boundary B), creates and reaps in the minute they happen; an outcome the
    reaper beat adds nothing."""
    t0 = now_ms()
    await store.create_jobs([spec("a", max_retries=1) for _ in range(6)]
                            + [spec("b", max_retries=1), spec("b", max_retries=0)])
    claimed = await store.claim([("a", 6), ("b", 2)], 5000)
    a = [j for j in claimed if j["queue_name"] == "a"]
    b1 = next(j for j in claimed if j["queue_name"] == "b" and j["max_retries"] == 1)
    B = h.minute_start(t0) - 4 * MIN
    assert await store.finish([
        outcome(a[0], "completed", started_at=B - 500, duration_ms=40),      # before B
        outcome(a[1], "completed", started_at=B - 500, duration_ms=700),     # after
        outcome(a[2], "retry", started_at=B - 50, duration_ms=20, visible_at=t0),  # before
        outcome(a[3], "dead", started_at=B - 100, duration_ms=900, status_code=404),  # after
        outcome(b1, "retry", started_at=B - 10, duration_ms=1, status_code=None,
                visible_at=t0),                                              # refused: untimed
    ]) == 5
    # a4 and a5 (retries left) and b's other job (none left) lost with their process.
    lost = await store.reap(now_ms() + 10**9, process_died=True)
    assert sorted(r["status"] for r in lost) == ["dead", "pending", "pending"]
    assert await store.finish([outcome(a[4], "completed")]) == 0
    end = now_ms() + MIN

    before, after = await _points(store, B - MIN, 2)
    assert (before.completed, before.retried, before.dead, before.timed) == (1, 2, 0, 2)
    assert (after.completed, after.retried, after.dead, after.timed) == (1, 0, 1, 2)
    assert before.created == after.created == 0
    assert 600 < after.percentile(0.99) <= 1000 and before.percentile(0.5) <= 50
    recent = await _total(store, h.minute_start(t0), end)
    assert recent[:4] == (8, 0, 2, 1), recent  # created, completed, retried (lost), dead (lost)
    assert sum(recent[4:]) == 0  # lost attempts have no duration
    everything = await _total(store, B - 10 * MIN, end)
    assert everything[:4] == (8, 2, 4, 2), everything
    assert (await _total(store, B - 10 * MIN, end, "a"))[:4] == (6, 2, 3, 1)
    assert (await _total(store, B - 10 * MIN, end, "b"))[:4] == (2, 0, 1, 1)
    assert await _total(store, B - 10 * MIN, end, "nope") == (0,) * len(h.COLUMNS)
    # Wider buckets sum their minutes, aligned to multiples of the step.
    hour = 60 * MIN
    start = B - MIN - (B - MIN) % hour
    wide = await store.history(start, end + hour, hour, None)
    assert all(r[0] % hour == 0 for r in wide) and [r[0] for r in wide] == sorted(
        {r[0] for r in wide}), wide
    assert tuple(sum(r[i] for r in wide) for i in range(1, 5)) == (8, 2, 4, 2), wide

@contract
async def test_history_prune_takes_old_minutes_only(store, backend):
    base = h.minute_start(now_ms()) - 60 * MIN
    await store.create_jobs([spec() for _ in range(4)])
    claimed = await store.claim([("q", 4)], 5000)
    await store.finish([outcome(j, "completed", started_at=base - back * MIN)
                        for j, back in zip(claimed, (30, 20, 10, 0))])
    assert await store.prune_history(base - 15 * MIN, 1) == 1  # a batch of one row
    assert await store.prune_history(base - 15 * MIN, 1000) == 1
    assert await store.prune_history(base - 15 * MIN, 1000) == 0
    rows = await store.history(base - 40 * MIN, base + MIN, MIN, None)
    assert [(r[0], r[2]) for r in rows] == [(base - 10 * MIN, 1), (base, 1)]
    assert (await _total(store, base + MIN, now_ms() + MIN))[0] == 4  # the creates stay


# -- nodes --------------------------------------------------------------------------


@contract
async def test_nodes_list_this_node(store, backend):
    me = NodeInfo.this_process()
    listed = await store.list_nodes(me, 15_000)
    if backend.name == "postgresql":  # nodes appear when their engine registers
        live = backend.liveness(store, me, type("W", (), {"heartbeat_interval_secs": 2,
                                                          "node_timeout_secs": 15})())
        assert await live.acquire(lambda: False)
        listed = await store.list_nodes(me, 15_000)
        await live.release()
        assert await store.list_nodes(me, 15_000) == []
    [node] = listed
    assert (node["id"], node["pid"], node["self"], node["alive"]) == (me.id, me.pid, True, True)


@contract
async def test_liveness_recovers_what_a_dead_engine_left_running(store, backend):
    await store.create_jobs([spec(max_retries=2) for _ in range(3)])
    await store.claim([("q", 3)], 5000)
    worker = type("W", (), {"heartbeat_interval_secs": 2, "node_timeout_secs": 15})()
    # A new engine of the node whose store claimed the jobs (node-a) starts:
    # the previous one is gone, so its jobs come back at once.
    live = backend.liveness(store, NodeInfo("node-a", "h", 1, "0", now_ms()), worker)
    assert await live.acquire(lambda: False)
    try:
        recovered = await live.recover()
    finally:
        await live.release()
    assert len(recovered) == 3
    assert await counts_of(store, "q") == {"pending": 3}
    errors = {(await store.list_attempts(r["id"]))[0]["error"] for r in recovered}
    assert errors <= {LEASE_LOST, NODE_LOST}
