"""The /jobs routes of SPEC §5 against the shared server: create (fields, defaults,
validation, idempotency), batch, listing and paging, one job, cancel, retry, attempts.

Jobs that must stay pending go to a queue created paused, so the engine never
touches them; jobs that must be delivered go to the session's webhook receiver.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from support import ApiClient, Receiver, Reply, Response
from support.asserts import assert_error

NOWHERE = "http://127.0.0.1:9/never"  # never called: its queue is paused
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
JOB_FIELDS = {
    "id", "queue_name", "status", "priority", "callback_url", "payload", "headers",
    "max_retries", "retry_backoff", "base_delay_ms", "max_delay_ms", "timeout_ms",
    "idempotency_key", "attempt", "visible_at", "started_at", "completed_at", "created_at",
    "updated_at", "result", "last_error", "schedule_id",
}  # fmt: skip
DEFAULT_FIELDS = ("max_retries", "retry_backoff", "base_delay_ms", "max_delay_ms", "timeout_ms")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def paused_queue(api: ApiClient, name: str, **settings: Any) -> dict:
    return api.post("/queues", {"name": name, "paused": True, **settings}).expect(201)


def create(api: ApiClient, queue: str, **fields: Any) -> dict:
    return api.post("/jobs", {"callback_url": NOWHERE, "queue_name": queue, **fields}).expect(201)


def batch(api: ApiClient, queue: str, n: int) -> list[dict]:
    jobs = [{"callback_url": NOWHERE, "queue_name": queue, "payload": {"i": i}} for i in range(n)]
    return api.post("/jobs/batch", {"jobs": jobs}).expect(201)["jobs"]


# -- create -------------------------------------------------------------------


def test_create_returns_201_with_every_field(api, qname):
    paused_queue(api, qname)
    resp = api.post(
        "/jobs",
        {
            "callback_url": "https://example.com/hook?x=1",
            "queue_name": qname,
            "priority": -5,
            "payload": {"user": 42, "tags": ["a", "b"], "nested": {"ok": True}},
            "headers": {"X-Tenant": "acme"},
            "idempotency_key": f"{qname}-key",
        },
    )
    job = resp.expect(201)
    assert resp.headers["content-type"].startswith("application/json")
    assert set(job) == JOB_FIELDS
    assert UUID7.match(job["id"]), job["id"]
    assert job["status"] == "pending" and job["attempt"] == 0
    assert job["queue_name"] == qname and job["priority"] == -5
    assert job["callback_url"] == "https://example.com/hook?x=1"
    assert job["payload"] == {"user": 42, "tags": ["a", "b"], "nested": {"ok": True}}
    assert job["headers"] == {"X-Tenant": "acme"}
    assert job["idempotency_key"] == f"{qname}-key"
    for f in ("visible_at", "created_at", "updated_at"):
        assert RFC3339_MS.match(job[f]), (f, job[f])
    for f in ("started_at", "completed_at", "result", "last_error", "schedule_id"):
        assert job[f] is None, (f, job)
    assert api.get(f"/jobs/{job['id']}").expect(200) == job


def test_defaults_come_from_the_job_then_the_queue_then_the_config(api, qname):
    # A queue without settings shows the effective [defaults] of the server.
    plain = paused_queue(api, f"{qname}-plain")
    bare = create(api, f"{qname}-plain")
    for f in DEFAULT_FIELDS:
        assert bare[f] == plain[f], (f, bare, plain)
    assert bare["priority"] == 0 and bare["payload"] == {} and bare["headers"] is None

    paused_queue(api, qname, max_retries=7, retry_backoff="linear", timeout_ms=1234)
    from_queue = create(api, qname)
    assert (from_queue["max_retries"], from_queue["retry_backoff"], from_queue["timeout_ms"]) == (
        7, "linear", 1234,
    )  # fmt: skip
    assert from_queue["base_delay_ms"] == plain["base_delay_ms"]
    assert from_queue["max_delay_ms"] == plain["max_delay_ms"]

    own = create(api, qname, max_retries=0, retry_backoff="fixed", base_delay_ms=5,
                 max_delay_ms=50, timeout_ms=99)  # fmt: skip
    assert [own[f] for f in DEFAULT_FIELDS] == [0, "fixed", 5, 50, 99]
    # null means "not given": the queue's value applies.
    nulls = create(api, qname, max_retries=None, timeout_ms=None)
    assert (nulls["max_retries"], nulls["timeout_ms"]) == (7, 1234)


def test_the_default_queue_is_default(api):
    # A far-off delay keeps the engine away from it; cancelled at once.
    job = api.post("/jobs", {"callback_url": NOWHERE, "delay_ms": 3_600_000}).expect(201)
    assert job["queue_name"] == "default"
    api.delete(f"/jobs/{job['id']}").expect(200)


@pytest.mark.parametrize("payload", [[1, 2], "text", 7, 2.5, None, True, {"deep": [{"x": None}]}])
def test_payload_takes_any_json_value(api, qname, payload):
    paused_queue(api, qname)
    raw = api.post(
        "/jobs",
        raw=b'{"callback_url": "%s", "queue_name": "%s", "payload": %s}'
        % (NOWHERE.encode(), qname.encode(), _dumps(payload)),
    )
    job = raw.expect(201)
    assert job["payload"] == payload
    assert api.get(f"/jobs/{job['id']}").expect(200)["payload"] == payload


def _dumps(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()


@pytest.mark.parametrize("bad", [True, False, 1.5, 1.0, "3", None, [1], {"n": 1}, 2**31])
def test_priority_must_be_a_json_integer(api, qname, bad):
    assert_error(api.post("/jobs", {"callback_url": NOWHERE, "queue_name": qname,
                                    "priority": bad}), 400, "priority")  # fmt: skip


@pytest.mark.parametrize(
    "field, bad",
    [
        ("max_retries", -1), ("max_retries", "3"), ("max_retries", 2.0), ("max_retries", 10**6),
        ("retry_backoff", "random"), ("retry_backoff", 1),
        ("base_delay_ms", -5), ("base_delay_ms", 1.5), ("max_delay_ms", "10"),
        ("timeout_ms", 0), ("timeout_ms", True),
        ("queue_name", ""), ("queue_name", "has space"), ("queue_name", "x" * 129),
        ("queue_name", 5), ("queue_name", "a/b"), ("queue_name", None),
        ("idempotency_key", ""), ("idempotency_key", 5), ("idempotency_key", "k" * 256),
        ("delay_ms", -1), ("delay_ms", 1.5), ("delay_ms", "10"),
        ("run_at", "tomorrow"), ("run_at", "2026-11-27T10:00:00"), ("run_at", 1700000000),
        ("run_at", "2026-13-01T00:00:00Z"),
    ],
)  # fmt: skip
def test_wrong_types_and_ranges_are_400_naming_the_field(api, qname, field, bad):
    body = {"callback_url": NOWHERE, "queue_name": qname, field: bad}
    assert_error(api.post("/jobs", body), 400, field)


def test_unknown_field_is_400_naming_it(api, qname):
    body = {"callback_url": NOWHERE, "queue_name": qname, "prio": 3}
    assert_error(api.post("/jobs", body), 400, "prio")
    assert_error(api.get(f"/queues/{qname}"), 404)  # nothing was created, not even the queue


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "/relative/path", "http://", "example.com/hook", "not a url", "",
     "http://exa mple.com/", "http://example.com:99999/", "javascript:alert(1)", 42, None,
     ["http://a/"]],
)  # fmt: skip
def test_bad_callback_url_is_400(api, qname, url):
    assert_error(api.post("/jobs", {"callback_url": url, "queue_name": qname}), 400, "callback_url")


def test_missing_callback_url_is_400(api, qname):
    assert_error(api.post("/jobs", {"queue_name": qname}), 400, "callback_url")


def test_delay_ms_sets_visible_at(api, qname):
    paused_queue(api, qname)
    job = create(api, qname, delay_ms=90_000)
    gap = ms(job["visible_at"]) - ms(job["created_at"])
    assert 89_000 <= gap <= 90_000, f"visible_at - created_at = {gap} ms for delay_ms 90000"
    zero = create(api, qname, delay_ms=0)
    assert abs(ms(zero["visible_at"]) - ms(zero["created_at"])) < 1000, zero


def test_run_at_sets_visible_at_in_utc(api, qname):
    paused_queue(api, qname)
    job = create(api, qname, run_at="2031-05-06T09:08:07.654+02:00")
    assert job["visible_at"] == "2031-05-06T07:08:07.654Z"
    assert create(api, qname, run_at="2031-05-06T07:08:07Z")["visible_at"] == (
        "2031-05-06T07:08:07.000Z"
    )


def test_delay_ms_and_run_at_together_is_400(api, qname):
    body = {"callback_url": NOWHERE, "queue_name": qname, "delay_ms": 5,
            "run_at": "2031-01-01T00:00:00Z"}  # fmt: skip
    message = assert_error(api.post("/jobs", body), 400)
    assert "delay_ms" in message and "run_at" in message, message


@pytest.mark.parametrize(
    "headers, field",
    [
        ("X-A: 1", "headers"),
        (["X-A"], "headers"),
        ({"X-A": 1}, "headers.X-A"),
        ({"X-A": None}, "headers.X-A"),
        ({"X-A": "two\nlines"}, "headers.X-A"),
        ({"bad name": "v"}, "headers.bad name"),
        ({"Content-Type": "text/plain"}, "headers.Content-Type"),
        ({"user-agent": "me"}, "headers.user-agent"),
        ({"X-Mininq-Job-Id": "x"}, "headers.X-Mininq-Job-Id"),
        ({"Host": "evil"}, "headers.Host"),
        ({f"X-{i}": "v" for i in range(65)}, "headers"),
    ],
)
def test_headers_must_be_an_object_of_strings_mininq_does_not_set(api, qname, headers, field):
    body = {"callback_url": NOWHERE, "queue_name": qname, "headers": headers}
    assert_error(api.post("/jobs", body), 400, field)


def test_headers_are_kept(api, qname):
    paused_queue(api, qname)
    job = create(api, qname, headers={"X-Trace": "abc-123", "Authorization": "Bearer t"})
    assert job["headers"] == {"X-Trace": "abc-123", "Authorization": "Bearer t"}


# -- idempotency --------------------------------------------------------------


def test_same_idempotency_key_answers_200_with_the_same_job(api, qname):
    paused_queue(api, qname)
    first = api.post("/jobs", {"callback_url": NOWHERE, "queue_name": qname,
                               "idempotency_key": qname, "payload": {"n": 1}})  # fmt: skip
    job = first.expect(201)
    again = api.post("/jobs", {"callback_url": NOWHERE, "queue_name": qname,
                               "idempotency_key": qname, "payload": {"n": 2}})  # fmt: skip
    assert again.expect(200) == job  # the stored job, not the new body
    assert len(api.get("/jobs", queue=qname).expect(200)) == 1


def test_twenty_concurrent_creates_with_one_key_make_one_job(server, qname):
    client = server.client()
    paused_queue(client, qname)
    body = {"callback_url": NOWHERE, "queue_name": qname, "idempotency_key": f"race-{qname}"}
    start = threading.Barrier(20)

    def one(_: int) -> Response:
        start.wait()
        return client.post("/jobs", body)

    try:
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(one, range(20)))
    finally:
        client.close()
    statuses = sorted(r.status for r in answers)
    assert statuses == [200] * 19 + [201], statuses
    assert len({r.json["id"] for r in answers}) == 1, [r.json for r in answers]
    assert [j["id"] for j in api_list(server, qname)] == [answers[0].json["id"]]


def api_list(server, queue: str) -> list[dict]:
    with server.client() as client:
        return client.get("/jobs", queue=queue, limit=1000).expect(200)


def test_idempotency_key_is_free_again_once_its_job_is_gone(api, qname):
    paused_queue(api, qname)
    key = f"gone-{qname}"
    first = create(api, qname, idempotency_key=key)
    api.delete(f"/jobs/{first['id']}").expect(200)
    assert api.post(f"/queues/{qname}/purge", query={"status": "cancelled"}).expect(200) == {
        "purged": 1
    }
    second = create(api, qname, idempotency_key=key)
    assert second["id"] != first["id"]


# -- batch --------------------------------------------------------------------


def test_batch_creates_all_in_order(api, qname):
    paused_queue(api, qname)
    items = [{"callback_url": NOWHERE, "queue_name": qname, "payload": {"i": i}, "priority": i}
             for i in range(5)]  # fmt: skip
    resp = api.post("/jobs/batch", {"jobs": items})
    jobs = resp.expect(201)["jobs"]
    assert set(resp.json) == {"jobs"}
    assert [j["payload"] for j in jobs] == [{"i": i} for i in range(5)]
    assert [j["priority"] for j in jobs] == list(range(5))
    assert all(set(j) == JOB_FIELDS and j["status"] == "pending" for j in jobs)
    assert [j["id"] for j in jobs] == sorted(j["id"] for j in jobs), "ids follow creation order"
    assert api.get(f"/queues/{qname}").expect(200)["pending"] == 5


def test_batch_with_an_existing_idempotency_key_returns_the_existing_job(api, qname):
    paused_queue(api, qname)
    old = create(api, qname, idempotency_key=f"b-{qname}")
    jobs = api.post("/jobs/batch", {"jobs": [
        {"callback_url": NOWHERE, "queue_name": qname},
        {"callback_url": NOWHERE, "queue_name": qname, "idempotency_key": f"b-{qname}"},
    ]}).expect(201)["jobs"]  # fmt: skip
    assert jobs[1] == old and jobs[0]["id"] != old["id"]
    assert api.get(f"/queues/{qname}").expect(200)["pending"] == 2


def test_batch_of_1000_is_taken_and_limit_is_capped_at_1000(api, qname):
    paused_queue(api, qname)
    created = batch(api, qname, 1000)
    assert len(created) == 1000
    create(api, qname)
    assert api.get(f"/queues/{qname}").expect(200)["pending"] == 1001
    assert len(api.get("/jobs", queue=qname, limit=5000).expect(200)) == 1000
    assert len(api.get("/jobs", queue=qname, limit=1000, offset=1000).expect(200)) == 1
    assert len(api.get("/jobs", limit=10**30).expect(200)) == 1000
    assert len(api.get("/jobs", queue=qname).expect(200)) == 50, "the default limit is 50"


def test_batch_over_1000_is_400(api, qname):
    jobs = [{"callback_url": NOWHERE, "queue_name": qname}] * 1001
    assert_error(api.post("/jobs/batch", {"jobs": jobs}), 400, "jobs")
    assert_error(api.get(f"/queues/{qname}"), 404)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"jobs": []}, "jobs"),
        ({}, "jobs"),
        ({"jobs": {"callback_url": NOWHERE}}, "jobs"),
        ({"jobs": None}, "jobs"),
        ({"jobs": [{"callback_url": NOWHERE}], "extra": 1}, "extra"),
        ([{"callback_url": NOWHERE}], "body"),
        ({"jobs": [{"callback_url": NOWHERE}, 5]}, "jobs[1]"),
        ({"jobs": [{"callback_url": NOWHERE}, {"callback_url": NOWHERE, "bogus": 1}]},
         "jobs[1].bogus"),
    ],
)  # fmt: skip
def test_malformed_batches_are_400(api, body, field):
    assert_error(api.post("/jobs/batch", body), 400, field)


def test_one_bad_item_rejects_the_whole_batch(api, qname):
    items = [{"callback_url": NOWHERE, "queue_name": qname, "payload": {"i": i}} for i in range(6)]
    items[3]["callback_url"] = "not-a-url"
    assert_error(api.post("/jobs/batch", {"jobs": items}), 400, "jobs[3].callback_url")
    items[3]["callback_url"] = NOWHERE
    items[5]["priority"] = 1.5
    assert_error(api.post("/jobs/batch", {"jobs": items}), 400, "jobs[5].priority")
    assert_error(api.get(f"/queues/{qname}"), 404)  # no job, not even its queue
    assert api.get("/jobs", queue=qname).expect(200) == []


# -- listing ------------------------------------------------------------------


def test_list_is_newest_first_and_filters_by_queue_and_status(api, qname):
    paused_queue(api, qname)
    paused_queue(api, f"{qname}-other")
    ids = [create(api, qname)["id"] for _ in range(4)]
    create(api, f"{qname}-other")
    api.delete(f"/jobs/{ids[1]}").expect(200)

    listed = api.get("/jobs", queue=qname).expect(200)
    assert [j["id"] for j in listed] == ids[::-1]
    assert all(set(j) == JOB_FIELDS for j in listed)
    cancelled = api.get("/jobs", queue=qname, status="cancelled").expect(200)
    assert [j["id"] for j in cancelled] == [ids[1]]
    pending = api.get("/jobs", queue=qname, status="pending").expect(200)
    assert [j["id"] for j in pending] == [ids[3], ids[2], ids[0]]
    assert api.get("/jobs", queue=qname, status="dead").expect(200) == []
    assert api.get("/jobs", queue=f"{qname}-nope").expect(200) == []
    everything = [j["id"] for j in api.get("/jobs", status="pending", limit=1000).expect(200)]
    assert everything == sorted(everything, reverse=True)
    assert ids[3] in everything  # newest first: the newest ones are on the first page


def test_offset_skips_rows(api, qname):
    paused_queue(api, qname)
    ids = [j["id"] for j in batch(api, qname, 7)][::-1]
    assert [j["id"] for j in api.get("/jobs", queue=qname, limit=3, offset=2).expect(200)] == (
        ids[2:5]
    )
    page = api.get("/jobs", queue=qname, status="pending", limit=3, offset=5).expect(200)
    assert [j["id"] for j in page] == ids[5:]
    assert api.get("/jobs", queue=qname, offset=7).expect(200) == []


def test_after_pages_through_120_jobs_without_gaps_or_duplicates(api, qname):
    paused_queue(api, qname)
    paused_queue(api, f"{qname}-gone")
    first = batch(api, qname, 60)
    # A job created between the two halves, then deleted: its id no longer exists.
    gone = create(api, f"{qname}-gone")["id"]
    api.delete(f"/jobs/{gone}").expect(200)
    api.delete(f"/queues/{qname}-gone").expect(200)
    assert_error(api.get(f"/jobs/{gone}"), 404)
    second = batch(api, qname, 60)
    expected = [j["id"] for j in first + second][::-1]

    for status in (None, "pending"):  # the per-status merge and the plain scan
        seen: list[str] = []
        after = None
        while True:
            page = api.get("/jobs", queue=qname, status=status, limit=25, after=after).expect(200)
            if not page:
                break
            seen += [j["id"] for j in page]
            after = page[-1]["id"]
        assert seen == expected, f"status={status}: {len(seen)} ids, {len(set(seen))} distinct"

    older = api.get("/jobs", queue=qname, after=gone, limit=1000).expect(200)
    assert [j["id"] for j in older] == [j["id"] for j in first][::-1]
    upper = api.get("/jobs", queue=qname, after=gone.upper(), limit=1000).expect(200)
    assert len(upper) == 60


@pytest.mark.parametrize(
    "query, field",
    [
        ({"status": "bogus"}, "status"),
        ({"status": "PENDING"}, "status"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": "\u00b2"}, "limit"),  # a digit to str.isdigit(), not to int()
        ({"limit": "\uff11"}, "limit"),  # a full-width 1
        ({"offset": "x"}, "offset"),
        ({"offset": "9" * 30}, "offset"),
        ({"offset": "9" * 5000}, "offset"),
        ({"after": "not-an-id"}, "after"),
        ({"after": "1234"}, "after"),
        ({"schedule_id": "nope"}, "schedule_id"),
        ({"queue": "bad name"}, "queue"),
        ({"sort": "id"}, "sort"),
        ({"queue": ""}, "queue"),
        ({"status": ""}, "status"),
        ({"limit": ""}, "limit"),
        ({"after": ""}, "after"),
        ({"schedule_id": ""}, "schedule_id"),
    ],
)
def test_bad_list_queries_are_400_naming_the_parameter(api, query, field):
    assert_error(api.get("/jobs", **query), 400, field)


# -- one job, cancel, retry -----------------------------------------------------

UNKNOWN_ID = "01900000-0000-7000-8000-000000000000"
MALFORMED_IDS = ["nope", "12345", "01900000-0000-7000-8000-00000000000g", "x" * 300, "%00", "%ff"]


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, *MALFORMED_IDS])
def test_unknown_or_malformed_job_ids_are_404(api, job_id):
    assert_error(api.get(f"/jobs/{job_id}"), 404)
    assert_error(api.delete(f"/jobs/{job_id}"), 404)
    assert_error(api.post(f"/jobs/{job_id}/retry"), 404)
    assert_error(api.get(f"/jobs/{job_id}/attempts"), 404)


def test_get_job_takes_the_id_in_upper_case(api, qname):
    paused_queue(api, qname)
    job = create(api, qname)
    assert api.get(f"/jobs/{job['id'].upper()}").expect(200)["id"] == job["id"]


def test_cancel_a_pending_job(api, qname):
    paused_queue(api, qname)
    job = create(api, qname)
    assert api.delete(f"/jobs/{job['id']}").expect(200) == {"status": "cancelled", "id": job["id"]}
    after = api.get(f"/jobs/{job['id']}").expect(200)
    assert after["status"] == "cancelled"
    assert "cancelled" in assert_error(api.delete(f"/jobs/{job['id']}"), 409)


def test_retry_a_cancelled_job(api, qname):
    paused_queue(api, qname)
    job = create(api, qname)
    api.delete(f"/jobs/{job['id']}").expect(200)
    again = api.post(f"/jobs/{job['id']}/retry").expect(200)
    assert again["id"] == job["id"] and again["status"] == "pending" and again["attempt"] == 0
    assert "pending" in assert_error(api.post(f"/jobs/{job['id']}/retry"), 409)


def test_retry_a_dead_job_and_it_is_delivered_again(api, qname, receiver: Receiver):
    path = receiver.new_path()
    receiver.respond(path, Reply(400, "no thanks"), Reply(200, "thanks"))
    job = api.post("/jobs", {"callback_url": receiver.url(path), "queue_name": qname,
                             "max_retries": 3}).expect(201)  # fmt: skip
    dead = api.wait_job(job["id"], "dead")
    assert dead["attempt"] == 1 and dead["last_error"].startswith("HTTP 400"), dead
    assert_error(api.delete(f"/jobs/{job['id']}"), 409)

    api.post(f"/queues/{qname}/pause").expect(200)
    again = api.post(f"/jobs/{job['id']}/retry").expect(200)
    assert (again["status"], again["attempt"]) == ("pending", 0), again
    api.post(f"/queues/{qname}/resume").expect(200)
    done = api.wait_job(job["id"], "completed")
    assert done["attempt"] == 1 and done["result"] == "thanks", done
    assert len(receiver.hits(path)) == 2
    assert "completed" in assert_error(api.post(f"/jobs/{job['id']}/retry"), 409)
    assert_error(api.delete(f"/jobs/{job['id']}"), 409)


def test_attempts_list_every_attempt_in_order(api, qname, receiver: Receiver):
    path = receiver.new_path()
    receiver.respond(path, Reply(503, "busy"), Reply(200, "done"))
    job = api.post("/jobs", {"callback_url": receiver.url(path), "queue_name": qname,
                             "max_retries": 2, "base_delay_ms": 10}).expect(201)  # fmt: skip
    done = api.wait_job(job["id"], "completed")
    attempts = api.get(f"/jobs/{job['id']}/attempts").expect(200)
    assert [a["attempt"] for a in attempts] == [1, 2], attempts
    first, second = attempts
    assert set(first) == {"attempt", "started_at", "duration_ms", "status_code", "outcome", "error"}
    assert (first["outcome"], first["status_code"]) == ("retry", 503), first
    assert first["error"].startswith("HTTP 503"), first
    assert (second["outcome"], second["status_code"], second["error"]) == ("completed", 200, None)
    for a in attempts:
        assert RFC3339_MS.match(a["started_at"]) and type(a["duration_ms"]) is int, a
    assert ms(first["started_at"]) <= ms(second["started_at"])
    assert done["result"] == "done" and done["last_error"] in (None, first["error"]), done


def test_attempts_of_a_job_not_yet_tried_is_an_empty_list(api, qname):
    paused_queue(api, qname)
    job = create(api, qname)
    assert api.get(f"/jobs/{job['id']}/attempts").expect(200) == []


def test_times_are_utc_with_milliseconds(api, qname):
    paused_queue(api, qname)
    before = datetime.now(UTC).timestamp() * 1000
    job = create(api, qname)
    after = datetime.now(UTC).timestamp() * 1000
    created = ms(job["created_at"])
    assert before - 1000 <= created <= after + 1000, (before, job["created_at"], after)
