"""Retention cleanup: which jobs go, in what batches, and that the file stops growing.

Rows are made old through the storage layer: the test opens the SQLite file
and moves `updated_at` (the moment a job became finished) back by days.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sqlite3
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from support import ApiClient, MininqServer, Receiver, Reply, wait_until
from support.sqlite_tx import tx

from mininq.config import DefaultsConfig, WorkerConfig
from mininq.engine.cleanup import DAY_MS, MAX_ROWS, clean, cutoffs
from mininq.store.sqlite import SqliteStore, dispatch, jobs
from mininq.store.sqlite.connection import connect_sync
from mininq.store.sqlite.schema import migrate

NOW = 1_800_000_000_000
FINISHED = ("completed", "dead", "cancelled")
CONFIG = """\
[worker]
retention_days = 1
dead_retention_days = 3
cleanup_interval_secs = 1
reaper_interval_secs = 1
shutdown_timeout_secs = 1

[defaults]
base_delay_ms = 100
max_delay_ms = 200
"""


# --- helpers ---------------------------------------------------------------------------


def backdate(db_path: Path | str, ids: list[str], days: float) -> None:
    """Move jobs' updated_at back by `days` (a test may write through the storage layer)."""
    conn = sqlite3.connect(db_path, timeout=10)
    try:
        with conn:
            conn.executemany("UPDATE jobs SET updated_at = updated_at - ? WHERE id = ?",
                             [(int(days * DAY_MS), i) for i in ids])
    finally:
        conn.close()


