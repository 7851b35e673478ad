"""The /schedules routes of SPEC §5 against the shared server: create with cron and
zone validation, list and get, change (recomputing next_run_at), delete,
trigger, and the jobs a schedule makes (GET /jobs?schedule_id=).

Schedules that could fire during the session are created disabled or with
a yearly expression, and their jobs go to paused queues: nothing is delivered.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support import ApiClient, wait_until
from support.asserts import assert_error

NOWHERE = "http://127.0.0.1:9/never"
YEARLY = "0 0 0 1 1 *"
SCHEDULE_FIELDS = {
    "id", "cron_expression", "timezone", "callback_url", "queue_name", "payload", "headers",
    "max_retries", "timeout_ms", "enabled", "last_run_at", "next_run_at", "created_at",
    "updated_at",
}  # fmt: skip
UNKNOWN_ID = "01900000-0000-7000-8000-000000000000"


def when(text: str) -> datetime:
    assert text.endswith("Z") and len(text) == 24, f"not RFC 3339 UTC with ms: {text!r}"
    return datetime.fromisoformat(text)


def make(api: ApiClient, queue: str, cron: str = YEARLY, **fields: Any) -> dict:
    body = {"cron_expression": cron, "callback_url": NOWHERE, "queue_name": queue, **fields}
    return api.post("/schedules", body).expect(201)


@pytest.fixture
def queue(api: ApiClient, qname: str) -> str:
    """A paused queue for the jobs of the test's schedules."""
    api.post("/queues", {"name": qname, "paused": True}).expect(201)
    return qname


# -- create -------------------------------------------------------------------


def test_create_returns_201_with_every_field(api, queue):
    resp = api.post(
        "/schedules",
        {
            "cron_expression": "0 15 10 * * *",
            "callback_url": "https://example.com/nightly",
            "queue_name": queue,
            "payload": {"report": "daily"},
            "headers": {"X-Kind": "cron"},
            "max_retries": 2,
            "timeout_ms": 2500,
            "timezone": "UTC",
            "enabled": False,
        },
    )
    s = resp.expect(201)
    assert set(s) == SCHEDULE_FIELDS
    assert s["cron_expression"] == "0 15 10 * * *" and s["timezone"] == "UTC"
    assert (s["payload"], s["headers"]) == ({"report": "daily"}, {"X-Kind": "cron"})
    assert (s["max_retries"], s["timeout_ms"], s["enabled"]) == (2, 2500, False)
    assert s["last_run_at"] is None
    created, fire = when(s["created_at"]), when(s["next_run_at"])
    assert (fire.hour, fire.minute, fire.second, fire.microsecond) == (10, 15, 0, 0), fire
    assert timedelta(0) < fire - created <= timedelta(days=1), (created, fire)
    assert api.get(f"/schedules/{s['id']}").expect(200) == s


def test_defaults(api, queue):
    s = api.post("/schedules", {"cron_expression": YEARLY, "callback_url": NOWHERE}).expect(201)
    api.delete(f"/schedules/{s['id']}").expect(200)
    assert (s["queue_name"], s["timezone"], s["enabled"]) == ("default", "UTC", True)
    assert (s["payload"], s["headers"], s["max_retries"], s["timeout_ms"]) == ({}, None, None, None)


def test_six_fields_put_seconds_first(api, queue):
    s = make(api, queue, "*/20 * * * * *", enabled=False)
    created, fire = when(s["created_at"]), when(s["next_run_at"])
    assert fire.second in (0, 20, 40) and fire.microsecond == 0, fire
    assert timedelta(0) < fire - created <= timedelta(seconds=20), (created, fire)


def test_five_fields_fire_at_second_zero(api, queue):
    s = make(api, queue, "30 3 * * *")
    created, fire = when(s["created_at"]), when(s["next_run_at"])
    assert (fire.hour, fire.minute, fire.second) == (3, 30, 0), fire
    assert timedelta(0) < fire - created <= timedelta(days=1)


def test_names_for_months_and_weekdays(api, queue):
    s = make(api, queue, "0 12 * Mar,Oct Mon-Fri")
    fire = when(s["next_run_at"])
    assert fire.month in (3, 10) and fire.weekday() < 5 and (fire.hour, fire.minute) == (12, 0)
    sunday = when(make(api, queue, "0 0 8 * * Sun")["next_run_at"])
    assert sunday.weekday() == 6 and sunday.hour == 8, sunday


def test_timezone_moves_the_fire_time(api, queue):
    tokyo = make(api, queue, "0 9 * * *", timezone="Asia/Tokyo")  # UTC+9 all year
    fire = when(tokyo["next_run_at"])
    assert (fire.hour, fire.minute) == (0, 0), f"09:00 in Tokyo is 00:00 UTC, got {fire}"
    assert tokyo["timezone"] == "Asia/Tokyo"


