"""Activity over time (SPEC §11): the rollup arithmetic, the rollups the SQLite
backend writes with each job write (its statements on a real file, at times
given across a minute boundary), and GET /metrics/history on a real
server, across an engine restart."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime

import pytest
from support import ApiClient, Receiver, Reply, wait_until
from support.asserts import assert_error
from support.sqlite_tx import tx

from mininq import clock
from mininq.api.history import history_query
from mininq.api.validate import ValidationError
from mininq.config import DefaultsConfig
from mininq.metrics import history as h
from mininq.store.sqlite import dispatch, history, jobs
from mininq.store.sqlite.connection import connect_sync
from mininq.store.sqlite.schema import migrate

MIN = h.MINUTE_MS
DEFAULTS = DefaultsConfig()

# -- pure arithmetic ----------------------------------------------------------------


def test_minute_start_and_window():
    t = 1_764_000_000_000 + 12_345  # 12.345 s into a minute
    assert h.minute_start(t) == t - 12_345
    start, end = h.window(t, 60)
    assert end == h.minute_start(t) + MIN and start == end - 60 * MIN
    start, end = h.window(t, 96, 15 * MIN)
    assert end % (15 * MIN) == 0 and start <= t < end and end - start == 96 * 15 * MIN


@pytest.mark.parametrize(("ms", "index"), [(0, 0), (1, 0), (2, 1), (3, 2), (100, 8), (101, 9),
                                           (120_000, len(h.BOUNDS_MS) - 1),
                                           (120_001, len(h.BOUNDS_MS))])
def test_bucket_of(ms: int, index: int):
    assert h.bucket_of(ms) == index


def _hist(*durations: int) -> list[int]:
    out = [0] * len(h.HIST)
    for d in durations:
        out[h.bucket_of(d)] += 1
    return out


def test_percentile_from_buckets():
    assert h.percentile(_hist(), 0.5) is None
    # 100 attempts at 40-50 ms and one slow one: p50 inside (35, 50], p99 too.
    hist = _hist(*([45] * 100), 3000)
    assert 35 <= h.percentile(hist, 0.5) <= 50
    assert 35 <= h.percentile(hist, 0.99) <= 50
    # Half fast, half slow: the median sits at the fast bucket's top, p99 in the slow one.
    hist = _hist(*([8] * 50), *([900] * 50))
    assert h.percentile(hist, 0.5) == 10
    assert 600 < h.percentile(hist, 0.99) <= 1000
    assert h.percentile(_hist(10 * 60_000), 0.99) == h.BOUNDS_MS[-1]  # overflow: the last bound


def test_rollups_of_outcomes_by_the_minute_they_ended():
    base = 1_764_000_000_000  # a minute start
    outcomes = [
        {"queue_name": "a", "started_at": base + 59_990, "duration_ms": 5, "outcome": "completed",
         "status_code": 200},
        {"queue_name": "a", "started_at": base + 59_990, "duration_ms": 20, "outcome": "retry",
         "status_code": 503},  # ended in the next minute
        {"queue_name": "a", "started_at": base + 1000, "duration_ms": 1, "outcome": "retry",
         "status_code": None},  # refused: counted, no duration
        {"queue_name": "b", "started_at": base + 1000, "duration_ms": 5000, "outcome": "dead",
         "status_code": None, "timed_out": True},  # a timeout has a duration
    ]
    r = h.of_deliveries(outcomes)
    assert set(r) == {("a", base), ("a", base + MIN), ("b", base)}
    first = h.Point(base, tuple(r[("a", base)]))
    assert (first.completed, first.retried, first.dead, first.timed) == (1, 1, 0, 1)
    second = h.Point(base + MIN, tuple(r[("a", base + MIN)]))
    assert (second.completed, second.retried, second.timed) == (0, 1, 1)
    b = h.Point(base, tuple(r[("b", base)]))
    assert (b.dead, b.timed) == (1, 1)
    assert 4000 < b.percentile(0.99) <= 6000  # within its bucket
    lost = h.of_lost([{"queue_name": "a", "status": "pending"},
                      {"queue_name": "a", "status": "dead"}], base + 5)
    assert lost == {("a", base): [0, 0, 1, 1] + [0] * len(h.HIST)}


def test_series_fills_every_bucket_oldest_first():
    start = 1_764_000_000_000
    rows = [(start + 2 * MIN, *([1] * len(h.COLUMNS))), (start - MIN, *([9] * len(h.COLUMNS)))]
    points = h.series(rows, start, 4)
    assert [p.start for p in points] == [start + i * MIN for i in range(4)]
    assert [p.deliveries for p in points] == [0, 0, 3, 0]


@pytest.mark.parametrize(
    ("args", "field"),
    [({"minutes": "0"}, "minutes"), ({"minutes": "10081"}, "minutes"), ({"minutes": "-1"}, "minutes"),
     ({"minutes": "1.5"}, "minutes"), ({"minutes": ""}, "minutes"), ({"minutes": "9" * 5000}, "minutes"),
     ({"queue": ""}, "queue"), ({"queue": "a b"}, "queue"), ({"queue": "<script>"}, "queue"),
     ({"minute": "5"}, "minute")],
)
def test_history_query_refuses(args: dict, field: str):
    with pytest.raises(ValidationError) as err:
        history_query(args)
    assert err.value.field == field


def test_history_query_defaults():
    assert history_query({}) == (60, None)
    assert history_query({"minutes": "10080", "queue": "q.1"}) == (10080, "q.1")


# -- the SQLite backend writes rollups with the job writes ---------------------------


def _outcome(job: dict, outcome: str, started: int, duration: int, code: int | None) -> dict:
    return {"id": job["id"], "attempt": job["attempt"], "queue_name": job["queue_name"],
            "started_at": started, "duration_ms": duration, "status_code": code,
            "result": None, "error": None if outcome == "completed" else "x",
            "visible_at": started + 10 if outcome == "retry" else None, "outcome": outcome}


def _store(tmp_path) -> sqlite3.Connection:
    conn = connect_sync(str(tmp_path / "h.db"))
    migrate(conn)
    return conn


def _points(conn: sqlite3.Connection, start: int, n: int, queue: str | None) -> list[h.Point]:
    return h.series(history.sums(conn, start, start + n * MIN, MIN, queue), start, n)


def test_rollups_follow_job_writes_across_a_minute_boundary(tmp_path):
    """The backend's statements at explicit times: 59.5 s into a minute, then past it."""
    conn = _store(tmp_path)
    minute = h.minute_start(1_764_000_000_000)
    now = minute + 59_500
    spec = {"callback_url": "http://x/h", "payload": "{}", "max_retries": 1, "visible_at": now}
    tx(conn, jobs.create_jobs, [{**spec, "queue_name": "a"} for _ in range(6)]
       + [{**spec, "queue_name": "b"} for _ in range(2)], DEFAULTS, now)
    claimed = tx(conn, dispatch.claim, [("a", 6), ("b", 2)], now, 1000)
    a = [j for j in claimed if j["queue_name"] == "a"]
    b = [j for j in claimed if j["queue_name"] == "b"]
    changed = tx(conn, dispatch.finish, [
        _outcome(a[0], "completed", now - 100, 40, 200),     # ends in the first minute
        _outcome(a[1], "completed", now, 700, 200),          # ends in the second
        _outcome(a[2], "retry", now - 50, 20, 503),          # first
        _outcome(a[3], "dead", now, 900, 404),               # second
        _outcome(b[0], "retry", now - 10, 1, None),          # refused: no duration
    ], now + 900)
    assert changed == 5
    # Into the next minute: one more job, and a4, a5, b1 lost with their process.
    later = minute + MIN + 1_000
    tx(conn, jobs.create_jobs, [{**spec, "queue_name": "a"}], DEFAULTS, later)
    assert len(tx(conn, dispatch.reap, later, later + 10 * MIN)) == 3
    # An outcome that arrives after the reaper took its job back adds nothing.
    assert tx(conn, dispatch.finish, [_outcome(a[4], "completed", later, 3, 200)], later) == 0

    first, second = _points(conn, minute, 2, None)
    assert first.start == minute and second.start == minute + MIN
    assert first.created == 8 and second.created == 1
    assert (first.completed, first.retried, first.dead) == (1, 2, 0)
    # second minute: a1 completed, a3 dead; a4, a5 and b1 lost (retries left).
    assert (second.completed, second.retried, second.dead) == (1, 3, 1)
    assert first.timed == 2 and second.timed == 2  # refused and lost attempts have no duration
    assert 600 < second.percentile(0.99) <= 1000
    a1, a2 = _points(conn, minute, 2, "a")
    assert (a1.created, a1.completed, a1.retried) == (6, 1, 1)
    assert (a2.created, a2.completed, a2.retried, a2.dead) == (1, 1, 2, 1)
    assert all(p.values == (0,) * len(h.COLUMNS) for p in _points(conn, minute, 2, "nope"))
    conn.close()


