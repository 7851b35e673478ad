"""Several nodes on one PostgreSQL database, as real processes (SPEC §9).

Three nodes on different ports share one database made for this module: every
job is delivered once whichever node took it, a queue's max_concurrency and
rate limit hold over all nodes together, a schedule's fire time makes one job,
the per-minute history adds up every node's deliveries, an enqueue on one
node wakes the others at once, a node at a queue's limit claims again as
soon as its outcomes are written, the jobs of a node killed
with -9 are delivered by the others, and an idempotency key is global.
Needs a PostgreSQL server (tests/support/postgres.py): skipped without one,
failed under CI=true.
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from support import MininqServer, Reply, wait_until
from support.postgres import fresh_database, require_server
from support.server import REPO_ROOT, binary_under_test

NODE_CONFIG = """\
[worker]
poll_interval_ms = 5000
heartbeat_interval_secs = 1
node_timeout_secs = 3
reaper_interval_secs = 1

[defaults]
base_delay_ms = 100
max_delay_ms = 1000
"""


@pytest.fixture(scope="module")
def database_url():
    with fresh_database("mininq_nodes") as url:
        yield url


@pytest.fixture(scope="module")
def nodes(database_url, tmp_path_factory):
    """Three nodes sharing the module's database."""
    made = []
    try:
        for i in range(3):
            srv = MininqServer(tmp_path_factory.mktemp(f"node{i}"), config_toml=NODE_CONFIG,
                               database_url=database_url)
            made.append(srv.start(timeout=30))
        yield made
    finally:
        for srv in made:
            if srv.running:
                srv.stop()


def post_round_robin(nodes, jobs: list[dict], batch: int = 1) -> list[dict]:
    """POST the jobs to the nodes in turn (in batches of `batch`), in parallel."""
    chunks = [jobs[i : i + batch] for i in range(0, len(jobs), batch)]

    def send(i: int) -> list[dict]:
        with nodes[i % len(nodes)].client() as c:
            if batch == 1:
                return [c.post("/jobs", chunks[i][0]).expect(201)]
            return c.post("/jobs/batch", {"jobs": chunks[i]}).expect(201)["jobs"]

    with ThreadPoolExecutor(8) as pool:
        return [j for part in pool.map(send, range(len(chunks))) for j in part]


def test_every_node_reports_itself_and_the_others(nodes):
    ids = []
    for srv in nodes:
        with srv.client() as c:
            health = c.get("/health").expect(200)
            assert health["database"] == "postgresql"
            ids.append(health["node"])
    assert not list(nodes[0].workdir.glob("*.db*")), "a SQLite file was created"

    def all_listed():
        with nodes[0].client() as c:
            listed = c.get("/nodes").expect(200)
        return listed if {n["id"] for n in listed if n["alive"]} >= set(ids) else None

    listed = wait_until(all_listed, timeout=10, message="not every node listed alive")
    assert [n["self"] for n in listed if n["id"] in ids] == [n["id"] == ids[0]
                                                              for n in listed if n["id"] in ids]
    assert {n["pid"] for n in listed if n["id"] in ids} == {srv.pid for srv in nodes}
    with nodes[2].client() as c:
        panel = c.get("/dashboard/fragments/nodes").text
    assert all(f'data-node-id="{i}"' in panel for i in ids), panel


def test_3000_jobs_round_robin_each_delivered_exactly_once(nodes, receiver, qname):
    path = receiver.new_path()
    with nodes[0].client() as c:
        c.post("/queues", {"name": qname, "max_concurrency": 64}).expect(201)
    started = time.monotonic()
    jobs = post_round_robin(
        nodes, [{"queue_name": qname, "callback_url": receiver.url(path), "payload": {"i": i}}
                for i in range(3000)], batch=50)
    hits = receiver.wait_for(path, 3000, timeout=120)
    took = time.monotonic() - started
    time.sleep(1.0)  # a duplicate would arrive now
    hits = receiver.hits(path)
    per_job = Counter(h.headers["x-mininq-job-id"] for h in hits)
    twice = [j for j, n in per_job.items() if n > 1]
    assert len(per_job) == 3000 and not twice, (len(per_job), twice[:5])
    assert set(per_job) == {j["id"] for j in jobs}
    print(f"3000 jobs over 3 nodes delivered in {took:.1f} s")