@pytest.mark.parametrize(
    "cron",
    ["x", "", "   ", "61 * * * *", "* * * *", "* * * * * * *", "*/0 * * * *", "0 0 30 2 *",
     "@reboot", "0 0 * * Funday", "* * * * L", "0 0 0 * * 8", 5, None, ["* * * * *"]],
)  # fmt: skip
def test_invalid_cron_is_400_naming_cron_expression(api, qname, cron):
    body = {"cron_expression": cron, "callback_url": NOWHERE, "queue_name": qname}
    assert_error(api.post("/schedules", body), 400, "cron_expression")


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus", "", "localtime", "../../etc/passwd", "UTC\u0000", "utc", 9, None,
             "x" * 300],
)  # fmt: skip
def test_invalid_timezone_is_400_naming_timezone(api, qname, zone):
    body = {"cron_expression": YEARLY, "callback_url": NOWHERE, "timezone": zone}
    assert_error(api.post("/schedules", body), 400, "timezone")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"callback_url": NOWHERE}, "cron_expression"),
        ({"cron_expression": YEARLY}, "callback_url"),
        ({"cron_expression": YEARLY, "callback_url": "ftp://x/"}, "callback_url"),
        ({"cron_expression": YEARLY, "callback_url": NOWHERE, "enabled": "yes"}, "enabled"),
        ({"cron_expression": YEARLY, "callback_url": NOWHERE, "max_retries": 1.5}, "max_retries"),
        ({"cron_expression": YEARLY, "callback_url": NOWHERE, "timeout_ms": 0}, "timeout_ms"),
        ({"cron_expression": YEARLY, "callback_url": NOWHERE, "queue_name": "a b"}, "queue_name"),
        ({"cron_expression": YEARLY, "callback_url": NOWHERE, "headers": {"X": 1}}, "headers.X"),
        ({"cron_expression": YEARLY, "callback_url": NOWHERE, "every": 5}, "every"),
        ({"cron_expression": YEARLY, "callback_url": NOWHERE, "priority": 1}, "priority"),
    ],
)
def test_create_validation_names_the_field(api, body, field):
    assert_error(api.post("/schedules", body), 400, field)


# -- list and get ---------------------------------------------------------------


def test_list_is_newest_first_and_pages(api, queue):
    ids = [make(api, queue)["id"] for _ in range(3)]
    listed = api.get("/schedules", limit=1000).expect(200)
    assert all(set(s) == SCHEDULE_FIELDS for s in listed)
    all_ids = [s["id"] for s in listed]
    assert all_ids == sorted(all_ids, reverse=True)
    assert [i for i in all_ids if i in ids] == ids[::-1]
    assert [s["id"] for s in api.get("/schedules", limit=2).expect(200)] == all_ids[:2]
    assert [s["id"] for s in api.get("/schedules", limit=2, offset=1).expect(200)] == all_ids[1:3]
    older = [s["id"] for s in api.get("/schedules", after=ids[2], limit=1000).expect(200)]
    assert ids[1] in older and ids[0] in older and ids[2] not in older


@pytest.mark.parametrize(
    "query, field",
    [({"limit": "abc"}, "limit"), ({"limit": "0"}, "limit"), ({"offset": "-3"}, "offset"),
     ({"after": "zzz"}, "after"), ({"queue": "x"}, "queue"), ({"limit": ""}, "limit")],
)  # fmt: skip
def test_bad_list_queries_are_400(api, query, field):
    assert_error(api.get("/schedules", **query), 400, field)


@pytest.mark.parametrize("schedule_id", [UNKNOWN_ID, "nope", "x" * 100, "%ff"])
def test_unknown_or_malformed_ids_are_404(api, schedule_id):
    assert_error(api.get(f"/schedules/{schedule_id}"), 404)
    assert_error(api.put(f"/schedules/{schedule_id}", {"enabled": False}), 404)
    assert_error(api.delete(f"/schedules/{schedule_id}"), 404)
    assert_error(api.post(f"/schedules/{schedule_id}/trigger"), 404)


# -- change -------------------------------------------------------------------


def test_a_new_expression_recomputes_next_run_at(api, queue):
    s = make(api, queue, YEARLY, enabled=False)
    assert when(s["next_run_at"]).strftime("%m-%d %H:%M:%S") == "01-01 00:00:00"
    changed = api.put(f"/schedules/{s['id']}", {"cron_expression": "0 45 6 * * *"}).expect(200)
    fire = when(changed["next_run_at"])
    assert (fire.hour, fire.minute, fire.second) == (6, 45, 0), fire
    assert changed["cron_expression"] == "0 45 6 * * *"
    assert when(changed["updated_at"]) >= when(s["updated_at"])
    zoned = api.put(f"/schedules/{s['id']}", {"timezone": "Asia/Kolkata"}).expect(200)
    fire = when(zoned["next_run_at"])
    assert (fire.hour, fire.minute) == (1, 15), f"06:45 in Kolkata (+05:30) is 01:15 UTC: {fire}"