def test_prune_deletes_old_minutes_only(tmp_path):
    conn = _store(tmp_path)
    base = h.minute_start(1_764_000_000_000)
    spec = {"callback_url": "http://x/h", "payload": "{}", "queue_name": "a"}
    for back in (30, 20, 10, 0):
        tx(conn, jobs.create_jobs, [spec], DEFAULTS, base - back * MIN)
    pruned = tx(conn, history.prune, base - 15 * MIN, 1)  # a batch of one row
    pruned += tx(conn, history.prune, base - 15 * MIN, 1000)
    assert pruned == 2
    rows = history.sums(conn, base - 40 * MIN, base + MIN, MIN, None)
    assert [(r[0], r[1]) for r in rows] == [(base - 10 * MIN, 1), (base, 1)]
    conn.close()


# -- GET /metrics/history on a real server -------------------------------------------


def _parse(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000)


def test_history_route_shape(api: ApiClient, qname: str):
    before = int(time.time() * 1000)
    rows = api.get("/metrics/history").expect(200)
    after = int(time.time() * 1000)
    assert len(rows) == 60
    keys = {"minute", "created", "completed", "retried", "dead", "duration_p50_ms",
            "duration_p99_ms"}
    for r in rows:
        assert set(r) == keys
        assert all(type(r[k]) is int and r[k] >= 0 for k in keys - {"minute"}), r
        assert r["minute"].endswith(":00.000Z"), r["minute"]
    starts = [_parse(r["minute"]) for r in rows]
    assert starts == [starts[0] + i * MIN for i in range(60)]
    assert h.minute_start(before) <= starts[-1] <= h.minute_start(after), "last is the current minute"
    assert len(api.get("/metrics/history", minutes=1).expect(200)) == 1
    assert len(api.get("/metrics/history", minutes=10080).expect(200)) == 10080
    zeros = api.get("/metrics/history", minutes=5, queue=qname).expect(200)
    assert [{k: v for k, v in r.items() if k != "minute"} for r in zeros] == [
        dict.fromkeys(keys - {"minute"}, 0)] * 5
    datetime.fromisoformat(zeros[0]["minute"]).astimezone(UTC)


