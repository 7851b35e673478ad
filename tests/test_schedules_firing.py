"""Cron schedules firing on a real server: on time, once per fire time, across
restarts, crashes, downtime and a second server on the same file.

Lateness of a fire = the job's created_at minus the fire time it was made for;
the `schedule fired` log line names that fire time (`due_ms`) for each job.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ApiClient, MininqServer, Receiver, wait_until

from mininq.clock import now_ms, parse_rfc3339
from mininq.config import DefaultsConfig
from mininq.engine.scheduler import fire_due
from mininq.scheduling.cron import next_fire_ms
from mininq.store.sqlite import SqliteStore, migrate_file

HOUR_MS = 3_600_000
EVERY_SECOND = "* * * * * *"
ENGINE_WAITS = "another mininq engine delivers from this database"


# --- helpers ---------------------------------------------------------------------------


def create(api: ApiClient, receiver: Receiver, queue: str, expression: str = EVERY_SECOND,
           **fields: object) -> tuple[dict, str]:
    """A schedule calling a fresh receiver path; returns (schedule, path)."""
    path = receiver.new_path()
    body = {"cron_expression": expression, "callback_url": receiver.url(path),
            "queue_name": queue, **fields}
    return api.post("/schedules", json=body).expect(201), path


def disable(api: ApiClient, schedule_id: str) -> None:
    api.put(f"/schedules/{schedule_id}", json={"enabled": False}).expect(200)


def jobs_of(api: ApiClient, schedule_id: str) -> list[dict]:
    """The schedule's jobs, oldest first."""
    jobs = api.get("/jobs", schedule_id=schedule_id, limit=1000).expect(200)
    return sorted(jobs, key=lambda j: j["id"])


def fired_lines(server: MininqServer, schedule_id: str) -> list[dict]:
    """The `schedule fired` log events of one schedule, all runs of the server."""
    out = []
    for line in server.log_text().splitlines():
        if '"schedule fired"' not in line:
            continue
        event = json.loads(line)
        if event.get("schedule") == schedule_id:
            out.append(event)
    return out


def due_times(server: MininqServer, schedule_id: str, jobs: list[dict]) -> dict[str, int]:
    """Job id -> the fire time it was made for, from the log."""
    by_job = {e["job"]: e["due_ms"] for e in fired_lines(server, schedule_id)}
    missing = [j["id"] for j in jobs if j["id"] not in by_job]
    assert not missing, f"jobs without a 'schedule fired' log line: {missing}"
    return by_job


def created_ms(job: dict) -> int:
    return parse_rfc3339(job["created_at"])


def assert_one_job_per_fire_time(jobs: list[dict], due: dict[str, int]) -> None:
    per_due = Counter(due[j["id"]] for j in jobs)
    doubled = {t: n for t, n in per_due.items() if n > 1}
    assert not doubled, f"fire times with more than one job: {doubled}"


def lateness(jobs: list[dict], due: dict[str, int]) -> list[int]:
    return [created_ms(j) - due[j["id"]] for j in jobs]


def describe(late: list[int]) -> str:
    ordered = sorted(late)
    return (f"n={len(late)} p50={statistics.median(late):.0f} ms "
            f"max={ordered[-1]} ms all={late}")


def set_next_run_at(db_path: Path, schedule_id: str, value: int) -> None:
    """What a test may do through the storage layer: move a schedule's next fire time."""
    with sqlite3.connect(db_path, timeout=10) as conn:
        conn.execute("UPDATE schedules SET next_run_at = ? WHERE id = ?", (value, schedule_id))
    conn.close()


# --- a 5-field schedule, created when the module starts, checked at its end --------------


@pytest.fixture(scope="module", autouse=True)
def five_field(api: ApiClient, receiver: Receiver) -> Iterator[tuple[dict, str]]:
    """`* * * * *` fires at second 0 of each minute; the module's other tests run
    while it waits for the next minute, and the last test checks it."""
    schedule, path = create(api, receiver, "five-field", "* * * * *")
    yield schedule, path
    api.delete(f"/schedules/{schedule['id']}")


