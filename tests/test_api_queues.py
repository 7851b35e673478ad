"""The /queues routes of SPEC §5 against the shared server: create, list, one with
counts, change, delete, pause and resume (checked with real deliveries),
retry-dead and purge, and 404 for every route on a queue that doesn't exist."""

from __future__ import annotations

import time
from typing import Any

import pytest
from support import ApiClient, Receiver, Reply
from support.asserts import assert_error

NOWHERE = "http://127.0.0.1:9/never"  # never called: its queue is paused
QUEUE_FIELDS = {
    "name", "max_concurrency", "rate_limit_rps", "rate_limit_burst", "paused",
    "max_retries", "retry_backoff", "base_delay_ms", "max_delay_ms", "timeout_ms",
    "pending", "running", "completed", "dead", "cancelled", "created_at", "updated_at",
}  # fmt: skip
COUNTS = ("pending", "running", "completed", "dead", "cancelled")


def counts(queue: dict) -> dict[str, int]:
    return {s: queue[s] for s in COUNTS}


def job(api: ApiClient, queue: str, url: str = NOWHERE, **fields: Any) -> dict:
    return api.post("/jobs", {"callback_url": url, "queue_name": queue, **fields}).expect(201)


@pytest.fixture(scope="module")
def defaults(api: ApiClient) -> dict:
    """The server's effective [defaults], as a queue without settings shows them."""
    name = f"defaults-{time.monotonic_ns()}"
    queue = api.post("/queues", {"name": name}).expect(201)
    api.delete(f"/queues/{name}").expect(200)
    return queue


# -- create -------------------------------------------------------------------


def test_create_returns_201_with_settings_and_zero_counts(api, qname, defaults):
    resp = api.post("/queues", {"name": qname, "max_concurrency": 3, "rate_limit_rps": 2.5,
                                "max_retries": 9, "retry_backoff": "fixed"})  # fmt: skip
    queue = resp.expect(201)
    assert set(queue) == QUEUE_FIELDS
    assert queue["name"] == qname and queue["paused"] is False
    assert (queue["max_concurrency"], queue["rate_limit_rps"]) == (3, 2.5)
    assert queue["rate_limit_burst"] == 2.5, "burst defaults to max(1, rps)"
    assert (queue["max_retries"], queue["retry_backoff"]) == (9, "fixed")
    for f in ("base_delay_ms", "max_delay_ms", "timeout_ms"):
        assert queue[f] == defaults[f], f"{f}: unset settings show the effective default"
    assert counts(queue) == dict.fromkeys(COUNTS, 0)
    assert api.get(f"/queues/{qname}").expect(200) == queue


def test_defaults_of_a_bare_queue(defaults):
    assert defaults["max_concurrency"] == 10  # [defaults] queue_max_concurrency
    assert defaults["rate_limit_rps"] is None and defaults["rate_limit_burst"] is None
    assert defaults["max_retries"] == 3 and defaults["retry_backoff"] == "exponential"
    # The shared server sets these in its config file (conftest SHARED_SERVER_CONFIG).
    assert (defaults["base_delay_ms"], defaults["max_delay_ms"], defaults["timeout_ms"]) == (
        100, 2000, 5000,
    )  # fmt: skip


def test_small_rates_get_a_burst_of_one(api, qname):
    queue = api.post("/queues", {"name": qname, "rate_limit_rps": 0.2}).expect(201)
    assert (queue["rate_limit_rps"], queue["rate_limit_burst"]) == (0.2, 1.0)
    queue = api.put(f"/queues/{qname}", {"rate_limit_burst": 7}).expect(200)
    assert queue["rate_limit_burst"] == 7


def test_create_twice_is_409(api, qname):
    api.post("/queues", {"name": qname}).expect(201)
    assert qname in assert_error(api.post("/queues", {"name": qname}), 409)