@pytest.mark.parametrize(
    ("query", "field"),
    [({"minutes": 0}, "minutes"), ({"minutes": 10081}, "minutes"), ({"minutes": "ten"}, "minutes"),
     ({"minutes": "1e3"}, "minutes"), ({"queue": "a/b"}, "queue"), ({"queue": ""}, "queue"),
     ({"limit": 5}, "limit")],
)
def test_history_route_refuses_bad_values(api: ApiClient, query: dict, field: str):
    resp = api.get("/metrics/history", **query)
    assert_error(resp, 400, field)


def _totals(api: ApiClient, queue: str, minutes: int = 10) -> dict[str, int]:
    rows = api.get("/metrics/history", minutes=minutes, queue=queue).expect(200)
    return {k: sum(r[k] for r in rows) for k in ("created", "completed", "retried", "dead")}


def _expected_by_minute(api: ApiClient, queue: str) -> dict[int, dict[str, int]]:
    """Per minute, what the history should hold, from the jobs and their attempt
    rows: creations by created_at, attempts by the moment they ended (a lost
    attempt's row ends when it was recovered)."""
    out: dict[int, dict[str, int]] = {}

    def bump(ms: int, key: str) -> None:
        row = out.setdefault(h.minute_start(ms), dict.fromkeys(h.COUNTS, 0))
        row[key] += 1

    for job in api.get("/jobs", queue=queue, limit=1000).expect(200):
        bump(clock.parse_rfc3339(job["created_at"]), "created")
        for a in api.get(f"/jobs/{job['id']}/attempts").expect(200):
            ended = clock.parse_rfc3339(a["started_at"]) + a["duration_ms"]
            bump(ended, {"completed": "completed", "retry": "retried", "dead": "dead"}[a["outcome"]])
    return out