# --- on a running server ----------------------------------------------------------------


def test_every_second_schedule_makes_one_job_per_second(
    server: MininqServer, api: ApiClient, receiver: Receiver, qname: str
) -> None:
    schedule, path = create(
        api, receiver, qname, payload={"report": "daily", "n": 1}, headers={"X-Tenant": "t1"},
        max_retries=2, timeout_ms=4000,
    )
    first_due = parse_rfc3339(schedule["next_run_at"])
    assert first_due % 1000 == 0 and 0 < first_due - parse_rfc3339(schedule["created_at"]) <= 1000
    time.sleep(6.3)
    disable(api, schedule["id"])
    disabled_at = now_ms()

    jobs = jobs_of(api, schedule["id"])
    due = due_times(server, schedule["id"], jobs)
    late = lateness(jobs, due)
    print(f"\nevery-second schedule, lateness (created_at - fire time): {describe(late)}")
    # one job for every second from the first fire time until it was disabled
    expected = list(range(first_due, disabled_at + 1, 1000))
    assert [due[j["id"]] for j in jobs] == expected[: len(jobs)], describe(late)
    assert len(expected) - 1 <= len(jobs) <= len(expected), (len(jobs), len(expected))
    assert len(jobs) >= 5
    assert_one_job_per_fire_time(jobs, due)
    assert max(late) < 1000, describe(late)
    assert statistics.median(late) < 250, describe(late)

    for job in jobs:
        assert job["queue_name"] == qname
        assert job["schedule_id"] == schedule["id"]
        assert job["payload"] == {"report": "daily", "n": 1}
        assert job["headers"] == {"X-Tenant": "t1"}
        assert (job["max_retries"], job["timeout_ms"]) == (2, 4000)

    # delivered promptly: the scheduler hands the job to the dispatcher at once
    hits = receiver.wait_for(path, len(jobs), timeout=10)
    assert len(hits) == len(jobs)
    by_id = {h.headers["x-mininq-job-id"]: h for h in hits}
    delivery = sorted(round(by_id[j["id"]].received_at * 1000) - due[j["id"]] for j in jobs)
    print(f"fire time to delivery at the receiver: {describe(delivery)}")
    assert statistics.median(delivery) < 250, describe(delivery)
    assert max(delivery) < 1000, describe(delivery)  # also the first, into a new queue
    hit = by_id[jobs[0]["id"]]
    assert hit.json == {"report": "daily", "n": 1}
    assert hit.headers["x-tenant"] == "t1"
    assert hit.headers["x-mininq-queue"] == qname

    # disabled: no job after the PUT answered, and it stays so
    time.sleep(1.5)
    assert len(jobs_of(api, schedule["id"])) == len(jobs)
    got = api.get(f"/schedules/{schedule['id']}").expect(200)
    assert got["enabled"] is False
    assert parse_rfc3339(got["last_run_at"]) == created_ms(jobs[-1])


def test_create_wakes_the_scheduler(
    server: MininqServer, api: ApiClient, receiver: Receiver, qname: str
) -> None:
    """The scheduler may be asleep for up to scheduler_interval_secs (15 s);
    a new schedule due in a second still fires on time."""
    schedule, _ = create(api, receiver, qname)
    due = parse_rfc3339(schedule["next_run_at"])
    job = wait_until(lambda: jobs_of(api, schedule["id"]), timeout=3)[0]
    disable(api, schedule["id"])
    late = created_ms(job) - due
    print(f"\nfirst fire after create: {late} ms late")
    assert 0 <= late < 1000