def test_a_queue_made_by_a_job_exists(api, qname):
    job(api, qname, delay_ms=3_600_000)
    assert_error(api.post("/queues", {"name": qname}), 409)
    assert api.get(f"/queues/{qname}").expect(200)["pending"] == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"name": 7}, "name"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": 1.5}, "max_concurrency"),
        ({"max_concurrency": 2.0}, "max_concurrency"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"max_concurrency": "3"}, "max_concurrency"),
        ({"max_concurrency": None}, "max_concurrency"),
        ({"rate_limit_rps": 0}, "rate_limit_rps"),
        ({"rate_limit_rps": -1}, "rate_limit_rps"),
        ({"rate_limit_rps": "5"}, "rate_limit_rps"),
        ({"rate_limit_rps": True}, "rate_limit_rps"),
        ({"rate_limit_burst": 0}, "rate_limit_burst"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.0}, "max_retries"),
        ({"retry_backoff": "quadratic"}, "retry_backoff"),
        ({"base_delay_ms": "100"}, "base_delay_ms"),
        ({"timeout_ms": 0}, "timeout_ms"),
        ({"paused": "yes"}, "paused"),
        ({"paused": 1}, "paused"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_create_validation_names_the_field(api, qname, body, field):
    body = {"name": qname, **body} if "name" not in body and body != {} else body
    assert_error(api.post("/queues", body), 400, field)
    assert_error(api.get(f"/queues/{qname}"), 404)


def test_create_needs_a_json_object(api):
    assert_error(api.post("/queues", ["q"]), 400, "body")
    assert_error(api.post("/queues", raw=b'{"name": '), 400, "body")
    assert_error(api.post("/queues"), 400, "body")


# -- list and get ---------------------------------------------------------------


def test_list_is_sorted_by_name(api, qname):
    for suffix in ("b", "c", "a"):
        api.post("/queues", {"name": f"{qname}-{suffix}"}).expect(201)
    names = [q["name"] for q in api.get("/queues").expect(200)]
    assert names == sorted(names)
    assert [n for n in names if n.startswith(qname)] == [f"{qname}-{s}" for s in "abc"]
    assert all(set(q) == QUEUE_FIELDS for q in api.get("/queues").expect(200))


def test_names_with_every_allowed_character_work_in_paths(api, qname):
    name = f"{qname}:Mixed.Case_x-1"
    api.post("/queues", {"name": name}).expect(201)
    assert api.get(f"/queues/{name}").expect(200)["name"] == name
    assert api.post(f"/queues/{name}/pause").expect(200)["paused"] is True
    assert api.delete(f"/queues/{name}").expect(200) == {"status": "deleted", "name": name}
    assert_error(api.get(f"/queues/{qname}:mixed.case_x-1"), 404)  # names are case-sensitive


def test_counts_follow_the_jobs(api, qname, receiver: Receiver):
    ok, no = receiver.new_path(), receiver.new_path()
    receiver.respond(no, Reply(404, "gone"))
    done = job(api, qname, receiver.url(ok))
    dead = job(api, qname, receiver.url(no))
    api.wait_job(done["id"], "completed")
    api.wait_job(dead["id"], "dead")
    api.post(f"/queues/{qname}/pause").expect(200)
    kept = job(api, qname)
    dropped = job(api, qname)
    api.delete(f"/jobs/{dropped['id']}").expect(200)
    queue = api.get(f"/queues/{qname}").expect(200)
    assert counts(queue) == {"pending": 1, "running": 0, "completed": 1, "dead": 1,
                             "cancelled": 1}, queue  # fmt: skip
    listed = next(q for q in api.get("/queues").expect(200) if q["name"] == qname)
    assert listed == queue
    assert kept["status"] == "pending"


# -- change -------------------------------------------------------------------


def test_put_changes_only_the_given_fields(api, qname, defaults):
    created = api.post("/queues", {"name": qname, "max_retries": 5}).expect(201)
    changed = api.put(f"/queues/{qname}", {"max_concurrency": 2, "timeout_ms": 777}).expect(200)
    assert (changed["max_concurrency"], changed["timeout_ms"]) == (2, 777)
    assert changed["max_retries"] == 5, "fields not given are kept"
    assert changed["created_at"] == created["created_at"]
    back = api.put(f"/queues/{qname}", {"max_retries": None, "timeout_ms": None}).expect(200)
    assert (back["max_retries"], back["timeout_ms"]) == (defaults["max_retries"],
                                                          defaults["timeout_ms"])  # fmt: skip
    limited = api.put(f"/queues/{qname}", {"rate_limit_rps": 3}).expect(200)
    assert (limited["rate_limit_rps"], limited["rate_limit_burst"]) == (3, 3)
    unlimited = api.put(f"/queues/{qname}", {"rate_limit_rps": None}).expect(200)
    assert (unlimited["rate_limit_rps"], unlimited["rate_limit_burst"]) == (None, None)
    assert api.get(f"/queues/{qname}").expect(200) == unlimited


def test_new_job_defaults_apply_to_jobs_created_afterwards_only(api, qname):
    api.post("/queues", {"name": qname, "paused": True, "max_retries": 1}).expect(201)
    before = job(api, qname)
    api.put(f"/queues/{qname}", {"max_retries": 6, "retry_backoff": "linear"}).expect(200)
    after = job(api, qname)
    assert (before["max_retries"], after["max_retries"]) == (1, 6)
    assert after["retry_backoff"] == "linear"
    assert api.get(f"/jobs/{before['id']}").expect(200)["max_retries"] == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "body"),
        ({"name": "renamed"}, "name"),
        ({"paused": "no"}, "paused"),
        ({"max_concurrency": -2}, "max_concurrency"),
        ({"rate_limit_rps": 0.0}, "rate_limit_rps"),
    ],
)
def test_put_validation(api, qname, body, field):
    api.post("/queues", {"name": qname}).expect(201)
    assert_error(api.put(f"/queues/{qname}", body), 400, field)