def test_max_concurrency_holds_over_all_nodes(nodes, receiver, qname):
    path = receiver.new_path()
    receiver.respond(path, Reply(200, delay_s=0.2))
    with nodes[1].client() as c:
        c.post("/queues", {"name": qname, "max_concurrency": 4}).expect(201)
    post_round_robin(nodes, [{"queue_name": qname, "callback_url": receiver.url(path)}
                             for _ in range(48)])
    receiver.wait_for(path, 48, timeout=60)
    peak = receiver.max_concurrency(path)
    print(f"peak concurrency over 3 nodes with max_concurrency 4: {peak}")
    assert peak == 4, f"peak concurrency {peak}, want exactly 4"


def test_rate_limit_holds_over_all_nodes(nodes, receiver, qname):
    path = receiver.new_path()
    with nodes[2].client() as c:
        c.post("/queues", {"name": qname, "rate_limit_rps": 8, "rate_limit_burst": 1,
                           "max_concurrency": 50}).expect(201)
    post_round_robin(nodes, [{"queue_name": qname, "callback_url": receiver.url(path)}
                             for _ in range(41)])
    hits = receiver.wait_for(path, 41, timeout=30)
    times = sorted(h.started for h in hits)
    rate = (len(times) - 1) / (times[-1] - times[0])
    print(f"rate over 3 nodes with 8/s burst 1: {rate:.2f}/s")
    assert 6.5 <= rate <= 9.5, f"{rate:.2f} arrivals/s over all nodes, want 6.5-9.5"


def test_a_fire_time_makes_one_job_over_all_nodes(nodes, receiver, qname):
    path = receiver.new_path()
    with nodes[0].client() as c:
        s = c.post("/schedules", {"cron_expression": "* * * * * *", "queue_name": qname,
                                  "callback_url": receiver.url(path)}).expect(201)
        time.sleep(10)
        c.put(f"/schedules/{s['id']}", {"enabled": False}).expect(200)
        jobs = c.get("/jobs", schedule_id=s["id"], limit=100).expect(200)
    seconds = Counter(j["visible_at"][:19] for j in jobs)
    print(f"every-second schedule over 10 s on 3 nodes: {len(jobs)} jobs")
    assert 9 <= len(jobs) <= 11, len(jobs)
    assert max(seconds.values()) == 1, seconds


def test_an_enqueue_wakes_another_node_at_once(database_url, nodes, receiver, qname,
                                               tmp_path):
    """A node that doesn't serve the queue accepts the job; a sleeping node
    (poll every 5 s) delivers it, woken by NOTIFY."""
    other = MininqServer(tmp_path / "api-only", database_url=database_url,
                         config_toml=NODE_CONFIG, env={"MININQ_WORKER_QUEUES": "elsewhere"})
    other.start(timeout=30)
    try:
        path = receiver.new_path()
        delays = []
        with other.client() as c:
            c.post("/jobs", {"queue_name": qname, "callback_url": receiver.url(path)}).expect(201)
            receiver.wait_for(path, 1, timeout=10)
            for i in range(2, 22):
                time.sleep(0.1)
                sent = time.monotonic()
                c.post("/jobs", {"queue_name": qname,
                                 "callback_url": receiver.url(path)}).expect(201)
                hit = receiver.wait_for(path, i, timeout=10)[-1]
                delays.append((hit.started - sent) * 1000)
    finally:
        other.stop()
    median = statistics.median(delays)
    print(f"enqueue on an API-only node to delivery by another: median {median:.1f} ms, "
          f"max {max(delays):.1f} ms")
    assert median <= 100, f"median {median:.1f} ms (all: {[round(d) for d in delays]})"



def _history_totals(srv: MininqServer, queue: str) -> dict[str, int]:
    with srv.client() as c:
        rows = c.get("/metrics/history", minutes=30, queue=queue).expect(200)
    return {k: sum(r[k] for r in rows) for k in ("created", "completed", "retried", "dead")}