def _history_by_minute(api: ApiClient, queue: str | None) -> dict[int, dict[str, int]]:
    query = {"minutes": 10} | ({"queue": queue} if queue else {})
    return {
        clock.parse_rfc3339(r["minute"]): {k: r[k] for k in h.COUNTS}
        for r in api.get("/metrics/history", **query).expect(200)
        if any(r[k] for k in h.COUNTS)
    }


HISTORY_SERVER = """\
[worker]
reaper_interval_secs = 1

[defaults]
base_delay_ms = 50
max_delay_ms = 200
timeout_ms = 5000
"""


def test_rollups_equal_deliveries_across_an_engine_restart(make_server, receiver: Receiver,
                                                           qname: str):
    srv = make_server(HISTORY_SERVER)
    api = srv.client()
    ok, flaky, gone, slow = (receiver.new_path() for _ in range(4))
    receiver.respond(flaky, Reply(503, "busy"), Reply(503, "busy"), Reply(200, "ok"))
    receiver.respond(gone, Reply(410, "gone"))
    receiver.respond(slow, Reply(200, "late", delay_s=30))
    jobs = [{"callback_url": receiver.url(ok), "queue_name": qname}] * 20
    jobs += [{"callback_url": receiver.url(flaky), "queue_name": qname, "max_retries": 5}]
    jobs += [{"callback_url": receiver.url(gone), "queue_name": qname}]
    api.post("/jobs/batch", {"jobs": jobs}).expect(201)
    wait_until(lambda: _totals(api, qname)["completed"] == 21, timeout=15,
               message=lambda: f"history: {_totals(api, qname)}")
    first = _totals(api, qname)
    assert first == {"created": 22, "completed": 21, "retried": 2, "dead": 1}, first
    # One delivery in flight when the whole server dies: the restarted engine
    # recovers it, and its lost attempt counts as retried.
    job = api.post("/jobs", {"callback_url": receiver.url(slow), "queue_name": qname,
                             "max_retries": 1}).expect(201)
    receiver.wait_for(slow, 1)
    srv.kill9()
    api.close()
    receiver.respond(slow, Reply(200, "ok"))
    # Stay down into the next minute, so that what the restarted engine does
    # lands in other minutes than what the first one did.
    down_minute = h.minute_start(int(time.time() * 1000))
    time.sleep(max(0.0, (down_minute + MIN - time.time() * 1000) / 1000 + 0.05))
    srv.start()
    api = srv.client()
    api.wait_job(job["id"], "completed", timeout=15)
    more = [{"callback_url": receiver.url(ok), "queue_name": qname}] * 10
    api.post("/jobs/batch", {"jobs": more}).expect(201)
    wait_until(lambda: _totals(api, qname)["completed"] == 32, timeout=15,
               message=lambda: f"history: {_totals(api, qname)}")
    total = _totals(api, qname)
    assert total == {"created": 33, "completed": 32, "retried": 3, "dead": 1}, total
    by_minute = _history_by_minute(api, qname)
    assert by_minute == _expected_by_minute(api, qname)
    before = {k: sum(r[k] for m, r in by_minute.items() if m <= down_minute) for k in h.COUNTS}
    after = {k: sum(r[k] for m, r in by_minute.items() if m > down_minute) for k in h.COUNTS}
    assert before == {**first, "created": 23}, by_minute
    assert after == {"created": 10, "completed": 11, "retried": 1, "dead": 0}, by_minute
    assert _history_by_minute(api, None) == by_minute  # all queues: ours and no other
    rows = api.get("/metrics/history", minutes=10, queue=qname).expect(200)
    busy = [r for r in rows if r["completed"]]
    assert busy and all(r["duration_p50_ms"] > 0 for r in busy), busy
    api.close()


def test_postgresql_backend_says_it_keeps_no_history(tmp_path):
    """Until the PostgreSQL backend writes rollups, it says so rather than answer zeros."""
    from support.postgres import fresh_database
    from support.server import MininqServer

    with fresh_database("mininq_history") as url:
        srv = MininqServer(tmp_path / "pg", database_url=url).start(timeout=30)
        try:
            with srv.client() as api:
                assert_error(api.get("/metrics/history"), 501)
                assert_error(api.get("/metrics/history", minutes=0), 400, "minutes")
                page = api.request("GET", "/dashboard", headers={"Accept": "text/html"})
                assert page.status == 200 and "not yet with PostgreSQL" in page.text
        finally:
            srv.stop()