def test_enabling_again_fires_from_now_on_without_catching_up(
    api: ApiClient, receiver: Receiver, qname: str
) -> None:
    schedule, _ = create(api, receiver, qname, enabled=False)
    time.sleep(2.2)
    assert jobs_of(api, schedule["id"]) == [], "a disabled schedule fired"
    enabled = api.put(f"/schedules/{schedule['id']}", json={"enabled": True}).expect(200)
    due = parse_rfc3339(enabled["next_run_at"])
    assert 0 < due - parse_rfc3339(enabled["updated_at"]) <= 1000
    jobs = wait_until(lambda: jobs_of(api, schedule["id"]), timeout=3)
    disable(api, schedule["id"])
    assert 0 <= created_ms(jobs[0]) - due < 1000


def test_trigger_makes_one_job_now(api: ApiClient, receiver: Receiver, qname: str) -> None:
    schedule, path = create(api, receiver, qname, "0 0 0 1 1 *", payload={"manual": True},
                            enabled=False)
    before = now_ms()
    job = api.post(f"/schedules/{schedule['id']}/trigger").expect(201)
    assert job["schedule_id"] == schedule["id"] and job["queue_name"] == qname
    assert job["payload"] == {"manual": True}
    assert before <= created_ms(job) <= now_ms()
    hit = receiver.wait_for(path, 1, timeout=5)[0]
    assert hit.headers["x-mininq-job-id"] == job["id"]
    time.sleep(0.3)
    assert [j["id"] for j in jobs_of(api, schedule["id"])] == [job["id"]]
    after = api.get(f"/schedules/{schedule['id']}").expect(200)
    assert after["next_run_at"] == schedule["next_run_at"], "trigger moved the cron's next time"


def test_compare_and_swap_makes_one_job_per_fire_time(tmp_path: Path) -> None:
    """Two stores on one file (as two processes would be) race for the same
    due schedules: each fire time makes exactly one job."""
    db = str(tmp_path / "cas.db")
    migrate_file(db)

    async def race() -> tuple[int, int, int]:
        one, two = SqliteStore(db, DefaultsConfig()), SqliteStore(db, DefaultsConfig())
        await one.open()
        await two.open()
        try:
            now = now_ms()
            for i in range(20):
                await one.create_schedule({
                    "cron_expression": EVERY_SECOND, "timezone": "UTC",
                    "callback_url": "http://127.0.0.1:9/x", "queue_name": f"cas-{i}",
                    "payload": "{}", "enabled": True, "next_run_at": now - 1000,
                })
            fired = await asyncio.gather(fire_due(one, now), fire_due(two, now),
                                         fire_due(one, now))
            again = await fire_due(two, now)  # a restart with the same clock
            jobs = await one.list_jobs(queue=None, status=None, schedule_id=None, limit=1000,
                                       offset=0, after=None)
            return sum(fired), again, len(jobs)
        finally:
            await one.close()
            await two.close()

    fired, again, jobs = asyncio.run(race())
    assert (fired, again, jobs) == (20, 0, 20)