def test_history_adds_up_every_nodes_deliveries(nodes, receiver, qname):
    """Every node adds to the same per-minute rows at once (SPEC §11): the sums
    any node answers equal what was created and delivered over all of them."""
    ok, flaky, gone = (receiver.new_path() for _ in range(3))
    receiver.respond(flaky, *[Reply(503, "busy")] * 30, Reply(200, "ok"))
    receiver.respond(gone, Reply(410, "gone"))
    with nodes[0].client() as c:
        c.post("/queues", {"name": qname, "max_concurrency": 32}).expect(201)
    specs = ([{"queue_name": qname, "callback_url": receiver.url(ok)}] * 300
             + [{"queue_name": qname, "callback_url": receiver.url(flaky), "max_retries": 3}] * 60
             + [{"queue_name": qname, "callback_url": receiver.url(gone)}] * 30)
    post_round_robin(nodes, specs, batch=10)
    want = {"created": 390, "completed": 360, "retried": 30, "dead": 30}
    wait_until(lambda: _history_totals(nodes[1], qname) == want, timeout=60,
               message=lambda: f"history {_history_totals(nodes[1], qname)}, want {want}")
    assert [_history_totals(srv, qname) for srv in nodes] == [want] * 3
    with nodes[2].client() as c:
        assert c.get("/metrics/history", minutes=30).expect(200)[-1]["minute"]
        chart = c.get("/dashboard/fragments/chart", chart_queue=qname).text
    assert 'class="chart"' in chart and "Completed <b>360</b>" in chart, chart[:500]

def test_a_node_at_its_queue_limit_claims_again_once_its_outcomes_are_written(
        receiver, qname, tmp_path):
    """With max_concurrency 1, each next job is claimed as soon as the
    previous one's outcome is in the database, not at the next poll (5 s):
    the store counts the job running until then, so the engine waits for
    that write rather than claim into a full queue."""
    with fresh_database("mininq_limit") as database_url:
        srv = MininqServer(tmp_path / "one", config_toml=NODE_CONFIG,
                           database_url=database_url)
        srv.start(timeout=30)
        try:
            path = receiver.new_path()
            with srv.client() as c:
                c.post("/queues", {"name": qname, "max_concurrency": 1}).expect(201)
                started = time.monotonic()
                c.post("/jobs/batch", {"jobs": [
                    {"queue_name": qname, "callback_url": receiver.url(path)}
                    for _ in range(10)]}).expect(201)
            hits = receiver.wait_for(path, 10, timeout=60)
            took = time.monotonic() - started
        finally:
            srv.stop()
    gaps = [round((b.started - a.started) * 1000) for a, b in itertools.pairwise(hits)]
    print(f"10 jobs one at a time on one node: {took:.2f} s, gaps {gaps} ms")
    assert receiver.max_concurrency(path) == 1
    assert took < 2.0, f"10 jobs took {took:.2f} s one at a time (gaps {gaps} ms)"


def test_kill_9_of_a_node_its_jobs_are_delivered_by_the_others(receiver, qname, tmp_path):
    # A database of its own: the module's nodes would take the jobs first.
    with fresh_database("mininq_kill") as database_url:
        _kill_9(database_url, receiver, qname, tmp_path)