# -- delete -------------------------------------------------------------------


def test_delete_is_refused_with_pending_jobs_then_removes_finished_jobs(api, qname):
    api.post("/queues", {"name": qname, "paused": True}).expect(201)
    jobs = [job(api, qname) for _ in range(3)]
    assert "pending" in assert_error(api.delete(f"/queues/{qname}"), 409)
    for j in jobs:
        api.delete(f"/jobs/{j['id']}").expect(200)
    assert api.delete(f"/queues/{qname}").expect(200) == {"status": "deleted", "name": qname}
    assert_error(api.get(f"/queues/{qname}"), 404)
    for j in jobs:
        assert_error(api.get(f"/jobs/{j['id']}"), 404)
    assert qname not in [q["name"] for q in api.get("/queues").expect(200)]
    assert_error(api.delete(f"/queues/{qname}"), 404)


def test_delete_is_refused_while_a_job_runs(api, qname, receiver: Receiver):
    path = receiver.new_path()
    receiver.respond(path, Reply(200, "slow", delay_s=1.5))
    running = job(api, qname, receiver.url(path))
    receiver.wait_for(path, 1)
    assert "running" in assert_error(api.delete(f"/queues/{qname}"), 409)
    api.wait_job(running["id"], "completed")
    api.delete(f"/queues/{qname}").expect(200)


def test_a_deleted_queue_can_be_made_again(api, qname):
    api.post("/queues", {"name": qname, "max_retries": 9}).expect(201)
    api.delete(f"/queues/{qname}").expect(200)
    again = api.post("/queues", {"name": qname}).expect(201)
    assert again["max_retries"] == 3, "none of the old settings survive"


# -- pause and resume -----------------------------------------------------------


