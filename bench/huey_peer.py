"""The peer: huey with SqliteHuey, the embedded-SQLite queue Python users pick.

Set up as a user would for the same job: WAL with ``synchronous=NORMAL`` (the
durability mininq gives a 201; SqliteHuey leaves SQLite's default, FULL in WAL,
or OFF with ``fsync=False``, hence the small storage subclass), a consumer with
32 threads and huey's default polling (0.1 s growing ×1.15 to 10 s when idle),
and a task that POSTs the same payload to the same receiver through a
per-thread urllib3 PoolManager. Tasks are enqueued in-process by a producer.

Consumer and producer each run in their own process
(``python -m bench.huey_peer`` with a JSON spec on stdin), so the bench's own
process stays clean.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from bench.common import PAYLOAD, child_env, read_spec, run_json, stop_process, write_result


def make_task(db_path: str, timeout_s: float = 30.0):  # type: ignore[no-untyped-def]
    """The huey app and its one task, built the same way in both processes."""
    import urllib3
    from huey import Huey
    from huey.storage import SqliteStorage

    class NormalSyncStorage(SqliteStorage):
        def _create_connection(self):  # type: ignore[no-untyped-def]
            conn = super()._create_connection()
            conn.execute("pragma synchronous=NORMAL")
            return conn

    huey = Huey("bench", storage_class=NormalSyncStorage, filename=db_path)
    local = threading.local()

    @huey.task(retries=3, name="post_hook")
    def post_hook(job_id: str, url: str, payload: dict) -> None:
        pool = getattr(local, "pool", None)
        if pool is None:
            pool = local.pool = urllib3.PoolManager(maxsize=1)
        resp = pool.request(
            "POST", url, body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "X-Mininq-Job-Id": job_id},
            retries=False, timeout=timeout_s,
        )
        if resp.status >= 300:
            raise RuntimeError(f"HTTP {resp.status}")

    return huey, post_hook


@dataclass
class Consumer:
    """A running huey consumer process."""

    proc: subprocess.Popen

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGINT, timeout=15)


def start_consumer(db_path: str, workers: int = 32, timeout_s: float = 30.0,
                   quiet: bool = False) -> Consumer:
    """Start `huey` consumer threads on db_path; return once they run."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.huey_peer"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps({"mode": "consumer", "db": db_path, "workers": workers,
                                 "timeout": timeout_s, "quiet": quiet}))
    proc.stdin.close()
    line = proc.stdout.readline()
    if not line.startswith("STARTED"):
        stop_process(proc)
        raise RuntimeError(f"huey consumer did not start: {line!r}")
    return Consumer(proc)


def produce(db_path: str, url: str, count: int = 0,
            phases: list[tuple[float, float]] | None = None,
            urls: list[str] | None = None) -> dict:
    """Enqueue `count` tasks at once, or at `phases` of (rate/s, seconds), or
    one task per URL of `urls`.

    Returns the first enqueue's start time and, per task, when its enqueue
    returned (the moment it is durable, as a 201 is for mininq).
    """
    return run_json("bench.huey_peer", {
        "mode": "produce", "db": db_path, "url": url, "count": count,
        "phases": phases or [], "urls": urls or [],
    })


def _consume(spec: dict) -> None:
    import logging

    from huey.consumer import Consumer as HueyConsumer

    logging.basicConfig(level=logging.WARNING)
    if spec.get("quiet"):
        # Failing tasks are expected (the noisy-neighbour workload): no tracebacks.
        logging.getLogger("huey").setLevel(logging.CRITICAL)
    huey, _task = make_task(spec["db"], float(spec.get("timeout", 30.0)))
    consumer = HueyConsumer(huey, workers=int(spec["workers"]), worker_type="thread")
    started = threading.Event()

    @huey.on_startup()
    def _ready() -> None:
        if not started.is_set():
            started.set()
            print("STARTED", flush=True)

    consumer.run()


def _produce(spec: dict) -> dict:
    _huey, post_hook = make_task(spec["db"])
    url = spec["url"]
    records: list[dict] = []
    start = time.time()
    if spec["phases"]:
        n = 0
        for phase, (per_s, seconds) in enumerate(spec["phases"]):
            begin = time.monotonic()
            for k in range(int(per_s * seconds)):
                delay = begin + k / per_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                job_id = f"huey-{n}"
                post_hook(job_id, url, PAYLOAD)
                records.append({"phase": phase, "id": job_id, "done": time.time()})
                n += 1
    elif spec.get("urls"):
        for n, each in enumerate(spec["urls"]):
            post_hook(f"huey-{n}", each, PAYLOAD)
    else:
        for n in range(int(spec["count"])):
            post_hook(f"huey-{n}", url, PAYLOAD)
    end = time.time()
    return {"start": start, "end": end, "records": records}


def main() -> None:
    spec = read_spec()
    if spec["mode"] == "consumer":
        _consume(spec)
    else:
        write_result(_produce(spec))


if __name__ == "__main__":
    main()


# ---- workloads, run from the bench process ------------------------------------

def run_w1(receiver, directory: str, count: int) -> dict:  # type: ignore[no-untyped-def]
    """`count` tasks enqueued as fast as one producer can while 32 threads drain."""
    db_path = f"{directory}/huey-w1.db"
    consumer = start_consumer(db_path)
    try:
        receiver.reset()
        produced = produce(db_path, receiver.url, count=count)
        stats = receiver.wait_for(count, timeout=600)
    finally:
        consumer.stop()
    receiver.reset()
    return {
        "problem": None if stats["count"] >= count
        else f"only {stats['count']} of {count} tasks delivered",
        "enqueue_rate": count / (produced["end"] - produced["start"]),
        "e2e_rate": stats["count"] / (stats["last"] - produced["start"])
        if stats["count"] >= count else None,
        "delivered": stats["count"],
    }


def run_w2(receiver, directory: str,  # type: ignore[no-untyped-def]
           phases: list[tuple[float, float]]) -> list[dict]:
    """Latency from enqueue to arrival at each phase's rate."""
    from bench.common import first_arrivals, latency_summary

    db_path = f"{directory}/huey-w2.db"
    consumer = start_consumer(db_path)
    try:
        receiver.reset()
        produced = produce(db_path, receiver.url, phases=phases)
        receiver.wait_for(len(produced["records"]), timeout=120, idle_timeout=15)
        arrived = first_arrivals(receiver.arrivals())
    finally:
        consumer.stop()
    receiver.reset()
    out = []
    for phase in range(len(phases)):
        pairs = [(r["done"], arrived.get(r["id"])) for r in produced["records"]
                 if r["phase"] == phase]
        out.append(latency_summary(pairs))
    return out