# --- restarts, crashes, downtime ---------------------------------------------------------


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_restart_does_not_fire_twice(
    make_server, receiver: Receiver, qname: str, how: str
) -> None:
    srv = make_server()
    api = srv.client()
    schedule, _ = create(api, receiver, qname)
    time.sleep(2.5)
    if how == "sigterm":
        assert srv.stop() == 0
    else:
        srv.kill9()
    srv.start()
    time.sleep(2.5)
    disable(api, schedule["id"])

    jobs = jobs_of(api, schedule["id"])
    lines = fired_lines(srv, schedule["id"])
    if how == "kill9":
        # a crash between a fire's commit and its log line loses only the line
        logged = {e["job"] for e in lines}
        jobs_logged = [j for j in jobs if j["id"] in logged]
        assert len(jobs) - len(jobs_logged) <= 1
    else:
        jobs_logged = jobs
    due = due_times(srv, schedule["id"], jobs_logged)
    assert_one_job_per_fire_time(jobs_logged, due)
    if how == "kill9":
        # The one job whose log line a crash may have lost has no known fire
        # time: two jobs in one second would be a double fire. (With every
        # line logged, the fire-time check above is the exact one: a fire late
        # by a second on a loaded machine shares its second with the next.)
        per_second = Counter(created_ms(j) // 1000 for j in jobs)
        assert max(per_second.values()) == 1, (per_second, describe(lateness(jobs_logged, due)))
    dues = [e["due_ms"] for e in lines]
    assert len(dues) == len(set(dues)), f"a fire time logged twice: {Counter(dues)}"
    # it fired before and after the restart, and caught up at most once in between
    late = lateness(jobs_logged, due)
    print(f"\n{how} restart: {describe(late)}")
    assert len(jobs) >= 4, describe(late)
    assert sum(1 for x in late if x >= 1000) <= 1, describe(late)


def test_missed_fires_after_downtime_fire_once(
    make_server, receiver: Receiver, qname: str
) -> None:
    srv = make_server()
    api = srv.client()
    every, _ = create(api, receiver, qname)
    hourly, hourly_path = create(api, receiver, qname, "0 0 * * * *")
    time.sleep(1.5)
    assert srv.stop() == 0
    stopped = now_ms()
    # three days of hourly fires missed: the storage layer says it was due then
    set_next_run_at(srv.db_path, hourly["id"], next_fire_ms("0 0 * * * *", "UTC",
                                                           stopped - 72 * HOUR_MS))
    time.sleep(max(0.0, 3.5 - (now_ms() - stopped) / 1000))
    srv.start()
    started = now_ms()
    time.sleep(2.5)
    disable(api, every["id"])
    disable(api, hourly["id"])

    # the every-second schedule: one catch-up job for the 3+ s of missed fires, then regular
    jobs = jobs_of(api, every["id"])
    due = due_times(srv, every["id"], jobs)
    assert_one_job_per_fire_time(jobs, due)
    after = [j for j in jobs if created_ms(j) > stopped]
    late = lateness(after, due)
    print(f"\nafter 3.5 s down: {describe(late)}")
    # at least two fire times were missed (3.5 s down), and they made one job
    assert late[0] >= 2000, f"the first fire after the restart is the catch-up: {describe(late)}"
    assert all(x < 1000 for x in late[1:]), describe(late)
    assert [due[j["id"]] for j in after[1:]] == [
        due[after[1]["id"]] + 1000 * i for i in range(len(after) - 1)
    ], "regular fires resume every second after the catch-up"
    assert due[after[1]["id"]] > created_ms(after[0]), "next_run_at moved to a future time"

    # the hourly one: exactly one job for 72 missed fires; next_run_at the next hour
    hourly_jobs = jobs_of(api, hourly["id"])
    assert len(hourly_jobs) == 1, hourly_jobs
    assert created_ms(hourly_jobs[0]) - started < 3000
    receiver.wait_for(hourly_path, 1, timeout=5)
    got = api.get(f"/schedules/{hourly['id']}").expect(200)
    next_run = parse_rfc3339(got["next_run_at"])
    assert next_run % HOUR_MS == 0 and 0 < next_run - created_ms(hourly_jobs[0]) <= HOUR_MS


def test_two_servers_on_one_file_never_fire_twice(
    make_server, receiver: Receiver, qname: str
) -> None:
    config = "[worker]\nscheduler_interval_secs = 1\n"
    first = make_server(config)
    second = make_server(config, start=False)
    second.db_path = first.db_path
    second.start()
    wait_until(lambda: ENGINE_WAITS in second.log_text(), timeout=5,
               message=lambda: f"second server's log says nothing of waiting:\n"
                               f"{second.log_tail(20)}")
    # its API works; the first server's engine fires what it creates (that engine
    # learns of it by its own poll: a wake goes to the server that took the request)
    api = second.client()
    schedule, _ = create(api, receiver, qname)
    time.sleep(3.0)
    # the first server goes away; the second's engine takes over within its retry time
    assert first.stop() == 0
    wait_until(lambda: '"engine started"' in second.log_text(), timeout=8,
               message=lambda: second.log_tail(20))
    time.sleep(2.5)
    disable(api, schedule["id"])

    jobs = jobs_of(api, schedule["id"])
    lines = fired_lines(first, schedule["id"]) + fired_lines(second, schedule["id"])
    by_job = {e["job"]: e["due_ms"] for e in lines}
    assert sorted(by_job) == [j["id"] for j in jobs]
    assert_one_job_per_fire_time(jobs, by_job)
    assert fired_lines(first, schedule["id"]) and fired_lines(second, schedule["id"])
    late = lateness(jobs, by_job)
    print(f"\ntwo servers, hand-over: {describe(late)}")
    assert sum(1 for x in late if x >= 1000) <= 2, describe(late)  # first fire + hand-over


# --- last: the 5-field schedule has reached a minute boundary by now ----------------------


def test_five_field_expression_fires_at_second_zero(
    five_field: tuple[dict, str], api: ApiClient, receiver: Receiver
) -> None:
    schedule, path = five_field
    due = parse_rfc3339(schedule["next_run_at"])
    assert due % 60_000 == 0, schedule["next_run_at"]
    assert 0 < due - parse_rfc3339(schedule["created_at"]) <= 60_000
    jobs = wait_until(lambda: jobs_of(api, schedule["id"]),
                      timeout=max(0.0, (due - now_ms()) / 1000) + 3)
    disable(api, schedule["id"])
    late = created_ms(jobs[0]) - due
    print(f"\n5-field schedule: fired {late} ms after second 0")
    assert 0 <= late < 1000
    receiver.wait_for(path, 1, timeout=5)


# --- measurement (opt-in): firing lateness over a minute -----------------------------------


def percentiles(values: list[int]) -> str:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return (f"p50={q[49]:.0f} p90={q[89]:.0f} p99={q[98]:.0f} max={max(values)} ms "
            f"(n={len(values)})")


@pytest.mark.skipif(not os.environ.get("MININQ_MEASURE_LATENESS"),
                    reason="one minute per run: set MININQ_MEASURE_LATENESS=1")
@pytest.mark.parametrize("load_rps", [0, 200])
def test_lateness_over_a_minute(make_server, receiver: Receiver, qname: str,
                                load_rps: int) -> None:
    """An every-second schedule for 60 s, alone or beside a steady stream of
    enqueued jobs; prints the lateness of the fires and of their deliveries."""
    srv = make_server()
    api = srv.client()
    stop = threading.Event()
    posted = [0]

    def load() -> None:
        client, url = srv.client(), receiver.url(receiver.new_path())
        next_at = time.monotonic()
        while not stop.is_set():
            client.post("/jobs", json={"queue_name": f"{qname}-load", "callback_url": url})
            posted[0] += 1
            next_at += 1 / load_rps
            time.sleep(max(0.0, next_at - time.monotonic()))
        client.close()

    loader = threading.Thread(target=load, daemon=True)
    if load_rps:
        loader.start()
    schedule, path = create(api, receiver, qname)
    time.sleep(60.5)
    disable(api, schedule["id"])
    stop.set()
    if load_rps:
        loader.join(10)

    jobs = jobs_of(api, schedule["id"])
    due = due_times(srv, schedule["id"], jobs)
    assert_one_job_per_fire_time(jobs, due)
    assert len(jobs) >= 60
    created = lateness(jobs, due)
    committed = [e["late_ms"] for e in fired_lines(srv, schedule["id"])]
    hits = {h.headers["x-mininq-job-id"]: h for h in receiver.wait_for(path, len(jobs))}
    delivered = [round(hits[j["id"]].received_at * 1000) - due[j["id"]] for j in jobs]
    print(f"\nevery-second schedule for 60 s, beside {posted[0] / 60.5:.0f} enqueues/s:"
          f"\n  job created_at - fire time:  {percentiles(created)}"
          f"\n  commit - fire time (late_ms): {percentiles(committed)}"
          f"\n  delivery at the receiver:     {percentiles(delivered)}")
    assert max(created) < 1000