def _kill_9(database_url: str, receiver, qname: str, tmp_path: Path) -> None:
    path = receiver.new_path()
    # First attempts hang until long after the kill: the killed node never answers.
    receiver.respond(path, *[Reply(200, delay_s=20)] * 20, Reply(200))
    a = MininqServer(tmp_path / "a", config_toml=NODE_CONFIG, database_url=database_url)
    b = MininqServer(tmp_path / "b", config_toml=NODE_CONFIG, database_url=database_url)
    a.start(timeout=30)
    try:
        with a.client() as c:
            c.post("/queues", {"name": qname, "max_concurrency": 50}).expect(201)
            jobs = c.post("/jobs/batch", {"jobs": [
                {"queue_name": qname, "callback_url": receiver.url(path), "max_retries": 3}
                for _ in range(20)]}).expect(201)["jobs"]
        receiver.wait_for(path, 20, timeout=10)  # all in flight on node a
        b.start(timeout=30)
        a.kill9()
        killed = time.monotonic()
        with b.client() as c:
            seen: list = []

            def all_completed():
                seen[:] = [c.get(f"/jobs/{j['id']}").expect(200) for j in jobs]
                return seen if all(j["status"] == "completed" for j in seen) else None

            done = wait_until(
                all_completed, timeout=3 + 10, interval=0.1,
                message=lambda: "not every job of the killed node was delivered: "
                f"{Counter((j['status'], j['attempt']) for j in seen)}; nodes: "
                f"{c.get('/nodes').expect(200)}")
        took = time.monotonic() - killed
        rescued = [j for j in done if j["attempt"] == 2]
        print(f"kill -9 of a node: {len(rescued)} of its jobs delivered by the other node "
              f"{took:.1f} s after the kill (node_timeout_secs 3)")
        assert rescued, "the killed node had no deliveries in flight"
        with b.client() as c:
            lost = c.get(f"/jobs/{rescued[0]['id']}/attempts").expect(200)[0]
        assert lost["error"].startswith("interrupted"), lost
    finally:
        b.stop()
        if a.running:
            a.stop()


def test_one_idempotency_key_over_all_nodes_makes_one_job(nodes, receiver, qname):
    body = {"queue_name": qname, "callback_url": receiver.url(receiver.new_path()),
            "idempotency_key": f"key-{qname}"}
    barrier = threading.Barrier(12)

    def send(i: int):
        with nodes[i % 3].client() as c:
            barrier.wait()
            r = c.post("/jobs", body)
            return r.status, r.expect(200, 201)["id"]

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(send, range(12)))
    assert len({job_id for _, job_id in answers}) == 1, answers
    assert sorted(s for s, _ in answers) == [200] * 11 + [201]


# -- start-up errors -------------------------------------------------------------------


def _start_fails(tmp_path: Path, url: str, timeout: float = 30) -> tuple[int, str, float]:
    """Run `mininq serve` with `url`; (exit code, output, seconds) once it exits."""
    program = [binary_under_test()] if binary_under_test() else [sys.executable, "-m", "mininq"]
    started = time.monotonic()
    out = subprocess.run(
        [*program, "serve", "--port", "1", "--db-path", str(tmp_path / "x.db"),
         "--database-url", url],
        cwd=tmp_path, capture_output=True, text=True, timeout=timeout, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "TMPDIR": str(tmp_path)},
    )
    return out.returncode, out.stdout + out.stderr, time.monotonic() - started


@pytest.mark.parametrize("case", ["scheme", "credentials", "unreachable"])
def test_a_bad_database_url_stops_start_up_naming_it(case, tmp_path):
    url = require_server()
    bad = {
        "scheme": "mysql://root:s3cretpw@127.0.0.1/db",
        "credentials": urlunsplit(urlsplit(url)._replace(
            netloc=f"no_such_role_x:s3cretpw@{urlsplit(url).hostname}:{urlsplit(url).port}")),
        "unreachable": "postgresql://postgres:s3cretpw@127.0.0.1:1/postgres",
    }[case]
    code, output, took = _start_fails(tmp_path, bad)
    assert code != 0, output
    assert "database_url" in output, output
    assert "s3cretpw" not in output, output
    assert not (tmp_path / "x.db").exists(), "a SQLite file was created"
    if case == "unreachable":
        assert took <= 14, f"gave up after {took:.1f} s, want about 10 s"
    print(f"{case}: exit {code} after {took:.1f} s: {output.strip().splitlines()[-1]}")


def test_backup_refuses_postgresql(tmp_path):
    program = [binary_under_test()] if binary_under_test() else [sys.executable, "-m", "mininq"]
    out = subprocess.run(
        [*program, "backup", str(tmp_path / "copy.db"), "--database-url",
         "postgresql://postgres:pw@127.0.0.1/postgres"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "TMPDIR": str(tmp_path)},
    )
    assert out.returncode != 0 and "pg_dump" in out.stderr, out
    assert not (tmp_path / "copy.db").exists()
