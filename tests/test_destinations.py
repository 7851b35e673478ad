"""Destinations (SPEC §10): one slow or failing receiver never stalls the rest.

Two real receivers on separate ports are two destinations. Timing is
observed at the receivers (arrival and answer times per request).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from support import ApiClient, MininqServer, Receiver, Reply, wait_until
from test_api_misc import assert_matches

CONFIG = """\
[worker]
concurrency = 8
reaper_interval_secs = 1

[defaults]
queue_max_concurrency = 8
base_delay_ms = 100
max_delay_ms = 1000
"""


@pytest.fixture(scope="module")
def two() -> Iterator[tuple[Receiver, Receiver]]:
    with Receiver() as a, Receiver() as b:
        yield a, b


@pytest.fixture(scope="module")
def mq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MininqServer, ApiClient]]:
    srv = MininqServer(tmp_path_factory.mktemp("destinations"), config_toml=CONFIG)
    with srv, srv.client() as client:
        yield srv, client


def batch(api: ApiClient, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for start in range(0, len(jobs), 1000):
        out += api.post("/jobs/batch", json={"jobs": jobs[start:start + 1000]}).expect(201)["jobs"]
    return out


def rate(hits: list, n: int) -> float:
    """Deliveries per second from the first arrival to the n-th."""
    return (n - 1) / (hits[n - 1].started - hits[0].started)


def test_noisy_neighbour(mq: tuple[MininqServer, ApiClient], two: tuple[Receiver, Receiver],
                         qname: str) -> None:
    """A never answers within the timeout; B's jobs, interleaved with A's in
    one queue, go at most of the rate B gets alone."""
    _, api = mq
    a, b = two
    n = 500
    alone, shared, hang = b.new_path(), b.new_path(), a.new_path()
    b.respond(alone, Reply(200, b"ok", delay_s=0.05))
    b.respond(shared, Reply(200, b"ok", delay_s=0.05))
    a.respond(hang, Reply(200, b"late", delay_s=1.5))

    batch(api, [{"callback_url": b.url(alone), "queue_name": f"{qname}-alone"}] * n)
    rate_alone = rate(b.wait_for(alone, n, timeout=60), n)

    jobs = []
    for _ in range(n):
        jobs.append({"callback_url": a.url(hang), "queue_name": qname, "timeout_ms": 1000,
                     "max_retries": 0})
        jobs.append({"callback_url": b.url(shared), "queue_name": qname})
    batch(api, jobs)
    started = time.monotonic()
    rate_shared = rate(b.wait_for(shared, n, timeout=60), n)
    ratio = rate_shared / rate_alone
    assert ratio >= 0.65, (
        f"B alone {rate_alone:.0f}/s, beside a hanging A {rate_shared:.0f}/s: {ratio:.0%}")
    # A's share falls to about one delivery at a time within a few timeouts.
    wait_until(lambda: a.in_flight(hang) <= 2 and time.monotonic() - started > 3, timeout=10,
               message=lambda: f"A still has {a.in_flight(hang)} requests in flight")
    print(f"B alone {rate_alone:.0f}/s, beside hanging A {rate_shared:.0f}/s ({ratio:.0%}); "
          f"A received {len(a.hits(hang))}")


def test_breaker_opens_probes_once_and_closes(
        mq: tuple[MininqServer, ApiClient], qname: str) -> None:
    srv, api = mq
    # A destination of its own (the breaker is per scheme://host:port).
    with Receiver() as r:
        path = r.new_path()
        r.respond(path, Reply(500, b"down"))
        api.post("/queues", json={"name": qname, "max_concurrency": 4}).expect(201)
        created = batch(api, [{"callback_url": r.url(path), "queue_name": qname,
                               "max_retries": 50, "retry_backoff": "fixed",
                               "base_delay_ms": 100}] * 20)
        r.wait_for(path, 10)
        time.sleep(0.5)
        at_open = len(r.hits(path))
        assert at_open <= 13, f"{at_open} requests reached A after 10 failures in a row"
        r.respond(path, Reply(200, b"back"))
        last_fail = max(h.finished for h in r.hits(path))
        hits = r.wait_for(path, at_open + 1, timeout=10)
        probe = hits[at_open]
        gap = probe.started - last_fail
        assert 4.4 <= gap <= 7.0, f"the probe came {gap:.2f} s after the last failure"
        wait_until(lambda: all(api.get(f"/jobs/{j['id']}").expect(200)["status"] == "completed"
                               for j in created), timeout=20,
                   message="every job completes once A answers again")
        hits = r.hits(path)
        after_probe = [h for h in hits[at_open + 1:] if h.started < probe.finished]
        assert not after_probe, "nothing but the probe is sent while half-open"
        # Every attempt a job spent is a request A received: none while open.
        attempts = sum(api.get(f"/jobs/{j['id']}").expect(200)["attempt"] for j in created)
        assert attempts == len(hits), (attempts, len(hits))
        per_job = Counter(h.headers["x-mininq-job-id"] for h in hits)
        assert sum(per_job.values()) == len(hits)
    log = srv.log_text()
    for line in ("breaker opened", "breaker half-open", "breaker closed"):
        assert line in log, f"no {line!r} log line"


def test_retry_after_pauses_the_destination(
        mq: tuple[MininqServer, ApiClient], two: tuple[Receiver, Receiver], qname: str) -> None:
    _, api = mq
    with Receiver() as r:
        _, b = two
        pa, pb = r.new_path(), b.new_path()
        r.respond(pa, Reply(503, b"busy", headers={"Retry-After": "3"}), Reply(200, b"ok"))
        b.respond(pb, Reply(200, b"ok", delay_s=0.03))
        api.post("/queues", json={"name": qname, "max_concurrency": 2}).expect(201)
        jobs = [{"callback_url": r.url(pa), "queue_name": qname}]
        for _ in range(100):
            jobs.append({"callback_url": b.url(pb), "queue_name": qname})
            jobs.append({"callback_url": r.url(pa), "queue_name": qname})
        batch(api, jobs)
        first = r.wait_for(pa, 1)[0]
        second = r.wait_for(pa, 2, timeout=10)[1]
        paused = second.started - first.finished
        assert 2.8 <= paused <= 4.5, f"A got its next request {paused:.2f} s after the 503"
        served = [h for h in b.hits(pb) if first.finished + 0.5 < h.started < second.started - 0.5]
        assert len(served) >= 20, f"B got {len(served)} requests while A was paused"
        r.wait_for(pa, 101, timeout=20)


def test_destinations_list_reset_and_metrics(
        mq: tuple[MininqServer, ApiClient], qname: str) -> None:
    _, api = mq
    with Receiver() as r:
        path = r.new_path()
        r.respond(path, Reply(500, b"down"))
        dest = r.base_url
        api.post("/queues", json={"name": qname, "max_concurrency": 1}).expect(201)
        batch(api, [{"callback_url": r.url(path), "queue_name": qname, "max_retries": 0}] * 15)

        def row() -> dict | None:
            rows = api.get("/destinations").expect(200)
            return next((d for d in rows if d["destination"] == dest), None)

        seen = wait_until(lambda: (d := row()) and d["state"] == "open" and d["in_flight"] == 0
                          and d, timeout=10, message=lambda: f"{row()}")
        assert seen["consecutive_failures"] == 10 and seen["failed"] == 10
        assert seen["delivered"] == 0 and seen["last_status"] == 500
        assert seen["last_error"].startswith("HTTP 500") and seen["pending"] == 5
        assert seen["open_until"].endswith("Z") and seen["node"]
        assert_matches(api.get("/openapi.json").expect(200), "Destination", seen)
        resp = api.get("/metrics/prometheus")
        resp.expect(200)
        text = resp.text
        assert f'mininq_destination_state{{destination="{dest}",node="{seen["node"]}"}} 2' in text
        assert f'mininq_destination_limit{{destination="{dest}"' in text
        assert "# TYPE mininq_destination_in_flight gauge" in text

        r.respond(path, Reply(200, b"ok"))
        reset = api.post("/destinations/reset", json={"destination": dest}).expect(200)
        assert_matches(api.get("/openapi.json").expect(200), "Destination", reset)
        assert (reset["state"], reset["consecutive_failures"], reset["limit"],
                reset["open_until"]) == ("closed", 0, 8, None)
        # The engine applies it at once: the rest go out before the cool-down ends.
        r.wait_for(path, 15, timeout=3)

        api.post("/destinations/reset", json={"destination": "http://nowhere:1"}).expect(404)
        for body in ({}, {"destination": 5}, [1]):
            err = api.post("/destinations/reset", json=body).expect(400)
            assert "destination" in err["error"] or "body" in err["error"], err


def test_egress_policy_refuses_private_addresses(make_server, qname: str) -> None:
    """deny private: a literal 127.0.0.1 is refused at creation; a name that
    resolves to it goes dead naming the rule, the receiver sees nothing; an
    allow entry lets it through."""
    with Receiver() as r:
        port = r.base_url.rsplit(":", 1)[1]
        path = r.new_path()
        srv = make_server('[webhooks]\ndeny_networks = ["private"]\n')
        with srv.client() as api:
            err = api.post("/jobs", json={"callback_url": r.url(path)}).expect(400)
            assert err["error"].startswith("callback_url: 127.0.0.1 is refused by "
                                           "webhooks.deny_networks rule private"), err
            err = api.post("/jobs/batch", json={"jobs": [
                {"callback_url": "http://example.com/"}, {"callback_url": r.url(path)}]}
            ).expect(400)
            assert err["error"].startswith("jobs[1].callback_url: "), err
            job = api.post("/jobs", json={"callback_url": f"http://localhost:{port}{path}",
                                          "queue_name": qname, "max_retries": 5}).expect(201)
            dead = api.wait_job(job["id"], "dead")
            assert dead["attempt"] == 1, dead
            assert "deny_networks rule private" in dead["last_error"], dead
            assert "localhost" in dead["last_error"], dead
            assert r.hits(path) == []
        srv.stop()
        allowed = make_server('[webhooks]\ndeny_networks = ["private"]\n'
                              'allow_networks = ["127.0.0.1/32", "::1/128"]\n')
        with allowed.client() as api:
            for url in (r.url(path), f"http://localhost:{port}{path}"):
                job = api.post("/jobs", json={"callback_url": url}).expect(201)
                api.wait_job(job["id"], "completed")
            assert len(r.hits(path)) == 2
