"""What the engine may deliver and when (SPEC §2 ordering, §3 queues): priority
order, per-queue and global concurrency, the rate limit, pause and resume,
`worker.queues`, and fairness across queues.

Limits are observed at the receiver: it counts requests in flight per path,
and records each arrival's time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
from support import ApiClient, MininqServer, Receiver, Reply, wait_until

# The module's own server: 4 deliveries in flight at most, and only these queues.
GLOBAL_CONCURRENCY = 4
LIMITED_QUEUES = ["global-a", "global-b", "served", "fair-big", "fair-small"]
LIMITED_CONFIG = f"""\
[worker]
concurrency = {GLOBAL_CONCURRENCY}
queues = {LIMITED_QUEUES!r}
""".replace("'", '"')


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiClient]:
    """Client of a server with worker.concurrency = 4 delivering LIMITED_QUEUES only."""
    srv = MininqServer(tmp_path_factory.mktemp("limited"), config_toml=LIMITED_CONFIG)
    with srv, srv.client() as client:
        yield client


def create(api: ApiClient, url: str, **fields: Any) -> dict[str, Any]:
    return api.post("/jobs", json={"callback_url": url, **fields}).expect(201)


def create_many(api: ApiClient, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for start in range(0, len(jobs), 1000):
        out += api.post("/jobs/batch", json={"jobs": jobs[start : start + 1000]}).expect(201)[
            "jobs"
        ]
    return out


def queue(api: ApiClient, name: str) -> dict[str, Any]:
    return api.get(f"/queues/{name}").expect(200)


def wait_queue_done(api: ApiClient, name: str, total: int, timeout: float = 15) -> dict:
    return wait_until(
        lambda: (q := queue(api, name))["completed"] == total and q,
        timeout=timeout,
        message=lambda: f"queue {name} did not complete {total} jobs: {queue(api, name)}",
    )


# -- ordering ----------------------------------------------------------------


def test_priority_order_then_creation_order(api: ApiClient, receiver: Receiver, qname: str) -> None:
    path = receiver.new_path()
    api.post("/queues", json={"name": qname, "max_concurrency": 1, "paused": True}).expect(201)
    priorities = [0, 5, 1, 5, 0, 10, -3, 1, 10, 0]
    jobs = [
        create(api, receiver.url(path), queue_name=qname, priority=p, payload={"n": i})
        for i, p in enumerate(priorities)
    ]
    time.sleep(0.3)
    assert receiver.hits(path) == [], "a paused queue's jobs are not claimed"
    api.post(f"/queues/{qname}/resume").expect(200)
    hits = receiver.wait_for(path, len(jobs))
    got = [h.json["n"] for h in hits]
    # Highest priority first; equal priorities in creation order.
    want = sorted(range(len(jobs)), key=lambda i: (-priorities[i], i))
    assert got == want, (
        f"arrival order {got} (priorities {[priorities[i] for i in got]}), want {want}"
    )


# -- concurrency -------------------------------------------------------------


def test_queue_max_concurrency_is_reached_and_never_exceeded(
    api: ApiClient, receiver: Receiver, qname: str
) -> None:
    path = receiver.new_path()
    receiver.respond(path, Reply(200, delay_s=0.3))
    api.post("/queues", json={"name": qname, "max_concurrency": 3}).expect(201)
    create_many(api, [{"callback_url": receiver.url(path), "queue_name": qname}] * 12)
    wait_queue_done(api, qname, 12)
    peak = receiver.max_concurrency(path)
    assert peak == 3, f"peak in flight {peak}, max_concurrency 3"


def test_max_concurrency_change_applies_without_restart(
    api: ApiClient, receiver: Receiver, qname: str
) -> None:
    path = receiver.new_path()
    receiver.respond(path, Reply(200, delay_s=0.3))
    api.post("/queues", json={"name": qname, "max_concurrency": 1}).expect(201)
    create_many(api, [{"callback_url": receiver.url(path), "queue_name": qname}] * 10)
    receiver.wait_for(path, 2)
    assert receiver.max_concurrency(path) == 1
    api.put(f"/queues/{qname}", json={"max_concurrency": 4}).expect(200)
    wait_queue_done(api, qname, 10)
    assert receiver.max_concurrency(path) == 4, f"peak {receiver.max_concurrency(path)}"


def test_global_concurrency_across_queues(limited: ApiClient, receiver: Receiver) -> None:
    """worker.concurrency = 4 over two queues allowing 10 each: 4 in flight at most, and 4 reached."""
    path = receiver.new_path()  # both queues deliver here, so its peak is the global one
    receiver.respond(path, Reply(200, delay_s=0.3))
    jobs = [
        {"callback_url": receiver.url(path), "queue_name": name}
        for name in ("global-a", "global-b")
        for _ in range(10)
    ]
    create_many(limited, jobs)
    wait_queue_done(limited, "global-a", 10)
    wait_queue_done(limited, "global-b", 10)
    peak = receiver.max_concurrency(path)
    assert peak == GLOBAL_CONCURRENCY, f"peak in flight {peak}, worker.concurrency 4"


# -- rate limit --------------------------------------------------------------


def test_rate_limit_holds_within_10_percent(api: ApiClient, receiver: Receiver, qname: str) -> None:
    rate, count = 10.0, 40
    path = receiver.new_path()
    api.post("/queues", json={"name": qname, "rate_limit_rps": rate, "rate_limit_burst": 1}).expect(
        201
    )
    create_many(api, [{"callback_url": receiver.url(path), "queue_name": qname}] * count)
    hits = receiver.wait_for(path, count, timeout=count / rate + 5)
    span = hits[-1].started - hits[0].started
    measured = (count - 1) / span
    gaps = sorted(b.started - a.started for a, b in pairwise(hits))
    detail = (
        f"{count} deliveries over {span:.2f} s after the first: {measured:.2f}/s "
        f"(configured {rate}/s); gaps min {gaps[0] * 1000:.0f} ms, "
        f"median {gaps[len(gaps) // 2] * 1000:.0f} ms, max {gaps[-1] * 1000:.0f} ms"
    )
    print(detail)
    assert span >= 3.0, detail
    assert abs(measured - rate) <= rate * 0.10, detail


def test_rate_limit_burst_lets_a_burst_through(
    api: ApiClient, receiver: Receiver, qname: str
) -> None:
    path = receiver.new_path()
    api.post(
        "/queues", json={"name": qname, "rate_limit_rps": 2, "rate_limit_burst": 5, "paused": True}
    ).expect(201)
    create_many(api, [{"callback_url": receiver.url(path), "queue_name": qname}] * 7)
    time.sleep(0.1)
    api.post(f"/queues/{qname}/resume").expect(200)
    hits = receiver.wait_for(path, 7, timeout=10)
    offsets = [round((h.started - hits[0].started) * 1000) for h in hits]
    print(f"deliveries at {offsets} ms after the first")
    # Without the burst, 2/s would spread the first 5 over 2 s.
    assert offsets[4] < 1000, f"the first 5 (the burst) took {offsets[4]} ms; all: {offsets}"
    # Then one token every 500 ms. Each is checked against its own due time, from
    # the first delivery: a late delivery doesn't also fail the gap after it.
    for n, offset in enumerate(offsets[5:], start=1):
        due = 500 * n
        assert due - 100 <= offset <= due + 150, (
            f"delivery {4 + n} at {offset} ms, due at {due} ms (2/s after the burst); "
            f"all: {offsets}"
        )


# -- pause, resume, worker.queues --------------------------------------------


def test_paused_queue_is_not_delivered_until_resumed(
    api: ApiClient, receiver: Receiver, qname: str
) -> None:
    path = receiver.new_path()
    api.post("/queues", json={"name": qname}).expect(201)
    api.post(f"/queues/{qname}/pause").expect(200)
    job = create(api, receiver.url(path), queue_name=qname)
    time.sleep(1.2)  # more than two safety-net polls (500 ms)
    assert receiver.hits(path) == [], "a paused queue's job was delivered"
    assert api.get(f"/jobs/{job['id']}").expect(200)["status"] == "pending"
    resumed = time.monotonic()
    api.post(f"/queues/{qname}/resume").expect(200)
    [hit] = receiver.wait_for(path, 1, timeout=5)
    latency = hit.started - resumed
    assert latency < 0.3, (
        f"resume -> delivery took {latency * 1000:.0f} ms (resume wakes the engine)"
    )


def test_pause_lets_running_jobs_finish(api: ApiClient, receiver: Receiver, qname: str) -> None:
    path = receiver.new_path()
    receiver.respond(path, Reply(200, b"finished", delay_s=0.8))
    api.post("/queues", json={"name": qname, "max_concurrency": 1}).expect(201)
    first = create(api, receiver.url(path), queue_name=qname)
    second = create(api, receiver.url(path), queue_name=qname)
    receiver.wait_for(path, 1)
    api.post(f"/queues/{qname}/pause").expect(200)
    done = api.wait_job(first["id"], ("completed", "dead"), timeout=5)
    assert done["status"] == "completed" and done["result"] == "finished", done
    time.sleep(0.6)
    assert len(receiver.hits(path)) == 1, "the second job was claimed from a paused queue"
    assert api.get(f"/jobs/{second['id']}").expect(200)["status"] == "pending"
    api.post(f"/queues/{qname}/resume").expect(200)
    api.wait_job(second["id"], "completed", timeout=5)


def test_worker_queues_restricts_what_this_server_delivers(
    limited: ApiClient, receiver: Receiver, qname: str
) -> None:
    served, other = receiver.new_path(), receiver.new_path()
    kept = create(limited, receiver.url(other), queue_name=qname)  # not in worker.queues
    job = create(limited, receiver.url(served), queue_name="served")
    limited.wait_job(job["id"], "completed", timeout=5)
    time.sleep(1.2)
    assert receiver.hits(other) == [], f"queue {qname} is not in worker.queues"
    assert limited.get(f"/jobs/{kept['id']}").expect(200)["status"] == "pending"


# -- fairness ----------------------------------------------------------------


def test_small_queue_is_not_starved_by_a_big_backlog(
    limited: ApiClient, receiver: Receiver
) -> None:
    """300 jobs in one queue, then 3 in another: the 3 finish while the 300 still drain."""
    big, small = receiver.new_path(), receiver.new_path()
    receiver.respond(big, Reply(200, delay_s=0.02))
    receiver.respond(small, Reply(200, delay_s=0.02))
    create_many(limited, [{"callback_url": receiver.url(big), "queue_name": "fair-big"}] * 300)
    create_many(limited, [{"callback_url": receiver.url(small), "queue_name": "fair-small"}] * 3)
    wait_queue_done(limited, "fair-small", 3, timeout=10)
    big_done = len(receiver.hits(big))
    left = queue(limited, "fair-big")
    print(f"when the 3 small jobs were done, {big_done} of 300 big ones had arrived; {left}")
    assert left["pending"] > 0, f"the big queue had drained first: {left}"
    assert big_done < 100, f"{big_done} big-queue deliveries went before 3 small ones"
    wait_queue_done(limited, "fair-big", 300, timeout=30)
