"""Retries (SPEC §2): how many attempts a job gets, the record of each, and
how long mininq waits between them.

Gaps are measured where they matter, at the receiver: from one attempt's
arrival to the next one's. The delay is computed after the failed answer
arrives, so a gap is never shorter than the delay; it may be longer by the
time the engine takes to notice the retry is due and send it, which on this
shared 2-core machine is allowed SCHEDULING_SLACK_S.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.utils import formatdate
from itertools import pairwise
from typing import Any

import pytest
from support import ApiClient, Hit, Receiver, Reply, wait_until

from mininq.clock import parse_rfc3339 as parse_time

SCHEDULING_SLACK_S = 0.15
JITTER = 0.3


def create(api: ApiClient, url: str, **fields: Any) -> dict[str, Any]:
    return api.post("/jobs", json={"callback_url": url, **fields}).expect(201)


def gaps(hits: list[Hit]) -> list[float]:
    """Seconds between consecutive arrivals."""
    return [b.started - a.started for a, b in pairwise(hits)]


def show(values: list[float]) -> str:
    return "[" + ", ".join(f"{v * 1000:.0f} ms" for v in values) + "]"


# -- counting attempts ---------------------------------------------------------


def test_max_retries_2_means_exactly_3_attempts(
    api: ApiClient, receiver: Receiver, qname: str
) -> None:
    path = receiver.new_path()
    receiver.respond(path, Reply(503, b"still down"))
    job = create(api, receiver.url(path), queue_name=qname, max_retries=2, base_delay_ms=50)
    job = api.wait_job(job["id"], ("dead", "completed"))
    assert job["status"] == "dead" and job["attempt"] == 3, job
    assert job["last_error"] == "HTTP 503: still down", job
    time.sleep(0.5)  # a 4th attempt, were there one, would be due 140-260 ms after the 3rd
    hits = receiver.hits(path)
    assert [h.headers["x-mininq-attempt"] for h in hits] == ["1", "2", "3"], hits
    assert {h.headers["x-mininq-job-id"] for h in hits} == {job["id"]}

    rows = api.get(f"/jobs/{job['id']}/attempts").expect(200)
    assert [r["attempt"] for r in rows] == [1, 2, 3], rows
    assert [r["outcome"] for r in rows] == ["retry", "retry", "dead"], rows
    for row in rows:
        assert row["status_code"] == 503, row
        assert row["error"] == "HTTP 503: still down", row
        assert isinstance(row["duration_ms"], int) and 0 <= row["duration_ms"] < 5000, row
        assert row["started_at"].endswith("Z"), row
    assert rows[0]["started_at"] < rows[1]["started_at"] < rows[2]["started_at"], rows


def test_max_retries_0_means_one_attempt(api: ApiClient, receiver: Receiver, qname: str) -> None:
    path = receiver.new_path()
    receiver.respond(path, Reply(500, b"no"))
    job = create(api, receiver.url(path), queue_name=qname, max_retries=0, base_delay_ms=50)
    job = api.wait_job(job["id"], ("dead", "completed"))
    assert job["status"] == "dead" and job["attempt"] == 1, job
    time.sleep(0.3)
    assert len(receiver.hits(path)) == 1
    rows = api.get(f"/jobs/{job['id']}/attempts").expect(200)
    assert [(r["attempt"], r["outcome"]) for r in rows] == [(1, "dead")], rows


def test_success_after_retries_keeps_every_attempt(
    api: ApiClient, receiver: Receiver, qname: str
) -> None:
    path = receiver.new_path()
    receiver.respond(path, Reply(500, b"a"), Reply(429, b"b"), Reply(200, b"done"))
    job = create(api, receiver.url(path), queue_name=qname, max_retries=5, base_delay_ms=50)
    job = api.wait_job(job["id"], ("completed", "dead"))
    assert job["status"] == "completed" and job["attempt"] == 3, job
    assert job["result"] == "done", job
    rows = api.get(f"/jobs/{job['id']}/attempts").expect(200)
    summary = [(r["attempt"], r["outcome"], r["status_code"], r["error"]) for r in rows]
    assert summary == [
        (1, "retry", 500, "HTTP 500: a"),
        (2, "retry", 429, "HTTP 429: b"),
        (3, "completed", 200, None),
    ], summary


def test_dead_job_retried_through_the_api_is_delivered_again(
    api: ApiClient, receiver: Receiver, qname: str
) -> None:
    path = receiver.new_path()
    receiver.respond(path, Reply(404, b"gone"), Reply(200, b"back"))
    job = create(api, receiver.url(path), queue_name=qname, max_retries=0)
    api.wait_job(job["id"], "dead")
    api.post(f"/jobs/{job['id']}/retry").expect(200)
    job = api.wait_job(job["id"], ("completed", "dead"))
    assert job["status"] == "completed" and job["result"] == "back", job
    hits = receiver.hits(path)
    assert [h.headers["x-mininq-attempt"] for h in hits] == ["1", "1"], (
        "a retried job starts again at attempt 1"
    )


def test_attempts_of_unknown_job_is_404(api: ApiClient) -> None:
    api.get("/jobs/01a21f5e-6a20-72cb-a2e5-000000000000/attempts").expect(404)


# -- backoff between attempts ------------------------------------------------

BASE_DELAY_MS = 250
BACKOFF_RETRIES = 3
RAW_DELAYS_MS = {  # before attempts 2, 3, 4
    "exponential": [250, 500, 1000],
    "linear": [250, 500, 750],
    "fixed": [250, 250, 250],
}


@pytest.fixture(scope="module")
def backoff_hits(api: ApiClient, receiver: Receiver) -> Iterator[dict[str, list[Hit]]]:
    """One always-failing job per strategy, all running at once; their arrivals."""
    paths = {}
    for strategy in RAW_DELAYS_MS:
        path = paths[strategy] = receiver.new_path()
        receiver.respond(path, Reply(500, b"fail"))
        create(
            api,
            receiver.url(path),
            queue_name=f"backoff-{strategy}-{path[-8:]}",
            retry_backoff=strategy,
            base_delay_ms=BASE_DELAY_MS,
            max_delay_ms=60_000,
            max_retries=BACKOFF_RETRIES,
        )
    yield {s: receiver.wait_for(p, BACKOFF_RETRIES + 1, timeout=10) for s, p in paths.items()}


@pytest.mark.parametrize("strategy", list(RAW_DELAYS_MS))
def test_backoff_gaps_within_jitter_bounds(
    backoff_hits: dict[str, list[Hit]], strategy: str
) -> None:
    measured = gaps(backoff_hits[strategy])
    raw = RAW_DELAYS_MS[strategy]
    print(f"{strategy}: raw {raw} ms, measured {show(measured)}")
    for n, (gap, raw_ms) in enumerate(zip(measured, raw), start=1):
        low = raw_ms * (1 - JITTER) / 1000
        high = raw_ms * (1 + JITTER) / 1000 + SCHEDULING_SLACK_S
        assert low <= gap <= high, (
            f"{strategy}: gap after attempt {n} is {gap * 1000:.0f} ms, want "
            f"{low * 1000:.0f}-{high * 1000:.0f} ms (raw {raw_ms} ms ±30% + "
            f"{SCHEDULING_SLACK_S * 1000:.0f} ms slack); all gaps {show(measured)}"
        )


def test_delay_is_capped_at_max_delay_ms(api: ApiClient, receiver: Receiver, qname: str) -> None:
    """Exponential from 1000 ms capped at 300 ms: the cap applies after the
    jitter, so every gap is 300 ms (+ slack)."""
    path = receiver.new_path()
    receiver.respond(path, Reply(500, b"fail"))
    create(
        api,
        receiver.url(path),
        queue_name=qname,
        retry_backoff="exponential",
        base_delay_ms=1000,
        max_delay_ms=300,
        max_retries=3,
    )
    measured = gaps(receiver.wait_for(path, 4, timeout=10))
    print(f"capped at 300 ms: {show(measured)}")
    for gap in measured:
        assert 0.3 <= gap <= 0.3 + SCHEDULING_SLACK_S, (
            f"gaps {show(measured)}: 1000 ms ±30% capped at 300 ms should give "
            f"300 ms each (+{SCHEDULING_SLACK_S * 1000:.0f} ms slack)"
        )


# -- Retry-After -------------------------------------------------------------


def _retry_after_hits(
    api: ApiClient,
    receiver: Receiver,
    queue: str,
    status: int,
    header: str,
    max_delay_ms: int = 5000,
) -> list[Hit]:
    # A receiver of its own: a 429/503 with Retry-After pauses its whole
    # destination (SPEC §10), which must not hold back other tests' deliveries.
    with Receiver() as own:
        path = own.new_path()
        own.respond(path, Reply(status, b"later", headers={"Retry-After": header}), Reply(200))
        job = create(
            api,
            own.url(path),
            queue_name=queue,
            retry_backoff="fixed",
            base_delay_ms=50,
            max_delay_ms=max_delay_ms,
            max_retries=1,
        )
        hits = own.wait_for(path, 2, timeout=10)
        api.wait_job(job["id"], "completed")
        return hits


def _retry_after_gap(
    api: ApiClient,
    receiver: Receiver,
    queue: str,
    status: int,
    header: str,
    max_delay_ms: int = 5000,
) -> float:
    hits = _retry_after_hits(api, receiver, queue, status, header, max_delay_ms)
    return hits[1].started - hits[0].started


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_replaces_the_computed_delay(
    api: ApiClient, receiver: Receiver, qname: str, status: int
) -> None:
    gap = _retry_after_gap(api, receiver, qname, status, "1")
    print(f"{status} Retry-After: 1 with base_delay 50 ms -> gap {gap * 1000:.0f} ms")
    assert 1.0 <= gap <= 1.0 + SCHEDULING_SLACK_S, (
        f"{status} with Retry-After: 1 -> gap {gap * 1000:.0f} ms, want 1000 ms "
        f"(+{SCHEDULING_SLACK_S * 1000:.0f} ms slack); base_delay_ms is 50"
    )


def test_retry_after_is_capped_at_max_delay_ms(
    api: ApiClient, receiver: Receiver, qname: str
) -> None:
    """The job's own retry time is capped at max_delay_ms (§2); the pause of
    its destination (§10) still holds every delivery to it for the 30 s."""
    with Receiver() as own:
        path = own.new_path()
        own.respond(path, Reply(429, b"later", headers={"Retry-After": "30"}), Reply(200))
        job = create(api, own.url(path), queue_name=qname, retry_backoff="fixed",
                     base_delay_ms=50, max_delay_ms=600, max_retries=1)
        own.wait_for(path, 1)
        row = wait_until(lambda: (j := api.get(f"/jobs/{job['id']}").expect(200))["attempt"] == 1
                         and j["status"] == "pending" and j, message="the 429 is recorded")
        gap = (parse_time(row["visible_at"]) - parse_time(row["started_at"])) / 1000
        print(f"429 Retry-After: 30, max_delay 600 ms -> retry due after {gap * 1000:.0f} ms")
        assert 0.6 <= gap <= 0.6 + SCHEDULING_SLACK_S, f"gap {gap * 1000:.0f} ms, want 600 ms"
        time.sleep(1.5)
        assert len(own.hits(path)) == 1, "the paused destination got the retry early"


def test_retry_after_http_date(api: ApiClient, receiver: Receiver, qname: str) -> None:
    """The retry arrives once the date given has passed, and soon after."""
    when = int(time.time()) + 2  # HTTP dates have whole seconds
    hits = _retry_after_hits(api, receiver, qname, 503, formatdate(when, usegmt=True))
    late = hits[1].received_at - when
    print(f"503 Retry-After: <date> -> retry {late * 1000:+.0f} ms from that date")
    # 5 ms below: the receiver's and the engine's clock readings round differently.
    assert -0.005 <= late <= SCHEDULING_SLACK_S, (
        f"retry arrived {late * 1000:+.0f} ms from the Retry-After date, want 0 "
        f"to +{SCHEDULING_SLACK_S * 1000:.0f} ms"
    )


def test_retry_after_on_other_statuses_is_ignored(
    api: ApiClient, receiver: Receiver, qname: str
) -> None:
    gap = _retry_after_gap(api, receiver, qname, 500, "5")
    print(f"500 Retry-After: 5 -> gap {gap * 1000:.0f} ms")
    assert gap < 0.065 + SCHEDULING_SLACK_S, (
        f"gap {gap * 1000:.0f} ms: Retry-After counts on 429 and 503 only; "
        "the fixed 50 ms (±30%) backoff should apply"
    )


def test_invalid_retry_after_falls_back_to_backoff(
    api: ApiClient, receiver: Receiver, qname: str
) -> None:
    gap = _retry_after_gap(api, receiver, qname, 429, "soon")
    assert gap < 0.065 + SCHEDULING_SLACK_S, f"gap {gap * 1000:.0f} ms"


def test_retries_of_many_failing_jobs_do_not_hold_up_others(
    api: ApiClient, receiver: Receiver, qname: str
) -> None:
    """Jobs waiting out a long backoff leave the queue free for other jobs."""
    failing, fine = receiver.new_path(), receiver.new_path()
    receiver.respond(failing, Reply(503, b"busy"))
    for _ in range(5):
        create(api, receiver.url(failing), queue_name=qname, base_delay_ms=10_000, max_retries=1)
    receiver.wait_for(failing, 5)
    job = create(api, receiver.url(fine), queue_name=qname)
    api.wait_job(job["id"], "completed", timeout=3)