def test_a_paused_queue_delivers_nothing_until_resumed(api, qname, receiver: Receiver):
    path = receiver.new_path()
    api.post("/queues", {"name": qname}).expect(201)
    paused = api.post(f"/queues/{qname}/pause").expect(200)
    assert set(paused) == QUEUE_FIELDS and paused["paused"] is True
    assert api.post(f"/queues/{qname}/pause").expect(200)["paused"] is True  # idempotent
    jobs = [job(api, qname, receiver.url(path), payload={"i": i}) for i in range(3)]
    time.sleep(1.0)
    assert receiver.hits(path) == [], "a paused queue's jobs were delivered"
    for j in jobs:
        assert api.get(f"/jobs/{j['id']}").expect(200)["attempt"] == 0
    resumed = api.post(f"/queues/{qname}/resume").expect(200)
    assert resumed["paused"] is False and resumed["pending"] == 3
    started = time.monotonic()
    hits = receiver.wait_for(path, 3, timeout=10)
    waited = time.monotonic() - started
    assert sorted(h.json["i"] for h in hits) == [0, 1, 2]
    for j in jobs:
        api.wait_job(j["id"], "completed")
    assert waited < 3.0, f"resume took {waited:.2f} s to deliver (should wake the engine)"


# -- retry-dead and purge -------------------------------------------------------


def test_retry_dead_puts_every_dead_job_back(api, qname, receiver: Receiver):
    path = receiver.new_path()
    receiver.respond(path, Reply(410, "gone"))
    dead = [job(api, qname, receiver.url(path)) for _ in range(3)]
    for j in dead:
        api.wait_job(j["id"], "dead")
    api.post(f"/queues/{qname}/pause").expect(200)
    other = job(api, qname)
    assert api.post(f"/queues/{qname}/retry-dead").expect(200) == {"retried": 3}
    for j in dead:
        back = api.get(f"/jobs/{j['id']}").expect(200)
        assert (back["status"], back["attempt"]) == ("pending", 0), back
    assert counts(api.get(f"/queues/{qname}").expect(200))["pending"] == 4
    assert api.get(f"/jobs/{other['id']}").expect(200)["status"] == "pending"
    assert api.post(f"/queues/{qname}/retry-dead").expect(200) == {"retried": 0}


def test_purge_deletes_the_jobs_of_one_status(api, qname):
    api.post("/queues", {"name": qname, "paused": True}).expect(201)
    jobs = [job(api, qname) for _ in range(5)]
    for j in jobs[:2]:
        api.delete(f"/jobs/{j['id']}").expect(200)
    purge = f"/queues/{qname}/purge"
    assert api.post(purge, query={"status": "cancelled"}).expect(200) == {"purged": 2}
    assert api.post(purge, query={"status": "cancelled"}).expect(200) == {"purged": 0}
    assert api.post(purge, query={"status": "dead"}).expect(200) == {"purged": 0}
    assert counts(api.get(f"/queues/{qname}").expect(200))["cancelled"] == 0
    assert_error(api.get(f"/jobs/{jobs[0]['id']}"), 404)
    assert api.post(purge, query={"status": "pending"}).expect(200) == {"purged": 3}
    assert api.get("/jobs", queue=qname).expect(200) == []
    assert counts(api.get(f"/queues/{qname}").expect(200)) == dict.fromkeys(COUNTS, 0)


@pytest.mark.parametrize(
    "query", [{}, {"status": ""}, {"status": "running"}, {"status": "bogus"}, {"status": "Dead"}]
)
def test_purge_needs_a_purgeable_status(api, qname, query):
    api.post("/queues", {"name": qname}).expect(201)
    assert_error(api.post(f"/queues/{qname}/purge", query=query), 400, "status")


# -- unknown queues -------------------------------------------------------------


@pytest.mark.parametrize(
    "method, suffix, body",
    [
        ("GET", "", None),
        ("PUT", "", {"paused": True}),
        ("DELETE", "", None),
        ("POST", "/pause", None),
        ("POST", "/resume", None),
        ("POST", "/retry-dead", None),
        ("POST", "/purge?status=dead", None),
    ],
)
@pytest.mark.parametrize("name", ["nope", "has%20space", "x" * 200])
def test_every_route_of_an_unknown_queue_is_404(api, qname, method, suffix, body, name):
    name = f"{qname}-{name}"
    resp = api.request(method, f"/queues/{name}{suffix}", json=body)
    assert_error(resp, 404)
    assert_error(api.get(f"/queues/{name}"), 404)  # nothing made it exist