def test_other_changes_keep_next_run_at(api, queue):
    s = make(api, queue, "0 0 12 * * *")
    changed = api.put(
        f"/schedules/{s['id']}",
        {"callback_url": "https://example.com/new", "payload": [1, 2], "headers": {"X-New": "1"},
         "max_retries": 0, "timeout_ms": None},
    ).expect(200)  # fmt: skip
    assert changed["next_run_at"] == s["next_run_at"]
    assert (changed["callback_url"], changed["payload"], changed["headers"]) == (
        "https://example.com/new", [1, 2], {"X-New": "1"},
    )  # fmt: skip
    assert (changed["max_retries"], changed["timeout_ms"]) == (0, None)
    assert changed["cron_expression"] == "0 0 12 * * *"
    assert api.get(f"/schedules/{s['id']}").expect(200) == changed


def test_disable_and_enable(api, queue):
    s = make(api, queue)
    off = api.put(f"/schedules/{s['id']}", {"enabled": False}).expect(200)
    assert off["enabled"] is False
    on = api.put(f"/schedules/{s['id']}", {"enabled": True}).expect(200)
    assert on["enabled"] is True and on["next_run_at"] == s["next_run_at"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "body"),
        ({"cron_expression": "bad"}, "cron_expression"),
        ({"timezone": "Nowhere/City"}, "timezone"),
        ({"enabled": 1}, "enabled"),
        ({"id": UNKNOWN_ID}, "id"),
        ({"next_run_at": "2030-01-01T00:00:00Z"}, "next_run_at"),
    ],
)
def test_put_validation(api, queue, body, field):
    s = make(api, queue)
    assert_error(api.put(f"/schedules/{s['id']}", body), 400, field)
    assert api.get(f"/schedules/{s['id']}").expect(200) == s


# -- delete and trigger -----------------------------------------------------------


def test_delete(api, queue):
    s = make(api, queue)
    job = api.post(f"/schedules/{s['id']}/trigger").expect(201)
    assert api.delete(f"/schedules/{s['id']}").expect(200) == {"status": "deleted", "id": s["id"]}
    assert_error(api.get(f"/schedules/{s['id']}"), 404)
    assert_error(api.delete(f"/schedules/{s['id']}"), 404)
    assert s["id"] not in [x["id"] for x in api.get("/schedules", limit=1000).expect(200)]
    assert api.get(f"/jobs/{job['id']}").expect(200)["schedule_id"] == s["id"], "jobs stay"


def test_trigger_creates_the_job_now(api, queue):
    s = make(api, queue, payload={"from": "schedule"}, headers={"X-S": "1"}, max_retries=4,
             timeout_ms=1500, enabled=False)  # fmt: skip
    resp = api.post(f"/schedules/{s['id']}/trigger")
    job = resp.expect(201)
    assert job["schedule_id"] == s["id"] and job["status"] == "pending"
    assert (job["queue_name"], job["callback_url"]) == (queue, NOWHERE)
    assert (job["payload"], job["headers"]) == ({"from": "schedule"}, {"X-S": "1"})
    assert (job["max_retries"], job["timeout_ms"]) == (4, 1500)
    assert abs(when(job["visible_at"]) - when(job["created_at"])) < timedelta(seconds=1)
    after = api.get(f"/schedules/{s['id']}").expect(200)
    assert after["next_run_at"] == s["next_run_at"], "a trigger does not move the cron"


def test_jobs_can_be_listed_by_schedule(api, queue):
    one, two = make(api, queue), make(api, queue)
    first = [api.post(f"/schedules/{one['id']}/trigger").expect(201)["id"] for _ in range(3)]
    other = api.post(f"/schedules/{two['id']}/trigger").expect(201)["id"]
    listed = api.get("/jobs", schedule_id=one["id"]).expect(200)
    assert [j["id"] for j in listed] == first[::-1]
    assert [j["id"] for j in api.get("/jobs", schedule_id=two["id"]).expect(200)] == [other]
    page = api.get("/jobs", schedule_id=one["id"], limit=1, after=first[2]).expect(200)
    assert [j["id"] for j in page] == [first[1]]
    both = api.get("/jobs", schedule_id=one["id"], queue=queue, status="pending").expect(200)
    assert len(both) == 3
    assert api.get("/jobs", schedule_id=one["id"], status="dead").expect(200) == []
    assert api.get("/jobs", schedule_id=UNKNOWN_ID).expect(200) == []


def test_a_due_schedule_fires_and_its_job_carries_schedule_id(api, queue):
    s = make(api, queue, "* * * * * *")  # every second
    try:
        jobs = wait_until(
            lambda: api.get("/jobs", schedule_id=s["id"]).expect(200),
            timeout=5,
            message=f"schedule {s['id']} made no job",
        )
    finally:
        api.put(f"/schedules/{s['id']}", {"enabled": False}).expect(200)
    assert jobs[0]["queue_name"] == queue and jobs[0]["schedule_id"] == s["id"]
    fired = api.get(f"/schedules/{s['id']}").expect(200)
    assert fired["last_run_at"] is not None
    assert when(fired["next_run_at"]) > when(s["next_run_at"])
    now = datetime.now(UTC)
    assert abs(when(fired["last_run_at"]) - now) < timedelta(seconds=10)