def query(db_path: Path | str, sql: str, *args: object) -> list[tuple]:
    conn = sqlite3.connect(db_path, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def make_finished(conn: sqlite3.Connection, queue: str, n: int, outcomes: list[str],
                  now: int) -> list[str]:
    """n jobs that went through the given attempt outcomes (e.g. retry, completed)."""
    specs = [{"queue_name": queue, "callback_url": "http://127.0.0.1:9/h",
              "payload": orjson.dumps({"i": i}).decode(), "visible_at": now,
              "max_retries": len(outcomes)} for i in range(n)]
    ids = [job["id"] for job, _ in tx(conn, jobs.create_jobs, specs, DefaultsConfig(), now)]
    for outcome in outcomes:
        running = tx(conn, dispatch.claim, [(queue, n)], now, 1000)
        assert len(running) == n
        tx(conn, dispatch.finish, [
            {"id": r["id"], "attempt": r["attempt"], "queue_name": queue, "started_at": now,
             "duration_ms": 1, "status_code": 200, "result": None, "error": None,
             "visible_at": now, "outcome": outcome} for r in running
        ], now)
    return ids


# --- what is past retention --------------------------------------------------------------


@pytest.mark.parametrize(
    ("retention", "dead_retention", "expected_days"),
    [
        (0, 0, {}),
        (7, 0, {"completed": 7, "cancelled": 7, "dead": 7}),
        (7, 30, {"completed": 7, "cancelled": 7, "dead": 30}),
        (30, 2, {"completed": 30, "cancelled": 30, "dead": 2}),
        (0, 3, {"dead": 3}),  # only dead jobs expire; the rest is kept forever
    ],
)
def test_cutoffs(retention: int, dead_retention: int, expected_days: dict[str, int]) -> None:
    worker = WorkerConfig(retention_days=retention, dead_retention_days=dead_retention)
    assert cutoffs(worker, NOW) == {s: NOW - d * DAY_MS for s, d in expected_days.items()}


# --- the store's batches -------------------------------------------------------------------


def test_batches_are_whole_jobs_oldest_first_at_most_1000_rows(tmp_path: Path) -> None:
    conn = connect_sync(str(tmp_path / "b.db"))
    migrate(conn)
    one = make_finished(conn, "q", 700, ["completed"], NOW)  # 2 rows each
    three = make_finished(conn, "q", 300, ["retry", "retry", "completed"], NOW + 1)  # 4 rows
    young = make_finished(conn, "q", 50, ["completed"], NOW + 5 * DAY_MS)

    def rows() -> int:
        return (conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
                + conn.execute("SELECT count(*) FROM attempts").fetchone()[0])

    sizes, deleted = [], 0
    while True:
        before = rows()
        n = tx(conn, dispatch.delete_finished, "completed", NOW + DAY_MS, MAX_ROWS)
        if n == 0:
            break
        sizes.append(before - rows())
        deleted += n
        gone = set(one + three) - {r[0] for r in conn.execute("SELECT id FROM jobs")}
        # oldest first: every job of the first group goes before any of the second
        assert len(gone) == deleted and (gone <= set(one) or set(one) <= gone)
    assert deleted == 1000
    assert max(sizes) <= MAX_ROWS and sum(sizes) == 700 * 2 + 300 * 4, sizes
    assert sizes[0] == MAX_ROWS  # 500 jobs of 2 rows
    orphans = conn.execute(
        "SELECT count(*) FROM attempts WHERE job_id NOT IN (SELECT id FROM jobs)").fetchone()[0]
    assert orphans == 0
    assert {r[0] for r in conn.execute("SELECT id FROM jobs")} == set(young)
    counts = dict(conn.execute("SELECT status, n FROM job_counts WHERE queue_name = 'q'"))
    assert counts.get("completed") == 50
    conn.close()


def test_a_job_with_more_attempts_than_a_batch_goes_alone(tmp_path: Path) -> None:
    conn = connect_sync(str(tmp_path / "big.db"))
    migrate(conn)
    make_finished(conn, "q", 3, ["retry"] * 4 + ["dead"], NOW)  # 6 rows each
    assert tx(conn, dispatch.delete_finished, "dead", NOW + 1, 4) == 1
    assert tx(conn, dispatch.delete_finished, "dead", NOW + 1, 12) == 2
    assert conn.execute("SELECT count(*) FROM attempts").fetchone()[0] == 0
    conn.close()


def test_retention_zero_keeps_everything(tmp_path: Path) -> None:
    db = str(tmp_path / "zero.db")
    conn = connect_sync(db)
    migrate(conn)
    ids = make_finished(conn, "q", 20, ["completed"], NOW - 1000 * DAY_MS)
    ids += make_finished(conn, "q", 20, ["dead"], NOW - 1000 * DAY_MS)
    conn.close()

    async def run(worker: WorkerConfig) -> int:
        store = SqliteStore(db, DefaultsConfig())
        await store.open()
        try:
            return await clean(store, worker)
        finally:
            await store.close()

    assert asyncio.run(run(WorkerConfig(retention_days=0))) == 0
    assert len(query(db, "SELECT id FROM jobs")) == 40
    # only dead jobs have a retention: they go, completed ones stay
    assert asyncio.run(run(WorkerConfig(retention_days=0, dead_retention_days=5))) == 20
    assert {r[0] for r in query(db, "SELECT status FROM jobs")} == {"completed"}


# --- on a real server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MininqServer]:
    """A server with retention 1 day (dead: 3 days) that cleans up every second."""
    server = MininqServer(tmp_path_factory.mktemp("cleanup"), config_toml=CONFIG)
    with server:
        yield server


@pytest.fixture(scope="module")
def api(srv: MininqServer) -> Iterator[ApiClient]:
    client = srv.client()
    yield client
    client.close()


def post_jobs(api: ApiClient, queue: str, url: str, n: int, **fields: object) -> list[str]:
    ids = []
    for start in range(0, n, 1000):
        batch = [{"queue_name": queue, "callback_url": url, **fields}
                 for _ in range(min(1000, n - start))]
        ids += [j["id"] for j in api.post("/jobs/batch", json={"jobs": batch}).expect(201)["jobs"]]
    return ids


def wait_status(api: ApiClient, ids: list[str], status: str, timeout: float = 15) -> None:
    for job_id in ids:
        api.wait_job(job_id, status, timeout=timeout)


def test_cleanup_deletes_exactly_the_finished_jobs_past_retention(
    srv: MininqServer, api: ApiClient, receiver: Receiver, qname: str
) -> None:
    ok, retried, failing, slow = (receiver.new_path() for _ in range(4))
    receiver.respond(retried, Reply(503), Reply(200))
    receiver.respond(failing, Reply(404))
    receiver.respond(slow, Reply(200, delay_s=20))
    api.post("/queues", json={"name": qname, "max_concurrency": 50}).expect(201)

    old_completed = post_jobs(api, qname, receiver.url(ok), 3)
    old_retried = post_jobs(api, qname, receiver.url(retried), 1, max_retries=2)
    young_completed = post_jobs(api, qname, receiver.url(ok), 2)
    dead_kept = post_jobs(api, qname, receiver.url(failing), 2)  # 2 days old, dead kept 3
    dead_gone = post_jobs(api, qname, receiver.url(failing), 2)  # 4 days old
    cancelled = post_jobs(api, qname, receiver.url(ok), 2, delay_ms=3_600_000)
    pending = post_jobs(api, qname, receiver.url(ok), 2, delay_ms=3_600_000)
    running = post_jobs(api, qname, receiver.url(slow), 1, timeout_ms=60_000)
    for job_id in cancelled:
        api.delete(f"/jobs/{job_id}").expect(200)
    wait_status(api, old_completed + old_retried + young_completed, "completed")
    wait_status(api, dead_kept + dead_gone, "dead")
    wait_status(api, running, "running")
    assert api.get(f"/jobs/{old_retried[0]}/attempts").expect(200)[0]["status_code"] == 503

    backdate(srv.db_path, old_completed + old_retried + dead_kept + cancelled, 2)
    backdate(srv.db_path, dead_gone, 4)
    backdate(srv.db_path, pending + running, 30)  # old but not finished: never deleted
    gone = old_completed + old_retried + dead_gone + cancelled
    kept = young_completed + dead_kept + pending + running

    wait_until(lambda: all(api.get(f"/jobs/{i}").status == 404 for i in gone), timeout=10,
               message="finished jobs past retention were not deleted")
    time.sleep(1.5)  # another cleanup round or more: still nothing else goes
    states = {i: api.get(f"/jobs/{i}").expect(200)["status"] for i in kept}
    assert states == {**dict.fromkeys(young_completed, "completed"),
                      **dict.fromkeys(dead_kept, "dead"),
                      **dict.fromkeys(pending, "pending"),
                      **dict.fromkeys(running, "running")}
    marks = ",".join("?" * len(gone))
    assert query(srv.db_path, f"SELECT count(*) FROM attempts WHERE job_id IN ({marks})",
                 *gone) == [(0,)], "attempts of deleted jobs are left"
    assert api.get(f"/jobs/{young_completed[0]}/attempts").expect(200)
    queue = api.get(f"/queues/{qname}").expect(200)
    assert {s: queue[s] for s in ("pending", "running", "completed", "dead", "cancelled")} == {
        "pending": 2, "running": 1, "completed": 2, "dead": 2, "cancelled": 0}
    events = [json.loads(line) for line in srv.log_text().splitlines()
              if '"retention cleanup"' in line]
    assert events and sum(e["deleted"] for e in events) >= len(gone)


def test_file_stops_growing_under_a_steady_load(
    srv: MininqServer, api: ApiClient, receiver: Receiver, qname: str
) -> None:
    """Rounds of the same load: jobs come, are delivered, grow old (backdated two
    days) and are cleaned up. From the second round on, new rows go into the
    pages the cleanup freed: the file keeps its size and the freelist is used."""
    path = receiver.new_path()
    api.post("/queues", json={"name": qname, "max_concurrency": 64}).expect(201)
    payload = {"blob": "x" * 1500}
    per_round, rounds = 600, 5
    db = srv.db_path
    sizes, seen = [], []
    for r in range(rounds):
        ids = post_jobs(api, qname, receiver.url(path), per_round, payload=payload)
        wait_until(lambda: api.get(f"/queues/{qname}").expect(200)["completed"] == per_round,
                   timeout=30, message=f"round {r}: jobs not delivered")
        free_with_jobs = query(db, "PRAGMA freelist_count")[0][0]
        backdate(db, ids, 2)
        wait_until(lambda: api.get(f"/queues/{qname}").expect(200)["completed"] == 0,
                   timeout=10, message=f"round {r}: old jobs not cleaned up")
        # the cleanup ends with a TRUNCATE checkpoint: the main file holds every page
        wait_until(lambda: os.path.getsize(f"{db}-wal") == 0, timeout=5)
        pages, free = query(db, "PRAGMA page_count")[0][0], query(db, "PRAGMA freelist_count")[0][0]
        sizes.append(os.path.getsize(db))
        seen.append((pages, free_with_jobs, free))
    print(f"\n(page_count, freelist with the round's jobs, freelist after cleanup) per round: "
          f"{seen}\nfile sizes: {sizes}")
    # the first round grows the file; after that it keeps its size (a few pages of slack)
    assert max(sizes[1:]) - sizes[0] <= 0.05 * sizes[0], sizes
    # each cleanup frees pages, and the next round takes them again
    assert all(free >= 100 for _, _, free in seen), seen
    for (_, _, freed), (_, with_jobs, _) in itertools.pairwise(seen):
        assert with_jobs < freed / 2, seen


# --- measurement (opt-in): enqueue latency while a big cleanup runs -------------------------


@pytest.mark.skipif(not os.environ.get("MININQ_MEASURE_CLEANUP"),
                    reason="builds a big database: set MININQ_MEASURE_CLEANUP=1")
def test_enqueue_latency_during_a_big_cleanup(tmp_path: Path, receiver: Receiver) -> None:
    """100,000 finished jobs past retention are deleted while a client enqueues
    one job after another; prints the enqueue latency during the cleanup."""
    server = MininqServer(tmp_path / "big", config_toml=CONFIG)
    conn = connect_sync(str(server.db_path))
    migrate(conn)
    for _ in range(100):
        make_finished(conn, "old", 1000, ["completed"], NOW)
    conn.execute("UPDATE jobs SET updated_at = ?", (int(time.time() * 1000) - 2 * DAY_MS,))
    conn.close()
    url = receiver.url(receiver.new_path())
    with server:
        client = server.client()
        samples: list[tuple[float, float]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            started = time.time()
            client.post("/jobs", json={"queue_name": "new", "callback_url": url}).expect(201)
            samples.append((started, (time.time() - started) * 1000))
            if any('"retention cleanup"' in line for line in server.log_tail(5).splitlines()):
                break
        event = next(json.loads(line) for line in server.log_text().splitlines()
                     if '"retention cleanup"' in line)
    end = time.mktime(time.strptime(event["ts"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    window = [ms for t, ms in samples if end - event["duration_ms"] / 1000 - 1 <= t <= end + 1]
    q = statistics.quantiles(window, n=100, method="inclusive")
    slowest = sorted(((ms, round(t - end, 2)) for t, ms in samples), reverse=True)[:5]
    print(f"\ncleanup: {event}\nenqueue latency while it ran: p50={q[49]:.1f} "
          f"p99={q[98]:.1f} max={max(window):.1f} ms (n={len(window)}); slowest (ms, s "
          f"from the cleanup's end): {[(round(ms), at) for ms, at in slowest]}")
    assert event["deleted"] == 100_000


def test_clean_prunes_history_past_history_days(tmp_path: Path) -> None:
    """Cleanup deletes history minutes older than worker.history_days, in batches,
    and keeps the younger ones, whatever the job retention says."""
    from mininq.clock import now_ms
    from mininq.metrics import history as rollup
    from mininq.store.sqlite import history

    db = str(tmp_path / "hist.db")
    conn = connect_sync(db)
    migrate(conn)
    now = now_ms()
    rollups: rollup.Rollups = {}
    for minute in range(0, 3 * 1440, 2):  # three days, every other minute, two queues
        rollup.add_created(rollups, "a", now - minute * rollup.MINUTE_MS)
        rollup.add_created(rollups, "b", now - minute * rollup.MINUTE_MS)
    tx(conn, history.record, rollups)
    conn.close()

    async def run() -> int:
        store = SqliteStore(db, DefaultsConfig())
        await store.open()
        try:
            return await clean(store, WorkerConfig(retention_days=0, history_days=1))
        finally:
            await store.close()

    asyncio.run(run())
    left = query(db, "SELECT min(minute), count(*) FROM history")[0]
    assert left[0] >= now - DAY_MS - rollup.MINUTE_MS, "a minute older than a day is left"
    assert left[1] == 2 * len(range(0, 1440, 2)), left  # every minute of the last day stays
